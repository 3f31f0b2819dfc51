"""The pre-flight as a user meets it: a mapping with a wrong type, a misspelled field and a field
the sync may not set fails ``trueup plan`` and ``trueup apply`` with exit 2 and every problem in
one message, before any record is read or written, and ``trueup doctor`` shows each problem on
the row of its field. The type check is the same for Salesforce (the sandbox, served over HTTPS
in the test's process) and for a SQL table (the demo's SQLite CRM).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from e2e_cli import Demo, Ran, Trueup

from trueup.demo_data import CLIENT_ID_VAR, CLIENT_SECRET_VAR, SandboxTarget, generate_demo
from trueup.products import SALESFORCE_OBJECT
from trueup.sandbox.server import Sandbox

WRONG_TYPE = (
    "Fraud_Detection_Start_Date__c is a date field but model column is_multi_member is bool "
    "(date fields take a date, a timestamp or text)"
)
MISSPELLED = "has no field Nmae (did you mean Name?)"


def break_mapping(config: dict[str, Any], *, not_settable: str | None = None) -> None:
    """A boolean column onto a date field, a misspelled field and (optionally) a field the sync
    may not set, the rest of the demo's mapping left as it is."""
    mapping = config["mapping"]
    del mapping["fraud_detection_start_date"]
    mapping["is_multi_member"] = "Fraud_Detection_Start_Date__c"
    mapping["member_name"] = "Nmae"
    if not_settable is not None:
        mapping["idv_only_enabled"] = not_settable


def doctor_rows(ran: Ran) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in ran.json()["checks"]}


# --- Salesforce ----------------------------------------------------------------------------------
@pytest.fixture()
def org(tmp_path: Path) -> Iterator[tuple[Sandbox, dict[str, str]]]:
    """The demo's org in a sandbox, its trueup.yml in the test's folder; the login variables."""
    with Sandbox(ca_out=tmp_path / "ca.pem") as sandbox:
        files = generate_demo(
            tmp_path,
            properties=200,
            today=date(2025, 6, 1),
            salesforce=SandboxTarget(sandbox.url, "ca.pem"),
        )
        saved = sandbox.state.org.insert(SALESFORCE_OBJECT, files.crm_records)
        assert all(r.success for r in saved)
        config = yaml.safe_load(files.config.read_text())
        break_mapping(config, not_settable="IsDeleted")  # a system field: never set by a sync
        files.config.write_text(yaml.safe_dump(config, sort_keys=False))
        yield sandbox, {CLIENT_ID_VAR: sandbox.client_id, CLIENT_SECRET_VAR: sandbox.client_secret}


def request_log(sandbox: Sandbox) -> list[dict[str, Any]]:
    """The sandbox's log of every request it answered (``GET /__sandbox/requests``)."""
    assert sandbox.ca_path is not None
    context = ssl.create_default_context(cafile=str(sandbox.ca_path))
    with httpx.Client(base_url=sandbox.url, verify=context, timeout=10) as http:
        entries: list[dict[str, Any]] = http.get("/__sandbox/requests").json()
    return entries


def test_salesforce_plan_and_apply_list_every_problem_and_touch_no_record(
    org: tuple[Sandbox, dict[str, str]], trueup: Trueup
) -> None:
    sandbox, login = org
    records_before = sandbox.state.org.count(SALESFORCE_OBJECT)

    for command in (["plan"], ["apply", "--yes"]):
        ran = trueup(*command, env=login)

        assert ran.code == 2, ran.err + ran.out
        assert "Traceback" not in ran.err
        message = ran.err.strip()
        assert message.startswith("error: ")
        assert f"trueup.yml: mapping: 4 problem(s) with the fields of {SALESFORCE_OBJECT}:" in (
            message
        )
        problems = [line.removeprefix("  - ") for line in message.splitlines()[1:]]
        assert problems == [
            f"{SALESFORCE_OBJECT} {MISSPELLED}",
            WRONG_TYPE,
            "IsDeleted is not createable (an upsert creates records)",
            "IsDeleted is not updateable (an upsert updates records)",
        ]

    log = request_log(sandbox)
    assert any(f"/sobjects/{SALESFORCE_OBJECT}/describe" in entry["path"] for entry in log)
    logins = [e for e in log if e["path"] == "/services/oauth2/token"]
    assert len(logins) == 2  # one per command; every other request only read the describe
    assert [e for e in log if e not in logins and e["method"] != "GET"] == []  # nothing written
    assert [e for e in log if "/query" in e["path"] or "/jobs/" in e["path"]] == []  # none read
    assert sandbox.state.org.count(SALESFORCE_OBJECT) == records_before


def test_salesforce_doctor_shows_the_wrong_type_on_its_field_row(
    org: tuple[Sandbox, dict[str, str]], trueup: Trueup
) -> None:
    _, login = org

    ran = trueup("doctor", "--json", env=login)

    assert ran.code == 2, ran.err
    rows = doctor_rows(ran)
    failed = {name for name, row in rows.items() if not row["passed"]}
    assert failed == {"field Nmae", "field Fraud_Detection_Start_Date__c", "field IsDeleted"}
    assert rows["field Fraud_Detection_Start_Date__c"]["detail"] == (
        f"{WRONG_TYPE}; date, from is_multi_member"
    )
    assert MISSPELLED in rows["field Nmae"]["detail"]
    assert "IsDeleted is not updateable" in rows["field IsDeleted"]["detail"]
    assert rows["field Fraud_Detection_Enabled__c"]["passed"]  # a bool onto a checkbox is fine

    table = trueup("doctor", env=login)
    row = next(line for line in table.out.splitlines() if "field Fraud_Detection_Start_" in line)
    assert row.startswith("│ ✗ │") and "model column is_multi_member is bool" in row


# --- a SQL table ---------------------------------------------------------------------------------
def test_sql_plan_and_apply_list_the_wrong_type_with_the_unknown_field(
    demo: Demo, trueup: Trueup
) -> None:
    demo.edit_config(break_mapping)
    before = demo.crm_dump()

    for command in (["plan"], ["apply", "--yes"]):
        ran = trueup(*command)

        assert ran.code == 2, ran.err + ran.out
        lines = ran.err.strip().splitlines()
        assert lines[0].startswith("error: ") and lines[0].endswith(
            "trueup.yml: mapping: 2 problem(s) with the fields of Product_Property__c:"
        )
        assert lines[1:] == [f"  - Product_Property__c {MISSPELLED}", f"  - {WRONG_TYPE}"]

    assert demo.crm_dump() == before
    runs = trueup("runs", "--json")
    assert runs.code == 0 and runs.json() == []  # no run was started


def test_sql_doctor_shows_the_wrong_type_on_its_field_row(demo: Demo, trueup: Trueup) -> None:
    demo.edit_config(break_mapping)

    ran = trueup("doctor", "--json")

    assert ran.code == 2
    rows = doctor_rows(ran)
    assert {name for name, row in rows.items() if not row["passed"]} == {
        "field Nmae",
        "field Fraud_Detection_Start_Date__c",
    }
    assert rows["field Fraud_Detection_Start_Date__c"]["detail"] == (
        f"{WRONG_TYPE}; date, from is_multi_member"
    )
