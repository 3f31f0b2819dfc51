"""``trueup doctor``: every table, column and destination field a config names, checked before
anything runs (DESIGN.md §1, failure 6: a wrong table location).

Each check is a ``Check`` value. A failed check never stops the others; a check that needs one
that failed (the fields of a table that does not exist) is reported as not run, with the reason.
Nothing is written except the run store, which is opened (created and migrated as needed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from trueup.compat import mapped_columns
from trueup.config import (
    Config,
    CsvDestinationConfig,
    DuckDBSourceConfig,
    FeaturesModelConfig,
    FilesSourceConfig,
    LoadedConfig,
    PostgresSourceConfig,
    SalesforceDestinationConfig,
    SqlDestinationConfig,
    SQLiteSourceConfig,
    load_config,
    redact_url,
)
from trueup.destinations import open_destination
from trueup.destinations.base import Destination, Operation
from trueup.destinations.salesforce.schema import (
    SObjectDescription,
    describe_to_schema,
    field_problems,
    key_problems,
)
from trueup.errors import (
    ConfigError,
    DestinationSchemaError,
    FatalDestinationError,
    TrueupError,
)
from trueup.models.base import as_reader
from trueup.models.features import output_schema, source_columns
from trueup.pipeline import destination_name, mapped_fields
from trueup.schema import FieldSpec
from trueup.sources import open_source
from trueup.sources.base import Source
from trueup.sqltext import quote_qualified
from trueup.store import RunStore

NOT_RUN = "not run: "
# What a failed check may raise; anything else is a bug and reaches the CLI's boundary.
_PROBLEMS = (TrueupError, OSError, ValueError)


@dataclass(frozen=True)
class Check:
    """One doctor check: what was checked, whether it passed, and what was found."""

    name: str
    passed: bool
    detail: str

    @classmethod
    def not_run(cls, name: str, why: str) -> Check:
        """A check that could not run because one it needs failed."""
        return cls(name, False, NOT_RUN + why)

    @property
    def ran(self) -> bool:
        """False when the check was skipped because an earlier one failed."""
        return not self.detail.startswith(NOT_RUN)


def run_doctor_file(path: str | Path) -> list[Check]:
    """Load the config at ``path`` and check it; a config that does not load is a failed check."""
    try:
        loaded = load_config(path)
    except ConfigError as exc:
        why = "the config did not load"
        return [
            Check("config", False, str(exc)),
            Check.not_run("source connection", why),
            Check.not_run("destination connection", why),
            Check.not_run("run store", why),
        ]
    return run_doctor(loaded)


def run_doctor(loaded: LoadedConfig) -> list[Check]:
    """Check the source, the model, the destination and the run store a loaded config names."""
    config = loaded.config
    summary = (
        f"{loaded.path.name}: {config.model.kind} model, {len(config.mapping)} mapped columns, "
        f"key column {config.key} → {destination_name(config)}"
    )
    checks = [Check("config", True, summary)]
    source_checks, columns = _source_checks(loaded)
    checks += source_checks
    checks += _destination_checks(loaded, columns)
    checks.append(_store_check(loaded))
    return checks


# --- the source and the model --------------------------------------------------------------------
def _source_checks(loaded: LoadedConfig) -> tuple[list[Check], dict[str, pa.Field]]:
    """Source connection, the model's tables or query, and the mapped columns it produces.

    Also returns the model column feeding each mapped destination field, when its type is known.
    """
    config = loaded.config
    model = config.model
    shown = _source_shown(loaded)
    if isinstance(model, FeaturesModelConfig):
        later = [f"source table {table}" for table, _ in source_columns(model)]
    else:
        later = [f"source table {model.table}" if model.table else "model query"]
    try:
        source = open_source(loaded)
    except _PROBLEMS as exc:
        checks = [Check("source connection", False, str(exc))]
        checks += [Check.not_run(n, "the source could not be opened") for n in later]
        if isinstance(model, FeaturesModelConfig):
            produced = output_schema(model.products)
            checks.append(_model_columns(config, produced))
            return checks, mapped_columns(config.mapping, produced)
        checks.append(Check.not_run("model columns", "the source could not be opened"))
        return checks, {}
    with source:
        try:
            as_reader(source.read_query("SELECT 1"), what="SELECT 1").read_all()
        except _PROBLEMS as exc:
            checks = [Check("source connection", False, str(exc))]
            checks += [Check.not_run(n, "the source did not answer") for n in later]
            checks.append(Check.not_run("model columns", "the source did not answer"))
            return checks, {}
        checks = [Check("source connection", True, shown)]
        if isinstance(model, FeaturesModelConfig):
            checks += [_table_check(source, t, wanted)[0] for t, wanted in source_columns(model)]
            produced = output_schema(model.products)
        elif model.table is not None:
            table_check, names = _table_check(source, model.table, {})
            checks.append(table_check)
            if names is None:
                checks.append(Check.not_run("model columns", f"table {model.table} was not read"))
                return checks, {}
            # the table's types, from a query for no rows (else null: types not checked)
            typed = _query(source, f"SELECT * FROM {quote_qualified(model.table)}")[1]
            produced = typed or pa.schema([(n, pa.null()) for n in names])
        else:
            assert model.query is not None  # the config guarantees a table or a query
            query_check, schema = _query(source, model.query)
            checks.append(query_check)
            if schema is None:
                checks.append(Check.not_run("model columns", "the model query failed"))
                return checks, {}
            produced = schema
    checks.append(_model_columns(config, produced))
    return checks, mapped_columns(config.mapping, produced)


def _table_check(
    source: Source, table: str, wanted: Mapping[str, str]
) -> tuple[Check, list[str] | None]:
    """``table`` exists and has every column the model reads (``wanted``: config field → column);
    also its column names, when it exists."""
    name = f"source table {table}"
    try:
        existing = source.columns(table)
    except _PROBLEMS as exc:
        return Check(name, False, str(exc)), None
    missing = [f"{c!r} (model.{f})" for f, c in wanted.items() if c not in existing]
    if missing:
        detail = f"no column {', '.join(missing)}; its columns: {', '.join(existing)}"
        return Check(name, False, detail), existing
    found = f"has {', '.join(wanted.values())}" if wanted else f"{len(existing)} columns"
    return Check(name, True, found), existing


def _query(source: Source, query: str) -> tuple[Check, pa.Schema | None]:
    """Run the model query for no rows: it must parse, plan and name its columns."""
    sql = f"SELECT * FROM ({query.strip().rstrip(';')}) AS trueup_doctor LIMIT 0"
    try:
        reader = as_reader(source.read_query(sql), what="the model query")
        reader.read_all()
    except _PROBLEMS as exc:
        return Check("model query", False, str(exc)), None
    return Check("model query", True, f"runs; {len(reader.schema)} columns"), reader.schema


def _model_columns(config: Config, produced: pa.Schema) -> Check:
    """The model produces every column the mapping names (the key among them)."""
    missing = [
        f"{column} (the key)" if column == config.key else column
        for column in config.mapping
        if column not in produced.names
    ]
    if missing:
        return Check(
            "model columns",
            False,
            f"the model does not produce {', '.join(missing)} (named in mapping); "
            f"it produces: {', '.join(produced.names)}",
        )
    return Check(
        "model columns",
        True,
        f"produces all {len(config.mapping)} mapped columns, the key ({config.key}) among them",
    )


def _source_shown(loaded: LoadedConfig) -> str:
    """The source as a user recognises it, without any password."""
    source = loaded.config.source
    if isinstance(source, PostgresSourceConfig):
        return f"PostgreSQL at {redact_url(source.url.get_secret_value())}"
    if isinstance(source, DuckDBSourceConfig):
        return f"DuckDB database {loaded.resolve(source.path)}"
    if isinstance(source, SQLiteSourceConfig):
        return f"SQLite database {loaded.resolve(source.path)}"
    assert isinstance(source, FilesSourceConfig)
    return f"files: {', '.join(source.tables)}"


# --- the destination -----------------------------------------------------------------------------
def _destination_checks(loaded: LoadedConfig, columns: Mapping[str, pa.Field]) -> list[Check]:
    """Destination connection, its object or table, every mapped field (its type against the model
    column's, compat.py), and the key field."""
    config = loaded.config
    obj = _object_check_name(config)
    fields = mapped_fields(config)
    later = [*(f"field {f}" for f in fields), f"key {config.key_field}"]
    try:
        destination = open_destination(loaded)
    except _PROBLEMS as exc:
        why = "the destination could not be opened"
        return [
            Check("destination connection", False, str(exc)),
            Check.not_run(obj, why),
            *(Check.not_run(n, why) for n in later),
        ]
    with destination:
        connection, found, description = _describe(destination, config, obj)
    checks = [connection, found]
    if description is None:
        why = "the destination did not answer" if not connection.passed else f"{obj} not found"
        return [*checks, *(Check.not_run(n, why) for n in later)]
    salesforce = isinstance(config.destination, SalesforceDestinationConfig)
    names = {field: column for column, field in config.mapping.items()}
    for field in fields:
        checks.append(
            _field_check(
                description,
                field,
                name=names[field],
                column=columns.get(field),
                operation=Operation(config.operation),
            )
        )
    checks.append(_key_check(description, config.key_field, salesforce=salesforce))
    return checks


def _describe(
    destination: Destination, config: Config, obj: str
) -> tuple[Check, Check, SObjectDescription | None]:
    """(connection check, object check, the object's description when it was read)."""
    shown = _destination_shown(config)
    if isinstance(config.destination, SalesforceDestinationConfig):
        return _describe_salesforce(destination, config.destination, obj, shown)
    try:
        schema = destination.describe()
    except DestinationSchemaError as exc:
        return Check("destination connection", True, shown), Check(obj, False, str(exc)), None
    except _PROBLEMS as exc:
        connection = Check("destination connection", False, str(exc))
        return connection, Check.not_run(obj, "the destination did not answer"), None
    found = Check(obj, True, f"exists, {len(schema.fields)} fields")
    return Check("destination connection", True, shown), found, SObjectDescription(schema)


def _describe_salesforce(
    destination: Destination, config: SalesforceDestinationConfig, obj: str, shown: str
) -> tuple[Check, Check, SObjectDescription | None]:
    """Log in and read the org's limits, then the object's describe (without the pre-flight,
    whose problems become the field checks)."""
    from trueup.destinations.salesforce.destination import SalesforceDestination

    assert isinstance(destination, SalesforceDestination)
    client = destination.client
    try:
        limits = client.limits()
    except _PROBLEMS as exc:
        connection = Check("destination connection", False, str(exc))
        return connection, Check.not_run(obj, "the destination did not answer"), None
    daily = limits.get("DailyApiRequests") or {}
    left = (
        f" ({daily['Remaining']:,} of {daily['Max']:,} daily API requests left)"
        if isinstance(daily.get("Remaining"), int) and isinstance(daily.get("Max"), int)
        else ""
    )
    connection = Check("destination connection", True, f"{shown}: logged in{left}")
    try:
        description = describe_to_schema(client.describe(config.object))
    except FatalDestinationError as exc:
        if "NOT_FOUND" in str(exc) or "INVALID_TYPE" in str(exc):
            detail = f"Salesforce has no object {config.object} (or this user cannot see it)"
            return connection, Check(obj, False, detail), None
        return connection, Check(obj, False, str(exc)), None
    except _PROBLEMS as exc:
        return connection, Check(obj, False, str(exc)), None
    fields = len(description.schema.fields)
    return connection, Check(obj, True, f"exists, {fields} fields"), description


def _field_check(
    description: SObjectDescription,
    field: str,
    *,
    name: str,
    column: pa.Field | None,
    operation: Operation,
) -> Check:
    """The field exists (its type shown), the sync's operation may set it (an upsert creates
    and updates), and the model column ``name`` (``column``, when its type is known) feeds it."""
    problems = field_problems(description, field, operation=operation, column=column)
    spec = description.schema.fields.get(field)
    shown = f"{_type_shown(spec)}, from {name}" if spec is not None else f"mapped from {name}"
    detail = "; ".join([*problems, shown] if problems else [shown])
    return Check(f"field {field}", not problems, detail)


def _key_check(description: SObjectDescription, key_field: str, *, salesforce: bool) -> Check:
    """The key field identifies one record: an External ID in Salesforce, else unique."""
    name = f"key {key_field}"
    schema = description.schema
    spec = schema.fields.get(key_field)
    if spec is None:
        return Check.not_run(name, f"{schema.object_name} has no field {key_field}")
    if salesforce:
        problems = key_problems(schema, key_field)
        if problems:
            return Check(name, False, problems[0])
        return Check(name, True, "External ID" + (", unique" if spec.unique else ""))
    if not spec.unique:
        return Check(
            name,
            False,
            f"{schema.object_name}.{key_field} is neither the primary key nor unique: "
            "trueup upserts by it",
        )
    return Check(name, True, "unique (primary key or unique constraint)")


def _type_shown(spec: FieldSpec) -> str:
    length = f"({spec.length})" if spec.length else ""
    return f"{spec.type.value}{length}"


def _object_check_name(config: Config) -> str:
    dest = config.destination
    if isinstance(dest, SalesforceDestinationConfig):
        return f"destination object {dest.object}"
    if isinstance(dest, CsvDestinationConfig):
        return f"destination folder {dest.directory}"
    table = f"{dest.db_schema}.{dest.table}" if dest.db_schema else dest.table
    return f"destination table {table}"


def _destination_shown(config: Config) -> str:
    """The destination as a user recognises it, without any password or token."""
    dest = config.destination
    if isinstance(dest, SqlDestinationConfig):
        return redact_url(dest.url.get_secret_value())
    if isinstance(dest, SalesforceDestinationConfig):
        return "Salesforce"
    return destination_name(config)


# --- the run store -------------------------------------------------------------------------------
def _store_check(loaded: LoadedConfig) -> Check:
    """The run store opens (created and migrated as needed)."""
    url = loaded.config.store.url.get_secret_value()
    try:
        with RunStore.open(url, base_dir=loaded.path.parent):
            pass
    except _PROBLEMS as exc:
        return Check("run store", False, str(exc))
    return Check("run store", True, redact_url(url))
