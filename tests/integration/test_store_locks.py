"""Sync locks and interrupted runs in the run store, on a real SQLite file and PostgreSQL schema.

Other processes are real ones: a live holder is a child process that sleeps, a dead one a child
that has exited (and been waited for), another host a lock row naming a host that is not this one.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from trueup.destinations.base import OutcomeStatus, RecordOutcome
from trueup.errors import StoreError, SyncLocked
from trueup.store import BeforeImage, RunStatus, RunStore
from trueup.store import tables as t
from trueup.store.locks import NOT_CONFIRMED, pid_alive

SYNC = "salesforce:Product_Property__c"
HOST = socket.gethostname()


@dataclass(frozen=True)
class Target:
    """A store URL for trueup, and a raw engine URL to arrange rows behind its back."""

    url: str
    base_dir: Path
    raw_url: str

    def open(self) -> RunStore:
        return RunStore.open(self.url, base_dir=self.base_dir)

    def execute(self, statement: Any) -> None:
        engine = sa.create_engine(self.raw_url)
        try:
            with engine.begin() as conn:
                conn.execute(statement)
        finally:
            engine.dispose()


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


@pytest.fixture()
def live_pid() -> Iterator[int]:
    """A process of this host that is running (killed after the test)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child.pid
    child.kill()
    child.wait()


