"""The SOQL subset a sync needs: ``parse`` (recursive descent) and ``run``; import both from here.

Tokens come from ``soql_lexer``; the parsed value (``Query``) and ``run`` live in ``soql_query``.

Grammar (keywords and names case-insensitive; wire spec §5.4)::

    query   := SELECT (COUNT '(' ')' | field (',' field)*) FROM object
               [WHERE cond] [ORDER BY field [ASC|DESC] [NULLS FIRST|LAST] (',' ...)*]
               [LIMIT n] [OFFSET n]
    cond    := unary (AND unary)* | unary (OR unary)*    -- mixing AND and OR needs parentheses
    unary   := NOT unary | '(' cond ')' | field op value | field [NOT] IN '(' value (',' value)* ')'
    op      := = | != | <> | < | <= | > | >= | LIKE
    value   := 'string' | number | TRUE | FALSE | NULL | 2024-01-31 | 2024-01-31T10:00:00Z
               | TODAY | YESTERDAY | TOMORROW

Semantics follow Salesforce: text ``=``/``IN`` ignore case unless the field is case-sensitive,
``''`` means null for text, Ids match 15 or 18 characters and sort case-exact (base-62 order, as
``Id >`` compares), a null boolean counts as false, and logic is two-valued (``Name != 'x'``
keeps rows whose Name is null). Errors are ``ApiError`` 400 with the codes of §5.3 and a message
pointing at the offending token, as Salesforce does. What Salesforce supports but the sandbox does
not (relationships, subqueries, GROUP BY, functions, ...) is a MALFORMED_QUERY that says so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from trueup.sandbox.errors import ApiError
from trueup.sandbox.objects import SField, SObject
from trueup.sandbox.soql_lexer import (
    LIKE_ONLY,
    Token,
    chars,
    illegal_escape,
    like_pattern,
    locate,
    tokenize,
)
from trueup.sandbox.soql_query import (
    And,
    Comparison,
    Condition,
    DayLiteral,
    Not,
    Op,
    Or,
    OrderItem,
    Query,
    run,
)

__all__ = [
    "And",
    "Comparison",
    "Condition",
    "DayLiteral",
    "Not",
    "Op",
    "Or",
    "OrderItem",
    "Query",
    "parse",
    "run",
]

MAX_OFFSET = 2000  # Salesforce: NUMBER_OUTSIDE_VALID_RANGE "Maximum SOQL offset allowed is 2000"

_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-5]{3})?")
_RESERVED = frozenset(
    {"AND", "ASC", "DESC", "EXCLUDES", "FIRST", "FROM", "GROUP", "HAVING", "IN", "INCLUDES"}
    | {"LAST", "LIKE", "LIMIT", "NOT", "NULL", "NULLS", "OR", "SELECT", "WHERE", "WITH"}
)
_CLAUSES = frozenset({"WHERE", "ORDER", "LIMIT", "OFFSET"})
_UNSUPPORTED_CLAUSES = {
    "USING": "USING SCOPE",
    "WITH": "WITH clauses",
    "GROUP": "GROUP BY",
    "HAVING": "HAVING",
    "FOR": "FOR VIEW / FOR REFERENCE / FOR UPDATE",
    "UPDATE": "UPDATE TRACKING / UPDATE VIEWSTAT",
    "ALL": "ALL ROWS",
}
_DAYS = {"TODAY": 0, "YESTERDAY": -1, "TOMORROW": 1}
_OTHER_DATE_LITERAL = re.compile(r"(LAST|THIS|NEXT|N)_[A-Z0-9_]+")
_NUMBER_TYPES = frozenset({"double", "int", "long", "currency", "percent"})
_ACCEPTS = {  # field category -> literal kinds it takes
    "text": {"string"},
    "id": {"string"},
    "boolean": {"boolean"},
    "date": {"date", "day"},
    "datetime": {"datetime", "day"},
    "number": {"number"},
}
_SYMBOL_OPS = {op.value: op for op in (Op.EQ, Op.NE, Op.LT, Op.LE, Op.GT, Op.GE)} | {"<>": Op.NE}


def parse(text: str, objects: Mapping[str, SObject], *, now: datetime | None = None) -> Query:
    """Parse SOQL against ``objects``; ``now`` fixes TODAY (default: the clock). Raises ApiError."""
    return _Parser(text, objects, now or datetime.now(UTC)).query()


def _category(field: SField) -> str:
    if field.type in {"id", "reference"}:
        return "id"
    if field.type in {"boolean", "date", "datetime"}:
        return field.type
    return "number" if field.type in _NUMBER_TYPES else "text"


class _Parser:
    def __init__(self, text: str, objects: Mapping[str, SObject], now: datetime) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0
        self.objects = {name.lower(): obj for name, obj in objects.items()}
        self.today = now.astimezone(UTC).date()

    # tokens and errors

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def take(self) -> Token:
        token = self.peek()
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def at(self, *texts: str, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return (token.upper or (token.text if token.kind == "symbol" else "\0")) in texts

    def accept(self, *texts: str) -> Token | None:
        return self.take() if self.at(*texts) else None

    def expect(self, *texts: str) -> Token:
        token = self.accept(*texts)
        if token is None:
            raise self.unexpected(self.peek())
        return token

    def error(self, token: Token, code: str, message: str) -> ApiError:
        row, column, line = locate(self.text, token.pos)
        caret = " " * column + "^"
        where = f"ERROR at Row:{row}:Column:{column + 1}"
        return ApiError(400, code, f"\n{line}\n{caret}\n{where}\n{message}")

    def unexpected(self, token: Token) -> ApiError:
        return self.error(token, "MALFORMED_QUERY", f"unexpected token: '{token.text}'")

    def unsupported(self, token: Token, feature: str) -> ApiError:
        message = f"The trueup sandbox does not support {feature} (see trueup.sandbox.soql)."
        return self.error(token, "MALFORMED_QUERY", message)

    def name_token(self) -> Token:
        """A field or object name; functions and subqueries are refused here."""
        token = self.peek()
        if token.kind == "symbol" and token.text == "(":
            raise self.unsupported(token, "subqueries")
        if token.kind != "word" or token.upper in _RESERVED:
            raise self.unexpected(token)
        if token.upper == "TYPEOF":
            raise self.unsupported(token, "TYPEOF")
        if self.at("(", ahead=1):
            raise self.unsupported(token, f"SOQL functions such as {token.text}()")
        return self.take()

    # clauses

    def query(self) -> Query:
        self.expect("SELECT")
        count_only, selected = self.select_list()
        self.expect("FROM")
        sobject = self.sobject()
        fields: list[str] = []
        for token in selected:
            name = self.field(sobject, token).name
            if name in fields:
                raise self.error(token, "MALFORMED_QUERY", f"duplicate field selected: {name}")
            fields.append(name)
        where = self.condition(sobject) if self.accept("WHERE") else None
        order: tuple[OrderItem, ...] = ()
        if self.accept("ORDER"):
            self.expect("BY")
            order = self.order_by(sobject)
        limit = self.integer() if self.accept("LIMIT") else None
        offset = None
        if self.accept("OFFSET"):
            offset = self.integer()
            if offset > MAX_OFFSET:
                message = f"Maximum SOQL offset allowed is {MAX_OFFSET}"
                raise ApiError(400, "NUMBER_OUTSIDE_VALID_RANGE", message)
        self.refuse_clause()
        if self.peek().kind != "eof":
            raise self.unexpected(self.peek())
        return Query(sobject.name, tuple(fields), count_only, where, order, limit, offset)

    def select_list(self) -> tuple[bool, list[Token]]:
        if self.at("COUNT") and self.at("(", ahead=1):
            count = self.take()
            self.take()
            if self.accept(")") is None:
                raise self.unsupported(count, "aggregate functions other than COUNT()")
            return True, []
        selected = [self.name_token()]
        while self.accept(","):
            selected.append(self.name_token())
        return False, selected

    def sobject(self) -> SObject:
        token = self.take()
        if token.kind != "word" or token.upper in _RESERVED or "." in token.text:
            raise self.unexpected(token)
        sobject = self.objects.get(token.text.lower())
        if sobject is None:
            raise self.error(
                token,
                "INVALID_TYPE",
                f"sObject type '{token.text}' is not supported. If you are attempting to use a "
                "custom object, be sure to append the '__c' after the entity name. Please "
                "reference your WSDL or the describe call for the appropriate names.",
            )
        alias = self.peek()
        if alias.kind == "word" and alias.upper not in _CLAUSES | set(_UNSUPPORTED_CLAUSES):
            raise self.unsupported(alias, "object aliases")
        return sobject

    def refuse_clause(self) -> None:
        token = self.peek()
        if token.upper in _UNSUPPORTED_CLAUSES:
            raise self.unsupported(token, _UNSUPPORTED_CLAUSES[token.upper])

    def field(self, sobject: SObject, token: Token) -> SField:
        name = token.text
        if "." in name:
            head, _, rest = name.partition(".")
            if head.lower() != sobject.name.lower() or "." in rest:
                raise self.unsupported(token, f"relationship queries ('{token.text}')")
            name = rest
        found = sobject.field(name)
        if found is None:
            raise self.error(
                token,
                "INVALID_FIELD",
                f"No such column '{name}' on entity '{sobject.name}'. If you are attempting to "
                "use a custom field, be sure to append the '__c' after the custom field name. "
                "Please reference your WSDL or the describe call for the appropriate names.",
            )
        return found

    def order_by(self, sobject: SObject) -> tuple[OrderItem, ...]:
        items = []
        while True:
            field = self.field(sobject, self.name_token())
            direction = self.accept("ASC", "DESC")
            ascending = direction is None or direction.upper == "ASC"
            nulls_first = ascending
            if self.accept("NULLS"):
                nulls_first = self.expect("FIRST", "LAST").upper == "FIRST"
            items.append(OrderItem(field.name, ascending, nulls_first, field.type))
            if not self.accept(","):
                return tuple(items)

    def integer(self) -> int:
        token = self.take()
        if token.kind != "number" or not token.text.isdigit() or len(token.text) > 18:
            raise self.unexpected(token)
        return int(token.text)

    # WHERE

    def condition(self, sobject: SObject) -> Condition:
        parts = [self.unary(sobject)]
        joiner = ""
        while self.at("AND", "OR"):
            token = self.take()
            if joiner and token.upper != joiner:
                raise self.unexpected(token)  # Salesforce wants parentheses to mix AND and OR
            joiner = token.upper
            parts.append(self.unary(sobject))
        if not joiner:
            return parts[0]
        return And(tuple(parts)) if joiner == "AND" else Or(tuple(parts))

    def unary(self, sobject: SObject) -> Condition:
        if self.accept("NOT"):
            return Not(self.unary(sobject))
        if self.at("(") and not self.at("SELECT", ahead=1):
            self.take()
            inner = self.condition(sobject)
            self.expect(")")
            return inner
        field = self.field(sobject, self.name_token())
        op = self.operator()
        case_sensitive = field.case_sensitive
        if op in (Op.IN, Op.NOT_IN):
            self.expect("(")
            if self.at("SELECT"):
                raise self.unsupported(self.peek(), "semi-join and anti-join subqueries")
            values = [self.value(field, op)]
            while self.accept(","):
                values.append(self.value(field, op))
            self.expect(")")
            return Comparison(field.name, field.type, op, tuple(values), case_sensitive)
        if op is Op.LIKE and _category(field) != "text":
            raise self.error(
                self.tokens[self.index - 1],
                "INVALID_QUERY_FILTER_OPERATOR",
                f"invalid operator on {field.type} field: LIKE",
            )
        literal = self.peek()
        value = self.value(field, op)
        pattern = like_pattern(literal.text) if op is Op.LIKE and value is not None else None
        return Comparison(field.name, field.type, op, (value,), case_sensitive, pattern)

    def operator(self) -> Op:
        token = self.take()
        if token.kind == "symbol" and token.text in _SYMBOL_OPS:
            return _SYMBOL_OPS[token.text]
        if token.upper in {"LIKE", "IN"}:
            return Op(token.upper)
        if token.upper == "NOT" and self.accept("IN"):
            return Op.NOT_IN
        if token.upper in {"INCLUDES", "EXCLUDES"}:
            raise self.unsupported(token, "INCLUDES / EXCLUDES (multi-select picklists)")
        raise self.unexpected(token)

    def value(self, field: SField, op: Op) -> Any:
        """One literal, checked against the field's type and converted to a stored-value type."""
        token = self.take()
        kind, value = self.literal(token)
        category = _category(field)
        if kind == "null":  # on a checkbox, null means false (Salesforce docs: "null in WHERE")
            return False if category == "boolean" else None
        if kind not in _ACCEPTS[category]:
            expected = {"datetime": "dateTime", "text": "string"}.get(category, field.type)
            quotes = "be" if category in {"text", "id"} else "not be"
            raise self.error(
                token,
                "INVALID_FIELD",
                f"value of filter criterion for field '{field.name}' must be of type {expected} "
                f"and should {quotes} enclosed in quotes",
            )
        if kind != "string":
            return value
        text = ""
        for char, escaped, offset in chars(token.text):
            if escaped and char in LIKE_ONLY and op is not Op.LIKE:
                raise illegal_escape(self.text, token.pos, token.pos + offset)
            text += char
        if category == "id" and not _ID.fullmatch(text):
            raise self.error(token, "INVALID_QUERY_FILTER_OPERATOR", f"invalid ID field: {text}")
        return None if text == "" and category == "text" else text

    def literal(self, token: Token) -> tuple[str, Any]:
        """The kind and Python value of a literal token."""
        if token.kind == "string":
            return "string", token.text
        if token.kind == "number":
            if "." in token.text:
                return "number", float(token.text)
            if len(token.text) > 40:  # past any Salesforce number, and past int()'s digit limit
                raise self.unexpected(token)
            return "number", int(token.text)
        if token.kind in {"date", "datetime"}:
            try:
                if token.kind == "date":
                    return "date", date.fromisoformat(token.text)
                stamp = datetime.fromisoformat(token.text)
            except ValueError:
                stamp = None
            if stamp is None or stamp.tzinfo is None:
                message = f"invalid {token.kind} literal: {token.text}"
                raise self.error(token, "MALFORMED_QUERY", message) from None
            return "datetime", stamp.astimezone(UTC)
        word = token.upper
        if word in {"TRUE", "FALSE"}:
            return "boolean", word == "TRUE"
        if word == "NULL":
            return "null", None
        if word in _DAYS:
            return "day", DayLiteral(self.today + timedelta(days=_DAYS[word]))
        if _OTHER_DATE_LITERAL.fullmatch(word):
            raise self.unsupported(token, f"the date literal {word}")
        if token.text == ":":
            raise self.unsupported(token, "bind variables")
        raise self.unexpected(token)
