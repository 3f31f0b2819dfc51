"""The features model: long feature rows → one wide row per group of records (DESIGN.md §1).

The records table and the features table are read from the source (only the configured columns;
feature rows already filtered to the configured products), loaded into an in-process DuckDB and
pivoted by one SQL statement. Semantics:

- group key ``key = coalesce(group_by, record_id)`` as text; a blank ``group_by`` counts as none.
  Record ids are compared as text; uuid-shaped ids take PostgreSQL's lower-case canonical form.
- per product: ``{code}_enabled`` = any member enabled (FALSE, never null, when no member has a
  row); ``{code}_start_date`` = earliest member ``enabled_at`` as a UTC date;
  ``{code}_updated_date`` = latest member ``updated_at`` as a UTC date (both null when no member has
  a row). Timestamps without a zone, and text without an offset, are taken as UTC. Feature rows
  whose code is not a configured product, or whose record is not in the records table, are ignored.
- ``member_count``, ``is_multi_member`` (> 1), ``group_id`` (the group_by value), ``member_id`` and
  ``member_name`` of the representative: earliest ``created_at`` (null last), ties → smallest id.

Rows come out ordered by key.
"""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pyarrow as pa

from trueup.config import FeaturesModelConfig
from trueup.errors import SourceError
from trueup.models.base import Model
from trueup.sources.base import Source
from trueup.sources.messages import one_line
from trueup.sqltext import quote_ident, quote_literal, quote_qualified

# Internal column names in DuckDB, and the config field each one reads.
_RECORD_COLUMNS = {
    "r_id": "record_id",
    "r_group": "group_by",
    "r_name": "name",
    "r_created": "created_at",
}
_FEATURE_COLUMNS = {
    "f_record": "features_record_id",
    "f_code": "feature_code",
    "f_enabled": "enabled",
    "f_enabled_at": "enabled_at",
    "f_updated_at": "updated_at",
}
_LEADING = [
    ("key", pa.string()),
    ("member_id", pa.string()),
    ("member_name", pa.string()),
    ("group_id", pa.string()),
    ("is_multi_member", pa.bool_()),
    ("member_count", pa.int64()),
]


def source_columns(config: FeaturesModelConfig) -> list[tuple[str, dict[str, str]]]:
    """The columns the model reads from the source: per table, config field → column name."""
    return [
        (config.records_table, {f: getattr(config, f) for f in _RECORD_COLUMNS.values()}),
        (config.features_table, {f: getattr(config, f) for f in _FEATURE_COLUMNS.values()}),
    ]


def output_schema(products: list[str]) -> pa.Schema:
    """The fixed schema of the features model's rows for these product codes."""
    fields = list(_LEADING)
    for code in products:
        fields += [
            (f"{code}_enabled", pa.bool_()),
            (f"{code}_start_date", pa.date32()),
            (f"{code}_updated_date", pa.date32()),
        ]
    return pa.schema(fields)


def _record_id_text(column: str) -> str:
    """SQL for an id as text; uuid-shaped ids in PostgreSQL's canonical lower-case form."""
    text = f"CAST({column} AS VARCHAR)"
    return f"coalesce(CAST(TRY_CAST({text} AS UUID) AS VARCHAR), {text})"


def _utc_date(column: str) -> str:
    """SQL for a timestamp, timestamptz, date or ISO text as a UTC date (session zone is UTC)."""
    return f"CAST(CAST({column} AS TIMESTAMPTZ) AS DATE)"


