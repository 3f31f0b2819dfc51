"""Rollback: the reverse plan of a run, from its stored before-images and per-record outcomes.

For every record the run wrote (outcome created, updated or deleted), the destination is read now
and compared, field by field in canonical values (``diff.normalize``, the diff's own equality),
with what the run wrote:

- updated, and every field the run changed still holds the run's value → restore the fields'
  before-values (an ``update``);
- created, and every field the run wrote still holds the run's value → ``delete``;
- deleted, and not there now → ``create`` it again from its before-images;
- already as the rollback would leave it (restored, re-created, or a created record gone) →
  nothing to do (``unchanged``);
- anything else was changed again since the run → ``conflict``: listed with the field, what the run
  wrote and what the destination holds now, and never written.

Records the run failed or skipped are not touched. What the records to keep should hold is a
small "source" diffed against the destination by ``diff.diff`` (``delete_missing`` for those to
delete), so the writes are exactly what a sync towards it would send. The result is a ``Plan``:
rendered, saved, applied by ``apply_plan``, whose before-images make it a run that can be undone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from trueup.config import LoadedConfig
from trueup.destinations.base import Capabilities, Destination, Operation, OutcomeStatus
from trueup.diff import BEFORE, Action, diff, normalize, snapshot_fingerprint
from trueup.errors import PlanError
from trueup.operations import SyncOperation, restrict
from trueup.pipeline import destination_name, field_types, mapped_fields
from trueup.plan import Plan, records_schema
from trueup.progress import ProgressCallback, ProgressEvent, no_progress
from trueup.schema import DestinationSchema, FieldSpec, FieldType
from trueup.sqltext import quote_ident, quote_literal
from trueup.store import BeforeImage, RunStatus, RunStore, RunSummary, StoredOutcome

# What the run did to a record, as the destination answered (the others are left alone).
_WRITTEN = (OutcomeStatus.CREATED, OutcomeStatus.UPDATED, OutcomeStatus.DELETED)

_ROW = "trueup.row"  # the snapshot's row number, inside the comparison

# Why a record is a conflict (the ``reason`` of its plan record).
CHANGED_SINCE = "changed since the run"
DELETED_SINCE = "deleted since the run"
CREATED_AGAIN = "deleted by the run, created again since"


@dataclass(frozen=True)
class Conflict:
    """One field of a record changed again since the run: the rollback leaves the record alone.

    ``run_wrote`` is None for a record the run deleted; ``now`` is None for a record deleted since.
    """

    key: str
    field: str
    run_wrote: Any
    now: Any
    reason: str

    def to_json(self) -> dict[str, Any]:
        """The conflict as JSON values (dates ISO, date-times ISO-8601 UTC with ``Z``)."""
        return {
            "key": self.key,
            "field": self.field,
            "run_wrote": _encode(self.run_wrote),
            "now": _encode(self.now),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class RollbackPlan:
    """The reverse plan of a run, and what it leaves alone."""

    run: RunSummary  # the run rolled back
    plan: Plan
    untouched: int  # records the run failed or skipped: not rolled back
    earlier_rollbacks: tuple[int, ...] = ()  # runs that rolled this one back before

    def conflicts(self) -> list[Conflict]:
        """Every conflicting field, in key order."""
        return conflicts(self.plan)


def conflicts(plan: Plan) -> list[Conflict]:
    """The conflicts a (rollback) plan reports, one per record and field, in key order."""
    rows = plan.sample(Action.CONFLICT, plan.counts.get(Action.CONFLICT, 0))
    return [
        Conflict(row["key"], name, row[name], row[BEFORE + name], row["reason"])
        for row in rows.to_pylist()
        for name in row["changed"]
    ]


def _encode(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def plan_rollback(
    loaded: LoadedConfig,
    run_id: int,
    store: RunStore,
    destination: Destination,
    *,
    progress: ProgressCallback = no_progress,
) -> RollbackPlan:
    """The plan that undoes run ``run_id`` on ``destination`` as far as nothing changed since.

    StoreError when there is no such run; PlanError when it wrote to another destination than the
    config's, has not finished, or changed fields the config no longer maps.
    """
    config = loaded.config
    run = store.get_run(run_id).summary
    name = destination_name(config)
    if run.destination != name:
        raise PlanError(
            f"run {run_id} wrote to {run.destination}; this config's destination is {name}"
        )
    if run.status is RunStatus.RUNNING:
        raise PlanError(f"run {run_id} has not finished; roll it back once it has")
    written, untouched = _written(store.outcomes(run_id))
    images = [i for i in store.before_images(run_id) if i.key in written]
    schema = destination.describe()
    types = field_types(schema, config)
    fields = mapped_fields(config)
    unmapped = sorted({i.field for i in images} - set(fields))
    if unmapped:
        raise PlanError(
            f"run {run_id} changed field(s) the config no longer maps: {', '.join(unmapped)}; "
            "map them again to roll it back"
        )
    progress(ProgressEvent("read destination", 0))
    snapshot = destination.snapshot(list(fields))
    progress(ProgressEvent("read destination", snapshot.num_rows, snapshot.num_rows))
    progress(ProgressEvent("diff", 0))
    judged = _judge(snapshot, written, images, schema, fields, destination.capabilities)
    result = diff(
        judged.restore,
        judged.snapshot,
        mapping={f: f for f in fields},
        key=config.key_field,
        schema=schema,
        capabilities=destination.capabilities,
    )
    # the records to delete are in the destination and not in the restore "source"
    result = restrict(result, SyncOperation.UPSERT, delete_missing=True)
    # operation update: apply writes updates as updates (never creating a record deleted since)
    # and creates as inserts (never overwriting one created since)
    plan = Plan.from_diff(
        result,
        config_fingerprint=config.fingerprint(),
        destination=name,
        field_types=types,
        operation=SyncOperation.UPDATE,
    )
    counts = dict(plan.counts)
    counts[Action.CONFLICT] = judged.conflicts.num_rows
    counts[Action.UNCHANGED] = counts.get(Action.UNCHANGED, 0) + judged.gone
    plan = dataclasses.replace(
        plan,
        records=pa.concat_tables([plan.records, judged.conflicts.cast(plan.records.schema)]),
        counts=counts,
        destination_fingerprint=snapshot_fingerprint(snapshot),
        destination_rows=snapshot.num_rows,
        destination_values=judged.held,
        reverts_run=run_id,
    )
    _check_supported(plan, destination.capabilities, name)
    earlier = tuple(r.id for r in store.rollbacks_of(run_id))
    return RollbackPlan(run, plan, untouched, earlier)


def _written(outcomes: Sequence[StoredOutcome]) -> tuple[dict[str, OutcomeStatus], int]:
    """Each key the run wrote with what it did (the last answer wins), and how many it did not."""
    last = {o.key: o.status for o in outcomes}
    written = {k: s for k, s in last.items() if s in _WRITTEN}
    return written, len(last) - len(written)


def _check_supported(plan: Plan, caps: Capabilities, name: str) -> None:
    needed = (
        (Action.CREATE, Operation.INSERT),
        (Action.UPDATE, Operation.UPDATE),
        (Action.DELETE, Operation.DELETE),
    )
    for action, op in needed:
        if plan.counts.get(action, 0) and op not in caps.operations:
            raise PlanError(f"{name} cannot {op.value} records, so this run cannot be rolled back")


@dataclass(frozen=True)
class _Judged:
    restore: pa.Table  # what the records to keep should hold: key field + every mapped field
    snapshot: pa.Table  # the destination's records to restore or delete, as it stores them
    conflicts: pa.Table  # plan records (action conflict) of the records left alone
    gone: int  # records the run created that are gone already
    held: dict[str, int]  # per field, the destination's records holding a value


def _judge(
    snapshot: pa.Table,
    written: Mapping[str, OutcomeStatus],
    images: Sequence[BeforeImage],
    schema: DestinationSchema,
    fields: Sequence[str],
    caps: Capabilities,
) -> _Judged:
    """Compare every record the run wrote with the destination now, inside DuckDB."""
    key_field, others = fields[0], fields[1:]
    specs = {f: schema.field(f) for f in fields}
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'").fetchall()
        # a row number, so the records to keep are taken from the snapshot exactly as it is
        rows = pa.array(range(snapshot.num_rows), pa.int64())
        con.register("dst_in", snapshot.append_column(_ROW, rows))
        statuses = [s.value for s in written.values()]
        con.register("run_written", pa.table({"key": list(written), "status": statuses}))
        con.register("run_images", _images_table(images))
        dst_types = {
            str(n): str(t)
            for n, t in con.execute(
                "SELECT column_name, column_type FROM (DESCRIBE dst_in)"
            ).fetchall()
        }
        key_spec, q = specs[key_field], quote_ident
        dst_key = normalize(q(key_field), dst_types[key_field], key_spec, caps)
        text_key = normalize("key", "VARCHAR", key_spec, caps)
        now = ", ".join(
            f"{normalize(q(f), dst_types[f], specs[f], caps)} AS {q('now.' + f)}" for f in others
        )
        con.execute(
            f"CREATE TEMP TABLE d AS SELECT {dst_key} AS k{', ' if now else ''}{now} FROM dst_in"
        ).fetchall()
        con.execute(_pivot_sql(others, specs, caps, text_key)).fetchall()
        con.execute(_judge_sql(others, text_key)).fetchall()
        restore = con.sql(_restore_sql(key_field, others)).to_arrow_table()
        kept = con.sql(
            f"SELECT {q(_ROW)} FROM dst_in WHERE {dst_key} IN "
            "(SELECT k FROM c WHERE verdict IN ('restore', 'delete')) ORDER BY 1"
        ).to_arrow_table()
        found = con.sql(_conflict_sql(others)).to_arrow_table()
        gone = con.execute("SELECT count(*) FROM c WHERE verdict = 'gone'").fetchall()[0][0]
        held = _held(con, others, specs)
    finally:
        con.close()
    types = {f: s.type for f, s in specs.items()}
    return _Judged(
        restore=restore,
        snapshot=snapshot.take(kept.column(0)),
        conflicts=found.cast(records_schema(types, tuple(others))),
        gone=int(gone),
        held=held,
    )


def _held(
    con: duckdb.DuckDBPyConnection, fields: Sequence[str], specs: Mapping[str, FieldSpec]
) -> dict[str, int]:
    """Per field, the destination's records holding a value (a checkbox: true), counted as the
    diff counts them for the guards (``Plan.destination_values``)."""
    now = {f: quote_ident("now." + f) for f in fields}
    holds = [
        f"coalesce({now[f]}, FALSE)"
        if specs[f].type is FieldType.BOOLEAN
        else f"{now[f]} IS NOT NULL"
        for f in fields
    ]
    counted = ", ".join(f"count(*) FILTER (WHERE {h})" for h in holds)
    row = con.execute(f"SELECT {counted} FROM d").fetchall()[0] if fields else ()
    return {f: int(n) for f, n in zip(fields, row, strict=True)}


def _images_table(images: Sequence[BeforeImage]) -> pa.Table:
    return pa.table(
        {
            "key": pa.array([i.key for i in images], pa.string()),
            "field": pa.array([i.field for i in images], pa.string()),
            "before_json": pa.array([i.before for i in images], pa.string()),
            "after_json": pa.array([i.after for i in images], pa.string()),
        }
    )


def _pivot_sql(
    fields: Sequence[str], specs: Mapping[str, FieldSpec], caps: Capabilities, text_key: str
) -> str:
    """CREATE ``w``: per key, for each field whether the run changed it (``has.``) and its
    before- and after-value in canonical types (``was.``, ``wrote.``)."""
    q = quote_ident
    raw, canonical = [], []
    for i, f in enumerate(fields):
        is_f = f"field = {quote_literal(f)}"
        raw.append(f"bool_or({is_f}) AS h{i}")
        for side, column in (("b", "before_json"), ("a", "after_json")):
            value = f"json_extract_string({column}, '$')"
            raw.append(f"max(CASE WHEN {is_f} THEN {value} END) AS {side}{i}")
        canonical += [
            f"coalesce(h{i}, FALSE) AS {q('has.' + f)}",
            f"{normalize(f'b{i}', 'VARCHAR', specs[f], caps)} AS {q('was.' + f)}",
            f"{normalize(f'a{i}', 'VARCHAR', specs[f], caps)} AS {q('wrote.' + f)}",
        ]
    grouped = ", ".join(raw)
    return (
        f"CREATE TEMP TABLE w AS SELECT k{''.join(', ' + c for c in canonical)} FROM "
        f"(SELECT {text_key} AS k{', ' if grouped else ''}{grouped} FROM run_images GROUP BY 1)"
    )


def _judge_sql(fields: Sequence[str], text_key: str) -> str:
    """CREATE ``c``: every record the run wrote, with its values now and then, and its verdict."""
    q = quote_ident

    def holds(side: str) -> str:
        checks = [
            f"(NOT coalesce(w.{q('has.' + f)}, FALSE) OR "
            f"w.{q(side + f)} IS NOT DISTINCT FROM d.{q('now.' + f)})"
            for f in fields
        ]
        return " AND ".join(checks) or "TRUE"

    columns = "".join(
        f"w.{q(side + f)}, " for f in fields for side in ("has.", "was.", "wrote.")
    ) + "".join(f"d.{q('now.' + f)}, " for f in fields)
    return f"""
