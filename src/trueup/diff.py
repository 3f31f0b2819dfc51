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

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
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
    DELETE = "delete"  # missing in source, and the config deletes those (delete_missing)
    UNCHANGED = "unchanged"
    MISSING_IN_SOURCE = "missing_in_source"
    # what the sync's operation keeps from being written (see operations.py)
    MISSING_IN_DESTINATION = "missing_in_destination"  # a create, but operation is update
    EXISTS_IN_DESTINATION = "exists_in_destination"  # an update, but operation is insert
    INVALID = "invalid"
    # rollback plans only (rollback.py): changed again since the run, so reported, never written
    CONFLICT = "conflict"


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
    # What the destination held, for the guards: its records, and per field how many of them
    # hold a value (not null; for a checkbox, true).
    destination_rows: int = 0
    destination_values: Mapping[str, int] = field(default_factory=dict)


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


def _problems(
    col: str, norm: str, spec: FieldSpec, *, is_key: bool, can_fail: bool
) -> list[tuple[str, str]]:
    """(condition, reason) SQL pairs that make a source record invalid, for one column."""
    name = quote_literal(spec.name)
    out = []
    if can_fail:
        raw = f"left(CAST({col} AS VARCHAR), 40)"
        out.append(
            (
                f"{col} IS NOT NULL AND {norm} IS NULL",
                f"{name} || {quote_literal(MSG)} || {raw} || "
                f"{quote_literal(END + spec.type.value)}",
            )
        )
    if spec.type is FieldType.TEXT and spec.length:
        n = int(spec.length)
        out.append(
            (
                f"length({norm}) > {n}",
                f"{name} || ': ' || length({norm}) || ' characters, longer than {n}'",
            )
        )
    if is_key:
        out.append((f"{norm} IS NULL", "'key is null'"))
    elif not spec.nullable and spec.type is not FieldType.BOOLEAN:
        out.append((f"{norm} IS NULL", f"{name} || ': required'"))
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
    con = duckdb.connect()
    try:
        con.register("src_in", source)
        con.register("dst_in", snapshot)
        # a stream can be read only once: the source is kept as a table for the duplicate check
        return _diff_in(con, mapping, key, schema, capabilities, keep_source=True)
    finally:
        con.close()


def diff_in_duckdb(
    con: duckdb.DuckDBPyConnection,
    *,
    source_sql: str,
    snapshot_sql: str,
    mapping: Mapping[str, str],
    key: str,
    schema: DestinationSchema,
    capabilities: Capabilities,
) -> Diff:
    """As ``diff``, where the model and the snapshot are SQL that ``con`` can run in place."""
    try:
        con.execute(f"CREATE OR REPLACE TEMP VIEW src_in AS {source_sql}").fetchall()
        con.execute(f"CREATE OR REPLACE TEMP VIEW dst_in AS {snapshot_sql}").fetchall()
    except duckdb.Error as exc:
        raise PlanError(f"cannot read the model or the destination: {_one_line(exc)}") from exc
    return _diff_in(con, mapping, key, schema, capabilities, keep_source=False)


