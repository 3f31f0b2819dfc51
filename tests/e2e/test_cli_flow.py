"""plan → apply → check as a user runs them: counts, saved plans, refusals, convergence."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from e2e_cli import Demo, Trueup


# --- plan ----------------------------------------------------------------------------------------
def test_plan_shows_the_counts_of_the_injected_drift(demo: Demo, trueup: Trueup) -> None:
    before = demo.crm_dump()

    ran = trueup("plan")

    assert ran.code == 0, ran.err
    assert demo.crm_dump() == before
    assert ran.plan_counts() == demo.expected()
    assert "Invalid records (not sent): 4" in ran.out
    assert "longer than 80" in ran.out


def test_plan_json_lists_every_change_with_its_action(demo: Demo, trueup: Trueup) -> None:
    ran = trueup("plan", "--json")

    assert ran.code == 0, ran.err
    plan = ran.json()
    assert plan["format"] == "trueup.plan/1"
    # every action has a count; those the demo's upsert cannot produce are 0
    assert {a: n for a, n in plan["counts"].items() if a in demo.expected()} == demo.expected()
    assert not any(n for a, n in plan["counts"].items() if a not in demo.expected())
    listed: dict[str, int] = {}
    for record in plan["records"]:
        listed[record["action"]] = listed.get(record["action"], 0) + 1
    assert listed == {a: n for a, n in demo.expected().items() if a != "unchanged"}
    invalid = [r for r in plan["records"] if r["action"] == "invalid"]
    assert all("Name" in r["reason"] and "longer than 80" in r["reason"] for r in invalid)
    updates = [r for r in plan["records"] if r["action"] == "update"]
    assert all(r["changes"] for r in updates)
    for r in updates:
        for name, change in r["changes"].items():
            assert change["before"] != change["after"]
            assert r["values"][name] == change["after"]


# --- saved plans ---------------------------------------------------------------------------------
def test_a_saved_plan_is_applied_exactly(demo: Demo, trueup: Trueup) -> None:
    saved = trueup("plan", "--out", "p.json")
    assert saved.code == 0, saved.err
    assert "Saved plan to p.json" in saved.out
    plan = json.loads((demo.dir / "p.json").read_text())
    # The source changes after the plan was saved: apply must still send the saved values.
    created = next(r for r in plan["records"] if r["action"] == "create")
    old_name = created["values"]["Name"]
    member = created["values"]["Snappt_Property_ID__c"]
    _source_sql(demo, "UPDATE properties SET name = 'Renamed After Plan' WHERE id = ?", member)

    applied = trueup("apply", "--plan", "p.json", "--yes")

    assert applied.code == 0, applied.err
    outcome = applied.table_counts()
    assert outcome["created"] == demo.expected()["create"]
    assert outcome["updated"] == demo.expected()["update"]
    assert outcome["failed"] == 0
    key = created["key"]
    stored = demo.crm('SELECT "Name" FROM "Product_Property__c" WHERE "Reverse_ETL_ID__c" = ?', key)
    assert stored == [(old_name,)]
    again = trueup("plan", "--json").json()
    assert (again["counts"]["create"], again["counts"]["update"]) == (0, 1)
    (update,) = [r for r in again["records"] if r["action"] == "update"]
    assert update["key"] == key
    assert update["changes"] == {"Name": {"before": old_name, "after": "Renamed After Plan"}}


def test_a_saved_plan_is_refused_when_the_destination_changed(demo: Demo, trueup: Trueup) -> None:
    assert trueup("plan", "--out", "p.json").code == 0
    demo.crm(
        'UPDATE "Product_Property__c" SET "Name" = \'Edited in the CRM\' '
        'WHERE "Reverse_ETL_ID__c" = (SELECT min("Reverse_ETL_ID__c") FROM "Product_Property__c")'
    )
    before = demo.crm_dump()

    line = trueup("apply", "--plan", "p.json", "--yes").error_line(5)

    assert "destination has changed" in line
    assert "nothing was written" in line
    assert demo.crm_dump() == before


def test_a_saved_plan_is_refused_when_the_config_changed(demo: Demo, trueup: Trueup) -> None:
    assert trueup("plan", "--out", "p.json").code == 0
    demo.edit_config(lambda c: c["destination"].update(batch_size=400))
    before = demo.crm_dump()

    line = trueup("apply", "--plan", "p.json", "--yes").error_line(5)

    assert "config has changed" in line
    assert demo.crm_dump() == before


def test_a_hand_edited_plan_is_refused(demo: Demo, trueup: Trueup) -> None:
    assert trueup("plan", "--out", "p.json").code == 0
    path = demo.dir / "p.json"
    plan = json.loads(path.read_text())
    created = next(r for r in plan["records"] if r["action"] == "create")
    created["values"]["Name"] = "Slipped in by hand"
    path.write_text(json.dumps(plan))
    before = demo.crm_dump()

    line = trueup("apply", "--plan", "p.json", "--yes").error_line(5)

    assert "p.json" in line
    assert "edited by hand" in line
    assert demo.crm_dump() == before


def test_a_file_that_is_not_a_plan_is_refused(demo: Demo, trueup: Trueup) -> None:
    (demo.dir / "p.json").write_text('{"hello": "world"}')

    line = trueup("apply", "--plan", "p.json", "--yes").error_line(5)

    assert "not a trueup plan" in line


# --- apply ---------------------------------------------------------------------------------------
def test_apply_without_yes_and_no_terminal_refuses(demo: Demo, trueup: Trueup) -> None:
    before = demo.crm_dump()

    line = trueup("apply").error_line(5)

    assert "--yes" in line
    assert demo.crm_dump() == before
    assert trueup("runs").out.strip() == "No runs yet."


# --- check ---------------------------------------------------------------------------------------
def test_check_fails_on_drift_and_passes_after_apply(demo: Demo, trueup: Trueup) -> None:
    drifted = trueup("check")
    line = drifted.error_line(8)
    assert "below guards.min_accuracy" in line
    assert "Accuracy: " in drifted.out
    assert "Accuracy: 100.00%" not in drifted.out

    report = trueup("check", "--json")
    assert report.code == 8
    body: dict[str, Any] = report.json()
    expected = demo.expected()
    assert body["accuracy"] < 100
    assert body["agreeing"] == expected["unchanged"]
    assert body["compared"] == expected["create"] + expected["update"] + expected["unchanged"]
    assert len(body["missing_in_destination"]) == expected["create"]
    assert len(body["extra_in_destination"]) == expected["missing_in_source"]
    assert len(body["invalid"]) == expected["invalid"]

    applied = trueup("apply", "--yes", "--json")
    assert applied.code == 0, applied.err
    outcome = applied.json()
    assert outcome["status"] == "succeeded"
    assert outcome["counts"]["created"] == expected["create"]
    assert outcome["counts"]["updated"] == expected["update"]
    assert outcome["counts"]["skipped"] == expected["invalid"]
    assert outcome["error_rate"] == 0
    fixed = trueup("check")

    assert fixed.code == 0, fixed.err
    assert "Accuracy: 100.00%" in fixed.out
    assert fixed.err == ""
    assert trueup("apply", "--yes", "--json").json() == {"run": None, "written": 0}


def _source_sql(demo: Demo, sql: str, *params: Any) -> None:
    con = sqlite3.connect(demo.files.source)
    try:
        with con:
            assert con.execute(sql, params).rowcount == 1
    finally:
        con.close()
