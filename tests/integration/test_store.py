"""The run store against real SQLite files and a real PostgreSQL schema."""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from trueup.destinations.base import OutcomeStatus, RecordOutcome
from trueup.errors import StoreError
from trueup.store import (
    LATEST_VERSION,
    BeforeImage,
    RunStatus,
    RunStore,
    StoredCheck,
    StoredOutcome,
)
from trueup.store.migrations import MIGRATIONS
from trueup.store.tables import metadata


@dataclass(frozen=True)
class Target:
    """Where a test's store lives: the URL trueup gets, and a URL for looking behind its back."""

    url: str
    base_dir: Path
    raw_url: str

    def open(self) -> RunStore:
        return RunStore.open(self.url, base_dir=self.base_dir)

    def raw_engine(self) -> sa.Engine:
        return sa.create_engine(self.raw_url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    if request.param == "sqlite":
        db = tmp_path / ".trueup" / "state.db"
        return Target("sqlite:///.trueup/state.db", tmp_path, f"sqlite:///{db}")
    pg_url: str = request.getfixturevalue("pg_url")
    schema: str = request.getfixturevalue("pg_schema")
    url = f"{pg_url}{'&' if '?' in pg_url else '?'}options=-csearch_path%3D{schema}"
    return Target(url, tmp_path, url.replace("postgresql://", "postgresql+psycopg://", 1))


@pytest.fixture()
def store(target: Target) -> Iterator[RunStore]:
    with target.open() as opened:
        yield opened


def _start(store: RunStore, command: str = "apply") -> int:
    return store.start_run(
        command=command,
        destination="salesforce:Product_Property__c",
        config_fingerprint="cfg0123456789abc",
        plan_fingerprint="plan0123456789ab",
        plan_counts={"create": 4, "update": 7, "unchanged": 90},
    )


def _outcome(key: str, status: OutcomeStatus, code: str | None = None) -> RecordOutcome:
    message = f"{code} on {key}" if status is OutcomeStatus.FAILED else None
    return RecordOutcome(key=key, status=status, error_code=code, message=message)


def test_run_round_trip_counts_and_failures(store: RunStore) -> None:
    first = _start(store, "plan")
    run = _start(store)
    store.record_batch(
        run,
        1,
        [
            _outcome("a1", OutcomeStatus.CREATED),
            _outcome("a2", OutcomeStatus.CREATED),
            _outcome("a3", OutcomeStatus.CREATED),
            _outcome("a4", OutcomeStatus.UPDATED),
            _outcome("a5", OutcomeStatus.FAILED, "FIELD_CUSTOM_VALIDATION_EXCEPTION"),
        ],
        [],
    )
    store.record_batch(
        run,
        2,
        [
            _outcome("b1", OutcomeStatus.FAILED, "FIELD_CUSTOM_VALIDATION_EXCEPTION"),
            _outcome("b2", OutcomeStatus.FAILED, "UNABLE_TO_LOCK_ROW"),
            _outcome("b3", OutcomeStatus.FAILED, "FIELD_CUSTOM_VALIDATION_EXCEPTION"),
            _outcome("b4", OutcomeStatus.FAILED),
            _outcome("b5", OutcomeStatus.SKIPPED),
        ],
        [],
    )
    store.finish_run(run, RunStatus.STOPPED, message="error rate 50% passed the 5% limit")

    runs = store.list_runs()
    assert [r.id for r in runs] == [run, first]  # newest first
    assert runs[1].status is RunStatus.RUNNING and runs[1].finished_at is None
    assert runs[1].counts == {
        "created": 0,
        "updated": 0,
        "deleted": 0,
        "failed": 0,
        "skipped": 0,
        "plan.create": 4,
        "plan.update": 7,
        "plan.unchanged": 90,
    }
    assert [r.id for r in store.list_runs(limit=1)] == [run]

    detail = store.get_run(run)
    summary = detail.summary
    assert summary == runs[0]
    assert summary.command == "apply"
    assert summary.status is RunStatus.STOPPED
    assert summary.destination == "salesforce:Product_Property__c"
    assert (summary.config_fingerprint, summary.plan_fingerprint) == (
        "cfg0123456789abc",
        "plan0123456789ab",
    )
    assert summary.counts == {
        "created": 3,
        "updated": 1,
        "deleted": 0,
        "failed": 5,
        "skipped": 1,
        "plan.create": 4,
        "plan.update": 7,
        "plan.unchanged": 90,
    }
    assert summary.started_at.tzinfo is not None and summary.finished_at is not None
    assert summary.started_at.utcoffset() == summary.finished_at.utcoffset() == UTC.utcoffset(None)
    assert summary.started_at <= summary.finished_at
    assert detail.message == "error rate 50% passed the 5% limit"
    assert detail.error_codes == {
        "FIELD_CUSTOM_VALIDATION_EXCEPTION": 3,
        "(no code)": 1,
        "UNABLE_TO_LOCK_ROW": 1,
    }
    # most common first
    assert next(iter(detail.error_codes)) == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert [f.key for f in detail.failures] == ["a5", "b1", "b2", "b3", "b4"]
    assert detail.failures[2] == StoredOutcome(
        key="b2",
        status=OutcomeStatus.FAILED,
        error_code="UNABLE_TO_LOCK_ROW",
        message="UNABLE_TO_LOCK_ROW on b2",
        batch=2,
    )

    stored = store.outcomes(run)
    assert [(o.key, o.status, o.batch) for o in stored][:2] == [
        ("a1", OutcomeStatus.CREATED, 1),
        ("a2", OutcomeStatus.CREATED, 1),
    ]
    assert len(stored) == 10
    assert store.outcomes(first) == []


def test_before_images_round_trip(store: RunStore) -> None:
    run = _start(store)
    images = [
        BeforeImage("PP-1", "Fraud_Detection_Enabled__c", "false", "true"),
        BeforeImage("PP-1", "Fraud_Detection_Start_Date__c", None, '"2024-03-01"'),
        BeforeImage("PP-2", "Name", '"Maple Court \\u00e9t\\u00e9"', '"Maple Court — été"'),
        BeforeImage("PP-3", "Fraud_Detection_Start_Date__c", '"2023-12-31"', None),
    ]
    store.record_batch(run, 1, [_outcome("PP-1", OutcomeStatus.UPDATED)], images[:2])
    store.record_batch(run, 2, [_outcome("PP-2", OutcomeStatus.UPDATED)], images[2:])
    assert store.before_images(run) == images


def _check(
    at: datetime, accuracy: float, destination: str = "sql:Product_Property__c"
) -> StoredCheck:
    return StoredCheck(
        checked_at=at,
        config_fingerprint="cfg0123456789abc",
        destination=destination,
        accuracy=accuracy,
        compared=1_956,
        agreeing=round(1_956 * accuracy / 100),
        missing=235,
        extra=30,
        invalid=4,
        passed=accuracy >= 99,
        field_agreement={"Fraud_Detection_Enabled__c": 89.65717606042999, "Name": 100.0},
    )


def test_checks_round_trip_newest_first_per_destination(store: RunStore) -> None:
    start = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    first = _check(start, 75.30674846625767)
    # a time in another zone is kept as the same instant, handed back in UTC
    eastern = (start + timedelta(hours=1)).astimezone(timezone(timedelta(hours=-4)))
    ids = [
        store.record_check(first),
        store.record_check(_check(start, 100.0, destination="salesforce:Product_Property__c")),
        store.record_check(_check(eastern, 99.5)),
    ]
    assert ids == sorted(ids) and len(set(ids)) == 3

    mine = store.list_checks(destination="sql:Product_Property__c")
    assert [c.id for c in mine] == [ids[2], ids[0]]  # newest first, the other destination apart
    assert mine[1] == dataclasses.replace(first, id=ids[0])  # every figure, floats exactly
    assert mine[0].checked_at == start + timedelta(hours=1)
    assert mine[0].checked_at.utcoffset() == timedelta(0)
    assert (mine[0].passed, mine[1].passed) == (True, False)
    assert [c.id for c in store.list_checks()] == ids[::-1]
    assert [c.id for c in store.list_checks(limit=1)] == [ids[2]]
    assert store.list_checks(destination="csv:out") == []


def test_check_time_must_be_aware(store: RunStore) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        store.record_check(_check(datetime(2025, 6, 1, 12, 0), 100.0))


def test_reopen_keeps_data_and_does_not_migrate_again(target: Target) -> None:
    with target.open() as store:
        run = _start(store)
        store.record_batch(run, 1, [_outcome("k", OutcomeStatus.CREATED)], [])
        store.finish_run(run, RunStatus.SUCCEEDED)
    with target.open() as store:
        assert store.get_run(run).summary.counts["created"] == 1
        assert store.get_run(run).summary.status is RunStatus.SUCCEEDED
    engine = target.raw_engine()
    try:
        with engine.connect() as conn:
            versions = conn.execute(sa.text("SELECT version FROM schema_migrations")).all()
    finally:
        engine.dispose()
    assert sorted(v for (v,) in versions) == list(range(1, LATEST_VERSION + 1))


def test_store_from_a_newer_trueup_is_refused(target: Target) -> None:
    target.open().close()
    engine = target.raw_engine()
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO schema_migrations (version, applied_at) VALUES (99, :at)"),
                {"at": "2030-01-01 00:00:00"},
            )
    finally:
        engine.dispose()
    with pytest.raises(StoreError, match=r"schema version 99.*upgrade trueup"):
        target.open()