CREATE TEMP TABLE c AS
SELECT o.k, o.status, d.k IS NOT NULL AS present, {columns}
    CASE
        WHEN o.status = 'updated' AND d.k IS NULL THEN 'conflict'
        WHEN o.status = 'updated' AND (({holds("wrote.")}) OR ({holds("was.")})) THEN 'restore'
        WHEN o.status = 'created' AND d.k IS NULL THEN 'gone'
        WHEN o.status = 'created' AND ({holds("wrote.")}) THEN 'delete'
        WHEN o.status = 'deleted' AND (d.k IS NULL OR ({holds("was.")})) THEN 'restore'
        ELSE 'conflict'
    END AS verdict
FROM (SELECT {text_key} AS k, status FROM run_written) AS o
LEFT JOIN w ON w.k = o.k
LEFT JOIN d ON d.k = o.k
"""


def _restore_sql(key_field: str, fields: Sequence[str]) -> str:
    """What each record to keep should hold: the run's before-values in the fields it changed
    (every field of a record it deleted), the values now in the others."""
    q = quote_ident
    columns = [f"k AS {q(key_field)}"] + [
        f"CASE WHEN status = 'deleted' OR {q('has.' + f)} THEN {q('was.' + f)} "
        f"ELSE {q('now.' + f)} END AS {q(f)}"
        for f in fields
    ]
    return f"SELECT {', '.join(columns)} FROM c WHERE verdict = 'restore'"


def _conflict_sql(fields: Sequence[str]) -> str:
    """Plan records (action conflict) for the records left alone: ``changed`` lists the fields
    that conflict, ``<field>`` holds what the run wrote there, ``before.<field>`` what is there now.
    """
    q = quote_ident
    differs = {}
    for f in fields:
        has, now = q("has." + f), q("now." + f)
        differs[f] = (
            f"{has} AND CASE "
            f"WHEN status = 'updated' AND NOT present THEN TRUE "
            f"WHEN status = 'deleted' THEN {q('was.' + f)} IS DISTINCT FROM {now} "
            f"ELSE {q('wrote.' + f)} IS DISTINCT FROM {now} END"
        )
    items = ", ".join(f"CASE WHEN {differs[f]} THEN {quote_literal(f)} END" for f in fields)
    wrote = [
        f"CASE WHEN status <> 'deleted' AND {differs[f]} THEN {q('wrote.' + f)} END AS {q(f)}"
        for f in fields
    ]
    before = [f"{q('now.' + f)} AS {q(BEFORE + f)}" for f in fields]
    reason = (
        f"CASE WHEN status = 'deleted' THEN {quote_literal(CREATED_AGAIN)} "
        f"WHEN NOT present THEN {quote_literal(DELETED_SINCE)} "
        f"ELSE {quote_literal(CHANGED_SINCE)} END"
    )
    columns = [
        "k AS key",
        "'conflict' AS action",
        f"{reason} AS reason",
        f"list_filter([{items}], lambda x: x IS NOT NULL) AS changed"
        if fields
        else "[]::VARCHAR[] AS changed",
        *wrote,
        *before,
    ]
    return f"SELECT {', '.join(columns)} FROM c WHERE verdict = 'conflict'"
