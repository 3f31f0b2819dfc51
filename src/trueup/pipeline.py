"""The plan step end to end: config → source model → destination snapshot → diff → Plan.

Also the checks that make a saved plan safe to apply: the config and the destination must be what
they were when the plan was made.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from trueup.compat import checked_describe
from trueup.config import Config, CsvDestinationConfig, LoadedConfig, SalesforceDestinationConfig
from trueup.destinations import open_destination
from trueup.destinations.base import Destination, DuckDBReadable
from trueup.diff import Diff, diff, diff_in_duckdb, snapshot_fingerprint
from trueup.errors import DestinationSchemaError, StalePlanError
from trueup.models import build_model
from trueup.models.base import Model, as_reader
from trueup.operations import SyncOperation, check_supported, restrict
from trueup.plan import Plan
from trueup.progress import ProgressCallback, ProgressEvent, no_progress
from trueup.schema import DestinationSchema, FieldType
from trueup.sources import open_source
from trueup.sources.base import Source

IN_PLACE = "diff in place"  # the progress stage of the in-DuckDB path


def destination_name(config: Config) -> str:
    """A display name for the destination, safe to print and store (no URL, no secret)."""
    dest = config.destination
    if isinstance(dest, CsvDestinationConfig):
        return f"csv:{dest.directory}"
    if isinstance(dest, SalesforceDestinationConfig):
        return f"salesforce:{dest.object}"
    table = f"{dest.db_schema}.{dest.table}" if dest.db_schema else dest.table
    return f"sql:{table}"


def mapped_fields(config: Config) -> tuple[str, ...]:
    """The destination fields a sync reads and writes: the key field first."""
    return (config.key_field, *(f for f in config.mapping.values() if f != config.key_field))


def field_types(schema: DestinationSchema, config: Config) -> dict[str, FieldType]:
    """The type of every mapped field; all unknown fields are reported in one error."""
    unknown = [f for f in mapped_fields(config) if f not in schema.fields]
    if unknown:
        known = ", ".join(sorted(schema.fields)) or "none"
        raise DestinationSchemaError(
            f"{schema.object_name} has no field(s) {', '.join(unknown)} named in mapping "
            f"(it has: {known})"
        )
    return {f: schema.fields[f].type for f in mapped_fields(config)}


def read_model(loaded: LoadedConfig, progress: ProgressCallback = no_progress) -> pa.Table:
    """Run the model against the source and collect its rows (streamed, batch by batch)."""
    progress(ProgressEvent("read source", 0))
    with open_source(loaded) as source:
        reader = build_model(loaded.config.model).read(source)
        batches = []
        rows = 0
        for batch in reader:
            batches.append(batch)
            rows += batch.num_rows
            progress(ProgressEvent("read source", rows))
        return pa.Table.from_batches(batches, schema=reader.schema)


def diff_now(
    loaded: LoadedConfig,
    destination: Destination,
    model: pa.Table | pa.RecordBatchReader,
    progress: ProgressCallback = no_progress,
) -> tuple[Diff, DestinationSchema]:
    """Snapshot the destination now and diff the model's rows against it."""
    config = loaded.config
    schema = checked_describe(destination, config.mapping, model.schema, file=str(loaded.path))
    field_types(schema, config)
    progress(ProgressEvent("read destination", 0))
    snapshot = destination.snapshot(list(mapped_fields(config)))
    progress(ProgressEvent("read destination", snapshot.num_rows, snapshot.num_rows))
    progress(ProgressEvent("diff", 0))
    result = diff(
        model,
        snapshot,
        mapping=config.mapping,
        key=config.key,
        schema=schema,
        capabilities=destination.capabilities,
    )
    return result, schema


