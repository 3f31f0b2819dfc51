"""Rollback's building blocks against real SQL destinations (SQLite and PostgreSQL).

A run creates, updates and deletes records; the reverse plan restores what it changed, deletes what
it created and creates again what it deleted, except records changed again since (conflicts).
SQLite stores booleans as integers and dates as text, so it also shows that values are compared
as the diff compares them, not as they are stored.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from trueup.apply import apply_plan
from trueup.config import LoadedConfig, load_config
from trueup.destinations import open_destination
from trueup.destinations.base import OutcomeStatus
from trueup.diff import Action
from trueup.errors import PlanError, StoreError
from trueup.pipeline import ensure_fresh, make_plan
from trueup.plan import Plan
from trueup.rollback import CHANGED_SINCE, CREATED_AGAIN, DELETED_SINCE, plan_rollback
from trueup.store import RunStatus, RunStore

FIELDS = ("Name", "Active", "Since", "Seen", "Qty", "Score")
T0 = dt.datetime(2024, 3, 1, 12, 30, 15, 123000, tzinfo=dt.UTC)
# key: name, active, since, seen, qty, score
SOURCE = {
    "a": ("Alpha", True, dt.date(2024, 1, 2), T0, 3, 1.5),  # update: name
    "b": ("Bravo", True, dt.date(2024, 1, 1), T0, 4, 2.5),  # update: active, qty
    "c": ("Charlie", False, None, None, None, None),  # unchanged
    "e": ("Echo", True, dt.date(2024, 2, 2), T0, 5, 0.25),  # update: since, seen, score
    "n1": ("New one", True, dt.date(2024, 5, 1), T0, 1, 9.75),  # create
    "n2": ("New two", False, None, None, 2, None),  # create
}
DESTINATION = {
    "a": ("Old alpha", True, dt.date(2024, 1, 2), T0, 3, 1.5),
    "b": ("Bravo", False, dt.date(2024, 1, 1), T0, 1, 2.5),
    "c": ("Charlie", False, None, None, None, None),
    "e": ("Echo", True, None, None, 5, 7.0),
    "z": ("Zulu", True, dt.date(2023, 12, 31), T0, 9, 0.5),  # missing in source: deleted
}


@dataclass
class Sync:
    """A config (SQLite source, SQL destination), with ways to run it and read the destination."""

    loaded: LoadedConfig
    read: Callable[[], dict[str, tuple[Any, ...]]]  # key → (name, active, since, seen, qty, score)
    execute: Callable[[str, tuple[Any, ...]], None]  # SQL with ? placeholders on the destination

    def store(self) -> RunStore:
        url = self.loaded.config.store.url.get_secret_value()
        return RunStore.open(url, base_dir=self.loaded.path.parent)

    def apply(self) -> int:
        """Plan from the source and apply; the run's id."""
        return self.run(make_plan(self.loaded))

    def run(self, plan: Plan, command: str = "apply") -> int:
        with open_destination(self.loaded) as destination, self.store() as store:
            result = apply_plan(
                plan,
                destination,
                store,
                batch_size=2,
                guards=self.loaded.config.guards,
                command=command,
            )
        assert result.status is RunStatus.SUCCEEDED, result
        return result.run_id

    def reverse(self, run_id: int) -> Plan:
        with open_destination(self.loaded) as destination, self.store() as store:
            return plan_rollback(self.loaded, run_id, store, destination).plan

    def rollback(self, run_id: int) -> int:
        return self.run(self.reverse(run_id), command="rollback")


def _source(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "src.db") as con:
        con.execute(
            "CREATE TABLE things (id TEXT, name TEXT, active BOOLEAN, since DATE, "
            "seen TIMESTAMP, qty INTEGER, score REAL)"
        )
        con.executemany(
            "INSERT INTO things VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(k, *_sql(v)) for k, v in SOURCE.items()],
        )


