"""One run of a sync at a time, seen from the CLI: a live holder refuses a second apply (exit 11),
a lock or a run left by a dead process is cleared and said so, and SIGTERM stops an apply the way
Ctrl-C does (run stopped, lock released).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from e2e_cli import TRUEUP, Demo, Trueup

from trueup.apply import NOT_CONFIRMED
from trueup.demo_data import CLIENT_ID_VAR, CLIENT_SECRET_VAR, SandboxTarget, generate_demo
from trueup.products import SALESFORCE_OBJECT
from trueup.sandbox.faults import FaultPlan
from trueup.sandbox.server import Sandbox
from trueup.store import RunStatus, RunStore
from trueup.store import tables as t

SYNC = "sql:Product_Property__c"  # the demo's destination, as runs and locks name it
HOST = socket.gethostname()


@pytest.fixture()
def live_pid() -> Iterator[int]:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield child.pid
    child.kill()
    child.wait()


@pytest.fixture()
def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def open_store(folder: Path) -> RunStore:
    return RunStore.open("sqlite:///.trueup/state.db", base_dir=folder)


def put_lock(folder: Path, pid: int, *, since: datetime, beat: datetime | None = None) -> None:
    """A lock row naming ``pid`` on this host, taken at ``since``, last heartbeat ``beat`` (now)."""
    open_store(folder).close()  # created and migrated, as trueup would
    engine = sa.create_engine(f"sqlite:///{folder / '.trueup' / 'state.db'}")
    with engine.begin() as conn:
        conn.execute(
            t.sync_locks.insert().values(
                sync=SYNC,
                run_id=None,
                host=HOST,
                pid=pid,
                acquired_at=since,
                heartbeat_at=beat or datetime.now(UTC),
            )
        )
    engine.dispose()


def test_a_live_holder_refuses_a_second_apply(demo: Demo, trueup: Trueup, live_pid: int) -> None:
    since = datetime(2025, 6, 1, 9, 30, tzinfo=UTC)
    put_lock(demo.dir, live_pid, since=since)
    before = demo.crm_dump()

    line = trueup("apply", "--yes").error_line(11)

    assert line.startswith(
        f"error: sync {SYNC} is locked by pid {live_pid} on {HOST}, since 2025-06-01 09:30:00 UTC"
    )
    assert "another apply or rollback of it is running" in line
    assert demo.crm_dump() == before  # nothing planned against it, nothing written
    with open_store(demo.dir) as store:
        assert store.list_runs() == []
        assert [lock.pid for lock in store.list_locks()] == [live_pid]


def test_a_lock_left_by_a_dead_process_is_cleared_with_a_warning(
    demo: Demo, trueup: Trueup, dead_pid: int
) -> None:
    put_lock(demo.dir, dead_pid, since=datetime.now(UTC) - timedelta(minutes=1))

    applied = trueup("apply", "--yes")

    assert applied.code == 0, applied.err
    assert f"warning: cleared the stale lock of sync {SYNC} (pid {dead_pid} on {HOST}" in (
        applied.err.replace("\n", " ")
    )
    assert f"pid {dead_pid} is no longer running on {HOST}" in applied.err.replace("\n", " ")
    with open_store(demo.dir) as store:
        assert store.list_locks() == []
        (run,) = store.list_runs()
    assert run.status is RunStatus.SUCCEEDED


def test_runs_marks_a_run_whose_process_died_interrupted(
    demo: Demo, trueup: Trueup, dead_pid: int
) -> None:
    with open_store(demo.dir) as store:
        run = store.start_run(
            command="apply",
            destination=SYNC,
            config_fingerprint="cfg",
            plan_fingerprint="plan",
            plan_counts={"create": 2},
        )
    engine = sa.create_engine(f"sqlite:///{demo.dir / '.trueup' / 'state.db'}")
    with engine.begin() as conn:
        conn.execute(t.runs.update().where(t.runs.c.id == run).values(pid=dead_pid))
    engine.dispose()

    listed = trueup("runs")

    assert listed.code == 0, listed.err
    assert f"warning: run {run} interrupted: pid {dead_pid} on {HOST}" in listed.err
    (row,) = [line.split() for line in listed.out.splitlines() if line.split()[:1] == [str(run)]]
    assert row[4:6] == ["apply", "interrupted"]
    assert f"Run {run} was interrupted: the process ended mid-run" in listed.out
    (shown,) = trueup("runs", "--json").json()
    assert (shown["status"], shown["host"], shown["pid"]) == ("interrupted", HOST, dead_pid)
    detail = trueup("runs", str(run))
    assert f"Run {run}: apply → {SYNC}, interrupted" in detail.out
    assert "0 records confirmed, 0 not confirmed" in detail.out


@pytest.fixture()
def slow_org(tmp_path: Path) -> Iterator[tuple[Sandbox, dict[str, str]]]:
    """The demo's org on a sandbox that takes half a second per write; login variables."""
    faults = FaultPlan.from_dict(
        {"http": [{"match": "PATCH /services/data/*/composite/*", "delay": 0.5}]}
    )
    with Sandbox(faults=faults, ca_out=tmp_path / "ca.pem") as sandbox:
        files = generate_demo(
            tmp_path,
            properties=400,
            today=datetime(2025, 6, 1).date(),
            salesforce=SandboxTarget(sandbox.url),
        )
        assert all(
            r.success for r in sandbox.state.org.insert(SALESFORCE_OBJECT, files.crm_records)
        )
        config = yaml.safe_load(files.config.read_text())
        config["destination"] |= {"write_path": "rest", "batch_size": 10, "concurrency": 1}
        files.config.write_text(yaml.safe_dump(config, sort_keys=False))
        login = {CLIENT_ID_VAR: sandbox.client_id, CLIENT_SECRET_VAR: sandbox.client_secret}
        yield sandbox, login


def test_sigterm_stops_apply_like_ctrl_c(
    slow_org: tuple[Sandbox, dict[str, str]], trueup: Trueup, tmp_path: Path
) -> None:
    sandbox, login = slow_org
    proc = subprocess.Popen(
        [str(TRUEUP), "apply", "--yes"],
        cwd=tmp_path,
        env=trueup.env | login,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not any(r.method == "PATCH" for r in sandbox.state.requests):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)

    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)

    assert proc.returncode == 130, err + out  # as for Ctrl-C (Typer's exit code for it)
    assert "Traceback" not in err
    with open_store(tmp_path) as store:
        (run,) = store.list_runs()
        assert store.list_locks() == []  # released on the way out
        in_flight = [o for o in store.outcomes(run.id) if o.error_code == NOT_CONFIRMED]
    assert run.status is RunStatus.STOPPED
    assert 0 < len(in_flight) <= 10  # the batch being sent: no answer, so not confirmed
    detail = trueup("runs", str(run.id), env=login)
    assert "interrupted" in detail.out
