"""A table in PostgreSQL, SQLite or DuckDB as a destination, upserted by its key column.

URLs: ``postgresql://user@host/db`` (SQLAlchemy 2 + psycopg 3), ``sqlite:///file.db`` and
``duckdb:///file.duckdb`` (relative paths resolve against ``base_dir``, the config file's folder;
``sqlite:////abs/path.db`` is absolute). The table must exist; ``create_table`` makes one for demos
and tests.

Writes: one transaction per batch. If a record is refused (NOT NULL, value too long, ...), the
batch is written again record by record (savepoints in PostgreSQL and SQLite, one transaction per
record in DuckDB, which has no savepoints) so the good records land and the bad one is a FAILED
outcome with a short code (``NOT_NULL_VIOLATION``, ``STRING_TOO_LONG``, ...). CREATED versus UPDATED
is the database's answer: ``xmax = 0`` in PostgreSQL's RETURNING; elsewhere, which keys exist, read
in the same transaction.

Snapshot Arrow types (the diff normalises by FieldSpec):

=========  ==========  ========  ======  ==================  =======  =======
backend    TEXT        BOOLEAN   DATE    DATETIME            INTEGER  NUMBER
=========  ==========  ========  ======  ==================  =======  =======
postgres   string      bool      date32  timestamp[us, UTC]  int64    float64
duckdb     string      bool      date32  timestamp[us, UTC]  int64    float64
sqlite     string      int64     string  string (ISO-8601)   int64    float64
=========  ==========  ========  ======  ==================  =======  =======
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from trueup.config import SqlDestinationConfig, redact_url
from trueup.destinations.base import (
    BatchResult,
    Capabilities,
    Destination,
    Operation,
    OutcomeStatus,
    RecordOutcome,
    WriteBatch,
)
from trueup.destinations.sql_alchemy import SqlAlchemyTable
from trueup.destinations.sql_backend import (
    Answer,
    RecordFailure,
    RecordRejected,
    TableEngine,
    key_text,
    one_line,
)
from trueup.destinations.sql_duckdb import DuckDBTable
from trueup.errors import ConfigError, DestinationSchemaError, FatalDestinationError
from trueup.schema import DUCKDB_TYPES, DestinationSchema, FieldSpec, FieldType
from trueup.sqltext import quote_ident

_CAPABILITIES = Capabilities(
    max_batch_size=10_000,
    operations=frozenset(Operation),
    trims_text=False,
    empty_text_is_null=False,
    reports_created=True,
)
_DDL: dict[str, Mapping[FieldType, str]] = {
    "postgresql": {
        FieldType.TEXT: "TEXT",
        FieldType.BOOLEAN: "BOOLEAN",
        FieldType.DATE: "DATE",
        FieldType.DATETIME: "TIMESTAMPTZ",
        FieldType.INTEGER: "BIGINT",
        FieldType.NUMBER: "DOUBLE PRECISION",
    },
    "sqlite": {
        FieldType.TEXT: "TEXT",
        FieldType.BOOLEAN: "BOOLEAN",
        FieldType.DATE: "DATE",
        FieldType.DATETIME: "TIMESTAMP",
        FieldType.INTEGER: "INTEGER",
        FieldType.NUMBER: "REAL",
    },
    "duckdb": DUCKDB_TYPES,
}


class SqlDestination(Destination):
    """A PostgreSQL, SQLite or DuckDB table, written by upsert (or update) on its key column."""

    def __init__(
        self,
        config: SqlDestinationConfig,
        *,
        key_field: str,
        base_dir: Path | None = None,
        lock_timeout: float = 30.0,
    ) -> None:
        self._key_field = key_field
        target = _Target.parse(config.url.get_secret_value(), base_dir or Path.cwd())
        self._engine = target.open(config.table, config.db_schema, lock_timeout=lock_timeout)
        self._schema: DestinationSchema | None = None

    @property
    def capabilities(self) -> Capabilities:
        """Batches up to 10,000; upsert and update; stores text exactly; tells created apart."""
        return _CAPABILITIES

    def describe(self) -> DestinationSchema:
        """Reflect the table now (DestinationSchemaError if it does not exist)."""
        self._schema = self._engine.describe(self._key_field)
        return self._schema

    def snapshot(self, fields: Sequence[str]) -> pa.Table:
        """Every row of the table, exactly ``fields``, in the backend's storage types."""
        schema = self._described()
        for name in fields:
            schema.field(name)
        return self._engine.select(schema, list(fields))

    def duckdb_snapshot(self, con: duckdb.DuckDBPyConnection, fields: Sequence[str]) -> str | None:
        """For a DuckDB file: attach it read-only to ``con`` and return the snapshot's SELECT."""
        if not isinstance(self._engine, DuckDBTable):
            return None
        schema = self._described()
        for name in fields:
            schema.field(name)
        return self._engine.attach(con, schema, list(fields))

    def write(self, batch: WriteBatch) -> BatchResult:
        """Upsert or update the batch in one transaction; a refused record fails alone."""
        schema = self._described()
        records, key = batch.records, batch.key_field
        if key not in records.column_names:
            raise ValueError(f"batch {batch.number} has no key column {key!r}")
        for name in records.column_names:
            schema.field(name)
        if not schema.field(key).unique:
            raise DestinationSchemaError(
                f"{schema.object_name}.{key} must be the primary key or unique to write by it"
            )
        # A record without a key cannot be upserted by it; it fails here, never reaching the table.
        keyed = pc.is_valid(records.column(key))
        missing = RecordFailure("MISSING_KEY", f"record has no {key}", (key,))
        answers: list[Answer] = [missing] * records.num_rows
        sendable = records.filter(keyed)
        if sendable.num_rows:
            try:
                sent = self._engine.write(sendable, key, batch.operation, isolate=False)
            except RecordRejected:
                sent = self._engine.write(sendable, key, batch.operation, isolate=True)
            places = [i for i, ok in enumerate(keyed.to_pylist()) if ok]
            for place, answer in zip(places, sent, strict=True):
                answers[place] = answer
        keys = [key_text(v) for v in records.column(key).to_pylist()]
        outcomes = [
            RecordOutcome(key=k, status=a)
            if isinstance(a, OutcomeStatus)
            else RecordOutcome(
                key=k,
                status=OutcomeStatus.FAILED,
                error_code=a.code,
                message=a.message,
                fields=a.fields,
            )
            for k, a in zip(keys, answers, strict=True)
        ]
        return BatchResult(tuple(outcomes))

    def close(self) -> None:
        """Release the connection pool or DuckDB connection."""
        self._engine.close()

    def _described(self) -> DestinationSchema:
        return self._schema if self._schema is not None else self.describe()


