"""Diff: the model's rows against the destination snapshot, classified per key, inside DuckDB.

Pure: Arrow in, Arrow out. Both sides are renamed to destination field names and normalised to one
canonical type per destination field (``normalize`` below is the only place type-aware equality
lives), then joined once on the key. No per-row Python.

Canonical types: TEXT → VARCHAR, BOOLEAN → BOOLEAN, DATE → DATE, DATETIME → TIMESTAMPTZ (UTC,
millisecond precision), INTEGER → BIGINT, NUMBER → DOUBLE.

Rules (each one written here once):
- booleans: true/false, 1/0 and the strings true/false/t/f/yes/no/y/n/on/off/1/0 (any case) are
  booleans; a field that cannot be null (a checkbox) reads null as false on both sides;
- dates: a timestamp with a zone is converted to its UTC date; a naive timestamp is taken as UTC;
  strings are parsed as a date or, when they carry a time, as a timestamp;
- text: when the destination trims text, leading/trailing whitespace is ignored on both sides; when
  it stores '' as null, '' is null on both sides; non-text values are rendered as text;
- a source value that is not null but cannot be converted makes its record invalid, with the reason;
  so do a null key, a key that appears more than once, text longer than the field and a null in a
  field that cannot be null.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

import duckdb
import pyarrow as pa

from trueup.destinations.base import Capabilities
from trueup.errors import PlanError
from trueup.schema import DestinationSchema, FieldSpec, FieldType
from trueup.sqltext import quote_ident, quote_literal

BEFORE = "before."
MSG = ": cannot convert '"
END = "' to "  # prefix of the before-value columns in Diff.records

_TRUE = "('true','t','yes','y','on','1')"
_FALSE = "('false','f','no','n','off','0')"
_WHITESPACE = "chr(32) || chr(9) || chr(10) || chr(13)"
_INTEGER_TYPES = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
)


class Action(StrEnum):
    """What the plan does with a key."""

    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    MISSING_IN_SOURCE = "missing_in_source"
    INVALID = "invalid"


@dataclass(frozen=True)
class Diff:
    """The classified result: counts for every action, and one row per key that is not unchanged.

    ``records`` columns: ``key``, ``action``, ``reason`` (invalid only), ``changed`` (list of field
    names whose value differs; every non-null field for a create), then each destination field with
    the source's value (canonical type) and ``before.<field>`` with the destination's value.
    """

    counts: Mapping[Action, int]
    field_changes: Mapping[str, int]
    records: pa.Table
    fields: tuple[str, ...]
    key_field: str
    snapshot_fingerprint: str


def canonical_sql_type(kind: FieldType) -> str:
    """The DuckDB type a field's values are compared in."""
    return {
        FieldType.TEXT: "VARCHAR",
        FieldType.BOOLEAN: "BOOLEAN",
        FieldType.DATE: "DATE",
        FieldType.DATETIME: "TIMESTAMPTZ",
        FieldType.INTEGER: "BIGINT",
        FieldType.NUMBER: "DOUBLE",
    }[kind]


def normalize(expr: str, input_type: str, spec: FieldSpec, caps: Capabilities) -> str:
    """SQL turning ``expr`` (of DuckDB type ``input_type``) into the field's canonical value.

    Yields NULL where the value cannot be converted; the caller compares with the raw value to tell
    a conversion failure from a real null.
    """
    t = input_type.upper()
    is_text = t == "VARCHAR" or t.startswith("VARCHAR")
    if spec.type is FieldType.BOOLEAN:
        if t == "BOOLEAN":
            out = expr
        elif t in _INTEGER_TYPES or t.startswith("DECIMAL") or t in ("DOUBLE", "FLOAT"):
            out = f"CASE {expr} WHEN 1 THEN TRUE WHEN 0 THEN FALSE END"
        else:
            s = f"lower(trim(CAST({expr} AS VARCHAR)))"
            out = f"CASE WHEN {s} IN {_TRUE} THEN TRUE WHEN {s} IN {_FALSE} THEN FALSE END"
        return out if spec.nullable else f"coalesce({out}, FALSE)"
    if spec.type is FieldType.DATE:
        if t == "DATE":
            return expr
        if t.startswith("TIMESTAMP WITH TIME ZONE") or t == "TIMESTAMPTZ":
            return f"CAST(timezone('UTC', {expr}) AS DATE)"
        if t.startswith("TIMESTAMP"):
            return f"CAST({expr} AS DATE)"
        s = f"trim(CAST({expr} AS VARCHAR))"
        return (
            f"CASE WHEN regexp_full_match({s}, '\\d{{4}}-\\d{{2}}-\\d{{2}}') "
            f"THEN TRY_CAST({s} AS DATE) "
            f"ELSE CAST(timezone('UTC', TRY_CAST({s} AS TIMESTAMPTZ)) AS DATE) END"
        )
    if spec.type is FieldType.DATETIME:
        if t.startswith("TIMESTAMP") or t == "DATE":
            inner = f"CAST({expr} AS TIMESTAMPTZ)"
        else:
            inner = f"TRY_CAST(trim(CAST({expr} AS VARCHAR)) AS TIMESTAMPTZ)"
        return f"date_trunc('millisecond', {inner})"
    if spec.type is FieldType.INTEGER:
        if t in _INTEGER_TYPES:
            return f"CAST({expr} AS BIGINT)"
        if t == "BOOLEAN":
            return f"CAST({expr} AS BIGINT)"
        num = f"TRY_CAST(trim(CAST({expr} AS VARCHAR)) AS DOUBLE)" if is_text else expr
        return f"CASE WHEN {num} = round({num}) THEN TRY_CAST({num} AS BIGINT) END"
    if spec.type is FieldType.NUMBER:
        if is_text:
            return f"TRY_CAST(trim({expr}) AS DOUBLE)"
        return f"TRY_CAST({expr} AS DOUBLE)"
    # TEXT
    out = expr if is_text else f"CAST({expr} AS VARCHAR)"
    if t == "BOOLEAN":
        out = f"CASE WHEN {expr} THEN 'true' WHEN NOT {expr} THEN 'false' END"
    if caps.trims_text:
        out = f"trim({out}, {_WHITESPACE})"
    if caps.empty_text_is_null:
        out = f"nullif({out}, '')"
    return out


