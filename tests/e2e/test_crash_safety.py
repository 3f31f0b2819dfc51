"""Crash safety: ``trueup apply`` killed with SIGKILL at random moments against the sandbox.

For each write path, the installed ``trueup`` syncs the demo's org on a sandbox (in this process;
trueup runs in a subprocess, so killing it leaves the org serving). Then 20 times: the source and
the org drift a little (new properties to create, hand edits in the org to undo), ``trueup apply``
starts, and is killed with SIGKILL after a random delay (seeded) between 0 and the time a full
apply of such a drift takes. Right after each kill, every outcome the killed run stored as created
or updated is checked against the org: the run store never claims what Salesforce did not do.
Each next apply re-plans against the live org, clears the dead run's lock and marks it
interrupted. A last apply runs to the end; then the org equals the source, no key was created
twice, and ``trueup runs --json`` shows every killed run as interrupted with the outcomes it had
confirmed. Writes are slowed down a little (a fault plan delay) so kills land during them.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_cli import TRUEUP, Trueup

from trueup.apply import NOT_CONFIRMED as UNKNOWN
from trueup.demo_data import CLIENT_ID_VAR, CLIENT_SECRET_VAR, SandboxTarget, generate_demo
from trueup.destinations.base import OutcomeStatus
from trueup.products import PRODUCT_FIELDS, SALESFORCE_OBJECT
from trueup.sandbox.faults import FaultPlan
from trueup.sandbox.server import Sandbox
from trueup.store import RunStatus, RunStore

TODAY = date(2025, 6, 1)
PROPERTIES = 600
KILLS = 20
SEED = 20250601
KEY = PRODUCT_FIELDS["key"]
# Hand edits switch these off; few per round and per field, so that what a killed apply leaves
# undone, added up over the rounds, stays under the flip guard (guards.flip_pct).
FLAGS = ("Fraud_Detection_Enabled__c", "Income_Verification_Enabled__c")
EDITS_PER_ROUND = 10  # per flag
NEW_PER_ROUND = 50  # properties added to the source before each kill: creates
DELAY = 0.15  # seconds the sandbox holds every write request (REST collections, Bulk ingest)
WRITES = {
    "rest": "POST|PATCH|DELETE /services/data/*/composite/*",
    "bulk": "* /services/data/*/jobs/ingest*",
}


@dataclass
class Kill:
    """One killed apply: when, what the process had done, and what its run had stored."""

    delay: float
    pid: int
    exited_first: bool  # the apply ended on its own before the kill
    run_id: int | None = None  # the run it had started, if any
    status: RunStatus | None = None  # the run's status right after the kill
    confirmed: Counter[str] = field(default_factory=Counter)  # stored outcomes by status
    in_flight: set[str] = field(default_factory=set)  # keys with a before-image, no outcome


@dataclass
class Scene:
    """A sandbox org holding the demo's drifted records, its trueup.yml, login and run store."""

    sandbox: Sandbox
    folder: Path
    env: dict[str, str]

    def trueup(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(TRUEUP), *args],
            capture_output=True,
            text=True,
            cwd=self.folder,
            env=self.env,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )

    def start_apply(self) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(TRUEUP), "apply", "--yes"],
            stdout=subprocess.DEVNULL,  # a full pipe would stall it: only stderr is read
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.folder,
            env=self.env,
            stdin=subprocess.DEVNULL,
        )

    def store(self) -> RunStore:
        return RunStore.open("sqlite:///.trueup/state.db", base_dir=self.folder)

    def org(self) -> list[dict[str, Any]]:
        return self.sandbox.state.org.rows(SALESFORCE_OBJECT, include_deleted=True)


