"""Field values by describe type: parsed from JSON and Bulk CSV, rendered back for responses.

Storage values are plain Python: ``str``, ``bool``, ``int``, ``float``, ``datetime.date``, aware UTC
``datetime.datetime`` (millisecond precision, as Salesforce keeps), 18-character Ids, or None.

Error codes (wire spec §9.1): a JSON value the org cannot deserialise is ``JSON_PARSER_ERROR``; a
CSV cell of the wrong type is ``INVALID_TYPE_ON_FIELD_IN_RECORD`` (§8.6); text over ``length`` is
``STRING_TOO_LONG``; an Id that is not one is ``MALFORMED_ID``. Field checks that need the org
(required, createable, unique) live in the org, not here.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable
from enum import Enum
from typing import Any, Final

from trueup.sandbox.errors import RecordError
from trueup.sandbox.ids import to_18
from trueup.sandbox.objects import SField

UTC = dt.UTC

TEXT = frozenset(
    {
        "string",
        "textarea",
        "email",
        "phone",
        "url",
        "picklist",
        "multipicklist",
        "combobox",
        "encryptedstring",
    }
)
FLOATS = frozenset({"double", "currency", "percent"})
INTS = frozenset({"int", "long"})
IDS = frozenset({"id", "reference"})

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?(Z|[+-]\d{2}:?\d{2})\Z"
)
_CSV_INT = re.compile(r"[+-]?\d+\Z")
_CSV_FLOAT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\Z")
_ID = re.compile(r"[0-9A-Za-z]{15}(?:[0-9A-Za-z]{3})?\Z")


class Unchanged(Enum):
    """The type of ``UNCHANGED``."""

    UNCHANGED = "UNCHANGED"


UNCHANGED: Final = Unchanged.UNCHANGED
"""A Bulk CSV empty cell: leave the field as it is (wire spec §8.6)."""


class FieldValueError(Exception):
    """A value the field cannot hold, with the statusCode Salesforce reports for it."""

    def __init__(self, status_code: str, message: str, fields: tuple[str, ...] = ()) -> None:
        super().__init__(f"{status_code}: {message}")
        self.status_code = status_code
        self.message = message
        self.fields = fields

    def record_error(self) -> RecordError:
        """The same failure as a per-record error."""
        return RecordError(self.status_code, self.message, self.fields)


def label(field: SField) -> str:
    """The field's label as describe reports it (Salesforce names fields by label in messages)."""
    return field.label or field.name.removesuffix("__c").replace("_", " ")


# ---------------------------------------------------------------------------------------------
# JSON


def _token(value: Any) -> str:
    if isinstance(value, bool):
        return "VALUE_TRUE" if value else "VALUE_FALSE"
    if isinstance(value, int):
        return "VALUE_NUMBER_INT"
    if isinstance(value, float):
        return "VALUE_NUMBER_FLOAT"
    if isinstance(value, dict):
        return "START_OBJECT"
    if isinstance(value, list):
        return "START_ARRAY"
    return "VALUE_STRING"


def _not_json(field: SField, kind: str, value: Any) -> FieldValueError:
    # §9.1: JSON_PARSER_ERROR, "Cannot deserialize instance of date from VALUE_STRING value ...".
    # Without the parser's position, the "at [line:1, column:N]" tail is left off.
    shown = value if isinstance(value, str | int | float) else ""
    message = (
        f"Cannot deserialize instance of {kind} from {_token(value)} value {shown} "
        "or request may be missing a required field"
    )
    return FieldValueError("JSON_PARSER_ERROR", message, (field.name,))


def _text(field: SField, value: str) -> str:
    if field.length and len(value) > field.length:
        # §9.1 STRING_TOO_LONG: "{Label}: data value too large: {value} (max length={n})".
        message = f"{label(field)}: data value too large: {value} (max length={field.length})"
        raise FieldValueError("STRING_TOO_LONG", message, (field.name,))
    return value


def _id(field: SField, value: str) -> str:
    if not _ID.match(value):
        # §9.1 MALFORMED_ID (T, C); the message follows Salesforce's lookup-field wording [U].
        message = f"{label(field)}: id value of incorrect type: {value}"
        raise FieldValueError("MALFORMED_ID", message, (field.name,))
    return to_18(value)


