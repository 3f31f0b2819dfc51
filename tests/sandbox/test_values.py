"""Field values by describe type: JSON and Bulk CSV in, JSON and CSV out, and the error codes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from trueup.sandbox.ids import to_18
from trueup.sandbox.objects import SField
from trueup.sandbox.values import (
    UNCHANGED,
    FieldValueError,
    from_csv,
    from_json,
    to_csv,
    to_json,
)

NAME = SField("Name", "string", 80)
EXT = SField("Reverse_ETL_ID__c", "string", 8, custom=True, label="Reverse ETL ID")
CHECKBOX = SField("On__c", "boolean", nillable=False, default_value=False, custom=True)
NILLABLE_BOOL = SField("Maybe__c", "boolean", custom=True)
DAY = SField("Start__c", "date", custom=True)
STAMP = SField("Seen__c", "datetime", custom=True)
AMOUNT = SField("Amount__c", "currency", custom=True)
RATIO = SField("Ratio__c", "double", custom=True)
COUNT = SField("Count__c", "int", custom=True)
LOOKUP = SField("Property__c", "reference", 18, reference_to=("Property__c",), custom=True)
PICK = SField("Stage__c", "picklist", 10, custom=True)

ID15 = "a0P8c00000AbCdE"
UTC = dt.UTC


def code_of(parse: Any, field: SField, value: Any) -> str:
    with pytest.raises(FieldValueError) as caught:
        parse(field, value)
    assert caught.value.fields == (field.name,)
    return caught.value.status_code


# --- JSON in --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "sent", "stored"),
    [
        (NAME, "Maple Court", "Maple Court"),
        (PICK, "Won", "Won"),
        (CHECKBOX, True, True),
        (CHECKBOX, False, False),
        (DAY, "2026-01-31", dt.date(2026, 1, 31)),
        (STAMP, "2026-01-05T14:03:11.000Z", dt.datetime(2026, 1, 5, 14, 3, 11, tzinfo=UTC)),
        (STAMP, "2026-01-05T14:03:11Z", dt.datetime(2026, 1, 5, 14, 3, 11, tzinfo=UTC)),
        (STAMP, "2026-01-05T09:03:11.250-05:00", dt.datetime(2026, 1, 5, 14, 3, 11, 250000, UTC)),
        (STAMP, "2026-01-05T16:03:11+0200", dt.datetime(2026, 1, 5, 14, 3, 11, tzinfo=UTC)),
        (AMOUNT, 12, 12.0),
        (RATIO, 0.25, 0.25),
        (COUNT, 7, 7),
        (COUNT, 7.0, 7),
        (LOOKUP, ID15, to_18(ID15)),
        (LOOKUP, to_18(ID15), to_18(ID15)),
    ],
)
def test_json_values_become_python_values(field: SField, sent: Any, stored: Any) -> None:
    value = from_json(field, sent)
    assert value == stored
    assert type(value) is type(stored)


def test_json_datetimes_are_stored_as_aware_utc() -> None:
    stamp = from_json(STAMP, "2026-01-05T23:30:00.000-05:00")
    assert stamp.tzinfo is UTC
    assert stamp == dt.datetime(2026, 1, 6, 4, 30, tzinfo=UTC)


def test_json_null_clears_but_a_checkbox_is_never_null() -> None:
    assert from_json(DAY, None) is None
    assert from_json(NAME, None) is None
    assert from_json(NILLABLE_BOOL, None) is None
    assert from_json(CHECKBOX, None) is False


@pytest.mark.parametrize(
    ("field", "sent"),
    [
        (CHECKBOX, "true"),  # a string is not a JSON boolean
        (CHECKBOX, 1),
        (DAY, "01/31/2026"),
        (DAY, "2026-02-30"),  # not a calendar date
        (DAY, "2026-01-31T00:00:00Z"),  # a date has no time and no offset (§3.4)
        (DAY, 20260131),
        (STAMP, "2026-01-05T14:03:11"),  # no offset
        (STAMP, "2026-01-05 14:03:11Z"),
        (STAMP, "2026-13-05T14:03:11Z"),
        (AMOUNT, "12.5"),
        (AMOUNT, True),
        (COUNT, 7.5),
        (COUNT, False),
        (NAME, 42),
        (NAME, {"nested": "object"}),
        (LOOKUP, 12345),
    ],
)
def test_json_values_of_the_wrong_type_are_parser_errors(field: SField, sent: Any) -> None:
    assert code_of(from_json, field, sent) == "JSON_PARSER_ERROR"


def test_json_parser_error_message_names_the_type_and_value() -> None:
    with pytest.raises(FieldValueError) as caught:
        from_json(DAY, "01/31/2026")
    assert caught.value.message.startswith(
        "Cannot deserialize instance of date from VALUE_STRING value 01/31/2026"
    )


def test_text_longer_than_its_length_is_string_too_long() -> None:
    assert from_json(NAME, "x" * 80) == "x" * 80
    with pytest.raises(FieldValueError) as caught:
        from_json(NAME, "x" * 81)
    error = caught.value.record_error()
    assert error.status_code == "STRING_TOO_LONG"
    assert error.message == f"Name: data value too large: {'x' * 81} (max length=80)"
    assert error.fields == ("Name",)


def test_string_too_long_names_the_field_by_its_label() -> None:
    with pytest.raises(FieldValueError) as caught:
        from_csv(EXT, "prop-000123")
    assert caught.value.message == (
        "Reverse ETL ID: data value too large: prop-000123 (max length=8)"
    )


@pytest.mark.parametrize("sent", ["not-an-id", "a0P8c00000AbCd", "a0P8c00000AbCdE!!!"])
def test_an_id_that_is_not_one_is_malformed(sent: str) -> None:
    assert code_of(from_json, LOOKUP, sent) == "MALFORMED_ID"
    assert code_of(from_csv, LOOKUP, sent) == "MALFORMED_ID"


# --- CSV in ---------------------------------------------------------------------------------


def test_empty_cell_leaves_the_field_unchanged_and_na_clears_it() -> None:
    for field in (NAME, CHECKBOX, DAY, STAMP, AMOUNT, COUNT, LOOKUP):
        assert from_csv(field, "") is UNCHANGED
    assert from_csv(DAY, "#N/A") is None
    assert from_csv(NAME, "#N/A") is None
    assert from_csv(CHECKBOX, "#N/A") is False  # a checkbox cleared is false, never null


@pytest.mark.parametrize(
    ("text", "stored"), [("true", True), ("TRUE", True), ("True", True), ("false", False)]
)
def test_csv_booleans_are_true_or_false_in_any_case(text: str, stored: bool) -> None:
    assert from_csv(CHECKBOX, text) is stored


@pytest.mark.parametrize("text", ["1", "0", "yes", "y", "on", " true", "truee"])
def test_other_csv_booleans_are_rejected(text: str) -> None:
    assert code_of(from_csv, CHECKBOX, text) == "INVALID_TYPE_ON_FIELD_IN_RECORD"


def test_invalid_type_message_names_the_label_and_value() -> None:
    with pytest.raises(FieldValueError) as caught:
        from_csv(CHECKBOX, "yes")
    assert caught.value.message == "On: value not of required type: yes"


@pytest.mark.parametrize(
    ("field", "text", "stored"),
    [
        (NAME, "  spaced  ", "  spaced  "),  # values are not trimmed (§8.6)
        (DAY, "2026-01-31", dt.date(2026, 1, 31)),
        (STAMP, "2026-01-05T14:03:11.000+00:00", dt.datetime(2026, 1, 5, 14, 3, 11, tzinfo=UTC)),
        (AMOUNT, "12.50", 12.5),
        (RATIO, "-1e3", -1000.0),
        (COUNT, "42", 42),
        (LOOKUP, ID15, to_18(ID15)),
    ],
)
def test_csv_cells_are_parsed_by_field_type(field: SField, text: str, stored: Any) -> None:
    value = from_csv(field, text)
    assert value == stored
    assert type(value) is type(stored)


@pytest.mark.parametrize(
    ("field", "text"),
    [
        (DAY, "31/01/2026"),
        (DAY, "2026-02-29"),
        (STAMP, "2026-01-05"),
        (AMOUNT, "12,50"),
        (AMOUNT, "nan"),
        (COUNT, "4.0"),
        (COUNT, "four"),
    ],
)
def test_csv_cells_of_the_wrong_type_are_rejected(field: SField, text: str) -> None:
    assert code_of(from_csv, field, text) == "INVALID_TYPE_ON_FIELD_IN_RECORD"


def test_csv_text_length_is_checked() -> None:
    assert code_of(from_csv, NAME, "x" * 81) == "STRING_TOO_LONG"


# --- out ------------------------------------------------------------------------------------


def test_to_json_renders_dates_datetimes_and_nulls() -> None:
    stamp = dt.datetime(2026, 1, 5, 14, 3, 11, 123456, tzinfo=UTC)
    assert to_json(DAY, dt.date(2026, 1, 31)) == "2026-01-31"
    assert to_json(STAMP, stamp) == "2026-01-05T14:03:11.123+0000"
    eastern = dt.datetime(2026, 1, 5, 9, 3, 11, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    assert to_json(STAMP, eastern) == "2026-01-05T14:03:11.000+0000"
    assert to_json(CHECKBOX, False) is False
    assert to_json(AMOUNT, 12.5) == 12.5
    assert to_json(COUNT, 3) == 3
    assert to_json(DAY, None) is None
    assert to_json(NAME, "x") == "x"


def test_json_round_trip() -> None:
    for field, sent in [
        (DAY, "2026-01-31"),
        (STAMP, "2026-01-05T14:03:11.000+0000"),
        (CHECKBOX, True),
        (AMOUNT, 1.5),
        (NAME, "Maple"),
    ]:
        assert to_json(field, from_json(field, sent)) == sent


def test_to_csv_renders_cells() -> None:
    assert to_csv(DAY, None) == ""
    assert to_csv(CHECKBOX, True) == "true"
    assert to_csv(CHECKBOX, False) == "false"
    assert to_csv(DAY, dt.date(2026, 1, 31)) == "2026-01-31"
    stamp = dt.datetime(2026, 1, 5, 14, 3, 11, tzinfo=UTC)
    assert to_csv(STAMP, stamp) == "2026-01-05T14:03:11.000Z"
    assert to_csv(AMOUNT, 12.0) == "12"
    assert to_csv(AMOUNT, 12.5) == "12.5"
    assert to_csv(NAME, "a,b") == "a,b"  # quoting is the CSV writer's job


def test_csv_round_trip() -> None:
    for field, text in [
        (DAY, "2026-01-31"),
        (STAMP, "2026-01-05T14:03:11.000Z"),
        (CHECKBOX, "false"),
        (COUNT, "42"),
        (NAME, "Maple"),
    ]:
        assert to_csv(field, from_csv(field, text)) == text
