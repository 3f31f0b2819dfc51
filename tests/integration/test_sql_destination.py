"""SqlDestination beyond the shared suite: refused records, UPDATE, schema and connection errors."""

from __future__ import annotations

import datetime as dt
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pytest

from trueup.config import SqlDestinationConfig
from trueup.destinations.base import Operation, OutcomeStatus, WriteBatch
from trueup.destinations.sql import SqlDestination, create_table
from trueup.errors import (
    ConfigError,
    DestinationSchemaError,
    FatalDestinationError,
    TransientDestinationError,
)
from trueup.schema import FieldSpec, FieldType

# The same table as the shared suite (test_destination_suite.py); test modules do not import each
# other, so the few rows are repeated here.
KEY = "ext_id"
FIELDS = (
    FieldSpec(KEY, FieldType.TEXT, nullable=False, unique=True, external_id=True),
    FieldSpec("name", FieldType.TEXT, length=20),
    FieldSpec("active", FieldType.BOOLEAN),
    FieldSpec("start_date", FieldType.DATE),
    FieldSpec("seen_at", FieldType.DATETIME),
    FieldSpec("quantity", FieldType.INTEGER),
)
NAMES = [spec.name for spec in FIELDS]
ARROW = {
    KEY: pa.string(),
    "name": pa.string(),
    "active": pa.bool_(),
    "start_date": pa.date32(),
    "seen_at": pa.timestamp("us", tz="UTC"),
    "quantity": pa.int64(),
}
T1 = dt.datetime(2024, 3, 1, 12, 30, 15, tzinfo=dt.UTC)
ROWS = [
    {
        KEY: k,
        "name": n,
        "active": True,
        "start_date": dt.date(2024, 1, 15),
        "seen_at": T1,
        "quantity": 3,
    }
    for k, n in (("a-1", "Alpha"), ("b-2", "Beta"), ("c-3", "Gamma"))
]


def batch(
    rows: list[dict[str, Any]],
    columns: list[str] = NAMES,
    operation: Operation = Operation.UPSERT,
) -> WriteBatch:
    """A WriteBatch of ``rows`` with ``columns`` in canonical Arrow types."""
    schema = pa.schema([pa.field(c, ARROW[c]) for c in columns])
    records = pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows], schema=schema)
    return WriteBatch(operation=operation, key_field=KEY, records=records)


@dataclass
class Database:
    """A fresh database (PostgreSQL schema, SQLite or DuckDB file) to create and open tables in."""

    url: str
    schema: str | None
    base_dir: Path
    opened: list[SqlDestination] = field(default_factory=list)

    def open(self, table: str = "t", *, lock_timeout: float = 0.2) -> SqlDestination:
        config = SqlDestinationConfig(kind="sql", url=self.url, table=table, schema=self.schema)
        destination = SqlDestination(
            config, key_field=KEY, base_dir=self.base_dir, lock_timeout=lock_timeout
        )
        self.opened.append(destination)
        return destination

    def create(self, fields: tuple[FieldSpec, ...] = FIELDS, table: str = "t") -> SqlDestination:
        create_table(self.url, table, fields, KEY, db_schema=self.schema, base_dir=self.base_dir)
        return self.open(table)


@pytest.fixture(
    params=[
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("sqlite"),
        pytest.param("duckdb"),
    ]
)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """Each SQL backend in turn."""
    if request.param == "postgres":
        db = Database(
            request.getfixturevalue("pg_url"), request.getfixturevalue("pg_schema"), tmp_path
        )
    else:
        db = Database(f"{request.param}:///dest.db", None, tmp_path)
    yield db
    for destination in db.opened:
        destination.close()


def _required_name() -> tuple[FieldSpec, ...]:
    return tuple(
        FieldSpec(s.name, s.type, nullable=False, length=s.length) if s.name == "name" else s
        for s in FIELDS
    )


