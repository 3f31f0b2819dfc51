"""The sql model: a table or a query of the source, already one row per destination record."""

from __future__ import annotations

import pyarrow as pa

from trueup.config import SqlModelConfig
from trueup.models.base import Model, as_reader
from trueup.sources.base import Source
from trueup.sqltext import quote_qualified


class SqlModel(Model):
    """Reads the configured table (``schema.table`` allowed) or query, as the source streams it."""

    def __init__(self, config: SqlModelConfig) -> None:
        self.config = config

    def read(self, source: Source) -> pa.RecordBatchReader:
        """Stream the table's or the query's rows."""
        if self.config.table is not None:
            return as_reader(source.read_table(self.config.table), what=self.config.table)
        assert self.config.query is not None  # the config guarantees exactly one of the two
        return as_reader(source.read_query(self.config.query), what="the model query")

    def sql(self) -> str:
        """The configured query, or a SELECT of the configured table."""
        if self.config.table is not None:
            return f"SELECT * FROM {quote_qualified(self.config.table)}"
        assert self.config.query is not None
        return self.config.query