def _one_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _diff_in(
    con: duckdb.DuckDBPyConnection,
    mapping: Mapping[str, str],
    key: str,
    schema: DestinationSchema,
    capabilities: Capabilities,
    *,
    keep_source: bool,
) -> Diff:
    key_field = mapping[key]
    fields = tuple(f for f in mapping.values() if f != key_field)
    specs = {f: schema.field(f) for f in (key_field, *fields)}
    con.execute("SET TimeZone = 'UTC'").fetchall()
    src_types = _column_types(con, "src_in")
    dst_types = _column_types(con, "dst_in")
    missing = [c for c in mapping if c not in src_types]
    if missing:
        raise PlanError(
            f"the model does not produce mapped column(s): {', '.join(missing)} "
            f"(it produces: {', '.join(src_types)})"
        )
    if key_field not in dst_types:
        raise PlanError(f"the destination snapshot has no key field {key_field!r}")
    by_field = {f: c for c, f in mapping.items()}
    relation = "TABLE" if keep_source else "VIEW"
    con.execute(
        _source_sql(by_field, key_field, fields, specs, capabilities, src_types, relation)
    ).fetchall()
    # keys seen twice: a key-only aggregate, far cheaper than a window over whole rows
    k = quote_ident(key_field)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE dup AS SELECT {k} AS k, count(*) AS n "
        f"FROM s WHERE {k} IS NOT NULL GROUP BY 1 HAVING count(*) > 1"
    ).fetchall()
    rows = con.execute("SELECT count(*) FROM s").fetchall()[0][0]
    records = con.sql(_diff_sql(key_field, fields, specs, capabilities, dst_types))
    table = records.to_arrow_table()  # unordered: Plan sorts where order shows (JSON, samples)
    fingerprint, held_rows, held = _scan_snapshot(
        con, "dst_in", _holds_value(fields, specs, capabilities, dst_types)
    )
    result = _summarize(
        table,
        source_rows=int(rows),
        fields=fields,
        key_field=key_field,
        snapshot_fingerprint=fingerprint,
    )
    return replace(result, destination_rows=held_rows, destination_values=held)


def _holds_value(
    fields: tuple[str, ...],
    specs: Mapping[str, FieldSpec],
    caps: Capabilities,
    dst_types: Mapping[str, str],
) -> dict[str, str]:
    """Per snapshot field, SQL true where it holds a value: not null (a checkbox: true)."""
    out = {}
    for f in fields:
        if f not in dst_types:
            continue
        value = normalize(quote_ident(f), dst_types[f], specs[f], caps)
        out[f] = (
            f"coalesce({value}, FALSE)"
            if specs[f].type is FieldType.BOOLEAN
            else (f"{value} IS NOT NULL")
        )
    return out


def _column_types(con: duckdb.DuckDBPyConnection, view: str) -> dict[str, str]:
    found = con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {view})").fetchall()
    return {str(name): str(kind) for name, kind in found}


def snapshot_fingerprint(snapshot: pa.Table) -> str:
    """An order-independent hash of a destination snapshot: equal iff the content is equal."""
    con = duckdb.connect()
    try:
        con.register("snap", snapshot)
        return _fingerprint(con, "snap")
    finally:
        con.close()


def _fingerprint(con: duckdb.DuckDBPyConnection, view: str) -> str:
    return _scan_snapshot(con, view, {})[0]


def _scan_snapshot(
    con: duckdb.DuckDBPyConnection, view: str, values: Mapping[str, str]
) -> tuple[str, int, dict[str, int]]:
    """One scan of the snapshot: its fingerprint, its record count, and for each field of
    ``values`` (field → SQL true where the field holds a value) how many records hold one."""
    columns = ", ".join(quote_ident(c) for c in _column_types(con, view))
    counted = "".join(f", count(*) FILTER (WHERE {cond})" for cond in values.values())
    # hash(a, b, ...) over the columns is a third cheaper than hashing the row as a struct
    row = con.execute(f"SELECT count(*), bit_xor(hash({columns})){counted} FROM {view}").fetchall()[
        0
    ]
    held = dict(zip(values, (int(n) for n in row[2:]), strict=True))
    if row[1] is None:
        return "0:empty", 0, held
    return f"{row[0]}:{row[1]:016x}", int(row[0]), held


