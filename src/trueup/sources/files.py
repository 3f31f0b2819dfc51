"""Files source: CSV and Parquet files (or globs), each exposed as a view in an in-memory DuckDB.

``tables: {name: path-or-glob}`` becomes one DuckDB view per name, so ``read_query`` can join
them in DuckDB SQL. CSV goes through ``read_csv_auto`` (types sniffed: booleans, integers, dates;
timestamps with an offset become timestamptz, read as UTC); Parquet keeps its own types. The
format is chosen from the file extension.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import duckdb

from trueup.errors import SourceError
from trueup.sources.duckdb import DEFAULT_BATCH_SIZE, DuckDBConnectionSource
from trueup.sources.messages import one_line
from trueup.sqltext import quote_ident, quote_literal

_CSV_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".csv.zst")
_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")


def _reader_function(path: str) -> str:
    name = path.lower()
    if name.endswith(_PARQUET_SUFFIXES):
        return "read_parquet"
    if name.endswith(_CSV_SUFFIXES):
        return "read_csv_auto"
    raise SourceError(
        f"cannot tell the format of {path}: name it *.csv or *.parquet "
        f"(known: {', '.join(_CSV_SUFFIXES + _PARQUET_SUFFIXES)})"
    )


class FilesSource(DuckDBConnectionSource):
    """CSV and Parquet files read as tables, through views of an in-memory DuckDB."""

    def __init__(
        self, tables: Mapping[str, str | Path], *, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> None:
        conn = duckdb.connect(":memory:")
        try:
            for name, path in tables.items():
                function = _reader_function(str(path))
                sql = (
                    f"CREATE VIEW {quote_ident(name)} AS "
                    f"SELECT * FROM {function}({quote_literal(str(path))})"
                )
                try:
                    conn.execute(sql)
                except duckdb.Error as exc:
                    raise SourceError(
                        f"cannot read table {name} from {path}: {one_line(exc)}"
                    ) from exc
        except BaseException:
            conn.close()
            raise
        shown = f"files ({', '.join(tables)})"
        super().__init__(conn, shown=shown, batch_size=batch_size)