def test_failed_migration_leaves_nothing_behind(target: Target) -> None:
    (target.base_dir / ".trueup").mkdir()  # where the SQLite target's file goes
    engine = target.raw_engine()
    try:
        with engine.begin() as conn:  # someone else's table where version 1 wants "runs"
            conn.execute(sa.text("CREATE TABLE runs (x integer)"))
        with pytest.raises(StoreError, match="cannot open"):
            target.open()
        tables = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert tables == {"runs"}  # schema_migrations and the other tables were rolled back


def test_tables_module_matches_what_migrations_create(target: Target, store: RunStore) -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    engine = target.raw_engine()
    try:
        inspector = sa.inspect(engine)
        for table in metadata.sorted_tables:
            reflected = {c["name"]: c["nullable"] for c in inspector.get_columns(table.name)}
            assert reflected == {c.name: c.nullable for c in table.columns}, table.name
            indexes = {tuple(i["column_names"]) for i in inspector.get_indexes(table.name)}
            assert indexes == {tuple(c.name for c in i.columns) for i in table.indexes}
    finally:
        engine.dispose()


def test_unknown_run_is_a_store_error(store: RunStore) -> None:
    with pytest.raises(StoreError, match=r"^no run 999$"):
        store.get_run(999)
    with pytest.raises(StoreError, match="no run 999"):
        store.finish_run(999, RunStatus.FAILED)
    with pytest.raises(StoreError, match="no run 999"):
        store.record_batch(999, 1, [_outcome("k", OutcomeStatus.CREATED)], [])
    with pytest.raises(StoreError, match="no run 999"):
        store.outcomes(999)


