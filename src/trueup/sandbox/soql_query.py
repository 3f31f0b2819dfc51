"""The value a SOQL query parses to (``Query`` and its conditions) and ``run``, which applies it.

``run`` follows Salesforce's comparison rules: text ``=``, ``!=`` and ``IN`` ignore case unless the
field is case-sensitive, an empty string is null, Ids match in their 15- or 18-character form (an
18-character Id in any case) and sort by value, case-exact (``ORDER BY Id`` agrees with ``Id >``,
so paging by Id visits each record once), a null checkbox is false, TODAY on a datetime field is
the whole UTC day, and logic is two-valued: a comparison with a null value is false, and its
negation (``!=``, ``NOT IN``, ``NOT``) true. A stored value of the wrong type never matches.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from typing import Any, TypeAlias

_ID_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


class Op(Enum):
    """A comparison operator of a WHERE field expression."""

    EQ = "="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    LIKE = "LIKE"
    IN = "IN"
    NOT_IN = "NOT IN"


@dataclass(frozen=True)
class DayLiteral:
    """A resolved TODAY / YESTERDAY / TOMORROW: the whole UTC day on datetime fields."""

    day: date


@dataclass(frozen=True)
class Comparison:
    """``field op value``; ``values`` holds one value, or the list of IN / NOT IN."""

    field: str
    field_type: str
    op: Op
    values: tuple[Any, ...]
    case_sensitive: bool = False
    pattern: re.Pattern[str] | None = None  # LIKE only; None for LIKE null


@dataclass(frozen=True)
class Not:
    """``NOT cond``."""

    part: Condition


@dataclass(frozen=True)
class And:
    """All of the parts hold."""

    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class Or:
    """Any of the parts holds."""

    parts: tuple[Condition, ...]


Condition: TypeAlias = Comparison | Not | And | Or


@dataclass(frozen=True)
class OrderItem:
    """One ORDER BY key; Id and lookup fields sort by the Id's value (``field_type``)."""

    field: str
    ascending: bool
    nulls_first: bool
    field_type: str = "string"


@dataclass(frozen=True)
class Query:
    """A parsed query: canonical object and field names, ready for ``run``."""

    sobject: str
    fields: tuple[str, ...]
    count_only: bool
    where: Condition | None
    order_by: tuple[OrderItem, ...]
    limit: int | None
    offset: int | None


def run(query: Query, rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Filter, order, offset and limit ``rows``; each result holds exactly ``query.fields``.

    A COUNT() query yields one empty dict per counted row.
    """
    kept = [row for row in rows if query.where is None or _holds(query.where, row)]
    for item in reversed(query.order_by):  # stable sorts, last key first
        kept.sort(key=_sort_key(item), reverse=not item.ascending)
    start = query.offset or 0
    stop = None if query.limit is None else start + query.limit
    return [{name: row.get(name) for name in query.fields} for row in kept[start:stop]]


def _holds(condition: Condition, row: Mapping[str, Any]) -> bool:
    if isinstance(condition, And):
        return all(_holds(part, row) for part in condition.parts)
    if isinstance(condition, Or):
        return any(_holds(part, row) for part in condition.parts)
    if isinstance(condition, Not):
        return not _holds(condition.part, row)
    return _compare(condition, row.get(condition.field))


def _compare(test: Comparison, stored: Any) -> bool:
    if test.field_type == "boolean" and stored is None:
        stored = False  # Salesforce: null matches FALSE on a checkbox
    if stored == "":
        stored = None
    if test.op is Op.LIKE:
        matched = isinstance(stored, str) and test.pattern and test.pattern.fullmatch(stored)
        return bool(matched)
    if test.op in (Op.IN, Op.NOT_IN):
        found = any(_equal(test, stored, value) for value in test.values)
        return found if test.op is Op.IN else not found
    if test.op in (Op.EQ, Op.NE):
        return _equal(test, stored, test.values[0]) is (test.op is Op.EQ)
    return _ordered(test, stored, test.values[0])


def _equal(test: Comparison, stored: Any, value: Any) -> bool:
    if value is None or stored is None:
        return value is None and stored is None
    if isinstance(value, DayLiteral):
        start, end = _day_bounds(value, stored)
        return _safe(lambda: start <= _utc(stored) < end)
    return bool(_normal(test, stored) == _normal(test, value))


def _ordered(test: Comparison, stored: Any, value: Any) -> bool:
    if value is None or stored is None:
        return False
    if isinstance(value, DayLiteral):
        start, end = _day_bounds(value, stored)
        here = _utc(stored)
        checks = {Op.LT: lambda: here < start, Op.LE: lambda: here < end}
        checks |= {Op.GT: lambda: here >= end, Op.GE: lambda: here >= start}
        return _safe(checks[test.op])
    left, right = _normal(test, stored), _normal(test, value)
    checks = {Op.LT: lambda: left < right, Op.LE: lambda: left <= right}
    checks |= {Op.GT: lambda: left > right, Op.GE: lambda: left >= right}
    return _safe(checks[test.op])


def _safe(check: Callable[[], object]) -> bool:
    try:
        return bool(check())
    except TypeError:  # a stored value of the wrong type never matches
        return False


def _day_bounds(value: DayLiteral, stored: Any) -> tuple[Any, Any]:
    if isinstance(stored, datetime):
        start = datetime.combine(value.day, datetime.min.time(), UTC)
        return start, start + timedelta(days=1)
    return value.day, value.day + timedelta(days=1)


def _utc(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _normal(test: Comparison, value: Any) -> Any:
    if isinstance(value, str):
        if test.field_type in {"id", "reference"}:
            return _id_key(value)
        return value if test.case_sensitive else value.casefold()
    return _utc(value)


def _id_key(value: str) -> str:
    """The case-exact 15-character form of an Id; an 18-character Id may arrive in any case."""
    if len(value) != 18 or any(c not in _ID_SUFFIX for c in value[15:].upper()):
        return value
    chars = []
    for block in range(3):
        bits = _ID_SUFFIX.index(value[15 + block].upper())
        for j, char in enumerate(value[block * 5 : block * 5 + 5]):
            chars.append(char.upper() if bits >> j & 1 else char.lower())
    return "".join(chars)


def _sort_key(item: OrderItem) -> Any:
    null_rank = 0 if item.nulls_first == item.ascending else 2
    by_id = item.field_type in {"id", "reference"}

    def key(row: Mapping[str, Any]) -> tuple[Any, ...]:
        value = row.get(item.field)
        if value is None or value == "":
            return (null_rank,)
        if isinstance(value, str):
            # Ids sort by value, case-exact: base-62 order (0-9, A-Z, a-z) is the code-point
            # order of the 15-character form, the same order ``Id > '...'`` compares in.
            return (1, 0, _id_key(value) if by_id else value.casefold())
        if isinstance(value, bool | int | float):
            return (1, 1, value)
        if isinstance(value, datetime):
            return (1, 2, _utc(value))
        return (1, 3, value) if isinstance(value, date) else (1, 4, repr(value))

    return key
