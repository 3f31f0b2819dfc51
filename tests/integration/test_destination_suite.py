"""The destination test suite: every destination passes it.

To add a destination, write a factory ``(request, tmp_path) -> Destination`` that gives a fresh,
empty object holding ``FIELDS`` (key ``ext_id``), and append it to ``DESTINATIONS``.
Destinations store values differently (SQLite: booleans 0/1 and dates as text; CSV: strings), so
the tests compare snapshots after ``normalised`` maps them back through the described FieldTypes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from trueup.config import CsvDestinationConfig, SalesforceDestinationConfig, SqlDestinationConfig
from trueup.destinations.base import Destination, Operation, OutcomeStatus, WriteBatch
from trueup.destinations.csv import CsvDestination
from trueup.destinations.salesforce.destination import SalesforceDestination
from trueup.destinations.sql import SqlDestination, create_table
from trueup.errors import DestinationSchemaError, FatalDestinationError
from trueup.sandbox.objects import SField, SObject
from trueup.sandbox.server import Sandbox
from trueup.schema import DestinationSchema, FieldSpec, FieldType

KEY = "ext_id"
FIELDS = (
    FieldSpec(KEY, FieldType.TEXT, nullable=False, unique=True, external_id=True),
    FieldSpec("name", FieldType.TEXT, length=20),
    FieldSpec("active", FieldType.BOOLEAN),
    FieldSpec("start_date", FieldType.DATE),
    FieldSpec("seen_at", FieldType.DATETIME),
    FieldSpec("quantity", FieldType.INTEGER),
)
NAMES = [spec.name for spec in FIELDS]
ARROW = {
    FieldType.TEXT: pa.string(),
    FieldType.BOOLEAN: pa.bool_(),
    FieldType.DATE: pa.date32(),
    FieldType.DATETIME: pa.timestamp("us", tz="UTC"),
    FieldType.INTEGER: pa.int64(),
    FieldType.NUMBER: pa.float64(),
}
T1 = dt.datetime(2024, 3, 1, 12, 30, 15, tzinfo=dt.UTC)
T2 = dt.datetime(2025, 1, 2, 8, 0, tzinfo=dt.UTC)
ROWS = [
    {
        KEY: "a-1",
        "name": "Alpha",
        "active": True,
        "start_date": dt.date(2024, 1, 15),
        "seen_at": T1,
        "quantity": 3,
    },
    {
        KEY: "b-2",
        "name": "Beta",
        "active": False,
        "start_date": dt.date(2023, 12, 31),
        "seen_at": T2,
        "quantity": 0,
    },
    {
        KEY: "c-3",
        "name": "Gamma Ünïcode",
        "active": True,
        "start_date": dt.date(2020, 2, 29),
        "seen_at": T1,
        "quantity": -7,
    },
]

Factory = Callable[[pytest.FixtureRequest, Path], Destination]


def _postgres(request: pytest.FixtureRequest, tmp_path: Path) -> Destination:
    url, schema = request.getfixturevalue("pg_url"), request.getfixturevalue("pg_schema")
    create_table(url, "suite", FIELDS, KEY, db_schema=schema)
    config = SqlDestinationConfig(kind="sql", url=url, table="suite", schema=schema)
    return SqlDestination(config, key_field=KEY)


def _file_database(url: str) -> Factory:
    def factory(request: pytest.FixtureRequest, tmp_path: Path) -> Destination:
        create_table(url, "suite", FIELDS, KEY, base_dir=tmp_path)
        config = SqlDestinationConfig(kind="sql", url=url, table="suite")
        return SqlDestination(config, key_field=KEY, base_dir=tmp_path)

    return factory


def _csv(request: pytest.FixtureRequest, tmp_path: Path) -> Destination:
    declared: dict[str, Any] = {
        s.name: s.type.value for s in FIELDS if s.type is not FieldType.TEXT
    }
    config = CsvDestinationConfig(kind="csv", directory="export", fields=declared)
    return CsvDestination(config, key_field=KEY, base_dir=tmp_path, fields=NAMES)


_SF_TYPES = {
    FieldType.TEXT: "string",
    FieldType.BOOLEAN: "boolean",
    FieldType.DATE: "date",
    FieldType.DATETIME: "datetime",
    FieldType.INTEGER: "int",
    FieldType.NUMBER: "double",
}


def _salesforce(request: pytest.FixtureRequest, tmp_path: Path) -> Destination:
    """A sandbox org over HTTPS whose ``Suite__c`` holds FIELDS (checkboxes never null)."""
    return _salesforce_by(request, tmp_path, "rest")


def _salesforce_bulk(request: pytest.FixtureRequest, tmp_path: Path) -> Destination:
    """The same org, written through Bulk API 2.0 jobs."""
    return _salesforce_by(request, tmp_path, "bulk")


def _salesforce_by(request: pytest.FixtureRequest, tmp_path: Path, write_path: str) -> Destination:
    fields = [
        SField("Id", "id", 18, nillable=False, createable=False, updateable=False, id_lookup=True),
        *(
            SField(
                s.name,
                _SF_TYPES[s.type],
                s.length or (64 if s.type is FieldType.TEXT else 0),
                nillable=s.type is not FieldType.BOOLEAN,
                external_id=s.external_id,
                id_lookup=s.external_id,
                unique=s.unique,
                custom=True,
            )
            for s in FIELDS
        ),
    ]
    sobject = SObject("Suite__c", "a0S", {f.name: f for f in fields})
    sandbox = Sandbox(objects={sobject.name: sobject}, page_size=2).start()
    request.addfinalizer(sandbox.stop)
    config = SalesforceDestinationConfig.model_validate(
        {
            "kind": "salesforce",
            "object": sobject.name,
            "ca_bundle": str(sandbox.ca_path),
            "batch_size": 2,
            "write_path": write_path,
            "auth": {
                "kind": "token",
                "instance_url": sandbox.url,
                "access_token": sandbox.access_token,
            },
        }
    )
    return SalesforceDestination(config, key_field=KEY, fields=NAMES, base_dir=tmp_path)


DESTINATIONS = [
    pytest.param(_postgres, id="postgres", marks=pytest.mark.postgres),
    pytest.param(_file_database("sqlite:///dest.db"), id="sqlite"),
    pytest.param(_file_database("duckdb:///dest.duckdb"), id="duckdb"),
    pytest.param(_csv, id="csv"),
    pytest.param(_salesforce, id="salesforce"),
    pytest.param(_salesforce_bulk, id="salesforce-bulk"),
]


@pytest.fixture(params=DESTINATIONS)
def destination(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Destination]:
    """A fresh, empty destination holding FIELDS."""
    with request.param(request, tmp_path) as opened:
        yield opened


# --- helpers ------------------------------------------------------------------------------------
def batch(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str] = NAMES,
    operation: Operation = Operation.UPSERT,
) -> WriteBatch:
    """A WriteBatch of ``rows`` with ``columns`` in canonical Arrow types."""
    types = {spec.name: ARROW[spec.type] for spec in FIELDS}
    schema = pa.schema([pa.field(c, types[c]) for c in columns])
    records = pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows], schema=schema)
    return WriteBatch(operation=operation, key_field=KEY, records=records)


def normalised(table: pa.Table, schema: DestinationSchema) -> dict[str, dict[str, Any]]:
    """Snapshot rows by key, every value mapped to the Python type of its FieldType."""
    out: dict[str, dict[str, Any]] = {}
    for row in table.to_pylist():
        values = {name: _value(value, schema.field(name).type) for name, value in row.items()}
        out[values[KEY]] = values
    return out


def _value(value: Any, field_type: FieldType) -> Any:
    if value is None:
        return None
    if field_type is FieldType.BOOLEAN:
        if isinstance(value, str):
            return {"true": True, "false": False, "1": True, "0": False}[value.lower()]
        return bool(value)
    if field_type is FieldType.DATE:
        if isinstance(value, str):
            return dt.date.fromisoformat(value[:10])
        return value.date() if isinstance(value, dt.datetime) else value
    if field_type is FieldType.DATETIME:
        parsed = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
        aware = parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
        return aware.astimezone(dt.UTC)
    if field_type is FieldType.INTEGER:
        return int(value)
    if field_type is FieldType.NUMBER:
        return float(value)
    return str(value)


def as_stored(row: dict[str, Any], schema: DestinationSchema) -> dict[str, Any]:
    """``row`` as a destination that cannot hold null in a field stores it: a checkbox that is
    not nullable (Salesforce) holds false, which the diff treats as equal to null."""
    return {
        name: False
        if value is None
        and schema.field(name).type is FieldType.BOOLEAN
        and not schema.field(name).nullable
        else value
        for name, value in row.items()
    }


def state(destination: Destination) -> dict[str, dict[str, Any]]:
    """What the destination holds now, normalised."""
    return normalised(destination.snapshot(NAMES), destination.describe())


def statuses(result: Any) -> list[tuple[str, OutcomeStatus]]:
    """(key, status) per outcome, in order."""
    return [(o.key, o.status) for o in result.outcomes]


# --- the suite ----------------------------------------------------------------------------------
def test_describe_reports_every_field_with_its_type(destination: Destination) -> None:
    schema = destination.describe()
    for spec in FIELDS:
        assert schema.field(spec.name).type is spec.type, spec.name
    key = schema.field(KEY)
    assert key.unique and key.external_id


def test_capabilities_allow_upsert_and_report_created(destination: Destination) -> None:
    caps = destination.capabilities
    assert Operation.UPSERT in caps.operations
    assert caps.reports_created
    assert 1 <= caps.max_batch_size <= 10_000


def test_snapshot_of_an_empty_destination_has_the_requested_columns(
    destination: Destination,
) -> None:
    snapshot = destination.snapshot(["name", KEY])
    assert snapshot.num_rows == 0
    assert snapshot.column_names == ["name", KEY]


def test_new_records_are_created_in_order_and_read_back(destination: Destination) -> None:
    result = destination.write(batch(ROWS))
    assert statuses(result) == [(r[KEY], OutcomeStatus.CREATED) for r in ROWS]
    assert state(destination) == {r[KEY]: r for r in ROWS}


def test_snapshot_schema_is_the_same_empty_or_full(destination: Destination) -> None:
    empty = destination.snapshot(NAMES)
    destination.write(batch(ROWS))
    full = destination.snapshot(NAMES)
    assert full.schema == empty.schema
    assert full.column_names == NAMES


def test_writing_again_updates_and_leaves_unmentioned_fields(destination: Destination) -> None:
    destination.write(batch(ROWS))
    changes = [{KEY: "a-1", "name": "Alpha 2"}, {KEY: "c-3", "name": "Gamma 2"}]
    result = destination.write(batch(changes, columns=[KEY, "name"]))
    assert statuses(result) == [("a-1", OutcomeStatus.UPDATED), ("c-3", OutcomeStatus.UPDATED)]
    expected = {r[KEY]: dict(r) for r in ROWS}
    expected["a-1"]["name"] = "Alpha 2"
    expected["c-3"]["name"] = "Gamma 2"
    assert state(destination) == expected


def test_a_mixed_batch_reports_created_and_updated_per_record(destination: Destination) -> None:
    destination.write(batch(ROWS[:1]))
    mixed = [{**ROWS[1]}, {**ROWS[0], "quantity": 99}, {**ROWS[2]}]
    result = destination.write(batch(mixed))
    assert statuses(result) == [
        ("b-2", OutcomeStatus.CREATED),
        ("a-1", OutcomeStatus.UPDATED),
        ("c-3", OutcomeStatus.CREATED),
    ]
    assert state(destination)["a-1"]["quantity"] == 99
    assert len(state(destination)) == 3


def test_a_key_twice_in_one_batch_is_created_then_updated(destination: Destination) -> None:
    twice = [{**ROWS[0], "name": "First"}, {**ROWS[0], "name": "Second"}]
    result = destination.write(batch(twice))
    assert statuses(result) == [("a-1", OutcomeStatus.CREATED), ("a-1", OutcomeStatus.UPDATED)]
    assert state(destination)["a-1"]["name"] == "Second"


def test_nulls_round_trip(destination: Destination) -> None:
    destination.write(batch([ROWS[0], {KEY: "n-0"}]))
    cleared = {KEY: "a-1", "active": None, "start_date": None, "seen_at": None, "quantity": None}
    destination.write(batch([cleared], columns=list(cleared)))
    held, schema = state(destination), destination.describe()
    empty = {name: ("n-0" if name == KEY else None) for name in NAMES}
    assert held["n-0"] == as_stored(empty, schema)
    assert held["a-1"] == as_stored({**cleared, "name": "Alpha"}, schema)


def test_an_empty_batch_writes_nothing(destination: Destination) -> None:
    assert destination.write(batch([])).outcomes == ()
    assert destination.snapshot(NAMES).num_rows == 0


def test_snapshot_of_an_unknown_field_is_a_schema_error(destination: Destination) -> None:
    with pytest.raises(DestinationSchemaError, match="no_such_field"):
        destination.snapshot([KEY, "no_such_field"])


def test_a_record_without_a_key_fails_alone(destination: Destination) -> None:
    result = destination.write(batch([ROWS[0], {**ROWS[1], KEY: None}, ROWS[2]]))
    assert [o.status for o in result.outcomes] == [
        OutcomeStatus.CREATED,
        OutcomeStatus.FAILED,
        OutcomeStatus.CREATED,
    ]
    assert result.outcomes[1].error_code
    assert sorted(state(destination)) == ["a-1", "c-3"]


# --- operations other than upsert (each destination declares which it can do) -------------------
def can(destination: Destination, operation: Operation) -> bool:
    """Whether the destination declares ``operation``; one that does not (CSV files: upsert
    only) must refuse such a batch as a whole, writing nothing, rather than upsert it."""
    if operation in destination.capabilities.operations:
        return True
    before = state(destination)
    with pytest.raises(FatalDestinationError):
        destination.write(batch([{KEY: "z-9"}], columns=[KEY], operation=operation))
    assert state(destination) == before
    return False


def test_update_only_updates_held_records_and_fails_the_others(destination: Destination) -> None:
    if not can(destination, Operation.UPDATE):
        return
    destination.write(batch(ROWS[:1]))
    changes = [{KEY: "a-1", "name": "Alpha 2"}, {KEY: "z-9", "name": "Nobody"}]
    result = destination.write(batch(changes, columns=[KEY, "name"], operation=Operation.UPDATE))
    assert statuses(result) == [("a-1", OutcomeStatus.UPDATED), ("z-9", OutcomeStatus.FAILED)]
    assert result.outcomes[1].error_code
    assert sorted(state(destination)) == ["a-1"]  # never created
    assert state(destination)["a-1"]["name"] == "Alpha 2"


def test_insert_only_creates_new_records_and_never_overwrites(destination: Destination) -> None:
    if not can(destination, Operation.INSERT):
        return
    destination.write(batch(ROWS[:1]))
    result = destination.write(
        batch([{**ROWS[0], "name": "Overwritten"}, ROWS[1]], operation=Operation.INSERT)
    )
    assert statuses(result) == [("a-1", OutcomeStatus.FAILED), ("b-2", OutcomeStatus.CREATED)]
    assert state(destination)["a-1"]["name"] == "Alpha"
    assert state(destination)["b-2"] == ROWS[1]


def test_delete_removes_records_by_key(destination: Destination) -> None:
    if not can(destination, Operation.DELETE):
        return
    destination.write(batch(ROWS))
    result = destination.write(
        batch([{KEY: "a-1"}, {KEY: "c-3"}, {KEY: "z-9"}], columns=[KEY], operation=Operation.DELETE)
    )
    assert statuses(result) == [
        ("a-1", OutcomeStatus.DELETED),
        ("c-3", OutcomeStatus.DELETED),
        ("z-9", OutcomeStatus.FAILED),
    ]
    assert sorted(state(destination)) == ["b-2"]