def pivot_sql(products: list[str]) -> str:
    """The one DuckDB statement computing the model from tables ``records`` and ``features``."""
    per_product: list[str] = []
    outputs: list[str] = []
    for code in products:
        when = f"FILTER (WHERE code = {quote_literal(code)})"
        enabled, start, updated = (
            quote_ident(f"{code}_{suffix}") for suffix in ("enabled", "start_date", "updated_date")
        )
        per_product += [
            f"bool_or(enabled) {when} AS {enabled}",
            f"min(start_date) {when} AS {start}",
            f"max(updated_date) {when} AS {updated}",
        ]
        outputs += [f"coalesce(p.{enabled}, FALSE) AS {enabled}", f"p.{start}", f"p.{updated}"]
    codes = ", ".join(quote_literal(code) for code in products)
    return f"""
WITH typed AS (
    SELECT
        {_record_id_text("r_id")} AS record_id,
        CAST(r_group AS VARCHAR) AS group_text,
        CAST(r_name AS VARCHAR) AS name,
        CAST(r_created AS TIMESTAMPTZ) AS created
    FROM records
), members AS (
    SELECT
        record_id, name, created,
        CASE WHEN trim(group_text) = '' THEN NULL ELSE group_text END AS group_id,
        coalesce(CASE WHEN trim(group_text) = '' THEN NULL ELSE group_text END, record_id) AS key
    FROM typed
), ranked AS (
    SELECT
        key, record_id, name,
        max(group_id) OVER (PARTITION BY key) AS group_id,
        count(*) OVER (PARTITION BY key) AS member_count,
        row_number() OVER (
            PARTITION BY key ORDER BY created ASC NULLS LAST, record_id ASC NULLS LAST
        ) AS rank
    FROM members
), feature_rows AS (
    SELECT
        m.key,
        CAST(f.f_code AS VARCHAR) AS code,
        CAST(f.f_enabled AS BOOLEAN) AS enabled,
        {_utc_date("f.f_enabled_at")} AS start_date,
        {_utc_date("f.f_updated_at")} AS updated_date
    FROM features AS f
    JOIN members AS m ON m.record_id = {_record_id_text("f.f_record")}
    WHERE CAST(f.f_code AS VARCHAR) IN ({codes})
), per_key AS (
    SELECT key, {", ".join(per_product)}
    FROM feature_rows
    GROUP BY key
)
SELECT
    r.key,
    r.record_id AS member_id,
    r.name AS member_name,
    r.group_id,
    r.member_count > 1 AS is_multi_member,
    CAST(r.member_count AS BIGINT) AS member_count,
    {", ".join(outputs)}
FROM ranked AS r
LEFT JOIN per_key AS p ON p.key = r.key
WHERE r.rank = 1
ORDER BY r.key
"""


class FeaturesModel(Model):
    """The long→wide product pivot with many-to-one grouping, computed in DuckDB."""

    def __init__(self, config: FeaturesModelConfig) -> None:
        self.config = config

    def read(self, source: Source) -> pa.RecordBatchReader:
        """Read both tables from the source; return the pivoted rows (materialised in Arrow)."""
        config = self.config
        con = duckdb.connect(":memory:")
        try:
            con.execute("SET TimeZone = 'UTC'")
            records = self._select(source, config.records_table, _RECORD_COLUMNS, where="")
            codes = ", ".join(quote_literal(code) for code in config.products)
            where = f" WHERE {quote_ident(config.feature_code)} IN ({codes})"
            features = self._select(source, config.features_table, _FEATURE_COLUMNS, where=where)
            _load(con, "records", source.read_query(records), list(_RECORD_COLUMNS))
            _load(con, "features", source.read_query(features), list(_FEATURE_COLUMNS))
            try:
                table = con.sql(pivot_sql(config.products)).to_arrow_table()
            except duckdb.Error as exc:
                raise SourceError(f"cannot compute the features model: {one_line(exc)}") from exc
        finally:
            con.close()
        return table.cast(output_schema(config.products)).to_reader()

    def _select(self, source: Source, table: str, columns: dict[str, str], *, where: str) -> str:
        """SQL reading the configured columns of ``table`` by internal names; checks they exist."""
        existing = source.columns(table)
        chosen = {alias: getattr(self.config, field) for alias, field in columns.items()}
        for alias, column in chosen.items():
            if column not in existing:
                raise SourceError(
                    f"table {table} has no column {column!r} "
                    f"(model.{columns[alias]}); its columns: {', '.join(existing)}"
                )
        select = ", ".join(f"{quote_ident(c)} AS {quote_ident(a)}" for a, c in chosen.items())
        return f"SELECT {select} FROM {quote_qualified(table)}{where}"


def _load(
    con: duckdb.DuckDBPyConnection, name: str, batches: Iterator[pa.RecordBatch], columns: list[str]
) -> None:
    """Copy the streamed batches into DuckDB table ``name``, one batch at a time."""
    target = quote_ident(name)
    created = False
    try:
        for batch in batches:
            con.register("incoming", pa.Table.from_batches([batch]))
            verb = f"INSERT INTO {target}" if created else f"CREATE TABLE {target} AS"
            con.execute(f"{verb} SELECT * FROM incoming")
            con.unregister("incoming")
            created = True
        if not created:
            schema = getattr(batches, "schema", None)
            if schema is not None:
                con.register("incoming", schema.empty_table())
                con.execute(f"CREATE TABLE {target} AS SELECT * FROM incoming")
            else:
                typed = ", ".join(f"{quote_ident(c)} VARCHAR" for c in columns)
                con.execute(f"CREATE TABLE {target} ({typed})")
    except duckdb.Error as exc:
        raise SourceError(f"cannot load {name} for the features model: {one_line(exc)}") from exc
