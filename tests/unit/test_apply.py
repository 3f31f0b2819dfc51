"""Apply: batches, retries, per-record outcomes and before-images stored in order, the brake."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pytest

from trueup.apply import RetryPolicy, apply_plan
from trueup.config import GuardsConfig
from trueup.destinations.base import (
    BatchResult,
    Capabilities,
    Destination,
    OutcomeStatus,
    RecordOutcome,
    WriteBatch,
)
from trueup.diff import Action, diff
from trueup.errors import FatalDestinationError, TransientDestinationError
from trueup.plan import Plan
from trueup.schema import DestinationSchema, FieldSpec, FieldType
from trueup.store import RunStatus, RunStore

SCHEMA = DestinationSchema(
    "Thing",
    {
        "Ext": FieldSpec("Ext", FieldType.TEXT, nullable=False, unique=True),
        "Name": FieldSpec("Name", FieldType.TEXT, length=5),
        "On": FieldSpec("On", FieldType.BOOLEAN, nullable=False),
    },
)
MAPPING = {"k": "Ext", "name": "Name", "on": "On"}
FAST = RetryPolicy(attempts=3, initial_wait=0.0, max_wait=0.0)


class FakeDestination(Destination):
    """An in-memory destination with fault knobs; it checks the store as each batch arrives."""

    def __init__(self, store: RunStore, rows: dict[str, dict[str, object]]) -> None:
        self.store = store
        self.rows = rows
        self.transient_failures = 0  # raise this many TransientDestinationErrors first
        self.fatal = False
        self.reject: set[str] = set()  # keys answered FAILED
        self.batches: list[list[str]] = []
        self.images_seen: list[int] = []
        self.caps = Capabilities(max_batch_size=3)

    @property
    def capabilities(self) -> Capabilities:
        return self.caps

    def describe(self) -> DestinationSchema:
        return SCHEMA

    def snapshot(self, fields: Sequence[str]) -> pa.Table:
        keys = sorted(self.rows)
        return pa.table(
            {f: [k if f == "Ext" else self.rows[k].get(f) for k in keys] for f in fields}
        )

    def write(self, batch: WriteBatch) -> BatchResult:
        run = self.store.list_runs(1)[0].id
        self.images_seen.append(len(self.store.before_images(run)))
        if self.fatal:
            raise FatalDestinationError("credentials refused")
        if self.transient_failures:
            self.transient_failures -= 1
            raise TransientDestinationError("503 Service Unavailable")
        keys = batch.records[batch.key_field].to_pylist()
        self.batches.append(keys)
        outcomes = []
        for record in batch.records.to_pylist():
            key = record[batch.key_field]
            if key in self.reject:
                outcomes.append(RecordOutcome(key, OutcomeStatus.FAILED, "VALIDATION", "no"))
                continue
            created = key not in self.rows
            self.rows[key] = {f: v for f, v in record.items() if f != batch.key_field}
            status = OutcomeStatus.CREATED if created else OutcomeStatus.UPDATED
            outcomes.append(RecordOutcome(key, status))
        return BatchResult(tuple(outcomes))

    def close(self) -> None:
        pass


def ordered(records: pa.Table) -> list[dict[str, object]]:
    """Plan records in (action, key) order: plans keep no order of their own."""
    return sorted(records.to_pylist(), key=lambda r: (r["action"], r["key"] or ""))


def make_plan(destination: FakeDestination, source: pa.Table) -> Plan:
    result = diff(
        source,
        destination.snapshot(["Ext", "Name", "On"]),
        mapping=MAPPING,
        key="k",
        schema=SCHEMA,
        capabilities=destination.capabilities,
    )
    types = {f: s.type for f, s in SCHEMA.fields.items()}
    return Plan.from_diff(result, config_fingerprint="c", destination="fake", field_types=types)


@pytest.fixture()
def store(tmp_path: Path) -> RunStore:
    return RunStore.open("sqlite:///state.db", base_dir=tmp_path)


def source(n: int, *, bad_key: bool = False) -> pa.Table:
    keys: list[str | None] = [f"k{i:02d}" for i in range(n)]
    if bad_key:
        keys.append(None)
    return pa.table(
        {"k": keys, "name": [f"n{i}" for i in range(len(keys))], "on": [True] * len(keys)}
    )


def test_batches_outcomes_and_before_images_in_order(store: RunStore) -> None:
    fake = FakeDestination(store, {"k00": {"Name": "old", "On": False}})
    plan = make_plan(fake, source(7, bad_key=True))
    assert plan.counts[Action.CREATE] == 6 and plan.counts[Action.UPDATE] == 1

    result = apply_plan(plan, fake, store, batch_size=100, guards=GuardsConfig(), retry=FAST)

    assert [len(b) for b in fake.batches] == [3, 3, 1]  # capped by max_batch_size
    assert result.status is RunStatus.SUCCEEDED
    assert result.counts[OutcomeStatus.CREATED] == 6
    assert result.counts[OutcomeStatus.UPDATED] == 1
    assert result.counts[OutcomeStatus.SKIPPED] == 1  # the null key, not sent
    # before-images of a batch are stored before that batch is sent
    images = store.before_images(result.run_id)
    assert fake.images_seen[0] > 0 and fake.images_seen == sorted(fake.images_seen)
    k00 = {(i.field, i.before, i.after) for i in images if i.key == "k00"}
    assert k00 == {("Name", '"old"', '"n0"'), ("On", "false", "true")}
    detail = store.get_run(result.run_id)
    assert detail.summary.counts["created"] == 6
    assert detail.summary.counts["skipped"] == 1


def test_a_destination_write_size_wins_over_the_batch_size(store: RunStore) -> None:
    fake = FakeDestination(store, {})
    fake.caps = Capabilities(max_batch_size=4, write_size=4)
    plan = make_plan(fake, source(7))
    apply_plan(plan, fake, store, batch_size=2, guards=GuardsConfig(), retry=FAST)
    assert [len(b) for b in fake.batches] == [4, 3]


class SizingDestination(FakeDestination):
    """Learns the run's size before the first write and sizes its writes from it."""

    def __init__(self, store: RunStore, rows: dict[str, dict[str, object]]) -> None:
        super().__init__(store, rows)
        self.announced: list[int] = []

    def prepare_run(self, total_writes: int) -> None:
        assert not self.batches, "prepare_run comes before any write"
        self.announced.append(total_writes)
        self.caps = Capabilities(max_batch_size=10, write_size=5 if total_writes > 6 else 2)