def create_table(
    url: str,
    table: str,
    fields: DestinationSchema | Sequence[FieldSpec],
    key_field: str,
    *,
    db_schema: str | None = None,
    base_dir: Path | None = None,
) -> None:
    """Create ``table`` with a column per field (key PRIMARY KEY), for demos and tests.

    Types: TEXT (VARCHAR(n) when ``length`` is set), BOOLEAN, DATE, TIMESTAMPTZ (SQLite:
    TIMESTAMP), BIGINT (SQLite: INTEGER), DOUBLE; ``nullable=False`` becomes NOT NULL.
    """
    specs = list(fields.fields.values()) if isinstance(fields, DestinationSchema) else list(fields)
    if key_field not in {spec.name for spec in specs}:
        raise ValueError(f"key field {key_field!r} is not among the fields")
    target = _Target.parse(url, base_dir or Path.cwd())
    types = _DDL[target.kind]
    columns = []
    for spec in specs:
        sql_type = types[spec.type]
        if spec.type is FieldType.TEXT and spec.length:
            sql_type = f"VARCHAR({int(spec.length)})"
        # SQLite lets a non-integer PRIMARY KEY hold NULL unless told otherwise.
        rule = " NOT NULL PRIMARY KEY" if spec.name == key_field else ""
        rule = rule or ("" if spec.nullable else " NOT NULL")
        columns.append(f"{quote_ident(spec.name)} {sql_type}{rule}")
    name = ".".join(quote_ident(p) for p in (db_schema, table) if p is not None)
    ddl = f"CREATE TABLE {name} ({', '.join(columns)})"
    target.execute(ddl)


@dataclass(frozen=True)
class _Target:
    """Where a destination URL points: a SQLAlchemy URL (PostgreSQL, SQLite) or a DuckDB file."""

    kind: str
    url: sa.URL | None = None
    path: Path | None = None
    shown: str = ""  # the URL as written, password redacted: safe for messages

    @classmethod
    def parse(cls, url: str, base_dir: Path) -> _Target:
        scheme, sep, rest = url.partition("://")
        scheme = scheme.lower()
        if sep and scheme.split("+", 1)[0] in {"postgresql", "postgres"}:
            try:
                parsed = sa.make_url(url)
            except sa.exc.ArgumentError as exc:
                raise ConfigError(
                    f"not a valid URL: {redact_url(url)}", path="destination.url"
                ) from exc
            url_for_psycopg = parsed.set(drivername="postgresql+psycopg")
            return cls("postgresql", url=url_for_psycopg, shown=redact_url(url))
        if sep and scheme in {"sqlite", "duckdb"} and rest.startswith("/") and len(rest) > 1:
            path = Path(rest[1:].split("?", 1)[0]).expanduser()
            path = path if path.is_absolute() else (base_dir / path).resolve()
            if scheme == "duckdb":
                return cls("duckdb", path=path, shown=url)
            sqlite_url = sa.URL.create("sqlite", database=str(path))
            return cls("sqlite", url=sqlite_url, path=path, shown=url)
        raise ConfigError(
            f"unsupported URL {redact_url(url)!r} "
            "(expected postgresql://..., sqlite:///file.db or duckdb:///file.duckdb)",
            path="destination.url",
        )

    def open(self, table: str, db_schema: str | None, *, lock_timeout: float) -> TableEngine:
        """The table engine for this target (connections open on first use)."""
        if self.kind == "duckdb":
            assert self.path is not None
            return DuckDBTable(self.path, table, db_schema)
        assert self.url is not None
        return SqlAlchemyTable(
            self.url, table, db_schema, shown=self.shown, lock_timeout=lock_timeout
        )

    def execute(self, ddl: str) -> None:
        """Run one DDL statement in its own transaction (files and folders are created)."""
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.kind == "duckdb":
            try:
                with duckdb.connect(str(self.path)) as conn:
                    conn.execute(ddl)
            except duckdb.Error as exc:
                raise FatalDestinationError(f"cannot create table: {one_line(exc)}") from exc
            return
        assert self.url is not None
        engine = sa.create_engine(self.url)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(ddl)
        except sa.exc.DBAPIError as exc:
            reason = one_line(exc.orig, secret=self.url.password)
            raise FatalDestinationError(f"cannot create table: {reason}") from exc
        finally:
            engine.dispose()
