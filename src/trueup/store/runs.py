"""RunStore: where apply records each run, each record's outcome and the before-image of a change.

Every method is one transaction. ``record_batch`` in particular writes a batch's outcomes and
before-images together, so apply can send the next batch knowing the last one is durable.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Row, func, select
from sqlalchemy.exc import SQLAlchemyError

from trueup.destinations.base import OutcomeStatus, RecordOutcome
from trueup.errors import StoreError
from trueup.store import tables as t
from trueup.store.engine import WRITE_OPTION, StoreEngine, create_store_engine, one_line
from trueup.store.migrations import migrate
from trueup.store.values import BeforeImage, RunDetail, RunStatus, RunSummary, StoredOutcome

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
    ) -> int:
        """Record a new RUNNING run and return its id; plan counts are kept as ``plan.<action>``."""
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
        }
        with self._transaction("cannot start a run", write=True) as conn:
            # inserted_primary_key rather than RETURNING: SQLite before 3.35 has no RETURNING.
            key = conn.execute(t.runs.insert(), row).inserted_primary_key
            assert key is not None
            return int(key[0])

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
    )


def _stored_outcome(row: Row[Any]) -> StoredOutcome:
    return StoredOutcome(
        key=row.key,
        status=OutcomeStatus(row.status),
        error_code=row.error_code,
        message=row.message,
        batch=int(row.batch),
    )