def test_a_destination_that_prepares_runs_hears_the_total_once_first(store: RunStore) -> None:
    fake = SizingDestination(store, {})
    apply_plan(make_plan(fake, source(7)), fake, store, batch_size=1, guards=GuardsConfig())
    assert fake.announced == [7]
    assert [len(b) for b in fake.batches] == [5, 2]  # capabilities read after prepare_run


def test_transient_failures_are_retried_and_nothing_is_sent_twice(store: RunStore) -> None:
    fake = FakeDestination(store, {})
    fake.transient_failures = 2
    result = apply_plan(
        make_plan(fake, source(4)), fake, store, batch_size=2, guards=GuardsConfig(), retry=FAST
    )
    assert result.counts[OutcomeStatus.CREATED] == 4
    assert [len(b) for b in fake.batches] == [2, 2]  # each batch sent once, after its retries
    assert sorted(k for b in fake.batches for k in b) == ["k00", "k01", "k02", "k03"]


def test_retries_are_bounded(store: RunStore) -> None:
    fake = FakeDestination(store, {})
    fake.transient_failures = 10
    with pytest.raises(TransientDestinationError):
        apply_plan(
            make_plan(fake, source(2)),
            fake,
            store,
            batch_size=2,
            guards=GuardsConfig(),
            retry=FAST,
        )
    assert store.list_runs(1)[0].status is RunStatus.FAILED


def test_fatal_error_marks_the_run_failed(store: RunStore) -> None:
    fake = FakeDestination(store, {})
    fake.fatal = True
    with pytest.raises(FatalDestinationError):
        apply_plan(make_plan(fake, source(2)), fake, store, batch_size=2, guards=GuardsConfig())
    run = store.get_run(store.list_runs(1)[0].id)
    assert run.summary.status is RunStatus.FAILED
    assert run.message == "credentials refused"


def test_error_rate_brake_stops_and_skips_the_rest(store: RunStore) -> None:
    fake = FakeDestination(store, {})
    fake.reject = {f"k{i:02d}" for i in range(0, 30, 2)}  # half of them fail
    guards = GuardsConfig(max_error_rate=0.2, min_error_sample=6)
    result = apply_plan(make_plan(fake, source(30)), fake, store, batch_size=3, guards=guards)
    assert result.status is RunStatus.STOPPED
    assert len(fake.batches) == 2  # 6 records sampled, 3 failed: 50% > 20%
    assert result.counts[OutcomeStatus.SKIPPED] == 24
    assert "above guards.max_error_rate" in (result.message or "")
    detail = store.get_run(result.run_id)
    assert detail.summary.status is RunStatus.STOPPED
    assert detail.error_codes == {"VALIDATION": 3}


def test_plan_survives_save_and_load(tmp_path: Path, store: RunStore) -> None:
    fake = FakeDestination(store, {"k00": {"Name": "old", "On": False}, "gone": {"On": True}})
    plan = make_plan(fake, source(3, bad_key=True))
    path = tmp_path / "plan.json"
    plan.save(path)
    loaded = Plan.load(path)
    assert loaded.fingerprint == plan.fingerprint
    assert ordered(loaded.records) == ordered(plan.records)
    assert dict(loaded.counts) == dict(plan.counts)
    assert loaded.created_at.tzinfo is not None
    assert loaded.created_at - plan.created_at < dt.timedelta(seconds=1)
