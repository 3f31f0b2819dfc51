"""SQLite source: a database file opened read-only with Python's sqlite3, streamed by fetchmany.

SQLite stores loosely typed values, so the Arrow type of each result column comes from its
*declared* type (SQLite passes declared types through views and plain column references), read in
this order:

    contains TIMESTAMPTZ or WITH TIME ZONE → timestamp[us, tz=UTC]  (ISO text; no offset = UTC)
    contains DATETIME or TIMESTAMP         → timestamp[us]          (ISO text; offsets → UTC)
    starts with DATE                       → date32                 (ISO text)
    contains BOOL                          → bool                   (0/1, or true/false text)
    contains INT                           → int64
    contains CHAR, CLOB or TEXT            → string
    contains BLOB                          → binary
    contains REAL, FLOA, DOUB, NUMERIC or DECIMAL → float64
    no declared type (an expression)       → from the first chunk's values: int64, float64,
                                             binary, else string
    anything else (UUID, JSON, ...)        → string

Numbers in timestamp columns are Unix seconds. A value that does not fit its column's type is a
SourceError naming the column, never a silent null.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from trueup.errors import SourceError
from trueup.sources.base import Source
from trueup.sources.messages import one_line
from trueup.sqltext import quote_ident, quote_qualified

DEFAULT_BATCH_SIZE = 10000
_TRUE = {"1", "true", "t", "yes", "y"}
_FALSE = {"0", "false", "f", "no", "n"}


def _to_bool(value: Any) -> bool:
    if isinstance(value, int | float):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError(f"not a boolean: {value!r}")


def _to_datetime(value: Any) -> datetime:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC)
    return datetime.fromisoformat(str(value).strip())


def _to_utc_timestamp(value: Any) -> datetime:
    moment = _to_datetime(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _to_naive_timestamp(value: Any) -> datetime:
    moment = _to_datetime(value)
    return moment if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)


def _to_date(value: Any) -> date:
    text = str(value).strip()
    try:
        return date.fromisoformat(text)
    except ValueError:
        return _to_naive_timestamp(text).date()


def _to_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) else str(value)


def _to_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


_Kind = tuple[pa.DataType, Callable[[Any], Any]]
_INT: _Kind = (pa.int64(), int)
_FLOAT: _Kind = (pa.float64(), float)
_TEXT: _Kind = (pa.string(), _to_text)
_BLOB: _Kind = (pa.binary(), _to_bytes)


def _declared_kind(declared: str) -> _Kind | None:
    """The Arrow type and converter for a declared column type; None when there is none."""
    name = declared.upper()
    if not name.strip():
        return None
    if "TIMESTAMPTZ" in name or "WITH TIME ZONE" in name:
        return pa.timestamp("us", tz="UTC"), _to_utc_timestamp
    if "DATETIME" in name or "TIMESTAMP" in name:
        return pa.timestamp("us"), _to_naive_timestamp
    if name.startswith("DATE"):
        return pa.date32(), _to_date
    rules: list[tuple[tuple[str, ...], _Kind]] = [
        (("BOOL",), (pa.bool_(), _to_bool)),
        (("INT",), _INT),
        (("CHAR", "CLOB", "TEXT"), _TEXT),
        (("BLOB",), _BLOB),
        (("REAL", "FLOA", "DOUB", "NUMERIC", "DECIMAL"), _FLOAT),
    ]
    for needles, kind in rules:
        if any(needle in name for needle in needles):
            return kind
    return _TEXT


def _inferred_kind(values: Sequence[Any]) -> _Kind:
    """The kind of an untyped column, from the Python types of its first chunk."""
    types = {type(v) for v in values if v is not None}
    if types and types <= {int}:
        return _INT
    if types and types <= {int, float}:
        return _FLOAT
    if types == {bytes}:
        return _BLOB
    return _TEXT


def _column_array(values: Sequence[Any], kind: _Kind) -> pa.Array:
    arrow_type, convert = kind
    return pa.array([None if v is None else convert(v) for v in values], type=arrow_type)


class SQLiteSource(Source):
    """Reads tables and queries of a SQLite database file, opened read-only."""

    def __init__(self, path: str | Path, *, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        self._shown = f"SQLite database {path}"
        self._batch_size = batch_size
        try:
            # check_same_thread off: a reader may be drained by DuckDB on another thread.
            self._conn = sqlite3.connect(
                Path(path).resolve().as_uri() + "?mode=ro", uri=True, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise SourceError(f"cannot open {self._shown}: {one_line(exc)}") from exc

    def read_table(self, table: str) -> Iterator[pa.RecordBatch]:
        """Stream every row of ``table`` (``schema.table`` allowed) as a RecordBatchReader."""
        reader: Iterator[pa.RecordBatch] = self._reader(
            f"SELECT * FROM {quote_qualified(table)}", table=table
        )
        return reader

    def read_query(self, query: str) -> Iterator[pa.RecordBatch]:
        """Stream the rows of a read-only SQLite query as a RecordBatchReader."""
        reader: Iterator[pa.RecordBatch] = self._reader(query, table=None)
        return reader

    def columns(self, table: str) -> list[str]:
        """The column names of ``table``; SourceError if it does not exist."""
        try:
            cursor = self._conn.execute(f"SELECT * FROM {quote_qualified(table)} LIMIT 0")
        except sqlite3.Error as exc:
            raise self._failure(exc, table) from exc
        names = [column[0] for column in cursor.description]
        cursor.close()
        return names

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()

    def _declared_types(self, sql: str) -> list[str]:
        """The declared type of each result column, read through a temporary view of ``sql``."""
        view = quote_ident(f"trueup_{uuid.uuid4().hex}")
        self._conn.execute(f"CREATE TEMP VIEW {view} AS {sql.strip().rstrip(';')}")
        try:
            return [row[2] for row in self._conn.execute(f"PRAGMA temp.table_info({view})")]
        finally:
            self._conn.execute(f"DROP VIEW temp.{view}")

    def _reader(self, sql: str, *, table: str | None) -> pa.RecordBatchReader:
        try:
            declared = self._declared_types(sql)
            cursor = self._conn.execute(sql)
        except sqlite3.Error as exc:
            raise self._failure(exc, table) from exc
        names = [column[0] for column in cursor.description]
        kinds = [_declared_kind(d) for d in declared]
        try:
            first = cursor.fetchmany(self._batch_size)
        except sqlite3.Error as exc:
            cursor.close()
            raise self._failure(exc, table) from exc
        first_columns = list(zip(*first, strict=True)) if first else [()] * len(names)
        fixed = [k or _inferred_kind(v) for k, v in zip(kinds, first_columns, strict=True)]
        schema = pa.schema([(n, k[0]) for n, k in zip(names, fixed, strict=True)])
        return pa.RecordBatchReader.from_batches(
            schema, self._batches(cursor, first, schema, fixed, table=table)
        )

    def _batches(
        self,
        cursor: sqlite3.Cursor,
        rows: list[Any],
        schema: pa.Schema,
        kinds: list[_Kind],
        *,
        table: str | None,
    ) -> Iterator[pa.RecordBatch]:
        try:
            while rows:
                arrays = []
                for name, values, kind in zip(
                    schema.names, zip(*rows, strict=True), kinds, strict=True
                ):
                    try:
                        arrays.append(_column_array(values, kind))
                    except (ValueError, TypeError, OverflowError, pa.ArrowException) as exc:
                        raise SourceError(
                            f"column {name!r} of {table or 'the query'} on {self._shown} holds a "
                            f"value that is not {kind[0]}: {one_line(exc)}"
                        ) from exc
                yield pa.RecordBatch.from_arrays(arrays, schema=schema)
                rows = cursor.fetchmany(self._batch_size)
        except sqlite3.Error as exc:
            raise self._failure(exc, table) from exc
        finally:
            cursor.close()

    def _failure(self, exc: sqlite3.Error, table: str | None) -> SourceError:
        detail = one_line(exc)
        missing = detail.startswith(("no such table", "unknown database"))
        if table is not None and missing:
            return SourceError(f"table {table} not found in {self._shown}")
        if table is not None:
            return SourceError(f"cannot read table {table} from {self._shown}: {detail}")
        return SourceError(f"query failed on {self._shown}: {detail}")