def test_finish_run_needs_a_final_status(store: RunStore) -> None:
    run = _start(store)
    with pytest.raises(ValueError, match="final status"):
        store.finish_run(run, RunStatus.RUNNING)


def test_record_batch_is_all_or_nothing(store: RunStore) -> None:
    run = _start(store)
    good = [_outcome(f"k{i}", OutcomeStatus.UPDATED) for i in range(5)]
    # field is NOT NULL: the database refuses the last before-image after the outcomes went in.
    broken = BeforeImage("k4", None, "1", "2")  # type: ignore[arg-type]
    with pytest.raises(StoreError, match=r"cannot record batch 1 of run \d+"):
        store.record_batch(run, 1, good, [BeforeImage("k0", "Name", '"a"', '"b"'), broken])
    assert store.outcomes(run) == []
    assert store.before_images(run) == []

    # An invalid outcome at the end of the list: none of the earlier ones stay either.
    bad_key = RecordOutcome(key=None, status=OutcomeStatus.CREATED)  # type: ignore[arg-type]
    with pytest.raises(StoreError) as caught:
        store.record_batch(run, 1, [*good, bad_key], [])
    assert "\n" not in str(caught.value)
    assert store.outcomes(run) == []

    # The store is still usable, and the retried batch lands whole.
    store.record_batch(run, 1, good, [BeforeImage("k0", "Name", '"a"', '"b"')])
    assert [o.key for o in store.outcomes(run)] == [o.key for o in good]
    assert len(store.before_images(run)) == 1


def test_ten_thousand_outcomes_in_one_batch(store: RunStore) -> None:
    run = _start(store)
    outcomes = [
        _outcome(f"PP-{i:05d}", OutcomeStatus.CREATED if i % 10 else OutcomeStatus.FAILED, "X")
        for i in range(10_000)
    ]
    images = [BeforeImage(f"PP-{i:05d}", "Name", None, f'"n{i}"') for i in range(10_000)]
    store.record_batch(run, 1, outcomes, images)
    counts = store.get_run(run).summary.counts
    assert (counts["created"], counts["failed"]) == (9_000, 1_000)
    assert len(store.outcomes(run)) == 10_000
    assert len(store.before_images(run)) == 10_000


def test_sqlite_file_and_folders_are_owner_only(tmp_path: Path) -> None:
    old = os.umask(0)  # so any mode below comes from the store, not from a strict umask
    try:
        RunStore.open("sqlite:///state/runs/trueup.db", base_dir=tmp_path).close()
    finally:
        os.umask(old)
    for folder in (tmp_path / "state", tmp_path / "state" / "runs"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "state" / "runs" / "trueup.db").stat().st_mode) == 0o600


def test_absolute_sqlite_path_ignores_base_dir(tmp_path: Path) -> None:
    db = tmp_path / "abs" / "state.db"
    RunStore.open(f"sqlite:///{db}", base_dir=tmp_path / "elsewhere").close()
    assert db.exists() and not (tmp_path / "elsewhere").exists()


def test_unreachable_postgres_is_one_line_without_password(tmp_path: Path) -> None:
    url = "postgresql://trueup:hunter2secret@127.0.0.1:1/nowhere?connect_timeout=2"
    with pytest.raises(StoreError) as caught:
        RunStore.open(url, base_dir=tmp_path)
    message = str(caught.value)
    assert "hunter2secret" not in message and "***" in message
    assert "\n" not in message


def test_unsupported_url_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unsupported run store URL"):
        RunStore.open("mysql://root:pw@localhost/db", base_dir=tmp_path)
