"""The check report as a JSON document: every figure of the report, mismatch rows bounded.

The shape is a superset of what ``trueup check --json`` printed before: the lists of missing,
extra and invalid keys stay complete; ``mismatches`` holds the first ``JSON_MISMATCH_LIMIT`` rows
of the CSV (``mismatches_total`` says how many there are).
"""

from __future__ import annotations

import json
from typing import Any

from trueup.check import CheckReport

JSON_MISMATCH_LIMIT = 10_000
DOCUMENT_VERSION = 1


def check_document(report: CheckReport, *, limit: int = JSON_MISMATCH_LIMIT) -> dict[str, Any]:
    """The report as JSON-ready data."""
    shown = report.mismatches.slice(0, max(limit, 0))
    return {
        "version": DOCUMENT_VERSION,
        "checked_at": report.checked_at.isoformat(),
        "destination": report.destination,
        "config_fingerprint": report.config_fingerprint,
        "passed": report.passed,
        "thresholds": [
            {
                "name": t.name.value,
                "limit": t.limit,
                "actual": t.actual,
                "passed": t.passed,
                "message": t.describe(),
            }
            for t in report.thresholds
        ],
        "accuracy": report.accuracy,
        "compared": report.compared,
        "agreeing": report.agreeing,
        "matched": report.matched,
        "missing_pct": report.missing_pct,
        "field_agreement": report.field_agreement(),
        "field_mismatches": dict(report.field_mismatches),
        "field_products": dict(report.field_products),
        "product_mismatches": dict(report.product_mismatches),
        "mismatches_total": report.mismatches.num_rows,
        "mismatches": shown.to_pylist(),
        "missing_in_destination": list(report.missing_in_destination),
        "extra_in_destination": list(report.extra_in_destination),
        "invalid": [{"key": k, "reason": r} for k, r in report.invalid],
        "multi_member_groups": report.multi_member_groups,
        "multi_member_agreeing": report.multi_member_agreeing,
    }


def check_json(report: CheckReport, *, limit: int = JSON_MISMATCH_LIMIT) -> str:
    """The JSON document as text, ending in a newline."""
    return json.dumps(check_document(report, limit=limit), indent=1) + "\n"
