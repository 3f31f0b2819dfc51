"""The sync's operation: which of the diff's changes a plan writes, and how the plan keeps it."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_diff import SCHEMA, run, snapshot, source

from trueup.destinations.base import Capabilities, Operation
from trueup.diff import Action, Diff
from trueup.errors import ConfigError
from trueup.operations import SyncOperation, check_supported, restrict
from trueup.plan import Plan

TYPES = {name: spec.type for name, spec in SCHEMA.fields.items()}


def drifted() -> Diff:
    """One create (new), one update (moved), one unchanged (same), one orphan (gone)."""
    src = source(
        {"k": "new", "name": "N", "on": True},
        {"k": "moved", "name": "After", "on": True},
        {"k": "same", "name": "S", "on": False},
    )
    snap = snapshot(
        {"Ext__c": "moved", "Name": "Before", "On__c": 1},
        {"Ext__c": "same", "Name": "S", "On__c": 0},
        {"Ext__c": "gone", "Name": "G", "On__c": 1},
    )
    return run(src, snap)


def actions(result: Diff) -> dict[str, str]:
    return {r["key"]: r["action"] for r in result.records.to_pylist()}


def nonzero(result: Diff) -> dict[Action, int]:
    return {a: n for a, n in result.counts.items() if n}


def test_upsert_keeps_the_diff_as_it_is() -> None:
    result = drifted()
    assert restrict(result, SyncOperation.UPSERT, delete_missing=False) is result


def test_update_only_turns_creates_into_missing_in_destination() -> None:
    result = restrict(drifted(), SyncOperation.UPDATE, delete_missing=False)
    assert actions(result) == {
        "new": "missing_in_destination",
        "moved": "update",
        "gone": "missing_in_source",
    }
    assert nonzero(result) == {
        Action.UPDATE: 1,
        Action.MISSING_IN_DESTINATION: 1,
        Action.UNCHANGED: 1,
        Action.MISSING_IN_SOURCE: 1,
    }
    assert result.field_changes["Name"] == 1  # the update's change only: nothing is created


def test_insert_only_turns_updates_into_exists_in_destination() -> None:
    result = restrict(drifted(), SyncOperation.INSERT, delete_missing=False)
    assert actions(result)["moved"] == "exists_in_destination"
    assert actions(result)["new"] == "create"
    assert nonzero(result)[Action.EXISTS_IN_DESTINATION] == 1
    assert Action.UPDATE not in nonzero(result)


def test_delete_missing_turns_orphans_into_deletes() -> None:
    result = restrict(drifted(), SyncOperation.UPSERT, delete_missing=True)
    assert actions(result)["gone"] == "delete"
    assert nonzero(result)[Action.DELETE] == 1
    assert Action.MISSING_IN_SOURCE not in nonzero(result)


@pytest.mark.parametrize("operation", list(SyncOperation))
def test_a_saved_plan_keeps_every_action_and_its_fingerprint(
    operation: SyncOperation, tmp_path: Path
) -> None:
    result = restrict(drifted(), operation, delete_missing=True)
    plan = Plan.from_diff(
        result,
        config_fingerprint="c",
        destination="sql:Thing",
        field_types=TYPES,
        operation=operation,
    )
    plan.save(tmp_path / "plan.json")
    loaded = Plan.load(tmp_path / "plan.json")
    assert loaded.operation is operation
    assert loaded.fingerprint == plan.fingerprint
    assert dict(loaded.counts) == dict(plan.counts)
    assert loaded.deletes()["Ext__c"].to_pylist() == ["gone"]
    assert loaded.write_count == plan.write_count == plan.writes().num_rows + 1
    deleted = loaded.rows(Action.DELETE).to_pylist()[0]
    assert deleted["before.Name"] == "G" and deleted["Name"] is None


def test_a_destination_that_cannot_is_a_config_error() -> None:
    upsert_only = Capabilities(max_batch_size=10)
    with pytest.raises(ConfigError, match="operation: csv:out cannot update records"):
        check_supported(
            SyncOperation.UPDATE, delete_missing=False, capabilities=upsert_only, shown="csv:out"
        )
    with pytest.raises(ConfigError, match=r"delete_missing: csv:out cannot delete records"):
        check_supported(
            SyncOperation.UPSERT, delete_missing=True, capabilities=upsert_only, shown="csv:out"
        )
    everything = Capabilities(max_batch_size=10, operations=frozenset(Operation))
    check_supported(
        SyncOperation.INSERT, delete_missing=True, capabilities=everything, shown="sql:t"
    )