@pytest.fixture()
def dead_pid() -> int:
    """The pid of a process of this host that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not pid_alive(child.pid)
    return child.pid


def _lock_row(
    host: str, pid: int, *, age: timedelta = timedelta(0), run_id: int | None = None
) -> sa.Insert:
    now = datetime.now(UTC)
    return t.sync_locks.insert().values(
        sync=SYNC, run_id=run_id, host=host, pid=pid, acquired_at=now - age, heartbeat_at=now - age
    )


def _start(store: RunStore) -> int:
    return store.start_run(
        command="apply",
        destination=SYNC,
        config_fingerprint="cfg",
        plan_fingerprint="plan",
        plan_counts={"create": 3, "update": 2},
    )


def _as_process(target: Target, run_id: int, host: str, pid: int) -> None:
    """Make a run look started by ``pid`` on ``host``."""
    target.execute(t.runs.update().where(t.runs.c.id == run_id).values(host=host, pid=pid))


def test_a_lock_is_held_for_the_block_and_released_after(store: RunStore) -> None:
    with store.sync_lock(SYNC) as held:
        (lock,) = store.list_locks()
        assert (lock.sync, lock.host, lock.run_id) == (SYNC, HOST, None)
        assert held.cleared is None
        # The same process cannot take it twice; another sync is another lock.
        with pytest.raises(SyncLocked), store.sync_lock(SYNC):
            pass
        with store.sync_lock("sql:other"):
            assert len(store.list_locks()) == 2
    assert store.list_locks() == []


def test_a_lock_is_released_when_the_block_fails(store: RunStore) -> None:
    with pytest.raises(KeyboardInterrupt), store.sync_lock(SYNC):
        raise KeyboardInterrupt
    assert store.list_locks() == []


def test_a_live_holder_blocks_and_is_named(target: Target, store: RunStore, live_pid: int) -> None:
    target.execute(_lock_row(HOST, live_pid, run_id=41))

    with pytest.raises(SyncLocked) as raised:
        store.acquire_lock(SYNC)

    message = str(raised.value)
    assert raised.value.exit_code == 11
    assert f"sync {SYNC} is locked by run 41, pid {live_pid} on {HOST}, since " in message
    assert "UTC" in message
    assert raised.value.holder.pid == live_pid
    (kept,) = store.list_locks()
    assert kept.pid == live_pid  # untouched


def test_a_lock_of_a_dead_pid_on_this_host_is_cleared(
    target: Target, store: RunStore, dead_pid: int
) -> None:
    target.execute(_lock_row(HOST, dead_pid))

    with store.sync_lock(SYNC) as held:
        assert held.cleared is not None
        assert held.cleared.lock.pid == dead_pid
        assert held.cleared.reason == f"pid {dead_pid} is no longer running on {HOST}"
        assert "cleared the stale lock of sync" in held.cleared.describe()
        (lock,) = store.list_locks()
        assert lock.pid != dead_pid
    assert store.list_locks() == []


def test_another_hosts_lock_is_stale_only_without_a_recent_heartbeat(
    target: Target, store: RunStore
) -> None:
    target.execute(_lock_row("elsewhere", 4242, age=timedelta(minutes=2)))
    with pytest.raises(SyncLocked, match="pid 4242 on elsewhere"):
        store.acquire_lock(SYNC)

    with store.sync_lock(SYNC, stale_after=timedelta(minutes=1)) as held:
        assert held.cleared is not None
        assert held.cleared.reason.startswith("no heartbeat for ")


def test_a_lock_naming_this_pid_but_not_held_here_was_left_by_an_earlier_process(
    target: Target, store: RunStore
) -> None:
    target.execute(_lock_row(HOST, os.getpid()))  # e.g. a container where every run is pid 1

    with store.sync_lock(SYNC) as held:
        assert held.cleared is not None
        assert "the one that held it is gone" in held.cleared.reason


def test_the_heartbeat_moves_while_held(store: RunStore) -> None:
    with store.sync_lock(SYNC, heartbeat_every=0.05):
        (first,) = store.list_locks()
        time.sleep(0.4)
        (later,) = store.list_locks()
    assert later.heartbeat_at > first.heartbeat_at
    assert later.acquired_at == first.acquired_at


def test_a_run_started_under_the_lock_is_named_in_it_and_beats_with_its_batches(
    store: RunStore,
) -> None:
    with store.sync_lock(SYNC, heartbeat_every=0):
        run = _start(store)
        (lock,) = store.list_locks()
        assert lock.run_id == run
        store.record_batch(run, 1, [RecordOutcome("a", OutcomeStatus.CREATED)], [])
        (beaten,) = store.list_locks()
        assert beaten.heartbeat_at >= lock.heartbeat_at
        store.finish_run(run, RunStatus.SUCCEEDED)
    (summary,) = store.list_runs()
    assert (summary.host, summary.pid) == (HOST, os.getpid())


def test_a_run_whose_lock_was_taken_over_stops_after_keeping_its_batch(
    target: Target, store: RunStore
) -> None:
    with store.sync_lock(SYNC, heartbeat_every=0) as held:
        run = _start(store)
        # Another process judged this one gone and took the lock over.
        target.execute(t.sync_locks.update().values(host="elsewhere", pid=1, run_id=None))
        with pytest.raises(StoreError, match=f"run {run} lost its sync lock"):
            store.record_batch(run, 1, [RecordOutcome("a", OutcomeStatus.UPDATED)], [])
        assert [o.key for o in store.outcomes(run)] == ["a"]  # what Salesforce answered is kept
        assert store.heartbeat(held) is False
        assert held.lost
    (lock,) = store.list_locks()
    assert lock.host == "elsewhere"  # releasing does not drop the new holder's lock


def test_runs_of_dead_processes_are_marked_interrupted_with_what_they_confirmed(
    target: Target, store: RunStore, dead_pid: int, live_pid: int
) -> None:
    dead = _start(store)
    images = [BeforeImage(k, "Name", '"old"', '"new"') for k in ("a", "b", "c", "d")]
    store.record_batch(dead, 1, [], images[:2])
    store.record_batch(
        dead,
        1,
        [RecordOutcome("a", OutcomeStatus.CREATED), RecordOutcome("b", OutcomeStatus.UPDATED)],
        [],
    )
    store.record_batch(dead, 2, [], images[2:])  # sent when it died: no answer stored
    _as_process(target, dead, HOST, dead_pid)
    alive = _start(store)
    _as_process(target, alive, HOST, live_pid)
    mine = _start(store)  # this very process: running

    (reaped,) = store.reap_interrupted()

    assert (reaped.id, reaped.pid, reaped.confirmed, reaped.unconfirmed) == (dead, dead_pid, 2, 2)
    detail = store.get_run(dead)
    assert detail.summary.status is RunStatus.INTERRUPTED
    assert detail.summary.finished_at is not None
    assert detail.message is not None
    assert detail.message.startswith(f"interrupted: pid {dead_pid} on {HOST} ended without ")
    assert "2 records confirmed, 2 not confirmed" in detail.message
    outcomes = {o.key: (o.status, o.error_code, o.batch) for o in store.outcomes(dead)}
    assert outcomes == {
        "a": (OutcomeStatus.CREATED, None, 1),
        "b": (OutcomeStatus.UPDATED, None, 1),
        "c": (OutcomeStatus.SKIPPED, NOT_CONFIRMED, 2),
        "d": (OutcomeStatus.SKIPPED, NOT_CONFIRMED, 2),
    }
    statuses = {r.id: r.status for r in store.list_runs()}
    assert statuses[alive] is RunStatus.RUNNING
    assert statuses[mine] is RunStatus.RUNNING
    assert store.reap_interrupted() == []  # once only


def test_another_hosts_run_is_interrupted_when_its_lock_stops_beating(
    target: Target, store: RunStore
) -> None:
    run = _start(store)
    _as_process(target, run, "elsewhere", 4242)
    target.execute(_lock_row("elsewhere", 4242, age=timedelta(minutes=3), run_id=run))

    assert store.reap_interrupted(stale_after=timedelta(minutes=5)) == []
    (reaped,) = store.reap_interrupted(stale_after=timedelta(minutes=2))

    assert reaped.id == run
    assert "no heartbeat for 3 min" in reaped.message


def test_a_run_from_before_runs_named_their_process_is_judged_by_its_age(
    target: Target, store: RunStore
) -> None:
    run = _start(store)
    old = datetime.now(UTC) - timedelta(hours=3)
    target.execute(
        t.runs.update().where(t.runs.c.id == run).values(host=None, pid=None, started_at=old)
    )

    (reaped,) = store.reap_interrupted()

    assert reaped.id == run
    assert reaped.message.startswith("interrupted: its process ended without finishing the run")


def _race(url: str, base_dir: str, barrier: Any, results: Any) -> None:
    with RunStore.open(url, base_dir=Path(base_dir)) as store:
        barrier.wait()
        try:
            with store.sync_lock(SYNC, heartbeat_every=0):
                results.put("won")
                time.sleep(1.5)  # hold it while the others try
        except SyncLocked:
            results.put("refused")


def test_of_processes_racing_for_a_lock_exactly_one_wins(target: Target, store: RunStore) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(4)
    results = context.Queue()
    racers = [
        context.Process(target=_race, args=(target.url, str(target.base_dir), barrier, results))
        for _ in range(4)
    ]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(60)
    outcomes = sorted(results.get(timeout=5) for _ in racers)

    assert outcomes == ["refused", "refused", "refused", "won"]
    assert store.list_locks() == []
