"""A DuckDB table through the ``duckdb`` Python API (no SQLAlchemy dialect needed).

Batches travel as Arrow: the records are registered as a view, the keys that exist are read by a
join inside the write transaction, then new rows are inserted and existing ones updated in two
set-based statements. DuckDB has no savepoints, so when a batch fails each record is retried in its
own transaction. Identifiers are quoted with ``quote_ident``; values never enter SQL text.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pyarrow as pa

from trueup.destinations.base import Operation
from trueup.destinations.sql_backend import (
    CANONICAL_ARROW,
    Answer,
    RecordFailure,
    RecordRejected,
    TableEngine,
    answers_for,
    field_type_from_name,
    key_text,
    last_occurrences,
    not_null_column,
    one_line,
    snake_code,
)
from trueup.errors import (
    DestinationError,
    DestinationSchemaError,
    FatalDestinationError,
    TransientDestinationError,
)
from trueup.schema import DUCKDB_TYPES, DestinationSchema, FieldSpec
from trueup.sqltext import quote_ident, quote_literal

_CAST = DUCKDB_TYPES
_CATALOG_FILTER = (
    "database_name = current_database() AND schema_name = coalesce($schema, current_schema()) "
    "AND table_name = $table"
)
_COLUMNS_SQL = (
    "SELECT column_name, data_type, is_nullable FROM duckdb_columns() "
    f"WHERE {_CATALOG_FILTER} ORDER BY column_index"
)
_UNIQUE_SQL = (
    "SELECT constraint_column_names FROM duckdb_constraints() "
    f"WHERE {_CATALOG_FILTER} AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')"
)
_BATCH, _NEW, _OLD = "trueup_batch", "trueup_new_rows", "trueup_old_rows"


class DuckDBTable(TableEngine):
    """A table in a DuckDB database file; the connection opens on first use."""

    def __init__(self, path: Path, table: str, db_schema: str | None) -> None:
        self._path = path
        self._table = table
        self._schema = db_schema
        self._name = f"{db_schema}.{table}" if db_schema else table
        self._sql_name = ".".join(quote_ident(p) for p in (db_schema, table) if p is not None)
        self._conn: duckdb.DuckDBPyConnection | None = None

    def describe(self, key_field: str) -> DestinationSchema:
        """Reflect columns from ``duckdb_columns()`` and one-column PK/UNIQUE constraints."""
        conn = self._connect(write=False)
        params = {"schema": self._schema, "table": self._table}
        try:
            columns = conn.execute(_COLUMNS_SQL, params).fetchall()
            groups = [row[0] for row in conn.execute(_UNIQUE_SQL, params).fetchall()]
        except duckdb.Error as exc:
            raise self._error(exc) from exc
        if not columns:
            raise DestinationSchemaError(f"table {self._name} does not exist in {self._path}")
        unique = {group[0] for group in groups if len(group) == 1}
        fields: dict[str, FieldSpec] = {}
        for name, declared, nullable in columns:
            field_type, length = field_type_from_name(declared)
            fields[name] = FieldSpec(
                name=name,
                type=field_type,
                nullable=bool(nullable),
                length=length,
                unique=name in unique,
                external_id=name == key_field and name in unique,
            )
        return DestinationSchema(object_name=self._name, fields=fields)

    def select(self, schema: DestinationSchema, fields: Sequence[str]) -> pa.Table:
        """Every row, ``fields`` only, in canonical Arrow types (timestamps in UTC)."""
        types = [schema.fields[f].type for f in fields]
        conn = self._connect(write=False)
        try:
            table = conn.sql(self._select_sql(schema, fields, self._sql_name)).to_arrow_table()
        except duckdb.Error as exc:
            raise self._error(exc) from exc
        target = pa.schema(
            [pa.field(f, CANONICAL_ARROW[t]) for f, t in zip(fields, types, strict=True)]
        )
        return table.cast(target)

    def attach(
        self, con: duckdb.DuckDBPyConnection, schema: DestinationSchema, fields: Sequence[str]
    ) -> str:
        """Attach the file read-only to ``con``; the SELECT ``select`` would run, over it."""
        self.close()  # one process may not hold the same DuckDB file open twice
        alias = "trueup_destination"
        try:
            attached = con.execute(
                "SELECT count(*) FROM duckdb_databases() WHERE database_name = ?", [alias]
            ).fetchall()[0][0]
            if not attached:
                con.execute(
                    f"ATTACH {quote_literal(str(self._path))} AS {alias} (READ_ONLY)"
                ).fetchall()
        except duckdb.Error as exc:
            raise self._error(exc) from exc
        parts = [alias, self._schema or "main", self._table]
        return self._select_sql(schema, fields, ".".join(quote_ident(p) for p in parts))

    @staticmethod
    def _select_sql(schema: DestinationSchema, fields: Sequence[str], table: str) -> str:
        exprs = ", ".join(
            f"CAST({quote_ident(f)} AS {_CAST[schema.fields[f].type]}) AS {quote_ident(f)}"
            for f in fields
        )
        return f"SELECT {exprs} FROM {table}"

    def write(
        self, records: pa.Table, key: str, operation: Operation, *, isolate: bool
    ) -> list[Answer]:
        """One transaction for the batch; with ``isolate`` one transaction per record."""
        conn = self._connect(write=True)
        if not isolate:
            return self._transaction(conn, records, key, operation)
        answers: list[Answer] = []
        for index in range(records.num_rows):
            try:
                answers += self._transaction(conn, records.slice(index, 1), key, operation)
            except RecordRejected as rejected:
                answers.append(rejected.failure)
        return answers

    def close(self) -> None:
        """Close the connection, if one was opened."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # --- helpers ---------------------------------------------------------------------------------
    def _transaction(
        self, conn: duckdb.DuckDBPyConnection, records: pa.Table, key: str, operation: Operation
    ) -> list[Answer]:
        try:
            conn.begin()
            try:
                answers = self._write_rows(conn, records, key, operation)
                conn.commit()
            except BaseException:
                _rollback(conn)
                raise
            finally:
                for view in (_BATCH, _NEW, _OLD):
                    conn.unregister(view)
        except (duckdb.IntegrityError, duckdb.DataError) as exc:
            raise RecordRejected(_failure(exc)) from exc
        except duckdb.Error as exc:
            raise self._error(exc, write=True) from exc
        return answers

    def _write_rows(
        self, conn: duckdb.DuckDBPyConnection, records: pa.Table, key: str, operation: Operation
    ) -> list[Answer]:
        k = quote_ident(key)
        keys = [key_text(v) for v in records.column(key).to_pylist()]
        conn.register(_BATCH, records)
        rows = conn.execute(
            f"SELECT DISTINCT t.{k} FROM {self._sql_name} AS t JOIN {_BATCH} AS b ON t.{k} = b.{k}"
        ).fetchall()
        existing = {key_text(row[0]) for row in rows}
        last = last_occurrences(keys)
        final = records.take(last)
        held = [keys[i] in existing for i in last]
        columns = [quote_ident(c) for c in records.column_names]
        if operation is Operation.DELETE:
            conn.register(_OLD, final.filter(pa.array(held)))
            conn.execute(
                f"DELETE FROM {self._sql_name} AS t WHERE t.{k} IN (SELECT b.{k} FROM {_OLD} AS b)"
            )
            return answers_for(operation, keys, existing, key)
        if operation in (Operation.UPSERT, Operation.INSERT) and not all(held):
            conn.register(_NEW, final.filter(pa.array([not h for h in held])))
            names = ", ".join(columns)
            conn.execute(f"INSERT INTO {self._sql_name} ({names}) SELECT {names} FROM {_NEW}")
        values = [c for c in columns if c != k]
        if operation is not Operation.INSERT and any(held) and values:
            conn.register(_OLD, final.filter(pa.array(held)))
            sets = ", ".join(f"{c} = b.{c}" for c in values)
            conn.execute(
                f"UPDATE {self._sql_name} AS t SET {sets} FROM {_OLD} AS b WHERE t.{k} = b.{k}"
            )
        return answers_for(operation, keys, existing, key)

    def _connect(self, *, write: bool) -> duckdb.DuckDBPyConnection:
        if self._conn is None:
            if not self._path.exists():
                raise DestinationSchemaError(
                    f"table {self._name} does not exist: no DuckDB file at {self._path}"
                )
            try:
                conn = duckdb.connect(str(self._path))
                conn.execute("SET SESSION TimeZone = 'UTC'")  # naive TIMESTAMP columns mean UTC
            except duckdb.Error as exc:
                kind = TransientDestinationError if write else FatalDestinationError
                raise kind(f"cannot open DuckDB file {self._path}: {one_line(exc)}") from exc
            self._conn = conn
        return self._conn

    def _error(self, exc: duckdb.Error, *, write: bool = False) -> DestinationError:
        message = f"{self._name}: {one_line(exc)}"
        if isinstance(exc, duckdb.CatalogException | duckdb.BinderException):
            return DestinationSchemaError(message)
        retry = duckdb.TransactionException | duckdb.IOException | duckdb.InterruptException
        if write and isinstance(exc, retry):
            return TransientDestinationError(message)
        return FatalDestinationError(message)


def _rollback(conn: duckdb.DuckDBPyConnection) -> None:
    # DuckDB may have ended the transaction already (a failed COMMIT rolls back by itself).
    with contextlib.suppress(duckdb.Error):
        conn.rollback()


def _failure(exc: duckdb.Error) -> RecordFailure:
    """A short code for a refused record: the constraint kind, or the DuckDB error class."""
    message = one_line(exc)
    lower = message.lower()
    if isinstance(exc, duckdb.IntegrityError):
        if "not null" in lower:
            return RecordFailure("NOT_NULL_VIOLATION", message, not_null_column(message))
        for needle, code in (
            ("duplicate key", "UNIQUE_VIOLATION"),
            ("unique", "UNIQUE_VIOLATION"),
            ("check constraint", "CHECK_VIOLATION"),
            ("foreign key", "FOREIGN_KEY_VIOLATION"),
        ):
            if needle in lower:
                return RecordFailure(code, message)
        return RecordFailure("CONSTRAINT_VIOLATION", message)
    name = snake_code(type(exc).__name__)  # ConversionException → CONVERSION_ERROR
    if name.endswith("_EXCEPTION"):
        name = name.removesuffix("_EXCEPTION") + "_ERROR"
    return RecordFailure(name, message)
