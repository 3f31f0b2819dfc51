"""Which model column types can feed which field types (compat.py), and the pre-flight that lists
every column that cannot, for any destination."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pytest

from trueup.compat import accepts, checked_describe, mapped_columns, type_problem, type_problems
from trueup.destinations.base import BatchResult, Capabilities, Destination, WriteBatch
from trueup.errors import ConfigError
from trueup.schema import DestinationSchema, FieldSpec, FieldType

T, B, D, DT, INT, N = (
    FieldType.TEXT,
    FieldType.BOOLEAN,
    FieldType.DATE,
    FieldType.DATETIME,
    FieldType.INTEGER,
    FieldType.NUMBER,
)

# column type → the field types it can feed; every other field type refuses it
TABLE: list[tuple[pa.DataType, set[FieldType]]] = [
    (pa.string(), {T, B, D, DT, INT, N}),  # parsed by the diff: bad values make invalid records
    (pa.large_string(), {T, B, D, DT, INT, N}),
    (pa.string_view(), {T, B, D, DT, INT, N}),
    (pa.dictionary(pa.int32(), pa.string()), {T, B, D, DT, INT, N}),
    (pa.null(), {T, B, D, DT, INT, N}),  # no values: nothing to refuse
    (pa.bool_(), {T, B, INT, N}),
    (pa.int8(), {T, B, INT, N}),
    (pa.int64(), {T, B, INT, N}),
    (pa.uint32(), {T, B, INT, N}),
    (pa.float64(), {T, B, INT, N}),  # 3.0 is an integer, 1.0 a boolean
    (pa.decimal128(10, 2), {T, B, INT, N}),
    (pa.date32(), {T, D, DT}),
    (pa.date64(), {T, D, DT}),
    (pa.timestamp("us"), {T, D, DT}),
    (pa.timestamp("ms", tz="America/New_York"), {T, D, DT}),
    (pa.time64("us"), {T}),
    (pa.duration("s"), {T}),
    (pa.binary(), {T}),
    (pa.list_(pa.int64()), {T}),
    (pa.struct([("a", pa.int64())]), {T}),
]


@pytest.mark.parametrize(("column_type", "feeds"), TABLE, ids=[str(t) for t, _ in TABLE])
def test_which_column_types_feed_which_fields(
    column_type: pa.DataType, feeds: set[FieldType]
) -> None:
    assert {f for f in FieldType if accepts(f, column_type)} == feeds


def test_a_problem_names_the_field_the_column_and_what_the_field_takes() -> None:
    date = FieldSpec("Start_Date__c", FieldType.DATE)
    count = FieldSpec("Seats__c", FieldType.INTEGER)

    assert type_problem(date, pa.field("since", pa.timestamp("us", tz="UTC"))) is None
    assert type_problem(date, pa.field("flag", pa.bool_())) == (
        "Start_Date__c is a date field but model column flag is bool "
        "(date fields take a date, a timestamp or text)"
    )
    assert type_problem(count, pa.field("day", pa.date32())) == (
        "Seats__c is an integer field but model column day is date32 "
        "(integer fields take a number, a boolean or text)"
    )


def test_mapped_columns_are_by_field_and_leave_out_what_the_model_lacks() -> None:
    model = pa.schema([("id", pa.string()), ("flag", pa.bool_()), ("dup", pa.int64())])
    model = model.append(pa.field("dup", pa.string()))
    mapping = {"id": "Key__c", "flag": "Flag__c", "absent": "Absent__c", "dup": "Dup__c"}

    columns = mapped_columns(mapping, model)

    assert columns == {"Key__c": model.field(0), "Flag__c": model.field(1)}


SCHEMA = DestinationSchema(
    "Thing__c",
    {
        "Key__c": FieldSpec("Key__c", FieldType.TEXT, unique=True),
        "Start__c": FieldSpec("Start__c", FieldType.DATE),
        "Seats__c": FieldSpec("Seats__c", FieldType.INTEGER),
        "Active__c": FieldSpec("Active__c", FieldType.BOOLEAN, nullable=False),
    },
)


def test_type_problems_list_every_wrong_column_and_skip_unknown_fields() -> None:
    columns = {
        "Key__c": pa.field("id", pa.int64()),
        "Start__c": pa.field("flag", pa.bool_()),
        "Seats__c": pa.field("since", pa.timestamp("us")),
        "Active__c": pa.field("on", pa.string()),
        "Nope__c": pa.field("x", pa.bool_()),
    }

    problems = type_problems(SCHEMA, columns)

    assert [p.split(" is ")[0] for p in problems] == ["Start__c", "Seats__c"]


class Described(Destination):
    """A destination that can only describe itself (the pre-flight reads nothing else)."""

    def __init__(self, schema: DestinationSchema) -> None:
        self.schema = schema

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(max_batch_size=1)

    def describe(self) -> DestinationSchema:
        return self.schema

    def snapshot(self, fields: Sequence[str]) -> pa.Table:
        raise AssertionError("the pre-flight must not read records")

    def write(self, batch: WriteBatch) -> BatchResult:
        raise AssertionError("the pre-flight must not write")

    def close(self) -> None:
        pass


def test_checked_describe_raises_one_config_error_with_unknown_fields_too() -> None:
    model = pa.schema([("id", pa.string()), ("flag", pa.bool_()), ("n", pa.int64())])
    mapping = {"id": "Key__c", "flag": "Start__c", "n": "Seets__c"}

    with pytest.raises(ConfigError) as caught:
        checked_describe(Described(SCHEMA), mapping, model, file="trueup.yml")

    error = caught.value
    assert error.path == "mapping" and error.exit_code == 2
    assert str(error).splitlines() == [
        "trueup.yml: mapping: 2 problem(s) with the fields of Thing__c:",
        "  - Thing__c has no field Seets__c (did you mean Seats__c?)",
        "  - Start__c is a date field but model column flag is bool "
        "(date fields take a date, a timestamp or text)",
    ]


def test_checked_describe_returns_the_schema_when_every_column_fits() -> None:
    model = pa.schema([("id", pa.string()), ("since", pa.date32()), ("flag", pa.int64())])
    mapping = {"id": "Key__c", "since": "Start__c", "flag": "Active__c", "gone": "Gone__c"}

    # unknown fields alone are the destination's to report (DestinationSchemaError)
    assert checked_describe(Described(SCHEMA), mapping, model) is SCHEMA
