"""``trueup check --format/--out``: the report in every format, thresholds, the stored checks."""

from __future__ import annotations

import csv
import io
import sqlite3
from collections import Counter
from typing import Any

import pytest
from e2e_cli import Demo, Trueup

from trueup.products import PRODUCT_FIELDS, PRODUCTS

PRODUCT_OF = {
    field: p.code
    for p in PRODUCTS
    for field in (p.enabled_field, p.start_date_field, p.updated_date_field)
}


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_json_and_html_agree_on_the_drifted_demo(demo: Demo, trueup: Trueup) -> None:
    as_json = trueup("check", "--format", "json")
    assert as_json.code == 8
    body: dict[str, Any] = as_json.json()
    assert body == {**trueup("check", "--json").json(), "checked_at": body["checked_at"]}

    as_csv = trueup("check", "--format", "csv")
    assert as_csv.code == 8
    rows = _csv(as_csv.out)
    assert list(rows[0]) == [
        "key",
        "field",
        "product",
        "source_value",
        "destination_value",
        "kind",
    ]
    assert len(rows) == body["mismatches_total"] == len(body["mismatches"])

    kinds = Counter(r["kind"] for r in rows)
    assert set(kinds) == {"mismatch", "missing_in_destination"}
    # one row per differing field of a record on both sides, as the per-field counts say
    assert kinds["mismatch"] == sum(body["field_mismatches"].values())
    missing_keys = {r["key"] for r in rows if r["kind"] == "missing_in_destination"}
    assert missing_keys == set(body["missing_in_destination"])
    assert len(missing_keys) == demo.expected()["create"]
    for row in rows:
        assert row["product"] == PRODUCT_OF.get(row["field"], row["field"])
        assert row["field"] in PRODUCT_FIELDS.values()
    # a wrong flag reads as a boolean on both sides
    flags = [r for r in rows if r["kind"] == "mismatch" and r["field"].endswith("_Enabled__c")]
    assert flags and {(r["source_value"], r["destination_value"]) for r in flags} <= {
        ("true", "false"),
        ("false", "true"),
    }
    # mismatches by product count records, so no more than the field rows
    by_product = Counter(r["product"] for r in rows if r["kind"] == "mismatch")
    for product, n in body["product_mismatches"].items():
        assert 0 < n <= by_product[product] or n == by_product[product] == 0

    html = trueup("check", "--format", "html")
    assert html.code == 8
    assert html.out.startswith("<!DOCTYPE html>") and html.out.rstrip().endswith("</html>")


def test_out_writes_the_file_and_says_so(demo: Demo, trueup: Trueup) -> None:
    for fmt in ("html", "text"):
        ran = trueup("check", "--format", fmt, "--out", f"report.{fmt}")
        assert ran.code == 8
        assert ran.out.startswith(f"Wrote the {fmt} report to report.{fmt} (accuracy ")
        assert "thresholds failed" in ran.out
        assert "below guards.min_accuracy" in ran.error_line(8)
    assert (demo.dir / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert (demo.dir / "report.text").read_text().startswith("Accuracy: ")

    unwritable = trueup("check", "--format", "csv", "--out", "no/such/folder/r.csv")
    assert "cannot write the report to no/such/folder/r.csv" in unwritable.error_line(1)


def test_json_flag_is_format_json_and_conflicts_are_refused(demo: Demo, trueup: Trueup) -> None:
    ran = trueup("check", "--json", "--format", "csv")
    assert ran.code == 2
    assert "--json means --format json" in ran.err


@pytest.mark.parametrize(
    ("guards", "code", "named"),
    [
        ({"min_accuracy": 0}, 0, None),
        ({"min_accuracy": 0, "max_missing": 0}, 8, "more than guards.max_missing (0)"),
        ({"min_accuracy": 0, "max_missing_pct": 0.5}, 8, "more than guards.max_missing_pct"),
        (
            {"min_accuracy": 100, "max_missing": 0},
            8,
            "below guards.min_accuracy (100%); ",
        ),
    ],
)
def test_thresholds_set_the_exit_code(
    demo: Demo, trueup: Trueup, guards: dict[str, float], code: int, named: str | None
) -> None:
    demo.edit_config(lambda config: config["guards"].update(guards))
    ran = trueup("check")
    if named is None:
        assert ran.code == code == 0, ran.err
        assert ran.err == ""
    else:
        assert named in ran.error_line(code)


def test_every_check_is_kept_and_charted(demo: Demo, trueup: Trueup) -> None:
    assert trueup("check").code == 8
    assert trueup("apply", "--yes").code == 0
    assert trueup("check").code == 0
    html = trueup("check", "--format", "html")
    assert html.code == 0, html.err
    trend = html.out[html.out.index('id="accuracy-trend"') :]
    assert trend[: trend.index("</svg>")].count("<circle") == 3

    con = sqlite3.connect(demo.dir / ".trueup" / "state.db")
    try:
        kept = con.execute(
            "SELECT destination, accuracy, passed, missing, compared FROM checks ORDER BY id"
        ).fetchall()
    finally:
        con.close()
    expected = demo.expected()
    compared = expected["create"] + expected["update"] + expected["unchanged"]
    assert [(k[0], k[2], k[3], k[4]) for k in kept] == [
        ("sql:Product_Property__c", 0, expected["create"], compared),
        ("sql:Product_Property__c", 1, 0, compared),
        ("sql:Product_Property__c", 1, 0, compared),
    ]
    assert kept[0][1] < 100 == kept[1][1] == kept[2][1]
