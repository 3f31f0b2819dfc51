"""The diff on data made to trip it: nulls, UTC midnight, duplicate keys, spaces, 0/1 booleans."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest

from trueup.destinations.base import Capabilities
from trueup.diff import BEFORE, Action, Diff, diff, snapshot_fingerprint
from trueup.errors import PlanError
from trueup.schema import DestinationSchema, FieldSpec, FieldType

UTC = dt.UTC
EST = dt.timezone(dt.timedelta(hours=-5))
SQL_LIKE = Capabilities(max_batch_size=100)
CRM_LIKE = Capabilities(max_batch_size=100, trims_text=True, empty_text_is_null=True)

SCHEMA = DestinationSchema(
    "Thing",
    {
        "Ext__c": FieldSpec("Ext__c", FieldType.TEXT, nullable=False, external_id=True),
        "Name": FieldSpec("Name", FieldType.TEXT, length=10),
        "On__c": FieldSpec("On__c", FieldType.BOOLEAN, nullable=False),
        "Start__c": FieldSpec("Start__c", FieldType.DATE),
        "Seen__c": FieldSpec("Seen__c", FieldType.DATETIME),
        "Count__c": FieldSpec("Count__c", FieldType.INTEGER),
    },
)
MAPPING = {
    "k": "Ext__c",
    "name": "Name",
    "on": "On__c",
    "start": "Start__c",
    "seen": "Seen__c",
    "n": "Count__c",
}
SOURCE_TYPES = {
    "k": pa.string(),
    "name": pa.string(),
    "on": pa.bool_(),
    "start": pa.timestamp("us", tz="UTC"),
    "seen": pa.timestamp("us", tz="UTC"),
    "n": pa.int64(),
}


def source(*rows: dict[str, Any]) -> pa.Table:
    """A model table; columns missing from a row are null."""
    return pa.table({c: pa.array([r.get(c) for r in rows], t) for c, t in SOURCE_TYPES.items()})


def snapshot(*rows: dict[str, Any], types: dict[str, pa.DataType] | None = None) -> pa.Table:
    """A destination snapshot; by default stored the way SQLite stores it (0/1, ISO text)."""
    types = types or {
        "Ext__c": pa.string(),
        "Name": pa.string(),
        "On__c": pa.int64(),
        "Start__c": pa.string(),
        "Seen__c": pa.string(),
        "Count__c": pa.int64(),
    }
    return pa.table({c: pa.array([r.get(c) for r in rows], t) for c, t in types.items()})


def run(src: pa.Table, snap: pa.Table, caps: Capabilities = SQL_LIKE) -> Diff:
    return diff(src, snap, mapping=MAPPING, key="k", schema=SCHEMA, capabilities=caps)


def by_key(result: Diff) -> dict[str | None, dict[str, Any]]:
    return {r["key"]: r for r in result.records.to_pylist()}


def test_same_record_stored_differently_is_unchanged() -> None:
    # timestamptz at 23:30 -05:00 is the next UTC day; the destination holds 0/1 and ISO text.
    src = source(
        {
            "k": "a",
            "name": "Alpha",
            "on": True,
            "n": 3,
            "start": dt.datetime(2024, 3, 1, 23, 30, tzinfo=EST),
            "seen": dt.datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
        },
    )
    snap = snapshot(
        {
            "Ext__c": "a",
            "Name": "Alpha",
            "On__c": 1,
            "Start__c": "2024-03-02",
            "Seen__c": "2024-03-01T07:00:00.123-05:00",
            "Count__c": 3,
        },
    )
    result = run(src, snap)
    assert result.counts[Action.UNCHANGED] == 1
    assert result.records.num_rows == 0


def test_utc_midnight_boundary_changes_the_date() -> None:
    src = source(
        {"k": "a", "start": dt.datetime(2024, 3, 1, 23, 59, 59, tzinfo=UTC)},
        {"k": "b", "start": dt.datetime(2024, 3, 2, 0, 0, 0, tzinfo=UTC)},
        {"k": "c", "start": dt.datetime(2024, 3, 1, 19, 0, 0, tzinfo=EST)},  # 00:00 UTC on 2nd
    )
    snap = snapshot(
        {"Ext__c": "a", "Start__c": "2024-03-01", "On__c": 0},
        {"Ext__c": "b", "Start__c": "2024-03-01", "On__c": 0},
        {"Ext__c": "c", "Start__c": "2024-03-01", "On__c": 0},
    )
    rows = by_key(run(src, snap))
    assert "a" not in rows
    assert rows["b"]["action"] == Action.UPDATE
    assert rows["b"]["changed"] == ["Start__c"]
    assert rows["b"]["Start__c"] == dt.date(2024, 3, 2)
    assert rows["b"][BEFORE + "Start__c"] == dt.date(2024, 3, 1)
    assert rows["c"]["Start__c"] == dt.date(2024, 3, 2)


def test_nulls_on_either_side() -> None:
    src = source(
        {"k": "a", "name": None, "on": None, "n": None},  # checkbox null reads as false
        {"k": "b", "name": "Bee", "n": 1},
        {"k": "c", "name": None},
    )
    snap = snapshot(
        {"Ext__c": "a", "Name": None, "On__c": 0, "Count__c": None},
        {"Ext__c": "b", "Name": None, "On__c": None, "Count__c": None},
        {"Ext__c": "c", "Name": "Sea", "On__c": 0},
    )
    result = run(src, snap)
    rows = by_key(result)
    assert "a" not in rows  # null == null, null checkbox == false
    assert rows["b"]["changed"] == ["Name", "Count__c"]
    assert rows["c"]["changed"] == ["Name"]
    assert rows["c"]["Name"] is None and rows["c"][BEFORE + "Name"] == "Sea"
    assert result.counts[Action.UPDATE] == 2
    assert result.field_changes["Name"] == 2


def test_key_present_twice_is_invalid_with_reason() -> None:
    src = source({"k": "a", "name": "x"}, {"k": "a", "name": "y"}, {"k": "b"})
    result = run(src, snapshot({"Ext__c": "a", "On__c": 0}))
    invalid = [r for r in result.records.to_pylist() if r["action"] == Action.INVALID]
    assert [r["key"] for r in invalid] == ["a", "a"]
    assert all(r["reason"] == "key appears 2 times in the source" for r in invalid)
    assert result.counts[Action.CREATE] == 1
    assert result.counts[Action.MISSING_IN_SOURCE] == 0  # the destination row is not orphaned


def test_null_key_too_long_text_and_unconvertible_value_are_invalid() -> None:
    src = pa.table(
        {
            "k": [None, "long", "bad", "ok"],
            "name": ["n", "x" * 11, "fine", "fine"],
            "on": ["true", "yes", "maybe", "0"],  # text booleans from a loose source
            "start": ["2024-01-01", "2024-01-01", "not a date", "2024-01-01T23:00:00-05:00"],
            "seen": [None, None, None, None],
            "n": ["1", "2", "3.5", "4"],
        }
    )
    rows = by_key(run(src, snapshot()))
    assert rows[None]["reason"] == "key is null"
    assert rows["long"]["reason"] == "Name: 11 characters, longer than 10"
    reason = rows["bad"]["reason"]
    assert "On__c: cannot convert 'maybe' to boolean" in reason
    assert "Start__c: cannot convert 'not a date' to date" in reason
    assert "Count__c: cannot convert '3.5' to integer" in reason
    assert rows["ok"]["action"] == Action.CREATE
    assert rows["ok"]["On__c"] is False
    assert rows["ok"]["Start__c"] == dt.date(2024, 1, 2)
    assert rows["ok"]["Count__c"] == 4


def test_trailing_spaces_follow_the_destination_text_rules() -> None:
    src = source({"k": "a", "name": "Alpha  "}, {"k": "b", "name": ""})
    snap = snapshot({"Ext__c": "a", "Name": "Alpha", "On__c": 0}, {"Ext__c": "b", "On__c": 0})
    stored_as_is = by_key(run(src, snap, SQL_LIKE))
    assert stored_as_is["a"]["changed"] == ["Name"]
    assert stored_as_is["b"]["changed"] == ["Name"]  # '' is not null in a SQL table
    trims = run(src, snap, CRM_LIKE)
    assert trims.records.num_rows == 0  # a CRM that trims and nulls '' already agrees


def test_boolean_destination_holding_0_1_and_text() -> None:
    src = source({"k": "a", "on": True}, {"k": "b", "on": False}, {"k": "c", "on": True})
    snap = snapshot(
        {"Ext__c": "a", "On__c": "1"},
        {"Ext__c": "b", "On__c": "false"},
        {"Ext__c": "c", "On__c": "0"},
        types={"Ext__c": pa.string(), "On__c": pa.string()},
    )
    rows = by_key(run(src, snap))
    assert list(rows) == ["c"]
    assert rows["c"][BEFORE + "On__c"] is False and rows["c"]["On__c"] is True


def test_create_missing_and_counts_add_up() -> None:
    src = source({"k": "new", "name": "N", "on": True}, {"k": "same", "on": False})
    snap = snapshot({"Ext__c": "same", "On__c": 0}, {"Ext__c": "gone", "Name": "G", "On__c": 1})
    result = run(src, snap)
    rows = by_key(result)
    assert rows["new"]["action"] == Action.CREATE
    assert rows["new"]["changed"] == ["Name", "On__c"]
    assert rows["gone"]["action"] == Action.MISSING_IN_SOURCE
    assert rows["gone"][BEFORE + "Name"] == "G"
    assert {a: n for a, n in result.counts.items() if n} == {
        Action.CREATE: 1,
        Action.UNCHANGED: 1,
        Action.MISSING_IN_SOURCE: 1,
    }


def test_streamed_source_is_counted() -> None:
    table = source(*({"k": str(i), "on": False} for i in range(1000)))
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=100))
    result = run(reader, snapshot())  # type: ignore[arg-type]
    assert result.counts[Action.CREATE] == 1000
    assert result.counts[Action.UNCHANGED] == 0


def test_mapped_column_the_model_does_not_produce() -> None:
    with pytest.raises(PlanError, match="does not produce mapped column"):
        run(source({"k": "a"}).drop_columns(["n"]), snapshot())


def test_snapshot_fingerprint_ignores_order_and_sees_values() -> None:
    a = snapshot({"Ext__c": "a", "On__c": 1}, {"Ext__c": "b", "On__c": 0})
    b = snapshot({"Ext__c": "b", "On__c": 0}, {"Ext__c": "a", "On__c": 1})
    c = snapshot({"Ext__c": "b", "On__c": 1}, {"Ext__c": "a", "On__c": 1})
    assert snapshot_fingerprint(a) == snapshot_fingerprint(b)
    assert snapshot_fingerprint(a) != snapshot_fingerprint(c)
