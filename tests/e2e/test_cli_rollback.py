"""`trueup rollback` as a user runs it, against the Salesforce sandbox (the acceptance test).

A run creates and updates records of the demo org; one updated record is then edited by hand in
the org. The rollback returns every other record to its before-image, deletes the records the run
created, and reports the hand-edited record as a conflict, leaving it alone. Rolling the rollback
back writes the first run's values again (the conflict still left alone).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from e2e_cli import Trueup

from trueup.demo_data import (
    CLIENT_ID_VAR,
    CLIENT_SECRET_VAR,
    DemoFiles,
    SandboxTarget,
    generate_demo,
)
from trueup.products import PRODUCT_FIELDS, SALESFORCE_OBJECT
from trueup.sandbox.server import Sandbox

TODAY = date(2025, 6, 1)
KEY = PRODUCT_FIELDS["key"]
MAPPED = tuple(PRODUCT_FIELDS.values())


@pytest.fixture()
def org(tmp_path: Path) -> Iterator[tuple[Sandbox, DemoFiles, dict[str, str]]]:
    """The demo's drifted org on a sandbox; trueup.yml in the test's folder; login variables."""
    with Sandbox(ca_out=tmp_path / "ca.pem") as sandbox:
        files = generate_demo(
            tmp_path, properties=300, today=TODAY, salesforce=SandboxTarget(sandbox.url, "ca.pem")
        )
        saved = sandbox.state.org.insert(SALESFORCE_OBJECT, files.crm_records)
        assert all(r.success for r in saved)
        login = {CLIENT_ID_VAR: sandbox.client_id, CLIENT_SECRET_VAR: sandbox.client_secret}
        yield sandbox, files, login


def records(sandbox: Sandbox) -> dict[str, dict[str, Any]]:
    """Every live record's mapped fields, by key."""
    return {
        r[KEY]: {f: r.get(f) for f in MAPPED} for r in sandbox.state.org.rows(SALESFORCE_OBJECT)
    }


def edit_by_hand(updates: dict[str, dict[str, Any]]) -> tuple[str, str, dict[str, Any], str]:
    """An updated record and a date field the run changed, with a value unlike both the run's
    and the before-image (a checkbox has no third value)."""
    for key in sorted(updates):
        for field, change in updates[key]["changes"].items():
            if field.endswith("_Date__c"):
                return key, field, change, "2001-02-03"
    raise AssertionError("the run changed no date field")


def test_rollback_restores_before_images_deletes_creates_and_leaves_conflicts_alone(
    org: tuple[Sandbox, DemoFiles, dict[str, str]], trueup: Trueup
) -> None:
    sandbox, _, login = org
    before = records(sandbox)
    plan = trueup("plan", "--json", env=login).json()
    creates = {r["key"] for r in plan["records"] if r["action"] == "create"}
    updates = {r["key"]: r for r in plan["records"] if r["action"] == "update"}
    assert creates and len(updates) > 1

    applied = trueup("apply", "--yes", "--json", env=login)
    assert applied.code == 0, applied.err
    run = applied.json()["run"]
    after_run = records(sandbox)
    assert creates <= set(after_run)

    # someone edits one of the updated records by hand, in a field the run wrote
    edited_key, field, change, edited_value = edit_by_hand(updates)
    (record_id,) = (
        r["Id"] for r in sandbox.state.org.rows(SALESFORCE_OBJECT) if r[KEY] == edited_key
    )
    saved = sandbox.state.org.update(SALESFORCE_OBJECT, [{"Id": record_id, field: edited_value}])
    assert all(r.success for r in saved)
    edited = records(sandbox)[edited_key]

    shown = trueup("rollback", str(run), env=login)  # no terminal, no --yes: shown, not applied
    assert shown.error_line(5) == "error: not rolling back without confirmation; pass --yes"
    assert f"Rollback of run {run} on salesforce:{SALESFORCE_OBJECT}" in shown.out
    assert "Conflicts (changed since the run, left alone): 1" in shown.out
    assert records(sandbox)[edited_key] == edited

    rolled = trueup("rollback", str(run), "--yes", "--json", env=login)
    assert rolled.code == 0, rolled.err
    result = rolled.json()
    assert result["reverts_run"] == run and result["status"] == "succeeded"
    assert result["conflicts"] == [
        {
            "key": edited_key,
            "field": field,
            "run_wrote": change["after"],
            "now": edited_value,
            "reason": "changed since the run",
        }
    ]
    assert result["plan"]["delete"] == len(creates)
    assert result["plan"]["update"] == len(updates) - 1
    assert result["counts"]["deleted"] == len(creates)
    assert result["counts"]["updated"] == len(updates) - 1
    assert result["counts"]["failed"] == 0

    now = records(sandbox)
    assert not creates & set(now)  # the records the run created are gone
    for key in set(updates) - {edited_key}:
        assert now[key] == before[key], key  # back to the before-image
    assert now[edited_key] == edited  # the hand edit is kept
    assert set(now) == set(before)

    listed = trueup("runs", env=login)
    assert f"rollback of {run}" in listed.out
    detail = trueup("runs", str(result["run"]), "--json", env=login).json()
    assert (detail["command"], detail["reverts_run"]) == ("rollback", run)

    # the rollback is a run, and can be rolled back: the first run's values are written again
    again = trueup("rollback", str(result["run"]), "--yes", "--json", env=login)
    assert again.code == 0, again.err
    redone = again.json()
    assert redone["conflicts"] == []
    assert redone["counts"]["created"] == len(creates)
    now = records(sandbox)
    assert set(now) == set(after_run)
    for key, values in after_run.items():
        assert now[key] == (edited if key == edited_key else values), key


def test_rolling_back_a_run_that_does_not_exist_is_a_store_error(
    org: tuple[Sandbox, DemoFiles, dict[str, str]], trueup: Trueup
) -> None:
    _, _, login = org
    assert trueup("rollback", "404", "--yes", env=login).error_line(9) == "error: no run 404"
