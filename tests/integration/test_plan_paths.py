"""The two plan paths agree: Arrow (any source, any destination) and in place inside DuckDB.

A Parquet source with the sql model and a DuckDB destination table take the in-place path; the
same data read from SQLite takes the Arrow path. Plans, counts and fingerprints must match, and a
plan made in place must not look stale to the Arrow-based freshness check.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from trueup.config import load_config
from trueup.destinations import open_destination
from trueup.diff import Action
from trueup.errors import StalePlanError
from trueup.pipeline import IN_PLACE, ensure_fresh, make_plan
from trueup.plan import Plan

UTC = dt.UTC
SOURCE = pa.table(
    {
        "id": ["a", "b", "c", "d", "d", None, "f"],
        "name": ["Alpha", "Bravo", "Charlie", "Delta", "Delta2", "Nobody", "F" * 30],
        "active": [True, False, True, None, True, True, False],
        "since": [
            dt.datetime(2024, 1, 1, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
            dt.datetime(2024, 1, 1, 0, 0, tzinfo=UTC),
            None,
            None,
            None,
            None,
            None,
        ],
    }
)
DESTINATION_ROWS = [  # key, name, active, since
    ("a", "Alpha", True, dt.date(2024, 1, 2)),  # unchanged: 23:30 -05:00 is the 2nd in UTC
    ("b", "Bravo ", False, dt.date(2024, 1, 1)),  # trailing space: update
    ("c", "Charlie", False, None),  # flag: update
    ("z", "Zulu", True, None),  # missing in source
]
DDL = (
    'CREATE TABLE "Thing" ("Ext" VARCHAR(20) PRIMARY KEY, "Name" VARCHAR(20), '
    '"Active" BOOLEAN NOT NULL, "Since" DATE)'
)


def config(tmp_path: Path, source: dict[str, object], url: str) -> Path:
    path = tmp_path / "trueup.yml"
    body = {
        "source": source,
        "model": {"kind": "sql", "table": "things"},
        "key": "id",
        "destination": {"kind": "sql", "url": url, "table": "Thing", "batch_size": 2},
        "mapping": {"id": "Ext", "name": "Name", "active": "Active", "since": "Since"},
    }
    path.write_text(yaml.safe_dump(body))
    return path


@pytest.fixture()
def in_place(tmp_path: Path) -> Path:
    pq.write_table(SOURCE, tmp_path / "things.parquet")
    with duckdb.connect(str(tmp_path / "crm.duckdb")) as con:
        con.execute(DDL)
        con.executemany('INSERT INTO "Thing" VALUES (?, ?, ?, ?)', DESTINATION_ROWS)
    return config(
        tmp_path, {"kind": "files", "tables": {"things": "things.parquet"}}, "duckdb:///crm.duckdb"
    )


@pytest.fixture()
def via_arrow(tmp_path: Path) -> Path:
    folder = tmp_path / "arrow"
    folder.mkdir()
    with sqlite3.connect(folder / "src.db") as con:
        con.execute("CREATE TABLE things (id TEXT, name TEXT, active BOOLEAN, since TIMESTAMPTZ)")
        con.executemany(
            "INSERT INTO things VALUES (?, ?, ?, ?)",
            [
                (r["id"], r["name"], r["active"], r["since"] and r["since"].isoformat())
                for r in SOURCE.to_pylist()
            ],
        )
    with duckdb.connect(str(folder / "crm.duckdb")) as con:
        con.execute(DDL)
        con.executemany('INSERT INTO "Thing" VALUES (?, ?, ?, ?)', DESTINATION_ROWS)
    return config(folder, {"kind": "sqlite", "path": "src.db"}, "duckdb:///crm.duckdb")


def test_both_paths_make_the_same_plan(in_place: Path, via_arrow: Path) -> None:
    fast_stages: list[str] = []
    slow_stages: list[str] = []
    fast = make_plan(load_config(in_place), progress=lambda e: fast_stages.append(e.stage))
    slow = make_plan(load_config(via_arrow), progress=lambda e: slow_stages.append(e.stage))
    assert IN_PLACE in fast_stages and "read source" not in fast_stages
    assert IN_PLACE not in slow_stages and "read source" in slow_stages
    assert (
        dict(fast.counts)
        == dict(slow.counts)
        == {a: 0 for a in Action}
        | {
            Action.CREATE: 1,  # f: DuckDB does not keep VARCHAR(20), so 30 characters fit
            Action.UPDATE: 2,
            Action.UNCHANGED: 1,
            Action.MISSING_IN_SOURCE: 1,
            Action.INVALID: 3,  # d twice, null key
        }
    )

    def ordered(plan: Plan) -> list[dict[str, object]]:
        return sorted(plan.records.to_pylist(), key=lambda r: (r["action"], r["key"] or ""))

    assert ordered(fast) == ordered(slow)
    assert fast.fingerprint != "" and fast.to_json()["records"] == slow.to_json()["records"]


def test_a_plan_made_in_place_is_fresh_until_the_destination_changes(in_place: Path) -> None:
    loaded = load_config(in_place)
    plan = make_plan(loaded)
    with open_destination(loaded) as destination:
        ensure_fresh(plan, loaded, destination)  # no StalePlanError
    with duckdb.connect(str(in_place.parent / "crm.duckdb")) as con:
        con.execute('UPDATE "Thing" SET "Name" = \'Zed\' WHERE "Ext" = \'z\'')
    with open_destination(loaded) as destination, pytest.raises(StalePlanError):
        ensure_fresh(plan, loaded, destination)