def _problems(col: str, norm: str, spec: FieldSpec, *, is_key: bool) -> list[str]:
    """SQL expressions, each NULL or a reason text, for one source column."""
    name = quote_literal(spec.name)
    raw_text = f"left(CAST({col} AS VARCHAR), 40)"
    out = []
    if spec.type is not FieldType.TEXT:  # text always converts ('' may become null by rule)
        out.append(
            f"CASE WHEN {col} IS NOT NULL AND {norm} IS NULL "
            f"THEN {name} || {quote_literal(MSG)} || "
            f"{raw_text} || {quote_literal(END + spec.type.value)} END"
        )
    if spec.type is FieldType.TEXT and spec.length:
        out.append(
            f"CASE WHEN length({norm}) > {int(spec.length)} THEN {name} || ': ' || "
            f"length({norm}) || ' characters, longer than {int(spec.length)}' END"
        )
    if is_key:
        out.append(f"CASE WHEN {norm} IS NULL THEN 'key is null' END")
    elif not spec.nullable and spec.type is not FieldType.BOOLEAN:
        out.append(f"CASE WHEN {norm} IS NULL THEN {name} || ': required' END")
    return out


def diff(
    source: pa.Table | pa.RecordBatchReader,
    snapshot: pa.Table,
    *,
    mapping: Mapping[str, str],
    key: str,
    schema: DestinationSchema,
    capabilities: Capabilities,
) -> Diff:
    """Classify every key of ``source`` (model columns) against ``snapshot`` (field names)."""
    key_field = mapping[key]
    fields = tuple(f for f in mapping.values() if f != key_field)
    specs = {f: schema.field(f) for f in (key_field, *fields)}
    missing = [c for c in mapping if c not in source.schema.names]
    if missing:
        raise PlanError(
            f"the model does not produce mapped column(s): {', '.join(missing)} "
            f"(it produces: {', '.join(source.schema.names)})"
        )
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        counter = _RowCounter(source)
        con.register("src_in", counter.reader)
        con.register("dst_in", snapshot)
        src_types = dict(
            con.execute("SELECT column_name, column_type FROM (DESCRIBE src_in)").fetchall()
        )
        dst_types = dict(
            con.execute("SELECT column_name, column_type FROM (DESCRIBE dst_in)").fetchall()
        )
        sql = _diff_sql(mapping, key, key_field, fields, specs, capabilities, src_types, dst_types)
        records = con.sql(sql).to_arrow_table()
        fingerprint = _fingerprint(con, "dst_in")
    finally:
        con.close()
    return _summarize(
        records,
        source_rows=counter.rows,
        fields=fields,
        key_field=key_field,
        snapshot_fingerprint=fingerprint,
    )


def snapshot_fingerprint(snapshot: pa.Table) -> str:
    """An order-independent hash of a destination snapshot: equal iff the content is equal."""
    con = duckdb.connect()
    try:
        con.register("snap", snapshot)
        return _fingerprint(con, "snap")
    finally:
        con.close()


def _fingerprint(con: duckdb.DuckDBPyConnection, view: str) -> str:
    row = con.execute(f"SELECT count(*), bit_xor(hash(t)) FROM {view} AS t").fetchone()
    if not row or row[1] is None:
        return "0:empty"
    return f"{row[0]}:{row[1]:016x}"