def parse_date(text: str) -> dt.date | None:
    """``yyyy-MM-dd`` as a date (no time, no offset: wire spec §3.4), or None when it is not one."""
    if not _DATE.match(text):
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def parse_datetime(text: str) -> dt.datetime | None:
    """``yyyy-MM-ddTHH:mm:ss(.SSS)(Z|±HH:mm|±HHmm)`` as aware UTC, or None (wire spec §3.4)."""
    m = _DATETIME.match(text)
    if m is None:
        return None
    year, month, day, hour, minute, second, millis, zone = m.groups()
    if zone == "Z":
        tz = UTC
    else:
        sign = -1 if zone[0] == "-" else 1
        hours, minutes = int(zone[1:3]), int(zone[-2:])
        if hours > 23 or minutes > 59:
            return None
        tz = dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
    micro = int((millis or "0").ljust(3, "0")) * 1000
    try:
        parts = (int(year), int(month), int(day), int(hour), int(minute), int(second))
        return dt.datetime(*parts, micro, tzinfo=tz).astimezone(UTC)
    except ValueError:
        return None


def from_json(field: SField, value: Any) -> Any:
    """The stored value for a JSON value sent for ``field`` (raises FieldValueError)."""
    if value is None:
        # Checkboxes are never null (wire spec §4): null on a non-nillable checkbox stores false.
        return False if field.type == "boolean" and not field.nillable else None
    kind = field.type
    if kind in TEXT:
        if not isinstance(value, str):
            raise _not_json(field, "string", value)
        return _text(field, value)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise _not_json(field, "boolean", value)
        return value
    if kind == "date":
        found = parse_date(value) if isinstance(value, str) else None
        if found is None:
            raise _not_json(field, "date", value)
        return found
    if kind == "datetime":
        stamp = parse_datetime(value) if isinstance(value, str) else None
        if stamp is None:
            raise _not_json(field, "datetime", value)
        return stamp
    if kind in FLOATS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _not_json(field, "double", value)
        if not math.isfinite(value):
            raise _not_json(field, "double", value)
        return float(value)
    if kind in INTS:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _not_json(field, "int", value)
        return value
    if kind in IDS:
        if not isinstance(value, str):
            raise _not_json(field, "id", value)
        return _id(field, value)
    if isinstance(value, dict | list):
        raise _not_json(field, kind, value)
    return value


# ---------------------------------------------------------------------------------------------
# CSV


def _not_csv(field: SField, text: str) -> FieldValueError:
    # §8.6 / §9.1: INVALID_TYPE_ON_FIELD_IN_RECORD, "{Label}: value not of required type: {value}".
    message = f"{label(field)}: value not of required type: {text}"
    return FieldValueError("INVALID_TYPE_ON_FIELD_IN_RECORD", message, (field.name,))


def _csv_bool(field: SField, text: str) -> bool:
    folded = text.lower()
    if folded == "true":
        return True
    if folded == "false":
        return False
    raise _not_csv(field, text)


def _csv_date(field: SField, text: str) -> dt.date:
    found = parse_date(text)
    if found is None:
        raise _not_csv(field, text)
    return found


def _csv_datetime(field: SField, text: str) -> dt.datetime:
    found = parse_datetime(text)
    if found is None:
        raise _not_csv(field, text)
    return found


def _csv_float(field: SField, text: str) -> float:
    if not _CSV_FLOAT.match(text):
        raise _not_csv(field, text)
    return float(text)


def _csv_int(field: SField, text: str) -> int:
    if not _CSV_INT.match(text):
        raise _not_csv(field, text)
    return int(text)


_CSV_PARSERS: dict[str, Callable[[SField, str], Any]] = {
    "boolean": _csv_bool,
    "date": _csv_date,
    "datetime": _csv_datetime,
    **dict.fromkeys(FLOATS, _csv_float),
    **dict.fromkeys(INTS, _csv_int),
    **dict.fromkeys(IDS, _id),
    **dict.fromkeys(TEXT, _text),
}


def from_csv(field: SField, text: str | None) -> Any:
    """The stored value for a Bulk CSV cell: ``""`` (or a missing cell, None) is UNCHANGED,
    ``#N/A`` clears (§8.6)."""
    if text == "" or text is None:
        return UNCHANGED
    if text == "#N/A":
        return from_json(field, None)
    parse = _CSV_PARSERS.get(field.type)
    return text if parse is None else parse(field, text)


# ---------------------------------------------------------------------------------------------
# Rendering


def format_datetime(value: dt.datetime, *, zone: str = "+0000") -> str:
    """A dateTime as responses render it: ``2026-01-05T14:03:11.000+0000`` (wire spec §3.4)."""
    utc = value.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}{zone}"


def to_json(field: SField, value: Any) -> Any:
    """A stored value as JSON responses carry it (dates ``YYYY-MM-DD``, dateTimes §3.4, null)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return format_datetime(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def to_csv(field: SField, value: Any) -> str:
    """A stored value as a result-file cell: null is empty, booleans ``true``/``false``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        # Bulk CSV output writes UTC with a Z suffix [U]; input accepts either form (§8.6).
        return format_datetime(value, zone="Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)
