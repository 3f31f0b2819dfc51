"""PostgreSQL source: SQLAlchemy 2 + psycopg 3, server-side cursors, a fixed Arrow schema per read.

Rows are fetched ``fetch_size`` at a time through a server-side cursor and each chunk is turned
column-wise into a ``pa.RecordBatch``. The Arrow schema is decided from the result's column type
OIDs before the first row arrives, so an empty or all-null chunk cannot change it:

    uuid, text, varchar, json, enums, ... → string      bool → bool
    int2/int4/int8/oid → int64                            float4/float8/numeric → float64
    date → date32        timestamp → timestamp[us]        timestamptz → timestamp[us, tz=UTC]
    time → time64[us]    interval → duration[us]          bytea → binary

Each session runs with ``TimeZone = 'UTC'``, so ``enabled_at::date`` in a query is a UTC date.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import psycopg
import pyarrow as pa
from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Connection, CursorResult, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from trueup.config import redact_url
from trueup.errors import SourceError
from trueup.sources.base import Source
from trueup.sources.messages import one_line
from trueup.sqltext import quote_qualified

CONNECT_TIMEOUT_S = 10


@dataclass(frozen=True)
class _ColumnKind:
    arrow: pa.DataType
    convert: Callable[[Any], Any] | None = None


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _as_json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


_TEXT = _ColumnKind(pa.string())
_OTHER = _ColumnKind(pa.string(), _as_text)  # enums, inet, citext, arrays, ...: their text form
_INT = _ColumnKind(pa.int64())
_FLOAT = _ColumnKind(pa.float64(), float)
_KINDS: dict[int, _ColumnKind] = {
    16: _ColumnKind(pa.bool_()),
    17: _ColumnKind(pa.binary(), bytes),
    18: _TEXT,  # "char"
    19: _TEXT,  # name
    20: _INT,
    21: _INT,
    23: _INT,
    25: _TEXT,
    26: _INT,  # oid
    114: _ColumnKind(pa.string(), _as_json),
    700: _FLOAT,
    701: _FLOAT,
    1042: _TEXT,  # bpchar
    1043: _TEXT,  # varchar
    1082: _ColumnKind(pa.date32()),
    1083: _ColumnKind(pa.time64("us")),
    1114: _ColumnKind(pa.timestamp("us")),
    1184: _ColumnKind(pa.timestamp("us", tz="UTC")),
    1186: _ColumnKind(pa.duration("us")),
    1700: _FLOAT,  # numeric
    2950: _ColumnKind(pa.string(), str),  # uuid: lower-case canonical text, as PostgreSQL prints it
    3802: _ColumnKind(pa.string(), _as_json),
}


def _driver_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` URLs, pointed at the psycopg 3 driver."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme in {"postgresql", "postgres"}:
        return f"postgresql+psycopg://{rest}"
    return url


def _column_array(values: Sequence[Any], kind: _ColumnKind) -> pa.Array:
    if kind.convert is not None:
        convert = kind.convert
        values = [None if v is None else convert(v) for v in values]
    return pa.array(values, type=kind.arrow)


class PostgresSource(Source):
    """Reads tables and queries of a PostgreSQL database, streaming through server-side cursors."""

    def __init__(
        self, url: str, *, fetch_size: int = 5000, connect_timeout: int = CONNECT_TIMEOUT_S
    ) -> None:
        self._shown = f"PostgreSQL at {redact_url(url)}"
        self._fetch_size = fetch_size
        try:
            parsed: URL = make_url(_driver_url(url))
            self._password = parsed.password
            connect_args = (
                {} if "connect_timeout" in parsed.query else {"connect_timeout": connect_timeout}
            )
            self._engine = create_engine(parsed, connect_args=connect_args)
        except (ArgumentError, ImportError, ValueError) as exc:
            raise SourceError(f"invalid PostgreSQL URL {redact_url(url)}: {one_line(exc)}") from exc

    def read_table(self, table: str) -> Iterator[pa.RecordBatch]:
        """Stream every row of ``table`` (``schema.table`` allowed) as a RecordBatchReader."""
        reader: Iterator[pa.RecordBatch] = self._reader(
            f"SELECT * FROM {quote_qualified(table)}", table=table
        )
        return reader

    def read_query(self, query: str) -> Iterator[pa.RecordBatch]:
        """Stream the rows of a read-only SQL query as a RecordBatchReader."""
        reader: Iterator[pa.RecordBatch] = self._reader(query, table=None)
        return reader

    def columns(self, table: str) -> list[str]:
        """The column names of ``table``; SourceError if it does not exist."""
        reader = self._reader(f"SELECT * FROM {quote_qualified(table)} LIMIT 0", table=table)
        reader.read_all()  # no rows; draining closes the connection or cursor now
        names: list[str] = reader.schema.names
        return names

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def _reader(self, sql: str, *, table: str | None) -> pa.RecordBatchReader:
        batches = self._batches(sql, table=table)
        schema = next(batches)  # runs the query now, so errors surface here with the schema
        return pa.RecordBatchReader.from_batches(schema, batches)

    def _batches(self, sql: str, *, table: str | None) -> Iterator[Any]:
        """Yield the Arrow schema first, then one RecordBatch per ``fetch_size`` rows."""
        conn = self._connect()
        result: CursorResult[Any] | None = None
        try:
            try:
                streaming = conn.execution_options(
                    stream_results=True, max_row_buffer=self._fetch_size, no_parameters=True
                )
                result = streaming.exec_driver_sql(sql)
                description = result.cursor.description
            except DBAPIError as exc:
                raise self._failure(exc, table) from exc
            if description is None:
                raise SourceError(f"query returned no rows to read on {self._shown}: {sql[:60]}")
            kinds = [_KINDS.get(cast(int, column[1]), _OTHER) for column in description]
            schema = pa.schema(
                [(column[0], kind.arrow) for column, kind in zip(description, kinds, strict=True)]
            )
            yield schema
            try:
                for rows in result.partitions(self._fetch_size):
                    columns = zip(*rows, strict=True)
                    arrays = [_column_array(v, k) for v, k in zip(columns, kinds, strict=True)]
                    yield pa.RecordBatch.from_arrays(arrays, schema=schema)
            except DBAPIError as exc:
                raise self._failure(exc, table) from exc
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
                what = f"table {table}" if table else "query"
                raise SourceError(
                    f"cannot convert a value of the {what} on {self._shown}: {one_line(exc)}"
                ) from exc
        finally:
            # A reader dropped half-read still closes its server-side cursor, then the connection.
            with contextlib.suppress(SQLAlchemyError):
                if result is not None:
                    result.close()
            conn.close()

    def _connect(self) -> Connection:
        try:
            conn = self._engine.connect()
        except SQLAlchemyError as exc:
            detail = one_line(exc, secret=self._password)
            raise SourceError(f"cannot connect to {self._shown}: {detail}") from exc
        try:
            conn.exec_driver_sql("SET TIME ZONE 'UTC'")
        except SQLAlchemyError as exc:
            conn.close()
            detail = one_line(exc, secret=self._password)
            raise SourceError(f"cannot prepare a session on {self._shown}: {detail}") from exc
        return conn

    def _failure(self, exc: DBAPIError, table: str | None) -> SourceError:
        detail = one_line(exc, secret=self._password)
        missing = (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName)
        if table is not None and isinstance(exc.orig, missing):
            return SourceError(f"table {table} not found in {self._shown}")
        if table is not None:
            return SourceError(f"cannot read table {table} from {self._shown}: {detail}")
        return SourceError(f"query failed on {self._shown}: {detail}")
