"""PostgreSQL and SQLite tables through SQLAlchemy 2 (psycopg 3 for PostgreSQL).

PostgreSQL upserts with ``INSERT ... ON CONFLICT (key) DO UPDATE ... RETURNING (xmax = 0)``, so
created-versus-updated is the server's own answer. SQLite reads which keys exist inside the same
transaction, then inserts the new rows and updates the others. SQLite stores booleans as 0/1 and
dates and datetimes as ISO-8601 text; its snapshot returns them as stored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from trueup.destinations.base import Operation
from trueup.destinations.sql_backend import (
    CANONICAL_ARROW,
    Answer,
    RecordFailure,
    RecordRejected,
    TableEngine,
    answers_for,
    key_text,
    last_occurrences,
    not_null_column,
    one_line,
    snake_code,
    to_arrow,
    upsert_answers,
)
from trueup.errors import (
    DestinationError,
    DestinationSchemaError,
    FatalDestinationError,
    TransientDestinationError,
)
from trueup.schema import DestinationSchema, FieldSpec, FieldType

_PG_CODES = {"STRING_DATA_RIGHT_TRUNCATION": "STRING_TOO_LONG"}
_SQLITE_CODES = {
    "SQLITE_CONSTRAINT_NOTNULL": "NOT_NULL_VIOLATION",
    "SQLITE_CONSTRAINT_UNIQUE": "UNIQUE_VIOLATION",
    "SQLITE_CONSTRAINT_PRIMARYKEY": "UNIQUE_VIOLATION",
    "SQLITE_CONSTRAINT_CHECK": "CHECK_VIOLATION",
    "SQLITE_CONSTRAINT_FOREIGNKEY": "FOREIGN_KEY_VIOLATION",
}
_SQLITE_STORAGE = {
    FieldType.TEXT: pa.string(),
    FieldType.BOOLEAN: pa.int64(),
    FieldType.DATE: pa.string(),
    FieldType.DATETIME: pa.string(),
    FieldType.INTEGER: pa.int64(),
    FieldType.NUMBER: pa.float64(),
}
_SCHEMA_SQLSTATES = {"42P01", "42703", "3F000"}


class SqlAlchemyTable(TableEngine):
    """A PostgreSQL or SQLite table; ``url`` is a SQLAlchemy URL, ``shown`` its redacted form."""

    def __init__(
        self, url: sa.URL, table: str, db_schema: str | None, *, shown: str, lock_timeout: float
    ) -> None:
        self._table = table
        self._schema = db_schema
        self._name = f"{db_schema}.{table}" if db_schema else table
        self._secret = url.password
        self._shown = shown
        self._is_pg = url.get_backend_name() == "postgresql"
        self._file = None if self._is_pg else Path(url.database or "")
        self._engine = _create_engine(url, lock_timeout=lock_timeout, postgres=self._is_pg)
        self._read_as: dict[str, sa.types.TypeEngine[Any]] = {}

    # --- reading ---------------------------------------------------------------------------------
    def describe(self, key_field: str) -> DestinationSchema:
        """Reflect the table's columns, NOT NULL and single-column PK/unique constraints."""
        with self._connect(write=False) as conn:
            try:
                inspector = sa.inspect(conn)
                if not inspector.has_table(self._table, schema=self._schema):
                    raise DestinationSchemaError(
                        f"table {self._name} does not exist in {self._shown}"
                    )
                columns = inspector.get_columns(self._table, schema=self._schema)
                unique = _unique_columns(inspector, self._table, self._schema)
            except sa.exc.DBAPIError as exc:
                raise self._error(exc) from exc
        fields: dict[str, FieldSpec] = {}
        self._read_as = {}
        for column in columns:
            name = column["name"]
            field_type, length, read_as = _field_type(column["type"])
            if read_as is not None:
                self._read_as[name] = read_as
            fields[name] = FieldSpec(
                name=name,
                type=field_type,
                nullable=bool(column["nullable"]),
                length=length,
                unique=name in unique,
                external_id=name == key_field and name in unique,
            )
        return DestinationSchema(object_name=self._name, fields=fields)

    def select(self, schema: DestinationSchema, fields: Sequence[str]) -> pa.Table:
        """Every row, ``fields`` only; PostgreSQL in canonical types, SQLite as stored."""
        table = self._clause(fields)
        exprs = [
            sa.cast(table.c[f], self._read_as[f]).label(f) if f in self._read_as else table.c[f]
            for f in fields
        ]
        columns: list[list[object]] = [[] for _ in fields]
        with self._connect(write=False) as conn:
            try:
                result = conn.execution_options(yield_per=20_000).execute(sa.select(*exprs))
                for partition in result.partitions():
                    for values, column in zip(zip(*partition, strict=True), columns, strict=True):
                        column.extend(values)
            except sa.exc.DBAPIError as exc:
                raise self._error(exc) from exc
        storage = CANONICAL_ARROW if self._is_pg else _SQLITE_STORAGE
        arrays = [
            to_arrow(values, storage[schema.fields[f].type], f"{self._name}.{f}")
            for f, values in zip(fields, columns, strict=True)
        ]
        return pa.Table.from_arrays(arrays, names=list(fields))

    # --- writing ---------------------------------------------------------------------------------
    def write(
        self, records: pa.Table, key: str, operation: Operation, *, isolate: bool
    ) -> list[Answer]:
        """One transaction; with ``isolate`` every record runs inside its own savepoint."""
        rows = self._bind_rows(records)
        try:
            with self._connect(write=True) as conn, conn.begin():
                if not isolate:
                    return self._write_rows(conn, rows, key, operation)
                answers: list[Answer] = []
                for row in rows:
                    try:
                        with conn.begin_nested():
                            answers += self._write_rows(conn, [row], key, operation)
                    except RecordRejected as rejected:
                        answers.append(rejected.failure)
                return answers
        except sa.exc.DBAPIError as exc:
            raise self._error(exc, write=True) from exc

    def _write_rows(
        self, conn: sa.Connection, rows: list[dict[str, Any]], key: str, operation: Operation
    ) -> list[Answer]:
        keys = [key_text(row[key]) for row in rows]
        final = [rows[i] for i in last_occurrences(keys)]
        table = self._clause(list(rows[0]))
        try:
            if operation is Operation.UPSERT and self._is_pg:
                result = conn.execute(self._pg_upsert(table, key), final)
                return upsert_answers(keys, {key_text(k) for k, created in result if not created})
            locks = operation in (Operation.UPDATE, Operation.DELETE)
            existing = self._existing(conn, table, key, final, lock=locks)
            held = [r for r in final if key_text(r[key]) in existing]
            new = [r for r in final if key_text(r[key]) not in existing]
            if operation in (Operation.UPSERT, Operation.INSERT) and new:
                conn.execute(sa.insert(table), new)
            if operation is Operation.DELETE:
                self._delete(conn, table, key, held)
            elif operation is not Operation.INSERT:
                self._update(conn, table, key, held)
        except (sa.exc.IntegrityError, sa.exc.DataError) as exc:
            raise RecordRejected(self._failure(exc)) from exc
        return answers_for(operation, keys, existing, key)

    def _pg_upsert(self, table: sa.TableClause, key: str) -> sa.Executable:
        stmt = pg_insert(table)
        values = [c.name for c in table.columns if c.name != key] or [key]
        return stmt.on_conflict_do_update(
            index_elements=[table.c[key]], set_={c: stmt.excluded[c] for c in values}
        ).returning(table.c[key], sa.literal_column("xmax = 0"))

    def _existing(
        self,
        conn: sa.Connection,
        table: sa.TableClause,
        key: str,
        rows: list[dict[str, Any]],
        *,
        lock: bool,
    ) -> set[str]:
        found: set[str] = set()
        values = [row[key] for row in rows]
        for start in range(0, len(values), 500):
            chunk = values[start : start + 500]
            query = sa.select(table.c[key]).where(table.c[key].in_(chunk))
            if lock and self._is_pg:
                query = query.with_for_update()
            found.update(key_text(value) for value in conn.execute(query).scalars())
        return found

    def _update(
        self, conn: sa.Connection, table: sa.TableClause, key: str, rows: list[dict[str, Any]]
    ) -> None:
        names = {c.name: f"trueup_v{i}" for i, c in enumerate(table.columns) if c.name != key}
        if not rows or not names:
            return
        stmt = (
            sa.update(table)
            .where(table.c[key] == sa.bindparam("trueup_key"))
            .values({table.c[c]: sa.bindparam(p) for c, p in names.items()})
        )
        params = [{"trueup_key": r[key], **{p: r[c] for c, p in names.items()}} for r in rows]
        conn.execute(stmt, params)

    def _delete(
        self, conn: sa.Connection, table: sa.TableClause, key: str, rows: list[dict[str, Any]]
    ) -> None:
        values = [row[key] for row in rows]
        for start in range(0, len(values), 500):
            conn.execute(sa.delete(table).where(table.c[key].in_(values[start : start + 500])))

    def close(self) -> None:
        """Dispose of the connection pool."""
        self._engine.dispose()

    # --- helpers ---------------------------------------------------------------------------------
    def _clause(self, columns: Sequence[str]) -> sa.TableClause:
        return sa.table(
            self._table, *(sa.column(c) for c in dict.fromkeys(columns)), schema=self._schema
        )

    def _bind_rows(self, records: pa.Table) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = records.to_pylist()
        if self._is_pg:
            return rows
        temporal = [
            f.name
            for f in records.schema
            if pa.types.is_date(f.type) or pa.types.is_timestamp(f.type)
        ]
        for row in rows:
            for name in temporal:
                row[name] = _sqlite_text(row[name])
        return rows

    @contextmanager
    def _connect(self, *, write: bool) -> Iterator[sa.Connection]:
        if self._file is not None and not self._file.exists():
            raise DestinationSchemaError(
                f"table {self._name} does not exist: no SQLite file at {self._file}"
            )
        try:
            conn = self._engine.connect()
        except sa.exc.DBAPIError as exc:
            kind = TransientDestinationError if write else FatalDestinationError
            reason = one_line(exc.orig, secret=self._secret)
            raise kind(f"cannot connect to {self._shown}: {reason}") from exc
        with conn:
            yield conn

    def _failure(self, exc: sa.exc.DBAPIError) -> RecordFailure:
        orig = exc.orig
        message = one_line(orig, secret=self._secret)
        if self._is_pg:
            code = snake_code(type(orig).__name__)
            sqlstate = getattr(orig, "sqlstate", None)
            column = getattr(getattr(orig, "diag", None), "column_name", None)
            suffix = f" (SQLSTATE {sqlstate})" if sqlstate else ""
            fields = (column,) if column else ()
            return RecordFailure(_PG_CODES.get(code, code), message + suffix, fields)
        name = str(getattr(orig, "sqlite_errorname", "") or "SQLITE_CONSTRAINT")
        return RecordFailure(_SQLITE_CODES.get(name, name), message, not_null_column(message))

    def _error(self, exc: sa.exc.DBAPIError, *, write: bool = False) -> DestinationError:
        message = f"{self._name}: {one_line(exc.orig, secret=self._secret)}"
        sqlstate = str(getattr(exc.orig, "sqlstate", "") or "")
        if self._is_pg:
            transient = (
                exc.connection_invalidated
                or isinstance(exc, sa.exc.OperationalError)
                or sqlstate[:2] in {"08", "40", "53", "57"}
                or sqlstate == "55P03"
            )
            schema_problem = sqlstate in _SCHEMA_SQLSTATES
        else:
            text = str(exc.orig).lower()
            transient = isinstance(exc, sa.exc.OperationalError) and (
                "locked" in text or "busy" in text
            )
            schema_problem = "no such table" in text or "no such column" in text
        if schema_problem:
            return DestinationSchemaError(message)
        if transient and write:
            return TransientDestinationError(message)
        return FatalDestinationError(message)


