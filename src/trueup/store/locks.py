"""One run of a sync at a time: the sync lock, its heartbeat, and telling a gone holder.

A sync's lock is its row in ``sync_locks`` (keyed by the destination's display name), naming the
holder's host and pid and refreshed by a heartbeat: every ``HEARTBEAT_EVERY`` seconds from a
thread while it is held, and whenever the run it names stores a batch. A holder is **gone** when

- it ran on this host and its pid is no longer running (or is this very process, which does not
  hold it: a pid reused since, as in containers where every run is pid 1), or
- its heartbeat is older than ``stale_after`` (``STALE_AFTER``): the way to tell for another host.

Taking a lock is one transaction: insert the row if the sync has none; otherwise lock that row
(``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's write transactions exclude each other already)
and take it over if its holder is gone, or refuse with ``SyncLocked`` naming the holder.

Runs whose process is gone are marked interrupted by the same tests (interrupted.py).
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Row, and_, func, select
from sqlalchemy.dialects import postgresql, sqlite

from trueup.errors import StoreError, SyncLocked
from trueup.store import tables as t
from trueup.store.values import SyncLock

STALE_AFTER = timedelta(minutes=10)  # a heartbeat older than this: the holder is gone
HEARTBEAT_EVERY = 30.0  # seconds between heartbeats of a held lock
NOT_CONFIRMED = "NOT_CONFIRMED"  # the SKIPPED code apply gives records it got no answer for

# What this process holds and started, per store (display name): a row naming this host and pid
# that is not in here was left by an earlier process that had the same pid.
_HELD: set[tuple[str, str]] = set()  # (store, sync)
_STARTED: set[tuple[str, int]] = set()  # (store, run id)
_ATTACHED: set[tuple[str, int]] = set()  # (store, run id) of runs started under a lock held here
_REGISTRY = threading.Lock()


@dataclass(frozen=True)
class Holder:
    """A process that holds locks and runs: its host name and pid."""

    host: str
    pid: int

    @classmethod
    def this_process(cls) -> Holder:
        """The current process."""
        return cls(socket.gethostname(), os.getpid())


@dataclass(frozen=True)
class ClearedLock:
    """A lock left by a process that is gone, and why it was judged gone."""

    lock: SyncLock
    reason: str

    def describe(self) -> str:
        """A warning line for the user."""
        held = self.lock.describe()
        return f"cleared the stale lock of sync {self.lock.sync} ({held}): {self.reason}"


@dataclass
class HeldLock:
    """A lock this process holds; ``cleared`` is the stale lock it replaced, if any."""

    sync: str
    holder: Holder
    acquired_at: datetime
    store: str  # the store's display name
    cleared: ClearedLock | None = None
    lost: bool = field(default=False)  # another process took it over (we looked gone to it)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host (a zombie counts as gone)."""
    if pid <= 0:
        return False
    if os.name == "nt":  # signal 0 means CTRL_C_EVENT there: rely on the heartbeat instead
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (macOS): kill(0) said it exists
    return state not in ("Z", "X")


def db_now(conn: Connection) -> datetime:
    """Now by the database's clock on PostgreSQL (one clock for every host), else this host's."""
    if conn.dialect.name == "postgresql":
        value = conn.execute(select(func.now())).scalar_one()
        assert isinstance(value, datetime)
        return value.astimezone(UTC)
    return datetime.now(UTC)


def gone_reason(
    host: str | None,
    pid: int | None,
    heartbeat_at: datetime | None,
    *,
    now: datetime,
    me: Holder,
    ours: bool,
    stale_after: timedelta = STALE_AFTER,
) -> str | None:
    """Why the process ``host``/``pid`` is gone, or None when it may be alive.

    ``ours``: this process holds the lock (or started the run) in question. ``heartbeat_at``: its
    last sign of life, when there is one to judge by.
    """
    if heartbeat_at is not None and now - heartbeat_at > stale_after:
        return f"no heartbeat for {_duration(now - heartbeat_at)}"
    if host != me.host or pid is None:
        return None
    if pid == me.pid:
        return None if ours else f"pid {pid} is this process now: the one that held it is gone"
    if not pid_alive(pid):
        return f"pid {pid} is no longer running on {host}"
    return None


def acquire(
    conn: Connection, sync: str, me: Holder, *, store: str, stale_after: timedelta = STALE_AFTER
) -> HeldLock:
    """Take ``sync``'s lock in this transaction; SyncLocked when a live process holds it.

    Call ``holding`` once the transaction is committed.
    """
    now = db_now(conn)
    row: dict[str, Any] = {"sync": sync, "run_id": None, "host": me.host, "pid": me.pid}
    row |= {"acquired_at": now, "heartbeat_at": now}
    for _ in range(5):  # the holder may release it between our insert and our select
        if _insert_if_absent(conn, row):
            return HeldLock(sync, me, now, store)
        current = conn.execute(
            t.sync_locks.select().where(t.sync_locks.c.sync == sync).with_for_update()
        ).first()
        if current is None:
            continue
        lock = _lock(current)
        with _REGISTRY:
            ours = (store, sync) in _HELD
        why = gone_reason(
            lock.host,
            lock.pid,
            lock.heartbeat_at,
            now=now,
            me=me,
            ours=ours,
            stale_after=stale_after,
        )
        if why is None:
            beat = _duration(max(now - lock.heartbeat_at, timedelta(0)))
            raise SyncLocked(
                f"sync {sync} is locked by {lock.describe()} (last heartbeat {beat} ago): another "
                "apply or rollback of it is running; wait for it to end. A lock left by a process "
                f"that is gone is cleared by the next run (on another host: after "
                f"{_duration(stale_after)} without a heartbeat)",
                holder=lock,
            )
        conn.execute(t.sync_locks.update().where(t.sync_locks.c.sync == sync).values(row))
        return HeldLock(sync, me, now, store, cleared=ClearedLock(lock, why))
    raise StoreError(f"sync {sync}: its lock kept changing hands while trueup was taking it")