def _sql(values: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(v.isoformat() if isinstance(v, dt.date) else v for v in values)


def _config(tmp_path: Path, destination: dict[str, Any], **settings: Any) -> LoadedConfig:
    body = {
        "source": {"kind": "sqlite", "path": "src.db"},
        "model": {"kind": "sql", "table": "things"},
        "key": "id",
        "destination": {"kind": "sql", "table": "Thing", "batch_size": 2, **destination},
        "mapping": {
            "id": "Ext",
            "name": "Name",
            "active": "Active",
            "since": "Since",
            "seen": "Seen",
            "qty": "Qty",
            "score": "Score",
        },
        "delete_missing": True,
        "store": {"url": "sqlite:///state.db"},
        **settings,
    }
    path = tmp_path / "trueup.yml"
    path.write_text(yaml.safe_dump(body))
    return load_config(path)


def _sqlite_sync(tmp_path: Path) -> Sync:
    db = tmp_path / "crm.db"
    with sqlite3.connect(db) as con:
        # a CHECK the destination does not describe: 'Refused' fails at write time, not at plan
        con.execute(
            'CREATE TABLE "Thing" ("Ext" VARCHAR(20) PRIMARY KEY, "Name" VARCHAR(20) '
            'CHECK ("Name" <> \'Refused\'), "Active" BOOLEAN NOT NULL, "Since" DATE, '
            '"Seen" TIMESTAMP, "Qty" INTEGER, "Score" REAL)'
        )
        con.executemany(
            'INSERT INTO "Thing" VALUES (?, ?, ?, ?, ?, ?, ?)',
            [(k, *_sql(v)) for k, v in DESTINATION.items()],
        )

    def execute(sql: str, params: tuple[Any, ...]) -> None:
        with sqlite3.connect(db) as con:
            con.execute(sql, params)

    def read() -> dict[str, tuple[Any, ...]]:
        with sqlite3.connect(db) as con:
            rows = con.execute('SELECT * FROM "Thing"').fetchall()
        return {row[0]: _typed(row[1:]) for row in rows}

    return Sync(_config(tmp_path, {"url": "sqlite:///crm.db"}), read, execute)


def _typed(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A SQLite row as the values it stands for (integers for booleans, text for dates)."""
    name, active, since, seen, qty, score = row
    return (
        name,
        bool(active),
        dt.date.fromisoformat(since) if since else None,
        dt.datetime.fromisoformat(seen).astimezone(dt.UTC) if seen else None,
        qty,
        score,
    )


def _postgres_sync(tmp_path: Path, url: str, schema: str) -> Sync:
    table = f'"{schema}"."Thing"'
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(
            f'CREATE TABLE {table} ("Ext" VARCHAR(20) PRIMARY KEY, "Name" VARCHAR(20) '
            'CHECK ("Name" <> \'Refused\'), "Active" BOOLEAN NOT NULL, "Since" DATE, '
            '"Seen" TIMESTAMPTZ, "Qty" BIGINT, "Score" DOUBLE PRECISION)'
        )
        with con.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {table} VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [(k, *v) for k, v in DESTINATION.items()],
            )

    def execute(sql: str, params: tuple[Any, ...]) -> None:
        with psycopg.connect(url, autocommit=True) as con:
            con.execute(sql.replace('"Thing"', table).replace("?", "%s"), params)

    def read() -> dict[str, tuple[Any, ...]]:
        with psycopg.connect(url) as con:
            rows = con.execute(f"SELECT * FROM {table}").fetchall()
        return {row[0]: tuple(row[1:]) for row in rows}

    return Sync(_config(tmp_path, {"url": url, "schema": schema}), read, execute)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sync(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Sync]:
    _source(tmp_path)
    if request.param == "sqlite":
        yield _sqlite_sync(tmp_path)
    else:
        url = request.getfixturevalue("pg_url")
        yield _postgres_sync(tmp_path, url, request.getfixturevalue("pg_schema"))


def keys(plan: Plan, action: Action) -> set[str]:
    return set(plan.rows(action)["key"].to_pylist())


def test_a_rollback_restores_every_record_the_run_changed(sync: Sync) -> None:
    before = sync.read()
    run = sync.apply()
    applied = sync.read()
    assert applied == SOURCE

    reverse = sync.reverse(run)
    assert keys(reverse, Action.UPDATE) == {"a", "b", "e"}
    assert keys(reverse, Action.DELETE) == {"n1", "n2"}
    assert keys(reverse, Action.CREATE) == {"z"}
    assert reverse.counts[Action.CONFLICT] == 0
    assert reverse.reverts_run == run
    # what the guards read of a plan describes the whole destination, not only these records
    assert reverse.destination_rows == 6
    assert (reverse.destination_values["Name"], reverse.destination_values["Since"]) == (6, 4)
    assert reverse.destination_values["Active"] == 4  # checkboxes that are true
    restore = {r["key"]: r for r in reverse.rows(Action.UPDATE).to_pylist()}
    assert restore["b"]["changed"] == ["Active", "Qty"]  # only the fields the run changed
    assert (restore["b"]["Active"], restore["b"]["before.Active"]) == (False, True)

    rollback = sync.run(reverse, command="rollback")
    assert sync.read() == before
    with sync.store() as store:
        summary = store.get_run(rollback).summary
        assert (summary.command, summary.reverts_run) == ("rollback", run)
        assert [r.id for r in store.rollbacks_of(run)] == [rollback]
        statuses = {o.key: o.status for o in store.outcomes(rollback)}
    assert statuses == {
        "a": OutcomeStatus.UPDATED,
        "b": OutcomeStatus.UPDATED,
        "e": OutcomeStatus.UPDATED,
        "n1": OutcomeStatus.DELETED,
        "n2": OutcomeStatus.DELETED,
        "z": OutcomeStatus.CREATED,
    }

    # nothing left to undo: a second rollback of the same run writes nothing
    again = sync.reverse(run)
    assert again.write_count == 0 and again.counts[Action.CONFLICT] == 0
    assert again.counts[Action.UNCHANGED] == 6

    # the rollback is a run like any other: rolling it back writes the first run's values again
    sync.rollback(rollback)
    assert sync.read() == applied


def test_records_changed_since_the_run_are_conflicts_and_left_alone(sync: Sync) -> None:
    before = sync.read()
    run = sync.apply()
    sync.execute('UPDATE "Thing" SET "Name" = ? WHERE "Ext" = ?', ("By hand", "a"))
    sync.execute('UPDATE "Thing" SET "Qty" = ? WHERE "Ext" = ?', (42, "n1"))  # created by the run
    sync.execute('DELETE FROM "Thing" WHERE "Ext" = ?', ("e",))  # updated by the run
    sync.execute(  # deleted by the run, created again by hand
        'INSERT INTO "Thing" ("Ext", "Name", "Active") VALUES (?, ?, ?)', ("z", "Zed", True)
    )
    # changed since, but only in a field the run did not write: not a conflict
    sync.execute('UPDATE "Thing" SET "Score" = ? WHERE "Ext" = ?', (8.5, "b"))
    edited = sync.read()

    with open_destination(sync.loaded) as destination, sync.store() as store:
        reverse = plan_rollback(sync.loaded, run, store, destination)
    found = {(c.key, c.field): c for c in reverse.conflicts()}
    assert set(found) == {
        ("a", "Name"),
        ("n1", "Qty"),
        ("e", "Since"),
        ("e", "Seen"),
        ("e", "Score"),
        ("z", "Name"),
        ("z", "Since"),
        ("z", "Seen"),
        ("z", "Qty"),
        ("z", "Score"),
    }
    assert (found["a", "Name"].run_wrote, found["a", "Name"].now) == ("Alpha", "By hand")
    assert found["a", "Name"].reason == CHANGED_SINCE
    assert (found["e", "Score"].run_wrote, found["e", "Score"].now) == (0.25, None)
    assert found["e", "Score"].reason == DELETED_SINCE
    assert (found["z", "Name"].run_wrote, found["z", "Name"].now) == (None, "Zed")
    assert found["z", "Name"].reason == CREATED_AGAIN
    assert found["a", "Name"].to_json() == {
        "key": "a",
        "field": "Name",
        "run_wrote": "Alpha",
        "now": "By hand",
        "reason": CHANGED_SINCE,
    }
    plan = reverse.plan
    assert plan.counts[Action.CONFLICT] == 4
    assert keys(plan, Action.UPDATE) == {"b"}
    assert keys(plan, Action.DELETE) == {"n2"}
    assert keys(plan, Action.CREATE) == set()

    sync.run(plan, command="rollback")
    after = sync.read()
    for key in ("a", "n1", "z"):  # left exactly as the hand edits left them
        assert after[key] == edited[key]
    assert "e" not in after and "n2" not in after
    assert after["b"] == (*before["b"][:5], 8.5)  # restored, and the later edit kept


def test_records_the_run_failed_are_not_touched(sync: Sync) -> None:
    sync.execute('UPDATE "Thing" SET "Name" = ? WHERE "Ext" = ?', ("Refused?", "b"))
    with sqlite3.connect(sync.loaded.path.parent / "src.db") as con:
        con.execute("UPDATE things SET name = 'Refused' WHERE id = 'b'")
    run = sync.apply()
    with sync.store() as store:
        assert {o.key for o in store.get_run(run).failures} == {"b"}
    sync.execute('UPDATE "Thing" SET "Qty" = ? WHERE "Ext" = ?', (77, "b"))  # not the run's doing

    with open_destination(sync.loaded) as destination, sync.store() as store:
        reverse = plan_rollback(sync.loaded, run, store, destination)
    assert reverse.untouched == 1
    assert "b" not in set(reverse.plan.records["key"].to_pylist())
    assert keys(reverse.plan, Action.UPDATE) == {"a", "e"}
    sync.run(reverse.plan, command="rollback")
    assert sync.read()["b"][4] == 77


def test_a_rollback_plan_saved_for_review_applies_exactly(sync: Sync, tmp_path: Path) -> None:
    run = sync.apply()
    sync.execute('UPDATE "Thing" SET "Name" = ? WHERE "Ext" = ?', ("By hand", "a"))
    reverse = sync.reverse(run)
    reverse.save(tmp_path / "rollback.json")
    loaded = Plan.load(tmp_path / "rollback.json")
    assert loaded.fingerprint == reverse.fingerprint
    assert loaded.reverts_run == run
    assert loaded.counts[Action.CONFLICT] == 1
    conflict = loaded.sample(Action.CONFLICT, 5).to_pylist()[0]
    assert (conflict["changed"], conflict["Name"], conflict["before.Name"]) == (
        ["Name"],
        "Alpha",
        "By hand",
    )
    with open_destination(sync.loaded) as destination:
        ensure_fresh(loaded, sync.loaded, destination)  # the destination has not changed since
    rollback = sync.run(loaded)  # applied as `trueup apply --plan` would: still a rollback run
    with sync.store() as store:
        summary = store.get_run(rollback).summary
    assert (summary.command, summary.reverts_run) == ("rollback", run)
    assert sync.read()["a"][0] == "By hand"


def test_a_rollback_never_creates_by_update_nor_overwrites_by_create(sync: Sync) -> None:
    run = sync.apply()
    reverse = sync.reverse(run)
    assert "b" in keys(reverse, Action.UPDATE) and "z" in keys(reverse, Action.CREATE)
    # after the rollback was planned: b is deleted, z created again by someone else
    sync.execute('DELETE FROM "Thing" WHERE "Ext" = ?', ("b",))
    sync.execute(
        'INSERT INTO "Thing" ("Ext", "Name", "Active") VALUES (?, ?, ?)', ("z", "Zed", True)
    )
    with open_destination(sync.loaded) as destination, sync.store() as store:
        result = apply_plan(
            reverse,
            destination,
            store,
            batch_size=2,
            guards=sync.loaded.config.guards,
            command="rollback",
        )
        failed = {o.key: o.error_code for o in store.get_run(result.run_id).failures}
    assert failed == {"b": "NOT_FOUND", "z": "DUPLICATE_VALUE"}
    now = sync.read()
    assert "b" not in now
    assert now["z"][:2] == ("Zed", True)


def test_a_run_of_another_destination_or_no_run_at_all_is_refused(sync: Sync) -> None:
    with open_destination(sync.loaded) as destination, sync.store() as store:
        other = store.start_run(
            command="apply",
            destination="sql:Elsewhere",
            config_fingerprint="c",
            plan_fingerprint="p",
            plan_counts={},
        )
        store.finish_run(other, RunStatus.SUCCEEDED)
        with pytest.raises(PlanError, match="wrote to sql:Elsewhere"):
            plan_rollback(sync.loaded, other, store, destination)
        with pytest.raises(StoreError, match="no run 999"):
            plan_rollback(sync.loaded, 999, store, destination)
