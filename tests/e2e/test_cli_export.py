"""``trueup export``: the plan's records as Data Loader CSV batch files, as a user runs it.

The source is a Parquet file and the destination a DuckDB table holding 104 records equal to the
source, 300 that differ and 5 orphans; the source adds 996 new records and one key twice, so the
plan has exactly 1,296 records to create or update.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import re
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from e2e_cli import Trueup

KEY = "Ext__c"
TABLE = "Account__c"
UNCHANGED, UPDATED, CREATED = 104, 300, 996
WRITES = UPDATED + CREATED  # 1,296
DDL = (
    f'CREATE TABLE "{TABLE}" ("{KEY}" VARCHAR PRIMARY KEY, "Name" VARCHAR, '
    '"Active__c" BOOLEAN NOT NULL, "Since__c" DATE, "Seen_At__c" TIMESTAMPTZ, '
    '"Count__c" BIGINT, "Score__c" DOUBLE)'
)
MAPPING = {
    "id": KEY,
    "name": "Name",
    "active": "Active__c",
    "since": "Since__c",
    "seen_at": "Seen_At__c",
    "count": "Count__c",
    "score": "Score__c",
}
SOURCE = pa.schema(
    [
        ("id", pa.string()),
        ("name", pa.string()),
        ("active", pa.bool_()),
        ("since", pa.date32()),
        ("seen_at", pa.timestamp("ms", tz="UTC")),
        ("count", pa.int64()),
        ("score", pa.float64()),
    ]
)
DATETIME_CELL = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def _account(i: int) -> dict[str, Any]:
    """Source record ``i``: every type, some nulls, text that needs quoting."""
    names = {0: f'Maple Court, "Unit {i}"\nsecond line', 1: f"Zürich — Résidence {i}"}
    return {
        "id": f"acct-{i:04d}",
        "name": names.get(i % 10, f"Property {i}"),
        "active": i % 3 == 0,
        "since": None if i % 7 == 0 else dt.date(2020, 1, 1) + dt.timedelta(days=i),
        "seen_at": None
        if i % 11 == 0
        else dt.datetime(2024, 5, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=i, milliseconds=i),
        "count": None if i % 13 == 0 else i * 1000,
        "score": None if i % 5 == 0 else i / 8,
    }


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """trueup.yml, accounts.parquet and crm.duckdb in the test's folder."""
    total = UNCHANGED + UPDATED + CREATED
    source = [_account(i) for i in range(1, total + 1)]
    source += [_account(0) | {"id": "acct-dup"}] * 2  # one key twice: invalid
    pq.write_table(pa.Table.from_pylist(source, schema=SOURCE), tmp_path / "accounts.parquet")
    held = [dict(r) for r in source[: UNCHANGED + UPDATED]]
    for r in held[UNCHANGED:]:
        if r["name"].startswith("Property"):
            r["name"] += " (old)"
        else:
            r["count"] = -1 if r["count"] is None else None  # some updates clear a field
    held += [_account(9000 + i) | {"id": f"zz-orphan-{i}"} for i in range(5)]
    with duckdb.connect(str(tmp_path / "crm.duckdb")) as con:
        con.execute(DDL)
        con.executemany(
            f'INSERT INTO "{TABLE}" VALUES (?, ?, ?, ?, ?, ?, ?)',
            [list(r.values()) for r in held],
        )
    config = {
        "source": {"kind": "files", "tables": {"accounts": "accounts.parquet"}},
        "model": {"kind": "sql", "table": "accounts"},
        "key": "id",
        "destination": {"kind": "sql", "url": "duckdb:///crm.duckdb", "table": TABLE},
        "mapping": MAPPING,
        # most held records change on purpose: the change_share guard would rightly stop that
        "guards": {"max_change_pct": 100},
    }
    (tmp_path / "trueup.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return tmp_path


def _typed(value: Any, kind: str) -> Any:
    """A plan JSON value or a CSV cell (a string) as a comparable Python value."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or kind in ("text", "date"):
        return value
    return {
        "boolean": {"true": True, "false": False}.get,
        "datetime": dt.datetime.fromisoformat,
        "integer": int,
        "number": float,
    }[kind](value)


def _planned_writes(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The plan's creates and updates: key → every mapped field's typed value."""
    return {
        r["key"]: {f: _typed(r["values"][f], kind) for f, kind in plan["fields"].items()}
        for r in plan["records"]
        if r["action"] in ("create", "update")
    }


def _read_export(folder: Path, plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every record of every upsert file, typed by the plan's field types; no key twice."""
    header = [plan["key_field"], *plan["fields"]]
    union: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("upsert-*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
        assert rows[0] == header
        assert 0 < len(rows) - 1 <= 50
        for cells in rows[1:]:
            key, *values = cells
            assert key not in union
            for cell, kind in zip(values, plan["fields"].values(), strict=True):
                assert kind != "datetime" or not cell or DATETIME_CELL.match(cell), cell
                assert kind != "boolean" or cell in ("true", "false"), cell
            union[key] = {
                f: _typed(cell, kind)
                for (f, kind), cell in zip(plan["fields"].items(), values, strict=True)
            }
    return union


def test_1296_records_at_batch_size_50_give_26_files_whose_union_is_the_plan(
    project: Path, trueup: Trueup
) -> None:
    planned = trueup("plan", "--json")
    assert planned.code == 0, planned.err
    plan = planned.json()
    assert plan["counts"]["create"] == CREATED and plan["counts"]["update"] == UPDATED
    assert plan["counts"]["invalid"] == 2 and plan["counts"]["missing_in_source"] == 5

    ran = trueup("export", "--batch-size", "50", "--out", "for-data-loader")

    assert ran.code == 0, ran.err
    folder = project / "for-data-loader"
    expected = [f"upsert-{n:05d}-{min(n + 49, WRITES):05d}.csv" for n in range(1, WRITES, 50)]
    assert len(expected) == 26
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", *expected]
    assert "Exported 1,296 records (996 creates, 300 updates) in 26 files" in ran.out
    assert "invalid records not exported" in ran.out
    assert "Insert null values" in ran.out  # some updates clear Count__c

    union = _read_export(folder, plan)
    writes = _planned_writes(plan)
    assert len(union) == WRITES
    assert union.keys() == writes.keys()
    for key, values in writes.items():
        assert union[key] == values, key
    assert union["acct-0410"]["Name"] == 'Maple Court, "Unit 410"\nsecond line'  # a create
    assert union["acct-0111"]["Name"] == "Zürich — Résidence 111"  # an update

    # another CSV reader sees the same 1,296 records
    with duckdb.connect() as con:
        pattern = str(folder / "upsert-*.csv")
        (count,) = con.execute(
            f"SELECT count(DISTINCT \"{KEY}\") FROM read_csv('{pattern}', header = true, "
            "all_varchar = true, quote = '\"', escape = '\"')"
        ).fetchone() or (0,)
    assert count == WRITES

    manifest = trueup("export", "--out", "again", "--batch-size", "50", "--json").json()
    assert manifest["plan_fingerprint"] == plan["plan_fingerprint"]
    assert manifest["records"] == WRITES
    assert manifest["invalid_not_exported"] == 2
    assert [f["name"] for f in manifest["files"]] == expected
    for entry in manifest["files"]:
        data = (folder / entry["name"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()  # same plan, same bytes


def test_a_saved_plan_is_exported_exactly_and_refused_once_stale(
    project: Path, trueup: Trueup
) -> None:
    assert trueup("plan", "--out", "plan.json").code == 0
    fresh = trueup("export", "--out", "fresh", "--batch-size", "50", "--json")
    assert fresh.code == 0, fresh.err

    saved = trueup("export", "--plan", "plan.json", "--out", "saved", "--batch-size", "50")

    assert saved.code == 0, saved.err
    files = sorted(p.name for p in (project / "fresh").glob("*.csv"))
    assert len(files) == 26
    assert sorted(p.name for p in (project / "saved").glob("*.csv")) == files
    for name in files:
        assert (project / "saved" / name).read_bytes() == (project / "fresh" / name).read_bytes()

    with duckdb.connect(str(project / "crm.duckdb")) as con:
        con.execute(f'UPDATE "{TABLE}" SET "Name" = \'Edited\' WHERE "{KEY}" = \'acct-0001\'')
    stale = trueup("export", "--plan", "plan.json", "--out", "stale", "--batch-size", "50")

    assert "changed since this plan was made" in stale.error_line(5)
    assert not (project / "stale").exists()


def test_an_export_is_not_overwritten_without_force(project: Path, trueup: Trueup) -> None:
    assert trueup("export", "--out", "out").code == 0
    (project / "out" / "README.txt").write_text("our notes")
    before = {p.name: p.read_bytes() for p in (project / "out").iterdir()}

    refused = trueup("export", "--out", "out", "--batch-size", "500")

    assert "pass --force" in refused.error_line(5)
    assert {p.name: p.read_bytes() for p in (project / "out").iterdir()} == before

    forced = trueup("export", "--out", "out", "--batch-size", "500", "--force")

    assert forced.code == 0, forced.err
    assert sorted(p.name for p in (project / "out").iterdir()) == [
        "README.txt",
        "manifest.json",
        "upsert-00001-00500.csv",
        "upsert-00501-01000.csv",
        "upsert-01001-01296.csv",
    ]


@pytest.mark.parametrize("size", ["0", "10001"])
def test_a_batch_size_out_of_range_is_a_usage_error(
    project: Path, trueup: Trueup, size: str
) -> None:
    ran = trueup("export", "--out", "out", "--batch-size", size)
    assert ran.code == 2
    assert "--batch-size" in ran.err
    assert not (project / "out").exists()
