"""RunStore: where apply records each run, each record's outcome and the before-image of a change.

Every method is one transaction. ``record_batch`` in particular writes a batch's outcomes and
before-images together, so apply can send the next batch knowing the last one is durable.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Row, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from trueup.destinations.base import OutcomeStatus, RecordOutcome
from trueup.errors import StoreError
from trueup.store import interrupted, locks
from trueup.store import tables as t
from trueup.store.engine import WRITE_OPTION, StoreEngine, create_store_engine, one_line
from trueup.store.migrations import migrate
from trueup.store.values import (
    BeforeImage,
    InterruptedRun,
    RunDetail,
    RunStatus,
    RunSummary,
    StoredCheck,
    StoredOutcome,
    SyncLock,
)

NO_ERROR_CODE = "(no code)"  # the error_codes key for failures the destination gave no code for


class RunStore:
    """Runs, per-record outcomes and before-images, in SQLite (default) or PostgreSQL."""

    def __init__(self, store: StoreEngine) -> None:
        """Wrap an engine whose schema is already migrated; use ``RunStore.open``."""
        self._engine = store.engine
        self._display = store.display
        self._secret = store.secret

    @classmethod
    def open(cls, url: str, *, base_dir: Path) -> RunStore:
        """Open (creating and migrating as needed) the store at ``url``."""
        store = cls(create_store_engine(url, base_dir=base_dir))
        try:
            with store._transaction("cannot open", write=True) as conn:
                migrate(conn, where=store._display)
        except BaseException:
            store.close()
            raise
        return store

    def __repr__(self) -> str:
        return f"RunStore({self._display!r})"

    # --- writing ----------------------------------------------------------------------------------
    def start_run(
        self,
        *,
        command: str,
        destination: str,
        config_fingerprint: str,
        plan_fingerprint: str,
        plan_counts: Mapping[str, int],
        guards: Sequence[Mapping[str, Any]] = (),
        reverts_run: int | None = None,
    ) -> int:
        """Record a new RUNNING run and return its id; plan counts are kept as ``plan.<action>``,
        ``guards`` (the verdicts the run was let through with, as JSON objects) as given;
        ``reverts_run``: the run a rollback reverts."""
        counts = {f"plan.{k.removeprefix('plan.')}": int(v) for k, v in plan_counts.items()}
        row = {
            "command": command,
            "status": RunStatus.RUNNING.value,
            "started_at": datetime.now(UTC),
            "finished_at": None,
            "destination": destination,
            "config_fingerprint": config_fingerprint,
            "plan_fingerprint": plan_fingerprint,
            "plan_counts": json.dumps(counts, sort_keys=True),
            "message": None,
            "guards": json.dumps(list(guards)) if guards else None,
            "reverts_run": reverts_run,
        }
        me = locks.Holder.this_process()
        row |= {"host": me.host, "pid": me.pid}  # so a run its process left can be told dead
        with self._transaction("cannot start a run", write=True) as conn:
            # inserted_primary_key rather than RETURNING: SQLite before 3.35 has no RETURNING.
            key = conn.execute(t.runs.insert(), row).inserted_primary_key
            assert key is not None
            run_id = int(key[0])
            locks.started(conn, run_id, destination, me, store=self._display)
            return run_id

    def record_batch(
        self,
        run_id: int,
        batch: int,
        outcomes: Sequence[RecordOutcome],
        before_images: Sequence[BeforeImage],
    ) -> None:
        """Store one batch's outcomes and before-images in one transaction: all of it or none."""
        outcome_rows = [
            {
                "run_id": run_id,
                "batch": batch,
                "key": o.key,
                "status": OutcomeStatus(o.status).value,
                "error_code": o.error_code,
                "message": o.message,
                "destination_id": o.destination_id,
            }
            for o in outcomes
        ]
        image_rows = [
            {
                "run_id": run_id,
                "batch": batch,
                "key": b.key,
                "field": b.field,
                "before_json": b.before,
                "after_json": b.after,
            }
            for b in before_images
        ]
        action = f"cannot record batch {batch} of run {run_id}"
        with self._transaction(action, write=True) as conn:
            self._require_run(conn, run_id)
            # A list of parameter sets makes this one executemany, not a statement per record.
            if outcome_rows:
                conn.execute(t.outcomes.insert(), outcome_rows)
            if image_rows:
                conn.execute(t.before_images.insert(), image_rows)
            me = locks.Holder.this_process()
            ours = locks.beat_for_run(conn, run_id, me, store=self._display)
        if ours is False:  # after the commit: what the destination answered is kept
            raise StoreError(
                f"run {run_id} lost its sync lock: another process took it over, judging this one "
                "gone (no heartbeat); stopping before the next batch"
            )

    def finish_run(self, run_id: int, status: RunStatus, *, message: str | None = None) -> None:
        """Mark a run finished with ``status`` (not RUNNING) and an optional one-line message."""
        if RunStatus(status) is RunStatus.RUNNING:
            raise ValueError("finish_run needs a final status, not 'running'")
        values = {"status": RunStatus(status).value, "finished_at": datetime.now(UTC)}
        with self._transaction(f"cannot finish run {run_id}", write=True) as conn:
            result = conn.execute(
                t.runs.update().where(t.runs.c.id == run_id).values(**values, message=message)
            )
            if result.rowcount == 0:
                raise StoreError(f"no run {run_id}")
        locks.finished(self._display, run_id)

    # --- crash safety: dead runs and sync locks (store/locks.py) ---------------------------------
    def reap_interrupted(
        self, *, stale_after: timedelta = locks.STALE_AFTER
    ) -> list[InterruptedRun]:
        """Mark every RUNNING run whose process is gone (killed, crashed) INTERRUPTED.

        Its stored outcomes stay; the records of its batch in flight get SKIPPED NOT_CONFIRMED.
        """
        me = locks.Holder.this_process()
        with self._transaction("cannot mark interrupted runs", write=True) as conn:
            return interrupted.reap(conn, me, store=self._display, stale_after=stale_after)

    def mark_unconfirmed(self, run_id: int) -> int:
        """Store SKIPPED NOT_CONFIRMED for the run's records sent without an answer stored (a
        batch in flight when the run ended); return how many."""
        with self._transaction(f"cannot mark the batch in flight of run {run_id}", write=True) as c:
            return interrupted.mark_in_flight(c, run_id)

    def acquire_lock(
        self, sync: str, *, stale_after: timedelta = locks.STALE_AFTER
    ) -> locks.HeldLock:
        """Take ``sync``'s lock (SyncLocked if a live process holds it); prefer ``sync_lock``."""
        me = locks.Holder.this_process()
        with self._transaction(f"cannot lock sync {sync}", write=True) as conn:
            held = locks.acquire(conn, sync, me, store=self._display, stale_after=stale_after)
        locks.holding(held)
        return held

    def release_lock(self, held: locks.HeldLock) -> None:
        """Give the lock up (unless another process has taken it over since)."""
        with self._transaction(f"cannot unlock sync {held.sync}", write=True) as conn:
            locks.release(conn, held)

    def heartbeat(self, held: locks.HeldLock) -> bool:
        """Refresh the lock's heartbeat; False (and ``held.lost``) when it is no longer ours."""
        with self._transaction(f"cannot refresh the lock of sync {held.sync}", write=True) as conn:
            ours = locks.beat(conn, held)
        held.lost = held.lost or not ours
        return ours

    @contextmanager
    def sync_lock(
        self,
        sync: str,
        *,
        stale_after: timedelta = locks.STALE_AFTER,
        heartbeat_every: float = locks.HEARTBEAT_EVERY,
    ) -> Iterator[locks.HeldLock]:
        """Hold ``sync``'s lock (the destination's display name) for the block, with a heartbeat.

        Raises SyncLocked, naming the holder, when a live process holds it. A lock left by a
        process that is gone is taken over: ``held.cleared`` says whose and why (warn the user).
        A run started in the block for the same sync is named in the lock.
        """
        held = self.acquire_lock(sync, stale_after=stale_after)
        beating = heartbeat_every > 0 and not isinstance(self._engine.pool, StaticPool)
        heart = locks.Heartbeat(lambda: self.heartbeat(held), every=heartbeat_every)
        if beating:  # an in-memory store has one connection, and no other process to tell
            heart.start()
        try:
            yield held
        except BaseException:
            heart.stop()
            with suppress(StoreError):  # the error in flight matters more; the lock goes stale
                self.release_lock(held)
            raise
        heart.stop()
        self.release_lock(held)

    def list_locks(self) -> list[SyncLock]:
        """The sync locks held now (a stale one is cleared only when someone takes it)."""
        with self._transaction("cannot list sync locks", write=False) as conn:
            return locks.list_locks(conn)

    # --- reading ----------------------------------------------------------------------------------
    def list_runs(self, limit: int = 50) -> list[RunSummary]:
        """The latest ``limit`` runs, newest first."""
        with self._transaction("cannot list runs", write=False) as conn:
            newest = t.runs.select().order_by(t.runs.c.id.desc()).limit(max(limit, 0))
            rows = conn.execute(newest).all()
            counts = self._outcome_counts(conn, [row.id for row in rows])
        return [_summary(row, counts.get(row.id, {})) for row in rows]

    def get_run(self, run_id: int) -> RunDetail:
        """One run with its failed records and failure counts per error code."""
        with self._transaction(f"cannot read run {run_id}", write=False) as conn:
            row = self._require_run(conn, run_id)
            counts = self._outcome_counts(conn, [run_id]).get(run_id, {})
            failed = t.outcomes.c.status == OutcomeStatus.FAILED.value
            failures = conn.execute(
                t.outcomes.select()
                .where(t.outcomes.c.run_id == run_id, failed)
                .order_by(t.outcomes.c.id)
            ).all()
            codes = conn.execute(
                select(t.outcomes.c.error_code, func.count().label("n"))
                .where(t.outcomes.c.run_id == run_id, failed)
                .group_by(t.outcomes.c.error_code)
            ).all()
        by_code = sorted(
            ((code or NO_ERROR_CODE, int(n)) for code, n in codes), key=lambda c: (-c[1], c[0])
        )
        return RunDetail(
            summary=_summary(row, counts),
            failures=[_stored_outcome(r) for r in failures],
            error_codes=dict(by_code),
            message=row.message,
            guards=json.loads(row.guards) if row.guards else [],
        )

    def outcomes(self, run_id: int) -> list[StoredOutcome]:
        """Every stored outcome of a run, in the order they were recorded."""
        with self._transaction(f"cannot read outcomes of run {run_id}", write=False) as conn:
            self._require_run(conn, run_id)
            rows = conn.execute(
                t.outcomes.select().where(t.outcomes.c.run_id == run_id).order_by(t.outcomes.c.id)
            ).all()
        return [_stored_outcome(r) for r in rows]

    def before_images(self, run_id: int) -> list[BeforeImage]:
        """Every before-image of a run, in the order they were recorded."""
        table = t.before_images
        with self._transaction(f"cannot read before-images of run {run_id}", write=False) as conn:
            self._require_run(conn, run_id)
            rows = conn.execute(
                table.select().where(table.c.run_id == run_id).order_by(table.c.id)
            ).all()
        return [BeforeImage(r.key, r.field, r.before_json, r.after_json) for r in rows]

    def rollbacks_of(self, run_id: int) -> list[RunSummary]:
        """The runs that rolled back run ``run_id`` (``reverts_run``), oldest first."""
        with self._transaction(f"cannot read rollbacks of run {run_id}", write=False) as conn:
            rows = conn.execute(
                t.runs.select().where(t.runs.c.reverts_run == run_id).order_by(t.runs.c.id)
            ).all()
            counts = self._outcome_counts(conn, [row.id for row in rows])
        return [_summary(row, counts.get(row.id, {})) for row in rows]

    # --- checks -----------------------------------------------------------------------------------
    def record_check(self, check: StoredCheck) -> int:
        """Keep one check's figures (``check.id`` is ignored); return the id it was given."""
        if check.checked_at.tzinfo is None:
            raise ValueError("a check's time must be timezone-aware")
        row = {
            "checked_at": check.checked_at,
            "config_fingerprint": check.config_fingerprint,
            "destination": check.destination,
            "accuracy": float(check.accuracy),
            "compared": int(check.compared),
            "agreeing": int(check.agreeing),
            "missing": int(check.missing),
            "extra": int(check.extra),
            "invalid": int(check.invalid),
            "field_agreement": json.dumps(dict(check.field_agreement)),
            "passed": bool(check.passed),
        }
        with self._transaction("cannot record a check", write=True) as conn:
            key = conn.execute(t.checks.insert(), row).inserted_primary_key
            assert key is not None
            return int(key[0])

    def list_checks(self, *, destination: str | None = None, limit: int = 50) -> list[StoredCheck]:
        """The latest ``limit`` checks (of one destination, when given), newest first."""
        query = t.checks.select().order_by(t.checks.c.id.desc()).limit(max(limit, 0))
        if destination is not None:
            query = query.where(t.checks.c.destination == destination)
        with self._transaction("cannot list checks", write=False) as conn:
            rows = conn.execute(query).all()
        return [_stored_check(row) for row in rows]

    # --- lifecycle --------------------------------------------------------------------------------
    def close(self) -> None:
        """Release the store's connections."""
        self._engine.dispose()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- internals --------------------------------------------------------------------------------
    @contextmanager
    def _transaction(self, action: str, *, write: bool) -> Iterator[Connection]:
        """One transaction, committed on success; driver errors become a one-line StoreError."""
        try:
            with self._engine.connect() as conn:
                conn.execution_options(**{WRITE_OPTION: write})
                with conn.begin():
                    yield conn
        except SQLAlchemyError as exc:
            detail = one_line(exc, secret=self._secret)
            raise StoreError(f"run store {self._display}: {action}: {detail}") from exc

    @staticmethod
    def _require_run(conn: Connection, run_id: int) -> Row[Any]:
        row = conn.execute(t.runs.select().where(t.runs.c.id == run_id)).first()
        if row is None:
            raise StoreError(f"no run {run_id}")
        return row

    @staticmethod
    def _outcome_counts(conn: Connection, run_ids: list[int]) -> dict[int, dict[str, int]]:
        if not run_ids:
            return {}
        rows = conn.execute(
            select(t.outcomes.c.run_id, t.outcomes.c.status, func.count().label("n"))
            .where(t.outcomes.c.run_id.in_(run_ids))
            .group_by(t.outcomes.c.run_id, t.outcomes.c.status)
        ).all()
        counts: dict[int, dict[str, int]] = {}
        for run_id, status, n in rows:
            counts.setdefault(int(run_id), {})[str(status)] = int(n)
        return counts