def make_plan(loaded: LoadedConfig, *, progress: ProgressCallback = no_progress) -> Plan:
    """Read the source through the model and the destination now; return the plan."""
    config = loaded.config
    operation = SyncOperation(config.operation)
    with open_destination(loaded) as destination, open_source(loaded) as source:
        check_supported(
            operation,
            delete_missing=config.delete_missing,
            capabilities=destination.capabilities,
            shown=destination_name(config),
            file=str(loaded.path),
        )
        model = build_model(config.model)
        columns, reader = _model_columns(model, source, destination, progress)
        schema = checked_describe(destination, config.mapping, columns, file=str(loaded.path))
        types = field_types(schema, config)
        result = None
        if reader is None:
            result = _diff_in_place(loaded, destination, schema, source, model, progress)
        if result is None:
            progress(ProgressEvent("read source", 0))
            rows = reader if reader is not None else model.read(source)
            result, _ = diff_now(loaded, destination, rows, progress)
    return Plan.from_diff(
        restrict(result, operation, delete_missing=config.delete_missing),
        config_fingerprint=config.fingerprint(),
        destination=destination_name(config),
        field_types=types,
        operation=operation,
    )


def _model_columns(
    model: Model, source: Source, destination: Destination, progress: ProgressCallback
) -> tuple[pa.Schema, pa.RecordBatchReader | None]:
    """The model's columns and types, known before any destination data is read, and the reader
    of its rows when one was opened (its schema is fixed before the first batch).

    When the diff may run in place (an sql model over a DuckDB-backed source, a destination DuckDB
    can read), no reader is opened: the types come from the model's query for no rows, so the
    model is not computed twice.
    """
    query = model.sql()
    if query is not None and isinstance(destination, DuckDBReadable):
        con = source.duckdb_connection()
        if con is not None:
            con.close()
            probe = f"SELECT * FROM ({query.strip().rstrip(';')}) AS trueup_model LIMIT 0"
            empty = as_reader(source.read_query(probe), what="the model query")
            empty.read_all()
            return empty.schema, None
    progress(ProgressEvent("read source", 0))
    reader = model.read(source)
    return reader.schema, reader


def _diff_in_place(
    loaded: LoadedConfig,
    destination: Destination,
    schema: DestinationSchema,
    source: Source,
    model: Model,
    progress: ProgressCallback,
) -> Diff | None:
    """The diff run inside DuckDB over the source files and the destination table in place,
    when the source, the model and the destination all allow it; else None.

    The destination stays attached to the source's DuckDB database until the source closes.
    """
    model_sql = model.sql()
    if model_sql is None or not isinstance(destination, DuckDBReadable):
        return None
    con = source.duckdb_connection()
    if con is None:
        return None
    config = loaded.config
    try:
        snapshot_sql = destination.duckdb_snapshot(con, mapped_fields(config))
        if snapshot_sql is None:
            return None
        progress(ProgressEvent(IN_PLACE, 0))
        return diff_in_duckdb(
            con,
            source_sql=model_sql,
            snapshot_sql=snapshot_sql,
            mapping=config.mapping,
            key=config.key,
            schema=schema,
            capabilities=destination.capabilities,
        )
    finally:
        con.close()


def ensure_fresh(plan: Plan, loaded: LoadedConfig, destination: Destination) -> None:
    """Raise StalePlanError unless config and destination are as they were when planned."""
    config = loaded.config
    if plan.config_fingerprint != config.fingerprint():
        raise StalePlanError(
            "the config has changed since this plan was made; run 'trueup plan' again"
        )
    if plan.destination != destination_name(config):
        raise StalePlanError(
            f"this plan is for {plan.destination}, the config points at {destination_name(config)}"
        )
    fields: Sequence[str] = mapped_fields(config)
    now = snapshot_fingerprint(destination.snapshot(list(fields)))
    if now != plan.destination_fingerprint:
        then_rows = plan.destination_fingerprint.split(":")[0]
        now_rows = now.split(":")[0]
        raise StalePlanError(
            f"the destination has changed since this plan was made ({then_rows} records then, "
            f"{now_rows} now, or values differ); nothing was written; run 'trueup plan' again"
        )
