"""The run report: the rendered Markdown pinned by a golden file, escaping, and the webhook post.

Set TRUEUP_UPDATE_GOLDEN=1 to rewrite tests/fixtures/run_report.md after an intended change.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import httpx
import pytest
from markdown_it import MarkdownIt
from pydantic import SecretStr

from trueup.apply import ApplyResult, StopReason
from trueup.check import CheckReport, Threshold, ThresholdName
from trueup.config import NotifyConfig
from trueup.destinations.base import OutcomeStatus
from trueup.diff import Action
from trueup.guards import GuardName, GuardVerdict
from trueup.operations import SyncOperation
from trueup.plan import Plan, records_schema
from trueup.run_report import (
    code,
    escape,
    has_problems,
    post_report,
    render_markdown,
    webhook_origin,
)
from trueup.schema import FieldType
from trueup.store import RunStatus
from trueup.store.values import StoredOutcome

GOLDEN = Path(__file__).parents[1] / "fixtures" / "run_report.md"
FIELDS = {
    "Reverse_ETL_ID__c": FieldType.TEXT,
    "Name": FieldType.TEXT,
    "Fraud_Detection_Enabled__c": FieldType.BOOLEAN,
    "Fraud_Detection_Start_Date__c": FieldType.DATE,
    "Income_Verification_Enabled__c": FieldType.BOOLEAN,
}
SECRET_URL = "https://hooks.example.com/services/T000/B000/s3cr3tT0ken"


def make_plan(counts: dict[Action, int] | None = None, *, changes: bool = True) -> Plan:
    fields = {f: t for f, t in FIELDS.items() if f != "Reverse_ETL_ID__c"}
    return Plan(
        created_at=dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC),
        config_fingerprint="c0ffee",
        destination="salesforce:Product_Property__c",
        destination_fingerprint="d00d",
        key_field="Reverse_ETL_ID__c",
        field_types=fields,
        counts={a: 0 for a in Action}
        | (counts or {Action.CREATE: 120, Action.UPDATE: 340, Action.UNCHANGED: 9_500})
        | {Action.INVALID: 4, Action.MISSING_IN_SOURCE: 7},
        field_changes={
            "Name": 130 * changes,
            "Fraud_Detection_Enabled__c": 300 * changes,
            "Fraud_Detection_Start_Date__c": 300 * changes,
            "Income_Verification_Enabled__c": 0,
        },
        records=records_schema(fields, tuple(fields)).empty_table(),
        operation=SyncOperation.UPSERT,
    )


def stopped_result() -> ApplyResult:
    counts = {s: 0 for s in OutcomeStatus} | {
        OutcomeStatus.CREATED: 118,
        OutcomeStatus.UPDATED: 300,
        OutcomeStatus.FAILED: 42,
        OutcomeStatus.SKIPPED: 4,
    }
    return ApplyResult(
        run_id=42,
        status=RunStatus.STOPPED,
        counts=counts,
        error_codes={"REQUIRED_FIELD_MISSING": 38, "FIELD_CUSTOM_VALIDATION_EXCEPTION": 4},
        message="stopped: 42 of 460 records failed (9.1%), above guards.max_error_rate; "
        "0 records not sent",
        stop_reason=StopReason.ERROR_RATE,
    )


def failures() -> list[StoredOutcome]:
    def failed(key: str, error: str, message: str) -> StoredOutcome:
        return StoredOutcome(key, OutcomeStatus.FAILED, error, message, 2)

    return [
        failed("a1", "REQUIRED_FIELD_MISSING", "Required fields are missing: [Name]"),
        failed("a2|<!channel>", "REQUIRED_FIELD_MISSING", "*bold* _it_ `x` [l](http://e.vil)"),
        failed("a3", "REQUIRED_FIELD_MISSING", "two\nlines & <b>tags</b>"),
        failed("a4", "REQUIRED_FIELD_MISSING", "not shown: three examples per code"),
        failed("b1", "FIELD_CUSTOM_VALIDATION_EXCEPTION", "Start date is after Updated_Date__c"),
    ]


def verdicts() -> list[GuardVerdict]:
    return [
        GuardVerdict(
            GuardName.FLIP,
            tripped=True,
            allowed=True,
            field="Fraud_Detection_Enabled__c",
            count=300,
            total=2_000,
            limit="10%",
            message="300 of 2,000 existing records (15.0%) flip true → false, above 10%",
            examples=("a7", "a8", "a9", "a10"),
        ),
        GuardVerdict(GuardName.NULLS, tripped=False, message="no field loses values"),
        GuardVerdict(GuardName.MAX_CHANGES, tripped=False, message="no limit set"),
    ]


def check_report() -> CheckReport:
    return CheckReport(
        compared=10_000,
        agreeing=9_950,
        matched=9_990,
        field_mismatches={"Name": 0, "Fraud_Detection_Enabled__c": 40},
        missing_in_destination=tuple(f"m{i}" for i in range(10)),
        extra_in_destination=("x1", "x2", "x3", "x4", "x5", "x6", "x7"),
        invalid=(("bad", "Name longer than 80"),) * 4,
        thresholds=(Threshold(ThresholdName.MIN_ACCURACY, 100.0, 99.5, passed=False),),
    )


# --- the golden report ---------------------------------------------------------------------------
def test_the_report_of_a_stopped_run_matches_the_golden_file() -> None:
    text = render_markdown(
        stopped_result(),
        make_plan(),
        verdicts(),
        check_report(),
        failures=failures(),
        duration=dt.timedelta(minutes=2, seconds=5.4),
    )

    if os.environ.get("TRUEUP_UPDATE_GOLDEN"):
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")


def test_data_cannot_format_the_report_or_ping_a_channel() -> None:
    text = render_markdown(stopped_result(), make_plan(), [], failures=failures())

    assert "<!channel>" not in text
    assert "&lt;!channel&gt;" in text
    assert "<b>" not in text
    assert "\\*bold\\* \\_it\\_ \\`x\\` \\[l\\](http://e.vil)" in text
    assert "two lines &amp; &lt;b&gt;tags&lt;/b&gt;" in text
    # every line of a table has the same number of cell separators
    rows = [line for line in text.splitlines() if line.startswith("|")]
    assert {line.replace("\\|", "").count("|") for line in rows} == {3}
    assert "not shown" not in text
    assert "- … 35 more" in text


def test_a_markdown_viewer_shows_the_data_as_text() -> None:
    text = render_markdown(stopped_result(), make_plan(), verdicts(), failures=failures())

    html = MarkdownIt("commonmark").enable("table").enable("strikethrough").render(text)

    for injected in ("<a ", "<em>", "<b>", "<del>"):
        assert injected not in html
    assert "<li>a2|&lt;!channel&gt;: *bold* _it_ `x` [l](http://e.vil)</li>" in html
    assert "<li><code>a3</code>: two lines &amp; &lt;b&gt;tags&lt;/b&gt;</li>" in html
    assert '<td style="text-align:left"><code>Fraud_Detection_Enabled__c</code></td>' in html
    assert html.count("<table>") == 2


def test_a_successful_run_without_check_or_guards_is_short() -> None:
    counts = {s: 0 for s in OutcomeStatus} | {
        OutcomeStatus.CREATED: 120,
        OutcomeStatus.UPDATED: 340,
        OutcomeStatus.SKIPPED: 4,
    }
    result = ApplyResult(7, RunStatus.SUCCEEDED, counts)

    text = render_markdown(result, make_plan(), [])

    assert text.startswith("### ✅ trueup apply: run 7 succeeded\n")
    assert "**120 created, 340 updated, 0 failed**" in text
    for absent in ("Failures", "Guards", "Check after apply", "Stopped", "deleted"):
        assert absent not in text
    assert "| error rate" in text and "0.00% |" in text
    assert text.endswith("Details: `trueup runs 7`\n")


def test_nothing_to_apply_and_a_blocked_plan_have_no_run() -> None:
    plan = make_plan({Action.UNCHANGED: 9_960}, changes=False)
    quiet = render_markdown(None, plan, [])
    assert quiet.startswith("### ✅ trueup apply: nothing to apply\n")
    assert "created" not in quiet and "trueup runs" not in quiet

    blocking = GuardVerdict(
        GuardName.SOURCE_DROP, tripped=True, message="the model returned 0 rows"
    )
    blocked = render_markdown(None, plan, [blocking])
    assert blocked.startswith("### ⛔ trueup apply: blocked by guards\n")
    assert "- ⛔ `source_drop` blocked the run: the model returned 0 rows" in blocked


def test_problems_are_failures_stops_tripped_guards_and_failed_checks() -> None:
    clean = ApplyResult(1, RunStatus.SUCCEEDED, {s: 0 for s in OutcomeStatus})
    passed = GuardVerdict(GuardName.NULLS, tripped=False, message="")
    allowed = GuardVerdict(GuardName.FLIP, tripped=True, allowed=True, message="")

    assert not has_problems(clean, [passed])
    assert not has_problems(None, [])
    assert has_problems(stopped_result(), [])
    assert has_problems(clean, [allowed])
    assert has_problems(clean, [], check_report())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Fraud_Detection_Enabled__c", "Fraud_Detection_Enabled__c"),
        ("_private", "\\_private"),
        ("a|b", "a\\|b"),
        ("5 < 6 & 7 > 3", "5 &lt; 6 &amp; 7 &gt; 3"),
        ("back\\slash", "back\\\\slash"),
        ("x" * 250, "x" * 199 + "…"),
    ],
)
def test_escape(value: str, expected: str) -> None:
    assert escape(value) == expected


def test_code_spans_fall_back_to_escaped_text_when_they_cannot_hold_the_value() -> None:
    assert code("REQUIRED_FIELD_MISSING") == "`REQUIRED_FIELD_MISSING`"
    assert code("a`b") == "a\\`b"
    assert code("a|b") == "a\\|b"
    assert code("") == ""


# --- the webhook ---------------------------------------------------------------------------------
def notify(**settings: object) -> NotifyConfig:
    return NotifyConfig.model_validate({"webhook_url": SecretStr(SECRET_URL)} | settings)


def test_slack_format_posts_json_text_and_markdown_posts_the_report_itself() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text="ok")

    slack = post_report("# hé", notify(), transport=httpx.MockTransport(answer))
    plain = post_report("# hé", notify(format="markdown"), transport=httpx.MockTransport(answer))

    assert slack.delivered and plain.delivered
    assert seen[0].headers["content-type"] == "application/json"
    assert json.loads(seen[0].content) == {"text": "# hé"}
    assert seen[1].headers["content-type"] == "text/markdown; charset=utf-8"
    assert seen[1].content.decode() == "# hé"
    assert str(seen[0].url) == SECRET_URL


def test_a_5xx_or_a_timeout_is_retried_once() -> None:
    answers = iter([httpx.Response(503), httpx.Response(200)])
    delivery = post_report(
        "r", notify(), retry_wait=0, transport=httpx.MockTransport(lambda _: next(answers))
    )
    assert (delivery.delivered, delivery.attempts) == (True, 2)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout(f"timed out reading {request.url}", request=request)

    delivery = post_report("r", notify(), retry_wait=0, transport=httpx.MockTransport(slow))
    assert (delivery.delivered, delivery.attempts) == (False, 2)
    assert "ReadTimeout" in delivery.detail
    assert "s3cr3t" not in delivery.detail and "/services" not in delivery.detail
    assert "https://hooks.example.com" in delivery.detail


def test_a_4xx_is_not_retried_and_its_answer_is_reported_without_the_url() -> None:
    calls = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(404, text=f"no_service for {request.url}")

    delivery = post_report("r", notify(), retry_wait=0, transport=httpx.MockTransport(refuse))

    assert len(calls) == 1
    assert not delivery.delivered
    assert delivery.detail.startswith("https://hooks.example.com answered HTTP 404 no_service")
    assert "s3cr3t" not in delivery.detail


def test_webhook_origin_keeps_scheme_host_and_port_only() -> None:
    assert webhook_origin(SECRET_URL) == "https://hooks.example.com"
    assert webhook_origin("http://user:pw@127.0.0.1:8080/x?token=1") == "http://127.0.0.1:8080"
    assert webhook_origin("http://[::1]:8080/x") == "http://[::1]:8080"
