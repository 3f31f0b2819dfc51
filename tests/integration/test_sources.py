"""One read suite that every source passes: PostgreSQL, DuckDB, SQLite, CSV and Parquet files.

Each source holds the same small ``items`` table, written the way a user's database or file would
hold it (typed DDL, ISO text with offsets in SQLite and CSV), and must read it back with the same
values and the same Arrow types.
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from trueup.config import LoadedConfig, SqlModelConfig, parse_config
from trueup.errors import SourceError
from trueup.models import build_model
from trueup.sources import (
    DuckDBSource,
    FilesSource,
    PostgresSource,
    Source,
    SQLiteSource,
    open_source,
)
from trueup.sqltext import quote_qualified

COLUMNS = ["id", "name", "active", "born", "seen_at", "score"]
SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("name", pa.string()),
        ("active", pa.bool_()),
        ("born", pa.date32()),
        ("seen_at", pa.timestamp("us", tz="UTC")),
        ("score", pa.int64()),
    ]
)
TRICKY_NAME = 'Dé "quoted", comma'
# What every source must give back. Row 1's seen_at is written as 23:30 at -05:00 (next day in UTC).
ROWS = [
    (1, "Alpha", True, date(2024, 1, 2), datetime(2024, 1, 3, 4, 30, tzinfo=UTC), 10),
    (2, "Beta", False, date(2023, 12, 31), datetime(2024, 6, 30, 12, 0, tzinfo=UTC), None),
    (3, None, None, None, None, 7),
    (4, TRICKY_NAME, True, date(2020, 2, 29), datetime(2020, 2, 29, tzinfo=UTC), -3),
    (5, "Epsilon", False, date(2024, 1, 1), datetime(2024, 1, 1, 0, 0, 1, tzinfo=UTC), 0),
]
# The same rows as text, the way they sit in SQLite, CSV and the SQL inserts.
SEEN_TEXT = [
    "2024-01-02 23:30:00-05:00",
    "2024-06-30 12:00:00+00:00",
    None,
    "2020-02-29 00:00:00+00:00",
    "2024-01-01 00:00:01+00:00",
]
TEXT_ROWS = [
    (i, name, active, born.isoformat() if born else None, seen, score)
    for (i, name, active, born, _, score), seen in zip(ROWS, SEEN_TEXT, strict=True)
]
BATCH = 2  # small, so five rows must arrive in several batches


def _postgres(request: pytest.FixtureRequest) -> tuple[Source, str]:
    url: str = request.getfixturevalue("pg_url")
    schema: str = request.getfixturevalue("pg_schema")
    table = f"{schema}.items"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {quote_qualified(table)} (id int PRIMARY KEY, name text, active boolean,"
            " born date, seen_at timestamptz, score bigint)"
        )
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {quote_qualified(table)} VALUES (%s, %s, %s, %s, %s, %s)", TEXT_ROWS
            )
    return PostgresSource(url, fetch_size=BATCH), table


def _duckdb(tmp_path: Path) -> tuple[Source, str]:
    path = tmp_path / "items.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.execute("CREATE SCHEMA shop")
        conn.execute(
            "CREATE TABLE shop.items (id INTEGER, name VARCHAR, active BOOLEAN, born DATE,"
            " seen_at TIMESTAMPTZ, score BIGINT)"
        )
        conn.executemany("INSERT INTO shop.items VALUES (?, ?, ?, ?, ?, ?)", TEXT_ROWS)
    return DuckDBSource(path, batch_size=BATCH), "shop.items"


def _sqlite(tmp_path: Path) -> tuple[Source, str]:
    path = tmp_path / "items.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, active BOOLEAN, born DATE,"
            " seen_at TIMESTAMPTZ, score INT)"
        )
        conn.executemany("INSERT INTO items VALUES (?, ?, ?, ?, ?, ?)", TEXT_ROWS)
    conn.close()
    return SQLiteSource(path, batch_size=BATCH), "main.items"


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _write_csv(path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for row in TEXT_ROWS:
            writer.writerow([_cell(v) for v in row])


def _csv(tmp_path: Path) -> tuple[Source, str]:
    path = tmp_path / "items.csv"
    _write_csv(path)
    return FilesSource({"items": path}, batch_size=BATCH), "items"


def _parquet(tmp_path: Path) -> tuple[Source, str]:
    path = tmp_path / "items.parquet"
    rows = [dict(zip(COLUMNS, row, strict=True)) for row in ROWS]
    pq.write_table(pa.Table.from_pylist(rows, SCHEMA), path)
    return FilesSource({"items": path}, batch_size=BATCH), "items"


@pytest.fixture(params=["postgres", "duckdb", "sqlite", "csv", "parquet"])
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Source, str]]:
    """Each source holding the ``items`` table, and the name to read it by."""
    kind = request.param
    files = {"duckdb": _duckdb, "sqlite": _sqlite, "csv": _csv, "parquet": _parquet}
    opened = _postgres(request) if kind == "postgres" else files[kind](tmp_path)
    with opened[0]:
        yield opened


def _rows(table: pa.Table) -> list[tuple[object, ...]]:
    return sorted(tuple(row.values()) for row in table.to_pylist())


def test_read_table_gives_back_the_same_values_and_types(source: tuple[Source, str]) -> None:
    src, table = source
    got = pa.Table.from_batches(list(src.read_table(table)), SCHEMA)
    assert src.read_table(table).schema == SCHEMA  # type: ignore[attr-defined]
    assert _rows(got) == ROWS


def test_every_batch_has_the_fixed_schema_and_reads_stream(source: tuple[Source, str]) -> None:
    src, table = source
    batches = list(src.read_table(table))
    assert len(batches) >= 3
    assert all(b.num_rows <= BATCH for b in batches)
    assert all(b.schema == SCHEMA for b in batches)


def test_read_query(source: tuple[Source, str]) -> None:
    src, table = source
    query = f"SELECT id, name FROM {quote_qualified(table)} WHERE active ORDER BY id"
    got = pa.Table.from_batches(list(src.read_query(query)))
    assert got.to_pylist() == [{"id": 1, "name": "Alpha"}, {"id": 4, "name": TRICKY_NAME}]


def test_an_empty_result_keeps_its_types(source: tuple[Source, str]) -> None:
    src, table = source
    reader = src.read_query(f"SELECT * FROM {quote_qualified(table)} WHERE id < 0")
    assert reader.schema == SCHEMA  # type: ignore[attr-defined]
    assert sum(b.num_rows for b in reader) == 0


def test_columns(source: tuple[Source, str]) -> None:
    src, table = source
    assert src.columns(table) == COLUMNS


def test_a_missing_table_is_a_source_error(source: tuple[Source, str]) -> None:
    src, _ = source
    with pytest.raises(SourceError, match="table no_such_table not found"):
        src.read_table("no_such_table")
    with pytest.raises(SourceError, match="table no_such_table not found"):
        src.columns("no_such_table")


def test_a_bad_query_is_a_one_line_source_error(source: tuple[Source, str]) -> None:
    src, _ = source
    with pytest.raises(SourceError) as caught:
        src.read_query("SELECT no_such_column FROM no_such_table")
    assert "\n" not in str(caught.value)


# --- PostgreSQL only ------------------------------------------------------------------------------
def test_an_unreachable_postgres_is_one_line_without_the_password() -> None:
    src = PostgresSource("postgresql://app:s3cret-pw@127.0.0.1:1/prod", connect_timeout=2)
    with pytest.raises(SourceError) as caught:
        src.read_query("SELECT 1")
    message = str(caught.value)
    assert message.startswith(
        "cannot connect to PostgreSQL at postgresql://app:***@127.0.0.1:1/prod"
    )
    assert "s3cret-pw" not in message
    assert "\n" not in message


def test_postgres_all_null_chunks_keep_the_schema_and_uuids_read_as_text(pg_url: str) -> None:
    query = (
        "SELECT CASE WHEN x > 2 THEN timestamptz '2024-05-01 23:30-05' END AS at,"
        " CASE WHEN x > 2 THEN 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid END AS id,"
        " CASE WHEN x > 2 THEN 1.25::numeric END AS amount"
        " FROM generate_series(1, 4) AS x ORDER BY x"
    )
    with PostgresSource(pg_url, fetch_size=2) as src:
        batches = list(src.read_query(query))
    want = pa.schema(
        [("at", pa.timestamp("us", tz="UTC")), ("id", pa.string()), ("amount", pa.float64())]
    )
    assert [b.schema for b in batches] == [want, want]
    assert batches[0].to_pylist()[0] == {"at": None, "id": None, "amount": None}
    assert batches[1].to_pylist()[0] == {
        "at": datetime(2024, 5, 2, 4, 30, tzinfo=UTC),
        "id": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "amount": 1.25,
    }


def test_postgres_urls_may_name_the_psycopg_driver(pg_url: str) -> None:
    url = pg_url.replace("postgresql://", "postgresql+psycopg://")
    with PostgresSource(url) as src:
        assert pa.Table.from_batches(list(src.read_query("SELECT 1 AS one"))).to_pylist() == [
            {"one": 1}
        ]


# --- SQLite and files only ------------------------------------------------------------------------
def test_sqlite_value_that_does_not_fit_its_declared_type_is_a_source_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (d DATE)")
        conn.execute("INSERT INTO t VALUES ('not a date')")
    conn.close()
    with SQLiteSource(path) as src, pytest.raises(SourceError, match="column 'd' of t"):
        list(src.read_table("t"))


def test_a_missing_sqlite_file_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot open SQLite database"):
        SQLiteSource(tmp_path / "absent.db")


def test_files_join_csv_and_parquet_in_one_query(tmp_path: Path) -> None:
    _write_csv(tmp_path / "items.csv")
    pq.write_table(pa.table({"item_id": [1, 4], "tag": ["x", "y"]}), tmp_path / "tags.parquet")
    with FilesSource({"items": tmp_path / "items.csv", "tags": tmp_path / "tags.parquet"}) as src:
        reader = src.read_query(
            "SELECT i.name, t.tag FROM items i JOIN tags t ON t.item_id = i.id ORDER BY i.id"
        )
        assert reader.read_all().to_pylist() == [  # type: ignore[attr-defined]
            {"name": "Alpha", "tag": "x"},
            {"name": TRICKY_NAME, "tag": "y"},
        ]


def test_a_missing_file_is_a_source_error_naming_the_table(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"cannot read table items from .*absent\.csv"):
        FilesSource({"items": tmp_path / "absent.csv"})


def test_open_source_resolves_paths_against_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    _write_csv(tmp_path / "data" / "items.csv")
    config = parse_config(
        {
            "source": {"kind": "files", "tables": {"items": "data/*.csv"}},
            "model": {"kind": "sql", "table": "items"},
            "key": "id",
            "destination": {"kind": "csv", "directory": "out"},
            "mapping": {"id": "Id"},
        },
        file="trueup.yml",
    )
    loaded = LoadedConfig(config=config, path=tmp_path / "trueup.yml")
    with open_source(loaded) as src:
        assert src.columns("items") == COLUMNS


def test_sql_model_reads_a_table_or_a_query(source: tuple[Source, str]) -> None:
    src, table = source
    by_table = build_model(SqlModelConfig(kind="sql", table=table)).read(src)
    assert by_table.schema == SCHEMA
    assert _rows(by_table.read_all()) == ROWS
    query = f"SELECT id FROM {quote_qualified(table)} WHERE score > 0 ORDER BY id"
    by_query = build_model(SqlModelConfig(kind="sql", query=query)).read(src)
    assert by_query.read_all().to_pylist() == [{"id": 1}, {"id": 3}]