def _summary(row: Row[Any], outcome_counts: Mapping[str, int]) -> RunSummary:
    counts = {status.value: outcome_counts.get(status.value, 0) for status in OutcomeStatus}
    counts.update(json.loads(row.plan_counts))
    return RunSummary(
        id=int(row.id),
        command=row.command,
        status=RunStatus(row.status),
        started_at=row.started_at,
        finished_at=row.finished_at,
        destination=row.destination,
        config_fingerprint=row.config_fingerprint,
        plan_fingerprint=row.plan_fingerprint,
        counts=counts,
        host=row.host,
        pid=int(row.pid) if row.pid is not None else None,
        reverts_run=int(row.reverts_run) if row.reverts_run is not None else None,
    )


def _stored_outcome(row: Row[Any]) -> StoredOutcome:
    return StoredOutcome(
        key=row.key,
        status=OutcomeStatus(row.status),
        error_code=row.error_code,
        message=row.message,
        batch=int(row.batch),
    )


def _stored_check(row: Row[Any]) -> StoredCheck:
    return StoredCheck(
        id=int(row.id),
        checked_at=row.checked_at,
        config_fingerprint=row.config_fingerprint,
        destination=row.destination,
        accuracy=float(row.accuracy),
        compared=int(row.compared),
        agreeing=int(row.agreeing),
        missing=int(row.missing),
        extra=int(row.extra),
        invalid=int(row.invalid),
        field_agreement={str(k): float(v) for k, v in json.loads(row.field_agreement).items()},
        passed=bool(row.passed),
    )
