"""The model's column types are checked against the destination's fields before the plan reads
the destination, whichever path the plan takes: in place inside DuckDB (the model's query for no
rows gives the types) or through Arrow (the reader's schema), and for ``check`` too."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from trueup.check import run_check
from trueup.config import load_config
from trueup.errors import ConfigError
from trueup.pipeline import IN_PLACE, make_plan

MAPPING = {"id": "Ext", "name": "Name", "active": "Since"}  # a boolean onto a DATE column
WRONG_TYPE = "Since is a date field but model column active is bool"


def write_config(folder: Path, source: dict[str, object], destination: dict[str, object]) -> Path:
    path = folder / "trueup.yml"
    body = {
        "source": source,
        "model": {"kind": "sql", "query": "SELECT id, name, active FROM things"},
        "key": "id",
        "destination": {"kind": "sql", "table": "Thing", **destination},
        "mapping": MAPPING,
    }
    path.write_text(yaml.safe_dump(body))
    return path


def test_in_place_the_types_are_checked_before_the_diff_runs(tmp_path: Path) -> None:
    pq.write_table(
        pa.table({"id": ["a"], "name": ["Alpha"], "active": [True]}), tmp_path / "things.parquet"
    )
    with duckdb.connect(str(tmp_path / "crm.duckdb")) as con:
        con.execute(
            'CREATE TABLE "Thing" ("Ext" VARCHAR PRIMARY KEY, "Name" VARCHAR, "Since" DATE)'
        )
        con.execute("INSERT INTO \"Thing\" VALUES ('a', 'Alpha', DATE '2024-01-01')")
    path = write_config(
        tmp_path,
        {"kind": "files", "tables": {"things": "things.parquet"}},
        {"url": "duckdb:///crm.duckdb"},
    )
    stages: list[str] = []

    with pytest.raises(ConfigError, match="1 problem") as caught:
        make_plan(load_config(path), progress=lambda e: stages.append(e.stage))

    assert caught.value.path == "mapping" and WRONG_TYPE in str(caught.value)
    assert IN_PLACE not in stages and "read destination" not in stages


@pytest.mark.postgres
def test_through_arrow_plan_and_check_refuse_the_mapping(
    tmp_path: Path, pg_url: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{pg_schema}"')
        conn.execute("CREATE TABLE things (id text, name text, active boolean)")
        conn.execute("INSERT INTO things VALUES ('a', 'Alpha', true)")
        conn.execute('CREATE TABLE "Thing" ("Ext" text PRIMARY KEY, "Name" text, "Since" date)')
        conn.execute('INSERT INTO "Thing" VALUES (%s, %s, %s)', ("a", "Alpha", dt.date(2024, 1, 1)))
    separator = "&" if "?" in pg_url else "?"
    monkeypatch.setenv("PG", f"{pg_url}{separator}options=-csearch_path%3D{pg_schema}")
    path = write_config(
        tmp_path, {"kind": "postgres", "url": "${PG}"}, {"url": "${PG}", "schema": pg_schema}
    )
    loaded = load_config(path)

    for run in (make_plan, run_check):
        stages: list[str] = []
        with pytest.raises(ConfigError, match=WRONG_TYPE):
            run(loaded, progress=lambda e, seen=stages: seen.append(e.stage))
        assert "read destination" not in stages
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(f'SELECT "Ext", "Since" FROM "{pg_schema}"."Thing"').fetchall()
    assert rows == [("a", dt.date(2024, 1, 1))]
