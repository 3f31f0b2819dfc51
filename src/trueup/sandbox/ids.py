"""Salesforce record Ids: 15-character case-sensitive, 18-character with a case-checksum suffix."""

from __future__ import annotations

_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def checksum(id15: str) -> str:
    """The 3-character suffix: per 5-character block, a bit for each upper-case letter."""
    out = ""
    for block in range(3):
        chunk = id15[block * 5 : block * 5 + 5]
        bits = sum(1 << j for j, c in enumerate(chunk) if "A" <= c <= "Z")
        out += _SUFFIX[bits]
    return out


def to_18(record_id: str) -> str:
    """An Id in its 18-character form (15-character Ids gain their suffix)."""
    if len(record_id) == 18:
        return record_id[:15] + checksum(record_id[:15])
    if len(record_id) == 15:
        return record_id + checksum(record_id)
    raise ValueError(f"not a Salesforce Id: {record_id!r}")


def mint(prefix: str, number: int, *, pod: str = "8c") -> str:
    """The ``number``-th Id of an object with key ``prefix`` (3 chars), 18 characters long."""
    if len(prefix) != 3:
        raise ValueError("a key prefix has 3 characters")
    digits = ""
    n = number
    for _ in range(10):
        n, r = divmod(n, 62)
        digits = _BASE62[r] + digits
    id15 = prefix + pod + digits
    return id15 + checksum(id15)


def same_id(a: str, b: str) -> bool:
    """Whether two Ids name the same record (15 or 18 characters, suffix case-insensitive)."""
    try:
        return to_18(a)[:15] == to_18(b)[:15]
    except ValueError:
        return False
