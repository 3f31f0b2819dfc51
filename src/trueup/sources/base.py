"""The Source interface: a database or file set that models read from, as Arrow record batches."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from types import TracebackType

import duckdb
import pyarrow as pa


class Source(ABC):
    """A readable source. Reads stream Arrow record batches; nothing loads a whole table as tuples.

    Errors reaching or reading the source are raised as ``SourceError`` with a one-line message.
    """

    @abstractmethod
    def read_table(self, table: str) -> Iterator[pa.RecordBatch]:
        """Stream every row of ``table`` (optionally ``schema.table``)."""

    @abstractmethod
    def read_query(self, query: str) -> Iterator[pa.RecordBatch]:
        """Stream the rows of a read-only SQL query written in the source's own dialect."""

    @abstractmethod
    def columns(self, table: str) -> list[str]:
        """The column names of ``table``; SourceError if the table does not exist."""

    @abstractmethod
    def close(self) -> None:
        """Release connections and files."""

    def duckdb_connection(self) -> duckdb.DuckDBPyConnection | None:
        """A DuckDB connection in which this source's tables are readable by name, if it has one.

        The plan step uses it to run the model and the diff where the data is, without moving
        rows through Arrow; sources that are not DuckDB-backed return None.
        """
        return None

    def __enter__(self) -> Source:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