def _source_sql(
    by_field: Mapping[str, str],
    key_field: str,
    fields: tuple[str, ...],
    specs: Mapping[str, FieldSpec],
    caps: Capabilities,
    src_types: Mapping[str, str],
    relation: str,
) -> str:
    """CREATE ``s`` (a TABLE or VIEW): the source in canonical values, why it is invalid."""
    q = quote_ident
    columns, checks = [], []
    for f in (key_field, *fields):
        col, kind = q(by_field[f]), src_types[by_field[f]]
        columns.append(f"{normalize(col, kind, specs[f], caps)} AS {q(f)}")
        # conversion failures are judged before a checkbox's null-as-false default applies
        converted = normalize(col, kind, replace(specs[f], nullable=True), caps)
        checks += _problems(
            col, converted, specs[f], is_key=f == key_field, can_fail=_can_fail(kind, specs[f])
        )
    if checks:
        any_problem = " OR ".join(f"({cond})" for cond, _ in checks)
        reasons = ", ".join(f"CASE WHEN {cond} THEN {why} END" for cond, why in checks)
        problem = f"CASE WHEN {any_problem} THEN concat_ws('; ', {reasons}) END"
    else:
        problem = "CAST(NULL AS VARCHAR)"
    return (
        f"CREATE OR REPLACE TEMP {relation} s AS SELECT {', '.join(columns)}, "
        f"{problem} AS problem, "
        "TRUE AS present FROM src_in"
    )


def _can_fail(input_type: str, spec: FieldSpec) -> bool:
    """Whether converting ``input_type`` to the field's type can fail for a non-null value."""
    t = input_type.upper()
    native = {
        FieldType.TEXT: True,
        FieldType.BOOLEAN: t == "BOOLEAN",
        FieldType.DATE: t == "DATE" or t.startswith("TIMESTAMP"),
        FieldType.DATETIME: t == "DATE" or t.startswith("TIMESTAMP"),
        FieldType.INTEGER: t in _INTEGER_TYPES or t == "BOOLEAN",
        FieldType.NUMBER: t in _INTEGER_TYPES
        or t in ("DOUBLE", "FLOAT", "REAL")
        or t.startswith("DECIMAL"),
    }[spec.type]
    return not native


def _diff_sql(
    key_field: str,
    fields: tuple[str, ...],
    specs: Mapping[str, FieldSpec],
    caps: Capabilities,
    dst_types: Mapping[str, str],
) -> str:
    """The join of ``s`` (with ``dup``) and the snapshot; every row that is not unchanged."""
    q = quote_ident
    d_cols = [
        f"{normalize(q(f), dst_types[f], specs[f], caps)} AS {q(f)}"
        for f in (key_field, *fields)
        if f in dst_types
    ]
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
    invalid = f"(s.problem IS NOT NULL OR s.{k} IS NULL OR dup.n IS NOT NULL)"
    before_cols = ", ".join(
        f"d.{q(f)} AS {q(BEFORE + f)}" if f in dst_types else f"NULL AS {q(BEFORE + f)}"
        for f in fields
    )
    after_cols = ", ".join(f"s.{q(f)}" for f in fields)
    return f"""
WITH d AS (
    SELECT {", ".join(d_cols)}, TRUE AS present FROM dst_in
)
SELECT
    coalesce(s.{k}, d.{k}) AS key,
    CASE
        WHEN s.present IS NULL THEN 'missing_in_source'
        WHEN {invalid} THEN 'invalid'
        WHEN d.present IS NULL THEN 'create'
        ELSE 'update'
    END AS action,
    CASE
        WHEN dup.n IS NOT NULL THEN concat_ws('; ', 'key appears ' || dup.n ||
                                              ' times in the source', s.problem)
        ELSE s.problem
    END AS reason,
    CASE WHEN s.present IS NULL OR {invalid} THEN []::VARCHAR[]
         WHEN d.present IS NULL THEN list_filter([{created_items}], lambda x: x IS NOT NULL)
         ELSE list_filter([{changed_items}], lambda x: x IS NOT NULL) END AS changed,
    {after_cols}, {before_cols}
FROM s LEFT JOIN dup ON s.{k} = dup.k FULL OUTER JOIN d ON s.{k} = d.{k}
WHERE s.present IS NULL OR d.present IS NULL OR {invalid} OR {any_diff}
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
