"""Runs whose process died: found by the sync lock's tests and marked interrupted.

A run left RUNNING is **interrupted** when its process is gone (locks.py tells): through the lock
that names it, else by its own host and pid (another host's run without a lock: once it started
longer than ``stale_after`` ago; if it was alive after all, its ``finish_run`` sets the truth).
Marking it keeps every stored outcome and adds a SKIPPED ``NOT_CONFIRMED`` outcome for each record
whose before-image was stored but whose answer was not: the batch in flight, which may be written.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, exists, func, select

from trueup.destinations.base import OutcomeStatus
from trueup.store import tables as t
from trueup.store.locks import (
    NOT_CONFIRMED,
    STALE_AFTER,
    Holder,
    db_now,
    gone_reason,
    list_locks,
    started_here,
)
from trueup.store.values import InterruptedRun, RunStatus


def reap(
    conn: Connection, me: Holder, *, store: str, stale_after: timedelta = STALE_AFTER
) -> list[InterruptedRun]:
    """Mark every RUNNING run whose process is gone INTERRUPTED; return them, oldest first."""
    now = db_now(conn)
    runs = conn.execute(
        t.runs.select()
        .where(t.runs.c.status == RunStatus.RUNNING.value)
        .order_by(t.runs.c.id)
        .with_for_update()
    ).all()
    if not runs:
        return []
    locks = {lock.run_id: lock for lock in list_locks(conn) if lock.run_id is not None}
    reaped = []
    for run in runs:
        ours = started_here(store, int(run.id))
        lock = locks.get(int(run.id))
        if lock is not None:
            beat = lock.heartbeat_at
            why = gone_reason(
                lock.host, lock.pid, beat, now=now, me=me, ours=ours, stale_after=stale_after
            )
        elif run.host == me.host and run.pid is not None:
            why = gone_reason(run.host, run.pid, None, now=now, me=me, ours=ours)
        else:  # another host's run without a lock: only its age can tell
            why = gone_reason(
                None, None, run.started_at, now=now, me=me, ours=ours, stale_after=stale_after
            )
        if why is not None:
            reaped.append(_interrupt(conn, run, why, now))
    return reaped


def mark_in_flight(conn: Connection, run_id: int) -> int:
    """Store SKIPPED NOT_CONFIRMED for the records of ``run_id`` that have a before-image and no
    outcome (the batch that was being sent when the run ended); return how many."""
    o, b = t.outcomes.c, t.before_images.c
    answered = exists().where(o.run_id == b.run_id, o.key == b.key)
    in_flight = conn.execute(
        select(b.key, func.min(b.batch))
        .where(b.run_id == run_id, ~answered)
        .group_by(b.key)
        .order_by(b.key)
    ).all()
    if in_flight:
        message = (
            "not confirmed: the run ended while this batch was being sent; it may be written "
            "(the next plan shows what is still to do)"
        )
        rows = [
            {
                "run_id": run_id,
                "batch": int(batch),
                "key": key,
                "status": OutcomeStatus.SKIPPED.value,
                "error_code": NOT_CONFIRMED,
                "message": message,
                "destination_id": None,
            }
            for key, batch in in_flight
        ]
        conn.execute(t.outcomes.insert(), rows)
    return len(in_flight)


def _interrupt(conn: Connection, run: Row[Any], why: str, now: datetime) -> InterruptedRun:
    """Mark one run interrupted; the records of its batch in flight become NOT_CONFIRMED."""
    o = t.outcomes.c
    unconfirmed = mark_in_flight(conn, int(run.id))
    answered_statuses = [
        s.value
        for s in (
            OutcomeStatus.CREATED,
            OutcomeStatus.UPDATED,
            OutcomeStatus.DELETED,
            OutcomeStatus.FAILED,
        )
    ]
    confirmed = conn.execute(
        select(func.count())
        .select_from(t.outcomes)
        .where(o.run_id == run.id, o.status.in_(answered_statuses))
    ).scalar_one()
    who = f"pid {run.pid} on {run.host}" if run.host else "its process"
    message = (
        f"interrupted: {who} ended without finishing the run ({why}); "
        f"{confirmed} record{'' if confirmed == 1 else 's'} confirmed, {unconfirmed} not "
        "confirmed. The next apply plans against the destination "
        "as it is now."
    )
    conn.execute(
        t.runs.update()
        .where(t.runs.c.id == run.id, t.runs.c.status == RunStatus.RUNNING.value)
        .values(status=RunStatus.INTERRUPTED.value, finished_at=now, message=message)
    )
    return InterruptedRun(
        id=int(run.id),
        host=run.host,
        pid=run.pid,
        confirmed=int(confirmed),
        unconfirmed=unconfirmed,
        message=message,
    )