def holding(held: HeldLock) -> None:
    """Note that this process now holds ``held`` (its row is committed)."""
    _remember(_HELD, (held.store, held.sync))


def release(conn: Connection, held: HeldLock) -> None:
    """Drop the lock if it is still ours (a process that took it over keeps it)."""
    conn.execute(t.sync_locks.delete().where(_ours(held)))
    _forget(_HELD, (held.store, held.sync))


def beat(conn: Connection, held: HeldLock) -> bool:
    """Refresh the lock's heartbeat; False when it is no longer ours."""
    update = t.sync_locks.update().where(_ours(held)).values(heartbeat_at=db_now(conn))
    return bool(conn.execute(update).rowcount)


def started(conn: Connection, run_id: int, sync: str, me: Holder, *, store: str) -> None:
    """Note a run this process started, and name it in the lock it holds on ``sync``, if any."""
    _remember(_STARTED, (store, run_id))
    with _REGISTRY:
        if (store, sync) not in _HELD:
            return
    locks = t.sync_locks.c
    update = (
        t.sync_locks.update()
        .where(locks.sync == sync, locks.host == me.host, locks.pid == me.pid)
        .values(run_id=run_id, heartbeat_at=db_now(conn))
    )
    if conn.execute(update).rowcount:
        _remember(_ATTACHED, (store, run_id))


def beat_for_run(conn: Connection, run_id: int, me: Holder, *, store: str) -> bool | None:
    """Refresh the heartbeat of the lock naming ``run_id``, held by this process.

    None when the run was not started under a lock here; False when that lock is no longer ours.
    """
    with _REGISTRY:
        if (store, run_id) not in _ATTACHED:
            return None
    locks = t.sync_locks.c
    update = (
        t.sync_locks.update()
        .where(locks.run_id == run_id, locks.host == me.host, locks.pid == me.pid)
        .values(heartbeat_at=db_now(conn))
    )
    return bool(conn.execute(update).rowcount)


def finished(store: str, run_id: int) -> None:
    """Forget a run this process started, once it is finished."""
    _forget(_STARTED, (store, run_id))
    _forget(_ATTACHED, (store, run_id))


def started_here(store: str, run_id: int) -> bool:
    """Whether this process started run ``run_id`` of ``store`` (so it is not gone)."""
    with _REGISTRY:
        return (store, run_id) in _STARTED


def list_locks(conn: Connection) -> list[SyncLock]:
    """Every lock held now (stale ones included), by sync."""
    rows = conn.execute(t.sync_locks.select().order_by(t.sync_locks.c.sync)).all()
    return [_lock(row) for row in rows]


def _insert_if_absent(conn: Connection, row: dict[str, Any]) -> bool:
    """Insert the lock row unless the sync has one; whether it was inserted."""
    if conn.dialect.name == "postgresql":  # psycopg gives no rowcount here: ask for the row back
        insert = postgresql.insert(t.sync_locks).values(row).on_conflict_do_nothing()
        return conn.execute(insert.returning(t.sync_locks.c.sync)).first() is not None
    # SQLite: no RETURNING before 3.35, but its rowcount is right.
    plain = sqlite.insert(t.sync_locks).values(row).on_conflict_do_nothing()
    return bool(conn.execute(plain).rowcount == 1)


def _ours(held: HeldLock) -> Any:
    locks = t.sync_locks.c
    return and_(
        locks.sync == held.sync,
        locks.host == held.holder.host,
        locks.pid == held.holder.pid,
        locks.acquired_at == held.acquired_at,
    )


def _lock(row: Row[Any]) -> SyncLock:
    return SyncLock(
        sync=row.sync,
        host=row.host,
        pid=int(row.pid),
        acquired_at=row.acquired_at,
        heartbeat_at=row.heartbeat_at,
        run_id=int(row.run_id) if row.run_id is not None else None,
    )


def _remember(into: set[Any], item: Any) -> None:
    with _REGISTRY:
        into.add(item)


def _forget(into: set[Any], item: Any) -> None:
    with _REGISTRY:
        into.discard(item)


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


class Heartbeat:
    """Calls ``beat`` every ``every`` seconds from a daemon thread until stopped.

    A beat that fails (the store unreachable for a moment) is tried again next time; one that
    returns False means the lock was taken over, and the thread ends.
    """

    def __init__(self, beat: Callable[[], bool], *, every: float) -> None:
        self._beat = beat
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trueup-lock-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        """Start beating."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop and wait for the thread (a beat under way finishes first)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                alive = self._beat()
            except Exception:
                continue
            if not alive:
                return
