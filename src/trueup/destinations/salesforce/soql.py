"""SOQL text built from values: string literals escaped, never concatenated raw (wire spec §5).

Field and object names in trueup's SOQL always come from the object's describe; values (keys
from the source, Ids) go through ``string_literal``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

# SOQL string escapes (Salesforce "Quoted String Escape Sequences").
_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}
_ESCAPED = re.compile("|".join(re.escape(c) for c in _ESCAPES))
_RECORD_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
# A query travels in the URL: keep each well under Salesforce's 16,384-character URI limit.
MAX_IN_TEXT = 8_000
MAX_IN_VALUES = 200


def string_literal(value: str) -> str:
    """``value`` as a quoted SOQL string literal."""
    return "'" + _ESCAPED.sub(lambda m: _ESCAPES[m.group(0)], value) + "'"


def is_record_id(value: str) -> bool:
    """Whether ``value`` has the shape of a Salesforce record Id (15 or 18 letters and digits)."""
    return _RECORD_ID.fullmatch(value) is not None


def in_lists(values: Sequence[str]) -> Iterator[str]:
    """``IN`` lists ``('a','b',...)`` covering ``values``, each short enough for one query."""
    chunk: list[str] = []
    size = 0
    for value in values:
        literal = string_literal(value)
        if chunk and (len(chunk) >= MAX_IN_VALUES or size + len(literal) > MAX_IN_TEXT):
            yield "(" + ",".join(chunk) + ")"
            chunk, size = [], 0
        chunk.append(literal)
        size += len(literal) + 1
    if chunk:
        yield "(" + ",".join(chunk) + ")"
