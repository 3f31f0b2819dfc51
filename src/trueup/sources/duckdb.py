"""DuckDB source: a database file opened read-only, read through DuckDB's own Arrow streams.

Every read runs on its own cursor with ``TimeZone = 'UTC'``. Arrow types are normalised so every
source speaks the same types: integers → int64, floats → float64, strings → string,
timestamps → timestamp[us] (with time zone: timestamp[us, tz=UTC]); uuid arrives as string.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from trueup.errors import SourceError
from trueup.sources.base import Source
from trueup.sources.messages import one_line
from trueup.sqltext import quote_qualified

DEFAULT_BATCH_SIZE = 65536


def normalized_type(arrow_type: pa.DataType) -> pa.DataType:
    """The Arrow type trueup uses for ``arrow_type`` (one type per kind of value across sources)."""
    if pa.types.is_integer(arrow_type):
        return pa.int64()
    if pa.types.is_floating(arrow_type):
        return pa.float64()
    if pa.types.is_large_string(arrow_type) or pa.types.is_string_view(arrow_type):
        return pa.string()
    if pa.types.is_timestamp(arrow_type):
        return pa.timestamp("us", tz="UTC" if arrow_type.tz else None)
    return arrow_type


def normalized_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with every field's type normalised by ``normalized_type``."""
    return pa.schema([field.with_type(normalized_type(field.type)) for field in schema])


class DuckDBConnectionSource(Source):
    """A source over an open DuckDB connection (a database file, or views over files)."""

    def __init__(
        self, conn: duckdb.DuckDBPyConnection, *, shown: str, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> None:
        self._conn = conn
        self._shown = shown
        self._batch_size = batch_size

    def read_table(self, table: str) -> Iterator[pa.RecordBatch]:
        """Stream every row of ``table`` (``schema.table`` allowed) as a RecordBatchReader."""
        reader: Iterator[pa.RecordBatch] = self._reader(
            f"SELECT * FROM {quote_qualified(table)}", table=table
        )
        return reader

    def read_query(self, query: str) -> Iterator[pa.RecordBatch]:
        """Stream the rows of a read-only DuckDB SQL query as a RecordBatchReader."""
        reader: Iterator[pa.RecordBatch] = self._reader(query, table=None)
        return reader

    def columns(self, table: str) -> list[str]:
        """The column names of ``table``; SourceError if it does not exist."""
        reader = self._reader(f"SELECT * FROM {quote_qualified(table)} LIMIT 0", table=table)
        reader.read_all()  # no rows; draining closes the connection or cursor now
        names: list[str] = reader.schema.names
        return names

    def close(self) -> None:
        """Close the DuckDB connection."""
        self._conn.close()

    def duckdb_connection(self) -> duckdb.DuckDBPyConnection | None:
        """A new cursor on this source's DuckDB database (its tables and views by name)."""
        try:
            cursor = self._conn.cursor()
            cursor.execute("SET TimeZone = 'UTC'").fetchall()
        except duckdb.Error as exc:
            raise SourceError(f"cannot read {self._shown}: {one_line(exc)}") from exc
        return cursor

    def _reader(self, sql: str, *, table: str | None) -> pa.RecordBatchReader:
        batches = self._batches(sql, table=table)
        schema = next(batches)  # runs the query now, so errors surface here with the schema
        return pa.RecordBatchReader.from_batches(schema, batches)

    def _batches(self, sql: str, *, table: str | None) -> Iterator[Any]:
        """Yield the normalised Arrow schema first, then the query's record batches."""
        try:
            cursor = (
                self._conn.cursor()
            )  # own connection: concurrent reads do not cancel each other
        except duckdb.Error as exc:
            raise SourceError(f"cannot read {self._shown}: {one_line(exc)}") from exc
        try:
            try:
                cursor.execute("SET TimeZone = 'UTC'")
                reader = cursor.sql(sql).to_arrow_reader(self._batch_size)
            except duckdb.Error as exc:
                raise self._failure(exc, table) from exc
            except AttributeError as exc:  # .sql() of a statement that returns nothing
                raise SourceError(f"query returned no rows to read on {self._shown}") from exc
            schema = normalized_schema(reader.schema)
            same = schema.equals(reader.schema)
            yield schema
            try:
                for batch in reader:
                    yield batch if same else batch.cast(schema)
            except (duckdb.Error, pa.ArrowException) as exc:
                raise self._failure(exc, table) from exc
        finally:
            cursor.close()

    def _failure(self, exc: Exception, table: str | None) -> SourceError:
        if table is not None and isinstance(exc, duckdb.CatalogException):
            return SourceError(f"table {table} not found in {self._shown}")
        if table is not None:
            return SourceError(f"cannot read table {table} from {self._shown}: {one_line(exc)}")
        return SourceError(f"query failed on {self._shown}: {one_line(exc)}")


class DuckDBSource(DuckDBConnectionSource):
    """Reads tables and queries of a DuckDB database file, opened read-only."""

    def __init__(self, path: str | Path, *, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        shown = f"DuckDB database {path}"
        try:
            conn = duckdb.connect(str(path), read_only=True)
        except duckdb.Error as exc:
            raise SourceError(f"cannot open {shown}: {one_line(exc)}") from exc
        super().__init__(conn, shown=shown, batch_size=batch_size)
