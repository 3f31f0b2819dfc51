"""Guards from the command line: the all-false failure of DESIGN.md §1 is blocked before anything
is written, names the fields and counts, and the same sync passes once the join is fixed."""

from __future__ import annotations

import json
from typing import Any

from e2e_cli import Demo, Trueup


def break_the_join(config: dict[str, Any]) -> None:
    # The model joins feature rows on the wrong column: no property finds its features, so
    # every product comes out off (coalesce(null, false)) and nothing fails.
    config["model"]["features_record_id"] = "feature_code"


def test_the_all_false_sync_is_blocked_and_writes_nothing(demo: Demo, trueup: Trueup) -> None:
    before = demo.crm_dump()
    demo.edit_config(break_the_join)

    planned = trueup("plan")
    assert planned.code == 6, planned.err
    assert "guard(s) blocked the plan" in planned.err
    applied = trueup("apply", "--yes")

    assert applied.code == 6, applied.err
    assert demo.crm_dump() == before  # nothing written
    message = applied.err
    assert "flip: Fraud_Detection_Enabled__c would flip true → false on" in message
    assert "nulls: Fraud_Detection_Enabled__c would be false on" in message  # the new records
    assert "Income_Verification_Enabled__c" in message
    assert "e.g. " in message and "--allow flip" in message
    listed = trueup("runs", "--json")
    assert listed.code == 0, listed.err
    assert listed.json() == [] or all(r["command"] != "apply" for r in listed.json())


def test_with_the_join_fixed_the_same_sync_passes(demo: Demo, trueup: Trueup) -> None:
    demo.edit_config(break_the_join)
    assert trueup("apply", "--yes").code == 6
    demo.edit_config(lambda config: config["model"].pop("features_record_id"))  # fixed

    applied = trueup("apply", "--yes", "--json")

    assert applied.code == 0, applied.err
    assert applied.json()["counts"]["created"] == demo.expected()["create"]
    planned = trueup("plan", "--json")
    assert planned.code == 0, planned.err
    assert not [g for g in planned.json()["guards"] if g["tripped"]]


def test_allow_lets_one_run_past_and_is_recorded(demo: Demo, trueup: Trueup) -> None:
    demo.edit_config(break_the_join)
    blocked = trueup("plan", "--json")
    tripped = {g["guard"] for g in blocked.json()["guards"] if g["tripped"]}
    assert blocked.code == 6 and {"flip", "nulls"} <= tripped

    allows = [arg for name in sorted(tripped) for arg in ("--allow", name)]
    applied = trueup("apply", "--yes", "--json", *allows)

    assert applied.code == 0, applied.err
    run = applied.json()["run"]
    detail = trueup("runs", str(run), "--json")
    assert detail.code == 0, detail.err
    recorded = detail.json()["guards"]
    assert {g["guard"] for g in recorded} == tripped
    assert all(g["allowed"] and g["tripped"] for g in recorded)
    # the next sync sees far fewer enabled flags... and the source has not shrunk: no source_drop
    assert json.dumps(recorded)


def test_an_export_is_guarded_too(demo: Demo, trueup: Trueup) -> None:
    demo.edit_config(break_the_join)

    exported = trueup("export", "--out", "files")

    assert exported.code == 6, exported.err
    assert "flip: Fraud_Detection_Enabled__c" in exported.err
    assert not (demo.dir / "files").exists() or not any((demo.dir / "files").iterdir())