def _create_engine(url: sa.URL, *, lock_timeout: float, postgres: bool) -> sa.Engine:
    if postgres:
        options = f"-c lock_timeout={max(1, round(lock_timeout * 1000))}"
        connect_args: dict[str, Any] = {"connect_timeout": 10, "options": options}
        return sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    engine = sa.create_engine(url, connect_args={"timeout": lock_timeout})

    # pysqlite's legacy transaction control skips BEGIN before SAVEPOINT; take control of BEGIN so
    # per-record savepoints nest inside the batch transaction (SQLAlchemy's documented recipe).
    @sa.event.listens_for(engine, "connect")
    def _no_driver_begin(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine


def _unique_columns(inspector: sa.Inspector, table: str, schema: str | None) -> set[str]:
    """Columns that are unique on their own: a one-column PK, unique constraint or unique index."""
    pk = inspector.get_pk_constraint(table, schema=schema).get("constrained_columns") or []
    groups: list[list[str | None]] = [list(pk)]
    groups += [
        list(u["column_names"]) for u in inspector.get_unique_constraints(table, schema=schema)
    ]
    groups += [
        list(ix["column_names"])
        for ix in inspector.get_indexes(table, schema=schema)
        if ix.get("unique")
    ]
    return {str(group[0]) for group in groups if len(group) == 1 and group[0] is not None}


def _field_type(
    column_type: sa.types.TypeEngine[Any],
) -> tuple[FieldType, int | None, sa.types.TypeEngine[Any] | None]:
    """FieldType, text length, and the type to read the column as when the driver's won't do."""
    if isinstance(column_type, sa.Boolean):
        return FieldType.BOOLEAN, None, None
    if isinstance(column_type, sa.DateTime):
        return FieldType.DATETIME, None, None
    if isinstance(column_type, sa.Date):
        return FieldType.DATE, None, None
    if isinstance(column_type, sa.Integer):
        return FieldType.INTEGER, None, None
    if isinstance(column_type, sa.Float):
        return FieldType.NUMBER, None, None
    if isinstance(column_type, sa.Numeric):  # exact decimals read as float, like every NUMBER
        return FieldType.NUMBER, None, sa.Float()
    if isinstance(column_type, sa.String):
        return FieldType.TEXT, column_type.length, None
    return FieldType.TEXT, None, sa.Text()  # uuid, json, time, ...: compared as their text


def _sqlite_text(value: object) -> object:
    """Dates as ``YYYY-MM-DD``, datetimes as ISO-8601 in UTC; other values unchanged."""
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return aware.astimezone(dt.UTC).isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value