def test_a_record_breaking_not_null_fails_alone(database: Database) -> None:
    destination = database.create(_required_name())
    rows = [ROWS[0], {**ROWS[1], "name": None}, ROWS[2]]
    result = destination.write(batch(rows))
    assert [o.status for o in result.outcomes] == [
        OutcomeStatus.CREATED,
        OutcomeStatus.FAILED,
        OutcomeStatus.CREATED,
    ]
    failed = result.outcomes[1]
    assert (failed.key, failed.error_code) == ("b-2", "NOT_NULL_VIOLATION")
    assert failed.fields == ("name",)
    assert failed.message and "\n" not in failed.message
    assert sorted(destination.snapshot([KEY]).column(KEY).to_pylist()) == ["a-1", "c-3"]


@pytest.mark.postgres
def test_postgres_refuses_text_longer_than_varchar_and_the_rest_lands(
    pg_url: str, pg_schema: str
) -> None:
    create_table(pg_url, "t", FIELDS, KEY, db_schema=pg_schema)
    config = SqlDestinationConfig(kind="sql", url=pg_url, table="t", schema=pg_schema)
    with SqlDestination(config, key_field=KEY) as destination:
        assert destination.describe().field("name").length == 20
        rows = [ROWS[0], {**ROWS[1], "name": "x" * 21}, ROWS[2]]
        result = destination.write(batch(rows))
        assert [(o.key, o.status) for o in result.outcomes] == [
            ("a-1", OutcomeStatus.CREATED),
            ("b-2", OutcomeStatus.FAILED),
            ("c-3", OutcomeStatus.CREATED),
        ]
        failed = result.outcomes[1]
        assert failed.error_code == "STRING_TOO_LONG"
        assert failed.message is not None and "22001" in failed.message
        assert sorted(destination.snapshot([KEY]).column(KEY).to_pylist()) == ["a-1", "c-3"]


def test_update_reports_missing_keys_as_not_found_and_creates_nothing(database: Database) -> None:
    destination = database.create()
    destination.write(batch(ROWS[:1]))
    changes = [{KEY: "zz-9", "name": "Ghost"}, {KEY: "a-1", "name": "Alpha 2"}]
    result = destination.write(batch(changes, columns=[KEY, "name"], operation=Operation.UPDATE))
    assert [(o.key, o.status, o.error_code) for o in result.outcomes] == [
        ("zz-9", OutcomeStatus.FAILED, "NOT_FOUND"),
        ("a-1", OutcomeStatus.UPDATED, None),
    ]
    assert destination.snapshot([KEY, "name"]).to_pylist() == [{KEY: "a-1", "name": "Alpha 2"}]


def test_a_full_batch_of_ten_thousand_lands(database: Database) -> None:
    destination = database.create()
    rows = [{KEY: f"k{i:05d}", "name": f"n{i}", "quantity": i} for i in range(10_000)]
    first = destination.write(batch(rows, columns=[KEY, "name", "quantity"]))
    assert first.count(OutcomeStatus.CREATED) == 10_000
    again = destination.write(batch(rows[::2], columns=[KEY, "quantity"]))
    assert again.count(OutcomeStatus.UPDATED) == 5_000
    assert destination.snapshot([KEY]).num_rows == 10_000


def test_a_missing_table_is_a_schema_error_naming_it(database: Database) -> None:
    database.create(table="present")
    with pytest.raises(DestinationSchemaError, match="no_such_table"):
        database.open("no_such_table").describe()


@pytest.mark.parametrize("scheme", ["sqlite", "duckdb"])
def test_a_missing_database_file_is_a_schema_error_and_is_not_created(
    scheme: str, tmp_path: Path
) -> None:
    config = SqlDestinationConfig(kind="sql", url=f"{scheme}:///absent.db", table="t")
    with (
        SqlDestination(config, key_field=KEY, base_dir=tmp_path) as destination,
        pytest.raises(DestinationSchemaError, match=r"table t does not exist.*absent\.db"),
    ):
        destination.describe()
    assert not (tmp_path / "absent.db").exists()


def test_relative_file_paths_resolve_against_base_dir(tmp_path: Path) -> None:
    create_table("sqlite:///sub/dest.db", "t", FIELDS, KEY, base_dir=tmp_path)
    assert (tmp_path / "sub" / "dest.db").is_file()
    config = SqlDestinationConfig(kind="sql", url="sqlite:///sub/dest.db", table="t")
    with SqlDestination(config, key_field=KEY, base_dir=tmp_path) as destination:
        assert destination.write(batch(ROWS[:1])).count(OutcomeStatus.CREATED) == 1


