"""The Bulk 2.0 CSV trueup writes and the ``sf__Error`` cells it reads (wire spec §8.5, §8.6)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from trueup.destinations.salesforce.bulk import csv_cell, parse_error, read_csv, write_csv


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        (None, "#N/A"),  # clears the field; an empty cell would leave it unchanged
        ("", "#N/A"),  # Salesforce stores '' as null: clear it too
        (True, "true"),
        (False, "false"),
        (dt.date(2026, 1, 31), "2026-01-31"),
        (dt.datetime(2026, 1, 31, 9, 5, 7, 123456, tzinfo=dt.UTC), "2026-01-31T09:05:07.123Z"),
        (dt.datetime(2026, 1, 31, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))),
         "2026-01-31T09:00:00.000Z"),
        (42, "42"),
        (0.5, "0.5"),
        (1e-7, "0.0000001"),  # never scientific notation
        (1e20, "100000000000000000000"),
        (float("nan"), "#N/A"),
        ("2026-01-31", "2026-01-31"),  # JSON-ready values pass through
    ],
)  # fmt: skip
def test_cells(value: Any, cell: str) -> None:
    assert csv_cell(value) == cell


def test_csv_quotes_what_needs_quoting_and_leaves_unmentioned_fields_empty() -> None:
    records = [
        {"Name": 'say "hi", then\nleave', "Ext__c": "a"},
        {"Ext__c": "b", "Start__c": None},
    ]
    text = write_csv(records, "Ext__c").decode()
    assert text == 'Ext__c,Name,Start__c\na,"say ""hi"", then\nleave",\nb,,#N/A\n'
    header, rows = read_csv(text)
    assert header == ["Ext__c", "Name", "Start__c"]
    assert rows[0]["Name"] == 'say "hi", then\nleave' and rows[1]["Start__c"] == "#N/A"


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --",
         ("REQUIRED_FIELD_MISSING", "Required fields are missing: [Name]", ("Name",))),
        ("DUPLICATES_DETECTED:Use one of these records?:--",
         ("DUPLICATES_DETECTED", "Use one of these records?", ())),
        ("FIELD_CUSTOM_VALIDATION_EXCEPTION:Bad:Name,Start__c --",
         ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Bad", ("Name", "Start__c"))),
        ("CANNOT_EXECUTE_FLOW_TRIGGER: Apex CPU time limit exceeded",
         ("CANNOT_EXECUTE_FLOW_TRIGGER", "Apex CPU time limit exceeded", ())),
        ("CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY:T: System.LimitException: Too many SOQL: 101",
         ("CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY", "T: System.LimitException: Too many SOQL: 101",
          ())),
        ("", ("UNKNOWN_ERROR", "Salesforce gave no reason", ())),
    ],
)  # fmt: skip
def test_sf_error_cells(text: str, parsed: tuple[str, str, tuple[str, ...]]) -> None:
    assert parse_error(text) == parsed