@pytest.fixture()
def scene(tmp_path: Path, write_path: str, trueup: Trueup) -> Iterator[Scene]:
    faults = FaultPlan.from_dict({"http": [{"match": WRITES[write_path], "delay": DELAY}]})
    with Sandbox(faults=faults, ca_out=tmp_path / "ca.pem") as sandbox:
        files = generate_demo(
            tmp_path, properties=PROPERTIES, today=TODAY, salesforce=SandboxTarget(sandbox.url)
        )
        assert all(
            r.success for r in sandbox.state.org.insert(SALESFORCE_OBJECT, files.crm_records)
        )
        config = yaml.safe_load(files.config.read_text())
        # Small writes, one at a time: many batches, so a kill often falls between two of them.
        config["destination"] |= {"write_path": write_path, "batch_size": 20, "concurrency": 1}
        files.config.write_text(yaml.safe_dump(config, sort_keys=False))
        login = {CLIENT_ID_VAR: sandbox.client_id, CLIENT_SECRET_VAR: sandbox.client_secret}
        yield Scene(sandbox, tmp_path, trueup.env | login)


def drift(scene: Scene, rng: random.Random, round_: int) -> None:
    """New properties in the source (to create) and flags flipped by hand in the org (to undo).

    A new property looks like the others (so no plan guard trips): a new Property__c in the org,
    and the products of an existing property.
    """
    names = [f"Crash Test {round_}-{i}" for i in range(NEW_PER_ROUND)]
    parents = scene.sandbox.state.org.insert("Property__c", [{"Name": n} for n in names])
    assert all(p.success for p in parents)
    stamp = f"{TODAY.isoformat()}T12:00:00+00:00"
    con = sqlite3.connect(scene.folder / "source.db")
    with con:
        models = [row[0] for row in con.execute("SELECT id FROM properties ORDER BY id")]
        for name, parent in zip(names, parents, strict=True):
            new_id = str(uuid.UUID(int=rng.getrandbits(128)))
            con.execute(
                "INSERT INTO properties VALUES (?, ?, NULL, ?, 'active', ?, ?)",
                (new_id, name, parent.id, stamp, stamp),
            )
            con.execute(
                "INSERT INTO property_features SELECT ?, feature_code, enabled, enabled_at, "
                "updated_at FROM property_features WHERE property_id = ?",
                (new_id, rng.choice(models)),
            )
    con.close()
    for flag in FLAGS:
        on = [r for r in scene.org() if not r.get("IsDeleted") and r[flag]]
        edits = [{"Id": r["Id"], flag: False} for r in rng.sample(on, EDITS_PER_ROUND)]
        assert all(r.success for r in scene.sandbox.state.org.update(SALESFORCE_OBJECT, edits))


def same(stored: str | None, actual: Any) -> bool:
    """A before-image's ``after`` (JSON) against the org's value, as Salesforce keeps text."""
    wanted = json.loads(stored) if stored is not None else None
    if hasattr(actual, "isoformat"):
        actual = actual.isoformat()
    if isinstance(wanted, str):
        wanted = wanted.strip() or None
    if isinstance(actual, str):
        actual = actual.strip() or None
    return bool(wanted == actual)


def check_confirmed_against_org(scene: Scene, kill: Kill) -> None:
    """What the killed run stored as written is in the org, with the values it wrote."""
    assert kill.run_id is not None
    with scene.store() as store:
        outcomes = store.outcomes(kill.run_id)
        images = store.before_images(kill.run_id)
    kill.confirmed = Counter(o.status.value for o in outcomes)
    kill.in_flight = {i.key for i in images} - {o.key for o in outcomes}
    org = {r[KEY]: r for r in scene.org() if not r.get("IsDeleted")}
    written = {
        o.key for o in outcomes if o.status in (OutcomeStatus.CREATED, OutcomeStatus.UPDATED)
    }
    assert written <= set(org), f"run {kill.run_id} claims records the org does not have"
    for image in images:
        if image.key in written:
            value = org[image.key][image.field]
            assert same(image.after, value), (kill.run_id, image, value)


def measure_full_apply(scene: Scene, rng: random.Random) -> float:
    """Seconds a full apply takes from start to exit: the demo's drift and one round's."""
    drift(scene, rng, 0)
    started = time.monotonic()
    proc = scene.start_apply()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return time.monotonic() - started