def test_an_unsupported_url_is_a_config_error_without_the_password() -> None:
    config = SqlDestinationConfig(kind="sql", url="mysql://u:hunter2@db/x", table="t")
    with pytest.raises(ConfigError, match=r"destination\.url") as caught:
        SqlDestination(config, key_field=KEY)
    assert "hunter2" not in str(caught.value)


def test_an_unreachable_server_is_fatal_without_the_password() -> None:
    url = "postgresql://trueup:s3cret-pw@127.0.0.1:1/nowhere"
    config = SqlDestinationConfig(kind="sql", url=url, table="t")
    with (
        SqlDestination(config, key_field=KEY) as destination,
        pytest.raises(FatalDestinationError) as caught,
    ):
        destination.describe()
    message = str(caught.value)
    assert "s3cret-pw" not in message
    assert "\n" not in message
    assert "127.0.0.1" in message
    assert not isinstance(caught.value, DestinationSchemaError)


def test_a_key_that_is_not_unique_cannot_be_written(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "dest.db") as conn:
        conn.execute("CREATE TABLE t (ext_id TEXT, name TEXT)")
    config = SqlDestinationConfig(kind="sql", url="sqlite:///dest.db", table="t")
    with (
        SqlDestination(config, key_field=KEY, base_dir=tmp_path) as destination,
        pytest.raises(DestinationSchemaError, match="primary key or unique"),
    ):
        destination.write(batch(ROWS[:1], columns=[KEY, "name"]))


def test_writing_a_field_the_table_lacks_is_a_schema_error(database: Database) -> None:
    destination = database.create(FIELDS[:2])
    with pytest.raises(DestinationSchemaError, match="quantity"):
        destination.write(batch(ROWS[:1], columns=[KEY, "name", "quantity"]))


@pytest.mark.postgres
def test_postgres_lock_timeout_during_write_is_transient(pg_url: str, pg_schema: str) -> None:
    create_table(pg_url, "t", FIELDS, KEY, db_schema=pg_schema)
    config = SqlDestinationConfig(kind="sql", url=pg_url, table="t", schema=pg_schema)
    with SqlDestination(config, key_field=KEY, lock_timeout=0.2) as destination:
        destination.describe()
        with psycopg.connect(pg_url) as holder:
            holder.execute(f'LOCK TABLE "{pg_schema}"."t" IN ACCESS EXCLUSIVE MODE')
            with pytest.raises(TransientDestinationError, match="lock"):
                destination.write(batch(ROWS[:1]))
        assert destination.write(batch(ROWS[:1])).count(OutcomeStatus.CREATED) == 1


