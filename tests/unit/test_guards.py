"""Guards judge a plan before anything is written: each trips on the failure it exists for, and
stays quiet on ordinary drift."""

from __future__ import annotations

import dataclasses
from typing import Any

import pyarrow as pa
import pytest

from trueup.config import FieldGuardsConfig, GuardsConfig
from trueup.destinations.base import Capabilities
from trueup.diff import diff
from trueup.errors import GuardBlocked
from trueup.guards import GuardName, GuardVerdict, enforce, evaluate, previous_source_rows
from trueup.plan import Plan
from trueup.schema import DestinationSchema, FieldSpec, FieldType
from trueup.store import RunStatus, RunSummary

SCHEMA = DestinationSchema(
    "Thing",
    {
        "Ext__c": FieldSpec("Ext__c", FieldType.TEXT, nullable=False, external_id=True),
        "On__c": FieldSpec("On__c", FieldType.BOOLEAN, nullable=False),
        "Name": FieldSpec("Name", FieldType.TEXT),
    },
)
MAPPING = {"k": "Ext__c", "on": "On__c", "name": "Name"}
DEFAULTS = GuardsConfig()


def plan_of(source: list[dict[str, Any]], held: list[dict[str, Any]]) -> Plan:
    src = pa.table(
        {
            "k": pa.array([r["k"] for r in source], pa.string()),
            "on": pa.array([r.get("on") for r in source], pa.bool_()),
            "name": pa.array([r.get("name") for r in source], pa.string()),
        }
    )
    snap = pa.table(
        {
            "Ext__c": pa.array([r["k"] for r in held], pa.string()),
            "On__c": pa.array([r.get("on") for r in held], pa.bool_()),
            "Name": pa.array([r.get("name") for r in held], pa.string()),
        }
    )
    result = diff(
        src, snap, mapping=MAPPING, key="k", schema=SCHEMA, capabilities=Capabilities(100)
    )
    types = {f: SCHEMA.fields[f].type for f in ("On__c", "Name")}
    return Plan.from_diff(
        result, config_fingerprint="c", destination="sql:Thing", field_types=types
    )


def records(
    n: int, *, on: bool = True, name: str | None = "x", start: int = 0
) -> list[dict[str, Any]]:
    return [{"k": f"k{i:04d}", "on": on, "name": name} for i in range(start, start + n)]


def tripped(verdicts: list[GuardVerdict]) -> dict[tuple[GuardName, str | None], GuardVerdict]:
    return {(v.guard, v.field): v for v in verdicts if v.tripped}


def test_ordinary_drift_passes_every_guard() -> None:
    held = records(200)
    source = [dict(r) for r in held]
    for r in source[:10]:  # 5% of checkboxes turned off, a few names changed
        r["on"] = False
    for r in source[10:15]:
        r["name"] = "renamed"
    source += records(30, start=500)  # new records look like the others
    verdicts = evaluate(plan_of(source, held), DEFAULTS, previous_source_rows=210)
    assert not tripped(verdicts)
    assert {v.guard for v in verdicts} == set(GuardName)  # every guard judged, and said so


def test_the_all_false_sync_trips_flip_and_nulls_with_counts_and_examples() -> None:
    held = records(200)  # every record has the flag on
    source = [dict(r, on=False) for r in held] + records(50, on=False, start=500)
    verdicts = [v for v in evaluate(plan_of(source, held), DEFAULTS) if v.tripped]
    flip = next(v for v in verdicts if v.guard is GuardName.FLIP)
    assert (flip.field, flip.count, flip.total) == ("On__c", 200, 200)
    assert "true → false on 200 of 200 existing records (100.0%, limit 10%)" in flip.message
    assert flip.examples == ("k0000", "k0001", "k0002", "k0003", "k0004")
    lost, new = (v for v in verdicts if v.guard is GuardName.NULLS)
    assert (lost.field, lost.count) == ("On__c", 200)
    # the 50 new records are all false where every existing record is true: flagged too
    assert "false on 50 of 50 new records" in new.message
    assert new.field == "On__c" and new.examples[0] == "k0500"


def test_nulling_a_text_field_trips_nulls_but_not_flip() -> None:
    held = records(100)
    source = [dict(r, name=None) for r in held]
    verdicts = tripped(evaluate(plan_of(source, held), DEFAULTS))
    assert set(verdicts) == {(GuardName.NULLS, "Name"), (GuardName.CHANGE_SHARE, None)}
    assert "become null" in verdicts[(GuardName.NULLS, "Name")].message


