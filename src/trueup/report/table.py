"""The check report as CSV: one row per mismatched record and field, every one of them.

Columns: ``key, field, product, source_value, destination_value, kind`` where ``kind`` is
``mismatch`` (the record is on both sides) or ``missing_in_destination``. Written by Arrow's CSV
writer straight from the report's table: no Python per row.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.csv as pa_csv

from trueup.check import CheckReport

CSV_COLUMNS = ("key", "field", "product", "source_value", "destination_value", "kind")


def check_csv(report: CheckReport) -> bytes:
    """The mismatch rows as UTF-8 CSV with a header line (an empty value is a null)."""
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(report.mismatches.select(list(CSV_COLUMNS)), sink)
    return bytes(sink.getvalue().to_pybytes())