def test_sqlite_locked_database_during_write_is_transient(tmp_path: Path) -> None:
    create_table("sqlite:///dest.db", "t", FIELDS, KEY, base_dir=tmp_path)
    config = SqlDestinationConfig(kind="sql", url="sqlite:///dest.db", table="t")
    with SqlDestination(config, key_field=KEY, base_dir=tmp_path, lock_timeout=0.2) as dest:
        dest.describe()
        holder = sqlite3.connect(tmp_path / "dest.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(TransientDestinationError, match="locked"):
                dest.write(batch(ROWS[:1]))
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert dest.write(batch(ROWS[:1])).count(OutcomeStatus.CREATED) == 1


@pytest.mark.postgres
def test_postgres_describe_maps_native_types(pg_url: str, pg_schema: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            f'CREATE TABLE "{pg_schema}".t (ext_id uuid PRIMARY KEY, amount numeric(10, 2),'
            " ratio real, seen timestamp, flag boolean NOT NULL, code varchar(12) UNIQUE,"
            " small smallint, notes text)"
        )
        key = uuid.uuid4()
        conn.execute(
            f'INSERT INTO "{pg_schema}".t VALUES (%s, 12.5, 0.25, %s, true, %s, 2, null)',
            (key, dt.datetime(2024, 5, 1, 9, 30), "X1"),
        )
    config = SqlDestinationConfig(kind="sql", url=pg_url, table="t", schema=pg_schema)
    with SqlDestination(config, key_field=KEY) as destination:
        schema = destination.describe()
        types = {name: spec.type for name, spec in schema.fields.items()}
        assert types == {
            KEY: FieldType.TEXT,
            "amount": FieldType.NUMBER,
            "ratio": FieldType.NUMBER,
            "seen": FieldType.DATETIME,
            "flag": FieldType.BOOLEAN,
            "code": FieldType.TEXT,
            "small": FieldType.INTEGER,
            "notes": FieldType.TEXT,
        }
        assert schema.field(KEY).external_id and schema.field(KEY).unique
        assert schema.field("code").unique and not schema.field("code").external_id
        assert schema.field("code").length == 12
        assert not schema.field("flag").nullable and schema.field("notes").nullable
        row = destination.snapshot(list(schema.fields)).to_pylist()[0]
        assert row[KEY] == str(key)
        assert row["amount"] == 12.5
        assert row["seen"] == dt.datetime(2024, 5, 1, 9, 30, tzinfo=dt.UTC)


def test_sqlite_describe_maps_declared_type_names(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "dest.db") as conn:
        conn.execute(
            "CREATE TABLE t (ext_id VARCHAR(18) PRIMARY KEY, b BOOLEAN NOT NULL, d DATE,"
            " ts TIMESTAMP, dt2 DATETIME, i INTEGER, r REAL, n NUMERIC, s TEXT)"
        )
        conn.execute(
            "INSERT INTO t VALUES ('k', 1, '2024-01-02', '2024-01-02 03:04:05', null,"
            " 5, 1.5, 2, 'x')"
        )
    config = SqlDestinationConfig(kind="sql", url="sqlite:///dest.db", table="t")
    with SqlDestination(config, key_field=KEY, base_dir=tmp_path) as destination:
        schema = destination.describe()
        assert {name: spec.type for name, spec in schema.fields.items()} == {
            KEY: FieldType.TEXT,
            "b": FieldType.BOOLEAN,
            "d": FieldType.DATE,
            "ts": FieldType.DATETIME,
            "dt2": FieldType.DATETIME,
            "i": FieldType.INTEGER,
            "r": FieldType.NUMBER,
            "n": FieldType.NUMBER,
            "s": FieldType.TEXT,
        }
        assert schema.field(KEY).length == 18 and schema.field(KEY).external_id
        assert not schema.field("b").nullable
        row = destination.snapshot(list(schema.fields)).to_pylist()[0]
        assert row == {
            KEY: "k",
            "b": 1,
            "d": "2024-01-02",
            "ts": "2024-01-02 03:04:05",
            "dt2": None,
            "i": 5,
            "r": 1.5,
            "n": 2.0,
            "s": "x",
        }


def test_sqlite_stores_dates_and_datetimes_as_iso_text(tmp_path: Path) -> None:
    create_table("sqlite:///dest.db", "t", FIELDS, KEY, base_dir=tmp_path)
    config = SqlDestinationConfig(kind="sql", url="sqlite:///dest.db", table="t")
    with SqlDestination(config, key_field=KEY, base_dir=tmp_path) as destination:
        destination.write(batch(ROWS[:1]))
        row = destination.snapshot(["active", "start_date", "seen_at"]).to_pylist()[0]
    assert row == {"active": 1, "start_date": "2024-01-15", "seen_at": "2024-03-01 12:30:15+00:00"}


def test_duckdb_snapshot_has_canonical_types(tmp_path: Path) -> None:
    create_table("duckdb:///dest.duckdb", "t", FIELDS, KEY, base_dir=tmp_path)
    config = SqlDestinationConfig(kind="sql", url="duckdb:///dest.duckdb", table="t")
    with SqlDestination(config, key_field=KEY, base_dir=tmp_path) as destination:
        destination.write(batch(ROWS[:1]))
        snapshot = destination.snapshot(NAMES)
    assert snapshot.to_pylist() == [ROWS[0]]
    assert str(snapshot.schema.field("seen_at").type) == "timestamp[us, tz=UTC]"