def test_small_numbers_do_not_trip_below_min_records() -> None:
    held = records(10)
    source = [dict(r, on=False) for r in held]  # 100%, but only 10 records
    assert not tripped(evaluate(plan_of(source, held), DEFAULTS))
    assert tripped(evaluate(plan_of(source, held), GuardsConfig(min_records=5)))


def test_per_field_limits_override_the_defaults() -> None:
    held = records(100)
    source = [dict(r, on=i >= 30) for i, r in enumerate(held)]  # 30% turned off
    assert tripped(evaluate(plan_of(source, held), DEFAULTS))
    relaxed = GuardsConfig(fields={"On__c": FieldGuardsConfig(flip_pct=50, nulls_pct=50)})
    assert not tripped(evaluate(plan_of(source, held), relaxed))


def test_volume_guards() -> None:
    held = records(100)
    source = [dict(r, name=f"n{i}") for i, r in enumerate(held)]  # every record renamed
    verdicts = tripped(evaluate(plan_of(source, held), GuardsConfig(max_changes=50)))
    assert "100 records would change, more than guards.max_changes (50)" in (
        verdicts[(GuardName.MAX_CHANGES, None)].message
    )
    assert "100.0% of the destination's 100 records" in (
        verdicts[(GuardName.CHANGE_SHARE, None)].message
    )


def test_source_drop_against_the_last_run_and_an_empty_model() -> None:
    held = records(100)
    plan = plan_of(held[:40], held)
    drop = tripped(evaluate(plan, DEFAULTS, previous_source_rows=100))
    assert "40 rows, 60.0% fewer than the 100 of the last run" in (
        drop[(GuardName.SOURCE_DROP, None)].message
    )
    assert (GuardName.SOURCE_DROP, None) not in tripped(evaluate(plan, DEFAULTS))
    empty = tripped(evaluate(plan_of([], held), DEFAULTS))
    assert "returned no rows" in empty[(GuardName.SOURCE_DROP, None)].message


def test_allow_lets_a_run_past_one_guard_and_enforce_names_the_rest() -> None:
    held = records(100)
    source = [dict(r, on=i < 30, name=None if i < 70 else "x") for i, r in enumerate(held)]
    plan = plan_of(source, held)  # 70 of 100 turned off and nulled: flip and nulls trip
    with pytest.raises(GuardBlocked) as blocked:
        enforce(evaluate(plan, DEFAULTS))
    text = str(blocked.value)
    assert "flip: On__c would flip true → false on 70 of 100" in text
    assert "e.g. k0000, k0001" in text
    assert "--allow flip --allow nulls" in text
    allowed = evaluate(plan, DEFAULTS, allow=[GuardName.FLIP])
    assert all(v.allowed for v in allowed if v.guard is GuardName.FLIP and v.tripped)
    with pytest.raises(GuardBlocked, match="nulls") as still:
        enforce(allowed)
    assert "flip:" not in str(still.value)
    enforce(
        evaluate(plan, DEFAULTS, allow=[GuardName.FLIP, GuardName.NULLS, GuardName.CHANGE_SHARE])
    )


def test_previous_source_rows_comes_from_the_last_finished_apply_of_the_sync() -> None:
    def run(run_id: int, status: RunStatus, destination: str, **counts: int) -> RunSummary:
        return RunSummary(
            id=run_id,
            command="apply",
            status=status,
            started_at=None,  # type: ignore[arg-type]
            finished_at=None,
            destination=destination,
            config_fingerprint="c",
            plan_fingerprint="p",
            counts={f"plan.{a}": n for a, n in counts.items()},
        )

    runs = [
        run(4, RunStatus.FAILED, "sql:Thing", create=1),
        run(3, RunStatus.SUCCEEDED, "sql:Other", create=7),
        run(2, RunStatus.SUCCEEDED, "sql:Thing", create=5, unchanged=90, missing_in_source=3),
        run(1, RunStatus.SUCCEEDED, "sql:Thing", create=1),
    ]
    assert previous_source_rows(runs, "sql:Thing") == 95
    assert previous_source_rows(runs, "sql:None") is None


def test_a_rollback_plan_is_not_judged_by_the_model_guards() -> None:
    held = records(100)
    plan = plan_of([dict(r, on=False) for r in held], held)
    assert tripped(evaluate(plan, DEFAULTS))
    rollback = dataclasses.replace(plan, reverts_run=7)
    verdicts = evaluate(rollback, DEFAULTS, previous_source_rows=10_000)
    assert not tripped(verdicts)
    assert all("rollback of run 7" in v.message for v in verdicts)
