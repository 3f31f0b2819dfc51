"""Render a check report as JSON, CSV or a self-contained HTML page (no typer, no rich here).

report.document  the JSON document (its shape is documented in docs/check-report.md)
report.table     CSV: one row per mismatched record and field
report.html      the HTML page: headline, thresholds, charts, bounded tables
report.svg       the page's charts as inline SVG, drawn in Python

The terminal rendering (``ReportFormat.TEXT``) belongs to the CLI.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from trueup.check import CheckReport
from trueup.report.document import JSON_MISMATCH_LIMIT, check_document, check_json
from trueup.report.html import check_html
from trueup.report.table import CSV_COLUMNS, check_csv
from trueup.store.values import StoredCheck


class ReportFormat(StrEnum):
    """The formats ``trueup check --format`` writes."""

    TEXT = "text"  # the terminal tables (rendered by the CLI)
    JSON = "json"
    CSV = "csv"
    HTML = "html"


def render_report(
    report: CheckReport, fmt: ReportFormat, *, history: Sequence[StoredCheck] = ()
) -> bytes:
    """The report as JSON, CSV or HTML bytes (UTF-8); ``history`` feeds the HTML trend chart."""
    if fmt is ReportFormat.JSON:
        return check_json(report).encode()
    if fmt is ReportFormat.CSV:
        return check_csv(report)
    if fmt is ReportFormat.HTML:
        return check_html(report, history=history).encode()
    raise ValueError(f"the {fmt.value} format is rendered by the command line")


__all__ = [
    "CSV_COLUMNS",
    "JSON_MISMATCH_LIMIT",
    "ReportFormat",
    "check_csv",
    "check_document",
    "check_html",
    "check_json",
    "render_report",
]
