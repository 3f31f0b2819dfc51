"""SOQL tokens for ``soql.py``: words, symbols, numbers, date/datetime and string literals.

String literals keep their source text (quotes included) so that one literal can be read either as a
plain value or as a LIKE pattern, where ``\\%`` and ``\\_`` mean a literal ``%`` and ``_``. Lexical
errors are MALFORMED_QUERY with the ANTLR-style ``line R:C ...`` text Salesforce sends for them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from trueup.sandbox.errors import ApiError

_TOKEN = re.compile(
    r"""(?P<space>\s+)
    |(?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)
    |(?P<date>\d{4}-\d{2}-\d{2})
    |(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))
    |(?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    |(?P<symbol><=|>=|!=|<>|[=<>(),:])""",
    re.VERBOSE,
)
# Salesforce's "Quoted String Escape Sequences"; \uXXXX is handled on its own.
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}
LIKE_ONLY = frozenset("%_")  # escapable only inside a LIKE pattern


@dataclass(frozen=True)
class Token:
    """One token: kind (word, symbol, number, date, datetime, string, eof), source text, offset."""

    kind: str
    text: str
    pos: int

    @property
    def upper(self) -> str:
        """The upper-cased text of a word; empty for every other kind."""
        return self.text.upper() if self.kind == "word" else ""


def locate(text: str, pos: int) -> tuple[int, int, str]:
    """Row (1-based), column (0-based) and the text of the line holding offset ``pos``."""
    row = text.count("\n", 0, pos) + 1
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return row, pos - start, text[start : None if end < 0 else end]


def _lexical(text: str, pos: int, message: str) -> ApiError:
    row, column, _ = locate(text, pos)
    return ApiError(400, "MALFORMED_QUERY", f"line {row}:{column} {message}")


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, ending with an ``eof`` token; raises ApiError on a bad character."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        if text[pos] == "'":
            end = _string_end(text, pos)
            tokens.append(Token("string", text[pos:end], pos))
            pos = end
            continue
        match = _TOKEN.match(text, pos)
        if match is None:
            raise _lexical(text, pos, f"no viable alternative at character '{text[pos]}'")
        if match.lastgroup != "space":
            tokens.append(Token(str(match.lastgroup), match.group(), pos))
        pos = match.end()
    tokens.append(Token("eof", "<EOF>", len(text)))
    return tokens


def _string_end(text: str, start: int) -> int:
    """The offset just past the string literal opening at ``start``; escapes are checked."""
    pos = start + 1
    while pos < len(text):
        char = text[pos]
        if char == "'":
            return pos + 1
        if char == "\\":
            code = text[pos + 1 : pos + 2]
            if code == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", text[pos + 2 : pos + 6]):
                pos += 6
                continue
            if code.lower() not in _ESCAPES and code not in LIKE_ONLY:
                raise illegal_escape(text, start, pos)
            pos += 1
        pos += 1
    raise _lexical(text, len(text), "mismatched character '<EOF>' expecting '''")


def illegal_escape(text: str, start: int, pos: int) -> ApiError:
    """MALFORMED_QUERY for the backslash at ``pos`` in the literal opening at ``start``."""
    end = text.find("'", pos + 2)
    literal = text[start : len(text) if end < 0 else end + 1]
    sequence = text[pos : pos + 2]
    return ApiError(
        400,
        "MALFORMED_QUERY",
        f"Invalid string literal {literal}. Illegal character sequence '{sequence}' in string "
        "literal.",
    )


def chars(literal: str) -> Iterator[tuple[str, bool, int]]:
    """A checked literal's characters, each with whether it was escaped and its source offset."""
    pos = 1
    while pos < len(literal) - 1:
        if literal[pos] != "\\":
            yield literal[pos], False, pos
            pos += 1
        elif literal[pos + 1] == "u":
            yield chr(int(literal[pos + 2 : pos + 6], 16)), True, pos
            pos += 6
        else:
            code = literal[pos + 1]
            yield _ESCAPES.get(code.lower(), code), True, pos
            pos += 2


def like_pattern(literal: str) -> re.Pattern[str]:
    """A case-insensitive regex for a LIKE literal: ``%`` any run, ``_`` one character."""
    parts = []
    for char, escaped, _ in chars(literal):
        wildcard = None if escaped else {"%": ".*", "_": "."}.get(char)
        parts.append(wildcard or re.escape(char))
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)
