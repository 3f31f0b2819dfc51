"""Sources: where models read from. ``open_source`` turns a loaded config into an open Source.

Every read returns a ``pa.RecordBatchReader`` (an iterator of record batches whose ``.schema`` is
known before the first row, even for an empty result) and raises ``SourceError`` with one line.
"""

from __future__ import annotations

from trueup.config import (
    DuckDBSourceConfig,
    FilesSourceConfig,
    LoadedConfig,
    PostgresSourceConfig,
    SQLiteSourceConfig,
)
from trueup.sources.base import Source
from trueup.sources.duckdb import DuckDBSource
from trueup.sources.files import FilesSource
from trueup.sources.postgres import PostgresSource
from trueup.sources.sqlite import SQLiteSource

__all__ = [
    "DuckDBSource",
    "FilesSource",
    "PostgresSource",
    "SQLiteSource",
    "Source",
    "open_source",
]


def _file_location(loaded: LoadedConfig, path: str) -> str:
    """A config path made absolute against the config's folder; URLs (s3://...) pass through."""
    return path if "://" in path else str(loaded.resolve(path))


def open_source(loaded: LoadedConfig) -> Source:
    """Open the source a loaded config names; relative paths resolve against the config file."""
    config = loaded.config.source
    if isinstance(config, PostgresSourceConfig):
        return PostgresSource(config.url.get_secret_value(), fetch_size=config.fetch_size)
    if isinstance(config, DuckDBSourceConfig):
        return DuckDBSource(loaded.resolve(config.path))
    if isinstance(config, SQLiteSourceConfig):
        return SQLiteSource(loaded.resolve(config.path))
    if isinstance(config, FilesSourceConfig):
        tables = {name: _file_location(loaded, path) for name, path in config.tables.items()}
        return FilesSource(tables)
    raise TypeError(f"unknown source config {type(config).__name__}")  # pragma: no cover