def kill_at_random(scene: Scene, rng: random.Random, full: float) -> Kill:
    delay = rng.uniform(0, full)
    proc = scene.start_apply()
    try:
        proc.wait(timeout=delay)
        exited_first = True
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        exited_first = False
    proc.communicate(timeout=30)
    time.sleep(DELAY + 0.1)  # a request the process sent before dying is still served
    kill = Kill(delay, proc.pid, exited_first)
    with scene.store() as store:
        runs = [r for r in store.list_runs(limit=500) if r.pid == proc.pid]
    if runs:
        (run,) = runs
        kill.run_id, kill.status = run.id, run.status
        check_confirmed_against_org(scene, kill)
    return kill


@pytest.mark.parametrize("write_path", ["rest", "bulk"])
def test_apply_killed_at_random_moments_converges_without_duplicates(
    scene: Scene, write_path: str
) -> None:
    began = time.monotonic()
    rng = random.Random(f"{SEED}-{write_path}")
    full = measure_full_apply(scene, rng)  # the demo's own drift and one round's

    kills = []
    for round_ in range(1, KILLS + 1):
        drift(scene, rng, round_)
        kills.append(kill_at_random(scene, rng, full))

    last = scene.trueup("apply", "--yes")
    assert last.returncode == 0, last.stderr + last.stdout
    assert "Traceback" not in last.stderr

    # The org equals the source: nothing is left to create or update.
    plan = scene.trueup("plan", "--json")
    assert plan.returncode == 0, plan.stderr
    counts = json.loads(plan.stdout)["counts"]
    assert (counts["create"], counts["update"]) == (0, 0)
    # No record was created twice: one record per key, deleted ones included (none are).
    keys = Counter(r[KEY] for r in scene.org())
    assert [k for k, n in keys.items() if n > 1] == []
    # Nor did two runs both answer "created" for one key.
    with scene.store() as store:
        every = store.list_runs(limit=500)
        created = Counter(
            o.key
            for run in every
            for o in store.outcomes(run.id)
            if o.status is OutcomeStatus.CREATED
        )
        assert store.list_locks() == []  # the last apply let go of the lock
    assert [k for k, n in created.items() if n > 1] == []

    # Every killed run is interrupted (none left running) with the outcomes it had confirmed.
    listed = scene.trueup("runs", "--json", "--limit", "500")
    assert listed.returncode == 0, listed.stderr
    runs = {r["id"]: r for r in json.loads(listed.stdout)}
    assert all(r["status"] != "running" for r in runs.values())
    mid_write = [k for k in kills if k.status is RunStatus.RUNNING]
    assert len(mid_write) >= 3  # the kills did land where it matters, more than once
    interrupted = {run_id for run_id, r in runs.items() if r["status"] == "interrupted"}
    assert interrupted == {k.run_id for k in mid_write}
    for kill in mid_write:
        shown = runs[kill.run_id]
        assert shown["status"] == "interrupted", shown
        assert shown["pid"] == kill.pid
        for status in ("created", "updated", "failed"):
            assert shown["counts"][status] == kill.confirmed[status], (kill, shown)
    with scene.store() as store:
        for kill in mid_write:
            assert kill.run_id is not None
            message = store.get_run(kill.run_id).message or ""
            assert message.startswith(f"interrupted: pid {kill.pid} on "), message
            # The batch in flight when it died: sent or not, no answer; now NOT_CONFIRMED.
            unconfirmed = {o.key for o in store.outcomes(kill.run_id) if o.error_code == UNKNOWN}
            assert unconfirmed == kill.in_flight
    text = scene.trueup("runs", "--limit", "500").stdout
    assert " were interrupted: the process ended mid-run" in text

    before_run = sum(1 for k in kills if k.run_id is None and not k.exited_first)
    finished = sum(1 for k in kills if k.exited_first or k.status is RunStatus.SUCCEEDED)
    confirmed = [sum(k.confirmed[s] for s in ("created", "updated")) for k in mid_write]
    in_flight = [len(k.in_flight) for k in mid_write]
    print(
        f"\n{write_path}: full apply {full:.2f}s; {KILLS} kills: {len(mid_write)} mid-write "
        f"(records confirmed before the kill: {confirmed}; in flight: {in_flight}), "
        f"{before_run} before the run started, {finished} after it ended; "
        f"test took {time.monotonic() - began:.1f}s"
    )
