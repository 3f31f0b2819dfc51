"""The check report: thresholds, product grouping, and its JSON, CSV and HTML renderings."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from trueup.check import (
    MISMATCH_SCHEMA,
    CheckReport,
    ThresholdName,
    field_products,
    judge,
    stored_check,
)
from trueup.config import GuardsConfig, parse_config
from trueup.demo_data import demo_config
from trueup.errors import ConfigError
from trueup.report import CSV_COLUMNS, ReportFormat, check_document, check_html, render_report
from trueup.report.svg import BAR_WIDTH, MIN_SEGMENT, BarRow, bar_chart
from trueup.store import StoredCheck

HOSTILE = '<script>alert("x")</script>&'
AT = datetime(2025, 6, 1, 12, 30, tzinfo=UTC)


def _mismatches(rows: list[tuple[str, str, str, str, str | None, str | None]]) -> pa.Table:
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in range(6)]
    names = ["key", "field", "product", "kind", "source_value", "destination_value"]
    return pa.table(dict(zip(names, columns, strict=True)), schema=MISMATCH_SCHEMA)


def _report(guards: GuardsConfig | None = None) -> CheckReport:
    report = CheckReport(
        compared=10,
        agreeing=6,
        matched=8,
        field_mismatches={"Fraud_Detection_Enabled__c": 2, "Name": 1, "VOR_Start_Date__c": 0},
        missing_in_destination=("k9", "k10"),
        extra_in_destination=("orphan-1",),
        invalid=((None, "key is null"), (HOSTILE, "Name: 90 characters, longer than 80")),
        field_products={
            "Fraud_Detection_Enabled__c": "fraud_detection",
            "Name": "Name",
            "VOR_Start_Date__c": "verification_of_rent",
        },
        product_mismatches={"fraud_detection": 2, "Name": 1, "verification_of_rent": 0},
        mismatches=_mismatches(
            [
                (
                    "k1",
                    "Fraud_Detection_Enabled__c",
                    "fraud_detection",
                    "mismatch",
                    "true",
                    "false",
                ),
                ("k2", "Fraud_Detection_Enabled__c", "fraud_detection", "mismatch", "true", None),
                (HOSTILE, "Name", "Name", "mismatch", HOSTILE, ""),
                ("k9", "Name", "Name", "missing_in_destination", "Oak Flats", None),
                ("k10", "Name", "Name", "missing_in_destination", "Elm Court", None),
            ]
        ),
        destination="sql:Product_Property__c",
        config_fingerprint="cfg0123456789abc",
        checked_at=AT,
    )
    return replace(report, thresholds=judge(report, guards or GuardsConfig()))


# --- grouping and thresholds ---------------------------------------------------------------------
def test_features_fields_belong_to_their_product_and_the_rest_stand_alone() -> None:
    config = parse_config(demo_config(), file="trueup.yml")
    products = field_products(config)
    assert products["Fraud_Detection_Enabled__c"] == "fraud_detection"
    assert products["ID_Verification_Start_Date__c"] == "identity_verification"
    assert products["VOR_Updated_Date__c"] == "verification_of_rent"
    assert products["Name"] == "Name"
    assert products["Is_Multi_Property__c"] == "Is_Multi_Property__c"
    assert "Reverse_ETL_ID__c" not in products  # the key is not compared
    assert len(products) == 4 + 7 * 3


def test_sql_model_fields_are_their_own_group() -> None:
    raw = demo_config()
    raw["model"] = {"kind": "sql", "table": "model_rows"}
    config = parse_config(raw, file="trueup.yml")
    assert all(product == name for name, product in field_products(config).items())


def test_only_min_accuracy_by_default() -> None:
    report = _report()
    assert [t.name for t in report.thresholds] == [ThresholdName.MIN_ACCURACY]
    assert not report.passed
    assert report.failed_thresholds()[0].describe() == (
        "accuracy 60.00% is below guards.min_accuracy (100%)"
    )


@pytest.mark.parametrize(
    ("guards", "failed"),
    [
        ({"min_accuracy": 50}, []),
        ({"min_accuracy": 50, "max_missing": 2}, []),
        ({"min_accuracy": 50, "max_missing": 1}, ["guards.max_missing"]),
        ({"min_accuracy": 50, "max_missing_pct": 20}, []),
        ({"min_accuracy": 50, "max_missing_pct": 19.9}, ["guards.max_missing_pct"]),
        (
            {"min_accuracy": 61, "max_missing": 0, "max_missing_pct": 0},
            ["guards.min_accuracy", "guards.max_missing", "guards.max_missing_pct"],
        ),
    ],
)
def test_thresholds(guards: dict[str, float], failed: list[str]) -> None:
    report = _report(GuardsConfig.model_validate(guards))
    assert [t.name.value for t in report.failed_thresholds()] == failed
    assert report.passed is (not failed)


def test_threshold_messages_name_the_setting() -> None:
    guards = GuardsConfig(min_accuracy=50, max_missing=1, max_missing_pct=10)
    messages = [t.describe() for t in _report(guards).thresholds]
    assert messages == [
        "accuracy 60.00% meets guards.min_accuracy (50%)",
        "2 records missing in the destination, more than guards.max_missing (1)",
        "20.00% of records missing in the destination, more than guards.max_missing_pct (10%)",
    ]


def test_stored_check_keeps_the_figures() -> None:
    kept = stored_check(_report())
    assert (kept.accuracy, kept.compared, kept.agreeing) == (60.0, 10, 6)
    assert (kept.missing, kept.extra, kept.invalid, kept.passed) == (2, 1, 2, False)
    assert kept.field_agreement == {
        "Fraud_Detection_Enabled__c": 75.0,
        "Name": 87.5,
        "VOR_Start_Date__c": 100.0,
    }
    assert (kept.checked_at, kept.destination) == (AT, "sql:Product_Property__c")


# --- JSON and CSV --------------------------------------------------------------------------------
def test_json_document() -> None:
    body = json.loads(render_report(_report(), ReportFormat.JSON))
    assert body["version"] == 1
    assert body["passed"] is False
    assert body["thresholds"][0]["name"] == "guards.min_accuracy"
    assert body["accuracy"] == 60.0 and body["missing_pct"] == 20.0
    # the keys `trueup check --json` always had stay complete
    assert body["missing_in_destination"] == ["k9", "k10"]
    assert body["extra_in_destination"] == ["orphan-1"]
    assert body["invalid"][0] == {"key": None, "reason": "key is null"}
    assert body["field_agreement"]["Name"] == 87.5
    assert body["product_mismatches"] == {
        "fraud_detection": 2,
        "Name": 1,
        "verification_of_rent": 0,
    }
    assert body["field_products"]["Fraud_Detection_Enabled__c"] == "fraud_detection"
    assert body["mismatches_total"] == 5
    assert body["mismatches"][1] == {
        "key": "k2",
        "field": "Fraud_Detection_Enabled__c",
        "product": "fraud_detection",
        "kind": "mismatch",
        "source_value": "true",
        "destination_value": None,
    }
    assert len(check_document(_report(), limit=2)["mismatches"]) == 2


def test_csv_one_row_per_record_and_field() -> None:
    text = render_report(_report(), ReportFormat.CSV).decode()
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert rows[1] == [
        "k1",
        "Fraud_Detection_Enabled__c",
        "fraud_detection",
        "true",
        "false",
        "mismatch",
    ]
    assert [r[5] for r in rows[1:]] == ["mismatch"] * 3 + ["missing_in_destination"] * 2
    assert rows[3][0] == HOSTILE and rows[3][3] == HOSTILE  # quoted, not mangled
    # a null is an empty cell; an empty string is a quoted empty cell
    assert text.splitlines()[2].endswith('"true",,"mismatch"')
    assert text.splitlines()[3].endswith(',"","mismatch"')


def test_csv_of_an_agreeing_check_is_just_the_header() -> None:
    report = CheckReport(
        compared=1,
        agreeing=1,
        matched=1,
        field_mismatches={"Name": 0},
        missing_in_destination=(),
        extra_in_destination=(),
        invalid=(),
    )
    assert render_report(report, ReportFormat.CSV).decode().splitlines() == [
        ",".join(f'"{c}"' for c in CSV_COLUMNS)
    ]


# --- HTML ----------------------------------------------------------------------------------------
def _history(n: int) -> list[StoredCheck]:
    return [
        StoredCheck(
            checked_at=AT - timedelta(days=n - i),
            config_fingerprint="cfg",
            destination="sql:Product_Property__c",
            accuracy=90.0 + i,
            compared=10,
            agreeing=9,
            missing=0,
            extra=0,
            invalid=0,
            passed=False,
        )
        for i in range(n)
    ]


def test_html_is_self_contained_and_escapes_every_value() -> None:
    page = check_html(_report(), history=_history(3))
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page  # the hostile key and value only appear escaped
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # nothing fetched
    assert "@import" not in page and "url(" not in page


def test_html_charts() -> None:
    page = check_html(_report(), history=_history(4))
    agreement = page[
        page.index('id="field-agreement"') : page.index(
            "</svg>", page.index('id="field-agreement"')
        )
    ]
    assert agreement.count('class="bar-row"') == 3
    assert 'data-label="Fraud_Detection_Enabled__c"' in agreement
    assert "75.00% · 2 differ" in agreement
    products = page[page.index('id="product-mismatches"') :]
    assert products.index('data-label="fraud_detection"') < products.index('data-label="Name"')
    trend = page[page.index('id="accuracy-trend"') :]
    assert trend[: trend.index("</svg>")].count("<circle") == 4
    assert "FAILED" in page and "accuracy 60.00% is below guards.min_accuracy (100%)" in page


def test_html_without_history_charts_this_check_and_bounds_tables() -> None:
    report = _report()
    many = _mismatches([(f"k{i:04d}", "Name", "Name", "mismatch", "a", "b") for i in range(450)])
    report = replace(report, mismatches=many, missing_in_destination=tuple(map(str, range(250))))
    page = check_html(report)
    trend = page[page.index('id="accuracy-trend"') :]
    assert trend[: trend.index("</svg>")].count("<circle") == 1
    table = page[
        page.index('id="mismatch-table"') : page.index(
            "</table>", page.index('id="mismatch-table"')
        )
    ]
    assert table.count("<tr>") == 1 + 200
    assert "450 fields differ" in page and "Showing the first 200." in page
    assert "Missing in destination: 250" in page and "Showing the first 100." in page


def test_text_is_for_the_command_line() -> None:
    with pytest.raises(ValueError, match="command line"):
        render_report(_report(), ReportFormat.TEXT)


@pytest.mark.parametrize(
    ("guards", "message"),
    [
        ({"max_missing": -1}, "guards.max_missing: input should be greater than or equal to 0"),
        ({"max_missing_pct": 101}, "guards.max_missing_pct: must be between 0 and 100"),
    ],
)
def test_missing_thresholds_are_validated(guards: dict[str, float], message: str) -> None:
    raw = demo_config()
    raw["guards"] = guards
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(raw, file="trueup.yml")
    assert GuardsConfig().max_missing is None and GuardsConfig().max_missing_pct is None


def test_one_mismatch_in_ten_thousand_still_shows_a_red_sliver() -> None:
    row = BarRow("Name", ((99.99, "agree"), (0.01, "differ")), "99.99% · 1 differ", "Name")
    chart = bar_chart("c", "c", [row], scale=100)
    widths = [float(w) for w in re.findall(r'class="bar \w+"[^>]*width="([\d.]+)"', chart)]
    assert widths == [BAR_WIDTH - MIN_SEGMENT, MIN_SEGMENT]
