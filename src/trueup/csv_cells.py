"""CSV cell text for canonical values: one formatter for the CSV destination and the export.

Both write booleans as ``true``/``false``, dates as ``YYYY-MM-DD``, datetimes in UTC with ``Z``
(a naive datetime is taken as UTC) and null as an empty cell. They differ where Salesforce's Data
Loader is stricter than a CSV reader: its datetimes always carry milliseconds, and its numbers are
plain decimals (``0.00001``, never ``1e-05``; no ``nan`` or ``inf``).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum


class CellStyle(StrEnum):
    """How a cell is spelled."""

    ISO = "iso"  # datetimes as ISO-8601 (microseconds only when present), numbers as Python prints
    DATA_LOADER = "data_loader"  # YYYY-MM-DDTHH:MM:SS.sssZ; numbers without an exponent


def csv_cell(value: object, style: CellStyle = CellStyle.ISO) -> str:
    """One CSV cell; ValueError for a value the style cannot write."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        utc = aware.astimezone(dt.UTC)
        text = utc.isoformat(timespec="milliseconds" if style is CellStyle.DATA_LOADER else "auto")
        return text.replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if style is CellStyle.DATA_LOADER and isinstance(value, float | Decimal):
        return _plain_number(value)
    if isinstance(value, str | int | float | Decimal):
        return str(value)
    raise ValueError(f"cannot write a {type(value).__name__} value to a CSV cell")


def _plain_number(value: float | Decimal) -> str:
    number = Decimal(repr(value)) if isinstance(value, float) else value
    if not number.is_finite():
        raise ValueError(f"cannot write {value} to a CSV cell: only finite numbers load")
    return format(number, "f")