class _RowCounter:
    """Wraps the source so its rows are counted as DuckDB streams it (per batch, not per row)."""

    def __init__(self, source: pa.Table | pa.RecordBatchReader) -> None:
        self.rows = 0
        if isinstance(source, pa.Table):
            self.rows = source.num_rows
            self.reader: pa.Table | pa.RecordBatchReader = source
        else:
            self.reader = pa.RecordBatchReader.from_batches(source.schema, self._count(source))

    def _count(self, source: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
        for batch in source:
            self.rows += batch.num_rows
            yield batch


def _diff_sql(
    mapping: Mapping[str, str],
    key: str,
    key_field: str,
    fields: tuple[str, ...],
    specs: Mapping[str, FieldSpec],
    caps: Capabilities,
    src_types: Mapping[str, str],
    dst_types: Mapping[str, str],
) -> str:
    q = quote_ident
    by_field = {f: c for c, f in mapping.items()}
    s_cols, problems = [], []
    for f in (key_field, *fields):
        col = q(by_field[f])
        norm = normalize(col, src_types[by_field[f]], specs[f], caps)
        s_cols.append(f"{norm} AS {q(f)}")
        # conversion failures are judged before a checkbox's null-as-false default applies
        converted = normalize(col, src_types[by_field[f]], replace(specs[f], nullable=True), caps)
        problems += _problems(col, converted, specs[f], is_key=f == key_field)
    d_cols = [
        f"{normalize(q(f), dst_types[f], specs[f], caps)} AS {q(f)}"
        for f in (key_field, *fields)
        if f in dst_types
    ]
    if key_field not in dst_types:
        raise PlanError(f"the destination snapshot has no key field {key_field!r}")
    k = q(key_field)
    differs = {
        f: f"s.{q(f)} IS DISTINCT FROM d.{q(f)}" if f in dst_types else f"s.{q(f)} IS NOT NULL"
        for f in fields
    }
    changed_items = ", ".join(f"CASE WHEN {differs[f]} THEN {quote_literal(f)} END" for f in fields)
    created_items = ", ".join(
        f"CASE WHEN s.{q(f)} IS NOT NULL THEN {quote_literal(f)} END" for f in fields
    )
    any_diff = " OR ".join(differs.values()) or "FALSE"
    before_cols = ", ".join(
        f"d.{q(f)} AS {q(BEFORE + f)}" if f in dst_types else f"NULL AS {q(BEFORE + f)}"
        for f in fields
    )
    after_cols = ", ".join(f"s.{q(f)}" for f in fields)
    return f"""
WITH s0 AS (
    SELECT {", ".join(s_cols)}, concat_ws('; ', {", ".join(problems)}) AS problem FROM src_in
), s AS (
    SELECT *, count(*) OVER (PARTITION BY {k}) AS n FROM s0
), d AS (
    SELECT {", ".join(d_cols)}, TRUE AS present FROM dst_in
), j AS (
    SELECT
        coalesce(s.{k}, d.{k}) AS key,
        CASE
            WHEN s.n IS NULL THEN 'missing_in_source'
            WHEN s.problem <> '' OR s.{k} IS NULL OR s.n > 1 THEN 'invalid'
            WHEN d.present IS NULL THEN 'create'
            WHEN {any_diff} THEN 'update'
            ELSE 'unchanged'
        END AS action,
        CASE
            WHEN s.n IS NULL THEN NULL
            WHEN s.{k} IS NOT NULL AND s.n > 1
                THEN concat_ws('; ', 'key appears ' || s.n || ' times in the source',
                               nullif(s.problem, ''))
            ELSE nullif(s.problem, '')
        END AS reason,
        CASE WHEN s.n IS NULL OR s.n > 1 OR s.problem <> '' OR s.{k} IS NULL
                 THEN []::VARCHAR[]
             WHEN d.present IS NULL THEN list_filter([{created_items}], lambda x: x IS NOT NULL)
             ELSE list_filter([{changed_items}], lambda x: x IS NOT NULL) END AS changed,
        {after_cols}, {before_cols}
    FROM s FULL OUTER JOIN d ON s.{k} = d.{k}
)
SELECT key, action, reason, changed, {", ".join(q(f) for f in fields)},
       {", ".join(q(BEFORE + f) for f in fields)}
FROM j WHERE action <> 'unchanged'
ORDER BY action, key
"""


def _summarize(
    records: pa.Table,
    *,
    source_rows: int,
    fields: tuple[str, ...],
    key_field: str,
    snapshot_fingerprint: str,
) -> Diff:
    con = duckdb.connect()
    try:
        con.register("r", records)
        by_action = dict(con.execute("SELECT action, count(*) FROM r GROUP BY action").fetchall())
        per_field = dict(
            con.execute(
                "SELECT f, count(*) FROM (SELECT unnest(changed) AS f FROM r "
                "WHERE action IN ('create', 'update')) GROUP BY f"
            ).fetchall()
        )
    finally:
        con.close()
    counts = {a: int(by_action.get(a.value, 0)) for a in Action}
    counts[Action.UNCHANGED] = source_rows - sum(
        counts[a] for a in (Action.CREATE, Action.UPDATE, Action.INVALID)
    )
    return Diff(
        counts=counts,
        field_changes={f: int(per_field.get(f, 0)) for f in fields},
        records=records,
        fields=fields,
        key_field=key_field,
        snapshot_fingerprint=snapshot_fingerprint,
    )
