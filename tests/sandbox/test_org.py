"""The org's DML as Salesforce answers it: per-record results, upsert matching, allOrNone,
trigger chunks, deletes, and the SQLite file it can restart from."""

from __future__ import annotations

import datetime as dt
import stat
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from trueup.sandbox.errors import ApiError, RecordError
from trueup.sandbox.ids import to_18
from trueup.sandbox.objects import PRODUCTS, SField, SObject, default_objects
from trueup.sandbox.org import JsonErrors, Org, SaveResult
from trueup.sandbox.rules import TRIGGER_CHUNK

PP = "Product_Property__c"
EXT = "Reverse_ETL_ID__c"
FRAUD = "Fraud_Detection_Enabled__c"
START = "Fraud_Detection_Start_Date__c"
ROLLED_BACK_MESSAGE = (
    "Record rolled back because not all records were valid and the request was using AllOrNone "
    "header"
)


def system(name: str, kind: str) -> SField:
    return SField(name, kind, nillable=False, createable=False, updateable=False)


def thing() -> SObject:
    """A test object with a case-sensitive unique external ID, a required and a locked field."""
    fields = [
        SField("Id", "id", 18, nillable=False, createable=False, updateable=False, id_lookup=True),
        SField("Name", "string", 80, id_lookup=True),
        system("IsDeleted", "boolean"),
        system("CreatedDate", "datetime"),
        system("LastModifiedDate", "datetime"),
        system("SystemModstamp", "datetime"),
        SField("Code__c", "string", 10, external_id=True, unique=True, case_sensitive=True),
        SField("Required__c", "string", 20, nillable=False),
        SField("Locked__c", "string", 20, updateable=False),
        SField("Flag__c", "boolean", nillable=False, default_value=True),
    ]
    return SObject("Thing__c", "a0T", {f.name: f for f in fields})


def org_with_thing(**kwargs: Any) -> Org:
    return Org({**default_objects(), "Thing__c": thing()}, **kwargs)


def codes(results: Sequence[SaveResult]) -> list[str | None]:
    return [r.errors[0].status_code if r.errors else None for r in results]


def upsert(org: Org, *records: Mapping[str, Any], all_or_none: bool = False) -> list[SaveResult]:
    return org.upsert(PP, EXT, list(records), all_or_none=all_or_none)


# --- objects, Ids, system fields ------------------------------------------------------------


def test_objects_are_found_in_any_case_and_unknown_ones_are_not_found() -> None:
    org = Org()
    assert set(org.objects) == {"Property__c", PP}
    assert org.sobject("product_property__C").name == PP
    with pytest.raises(ApiError) as caught:
        org.sobject("Nope__c")
    assert caught.value.status == 404
    assert caught.value.body() == [
        {"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}
    ]


def test_insert_mints_18_character_ids_with_the_object_prefix_and_sets_system_fields() -> None:
    org = Org()
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    results = org.insert(PP, [{EXT: "p-1"}, {EXT: "p-2"}])
    assert [r.success for r in results] == [True, True]
    ids = [r.id for r in results]
    assert len(set(ids)) == 2
    for record_id in ids:
        assert record_id is not None and len(record_id) == 18
        assert record_id.startswith("a0X")
        assert to_18(record_id[:15]) == record_id  # a correct case-checksum suffix
    row = org.get(PP, ids[0])
    assert row is not None
    assert row["Id"] == ids[0]
    assert row["IsDeleted"] is False
    assert row["CreatedDate"].tzinfo is not None and row["CreatedDate"] >= before
    assert row["LastModifiedDate"] == row["SystemModstamp"] == row["CreatedDate"]
    assert row[FRAUD] is False  # a checkbox left out of an insert is its default
    assert row[START] is None
    assert org.get(PP, ids[0][:15]) == row  # 15-character Ids name the same record
    assert org.count(PP) == 2


def test_save_result_json_is_what_collections_return() -> None:
    ok = SaveResult("a0X8c00000AbCdEEAV", True, created=True)
    assert ok.to_json(with_created=False) == {
        "id": "a0X8c00000AbCdEEAV",
        "success": True,
        "errors": [],
    }
    assert ok.to_json(with_created=True)["created"] is True
    bad = SaveResult(None, False, (RecordError("X", "y", ("F",)),))
    assert bad.to_json(with_created=True) == {
        "id": None,
        "success": False,
        "errors": [{"statusCode": "X", "message": "y", "fields": ["F"]}],
        "created": False,
    }


# --- field checks ---------------------------------------------------------------------------


def test_unknown_field_fails_that_record_only() -> None:
    org = Org()
    results = org.insert(PP, [{EXT: "p-1", "Nope__c": 1}, {EXT: "p-2"}])
    assert codes(results) == ["INVALID_FIELD", None]
    assert results[0].errors[0].message == "No such column 'Nope__c' on sobject of type " + PP
    assert org.count(PP) == 1


def test_whole_request_mode_turns_parse_errors_into_a_400_and_saves_nothing() -> None:
    org = Org(json_errors=JsonErrors.WHOLE_REQUEST)
    with pytest.raises(ApiError) as caught:
        org.insert(PP, [{EXT: "p-1"}, {EXT: "p-2", START: "31/01/2026"}])
    assert (caught.value.status, caught.value.error_code) == (400, "JSON_PARSER_ERROR")
    with pytest.raises(ApiError) as caught:
        org.insert(PP, [{EXT: "p-1"}, {EXT: "p-2", "Nope__c": 1}])
    assert caught.value.error_code == "INVALID_FIELD"
    assert org.count(PP) == 0
    # validation that needs the org stays per record
    assert codes(org.insert(PP, [{EXT: "x" * 65}])) == ["STRING_TOO_LONG"]


def test_wrong_json_type_fails_the_record_with_json_parser_error() -> None:
    org = Org()
    results = org.insert(PP, [{EXT: "p-1", FRAUD: "yes"}, {EXT: "p-2", START: "2026-02-30"}])
    assert codes(results) == ["JSON_PARSER_ERROR", "JSON_PARSER_ERROR"]
    assert results[1].errors[0].fields == (START,)


def test_string_too_long_fails_the_record() -> None:
    org = Org()
    [result] = org.insert(PP, [{EXT: "p-1", "Name": "n" * 81}])
    assert result.errors[0].status_code == "STRING_TOO_LONG"
    assert result.errors[0].message == f"Name: data value too large: {'n' * 81} (max length=80)"


def test_system_fields_and_ids_cannot_be_written() -> None:
    org = Org()
    results = org.insert(PP, [{EXT: "p-1", "CreatedDate": "2026-01-01T00:00:00Z"}])
    assert codes(results) == ["INVALID_FIELD_FOR_INSERT_UPDATE"]
    assert results[0].errors[0].fields == ("CreatedDate",)
    assert results[0].errors[0].message.startswith("Unable to create/update fields: CreatedDate.")
    [with_id] = org.insert(PP, [{"Id": "a0X8c00000AbCdEEAV", EXT: "p-2"}])
    assert with_id.errors[0] == RecordError(
        "INVALID_FIELD_FOR_INSERT_UPDATE", "cannot specify Id in an insert call", ("Id",)
    )
    assert org.count(PP) == 0


def test_required_fields_must_be_given_on_insert_and_not_cleared_on_update() -> None:
    org = org_with_thing()
    results = org.insert("Thing__c", [{"Name": "a"}, {"Required__c": "r"}])
    assert codes(results) == ["REQUIRED_FIELD_MISSING", None]
    assert results[0].errors[0].message == "Required fields are missing: [Required__c]"
    assert results[0].errors[0].fields == ("Required__c",)
    row = org.get("Thing__c", str(results[1].id))
    assert row is not None and row["Flag__c"] is True  # the checkbox's own default
    [cleared] = org.update("Thing__c", [{"Id": results[1].id, "Required__c": None}])
    assert cleared.errors[0].status_code == "REQUIRED_FIELD_MISSING"


def test_non_updateable_field_can_be_set_on_insert_but_not_on_update() -> None:
    org = org_with_thing()
    [made] = org.insert("Thing__c", [{"Required__c": "r", "Locked__c": "first"}])
    assert made.success
    [changed] = org.update("Thing__c", [{"Id": made.id, "Locked__c": "second"}])
    assert changed.errors[0].status_code == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert changed.errors[0].fields == ("Locked__c",)
    row = org.get("Thing__c", str(made.id))
    assert row is not None and row["Locked__c"] == "first"


def test_null_on_a_checkbox_stores_false() -> None:
    org = Org()
    [result] = upsert(org, {EXT: "p-1", FRAUD: None})
    row = org.get(PP, str(result.id))
    assert row is not None and row[FRAUD] is False


def test_attributes_are_ignored_unless_they_name_another_object() -> None:
    org = Org()
    [ok] = upsert(org, {"attributes": {"type": PP}, EXT: "p-1"})
    assert ok.success
    with pytest.raises(ApiError) as caught:
        upsert(org, {"attributes": {"type": "Property__c"}, EXT: "p-2"})
    assert caught.value.status == 400
    assert org.count(PP) == 1


# --- update and delete ----------------------------------------------------------------------


def test_update_by_id_changes_only_the_fields_sent() -> None:
    org = Org()
    [made] = upsert(org, {EXT: "p-1", FRAUD: True, START: "2026-01-31"})
    created = org.get(PP, str(made.id))
    assert created is not None
    [changed] = org.update(PP, [{"Id": str(made.id)[:15], START: "2026-02-01"}])
    assert changed == SaveResult(made.id, True, created=False)
    row = org.get(PP, str(made.id))
    assert row is not None
    assert row[START] == dt.date(2026, 2, 1)
    assert row[FRAUD] is True
    assert row["CreatedDate"] == created["CreatedDate"]
    assert row["LastModifiedDate"] >= created["LastModifiedDate"]


def test_update_reports_missing_malformed_unknown_and_repeated_ids() -> None:
    org = Org()
    [a, b] = upsert(org, {EXT: "p-1"}, {EXT: "p-2"})
    other_object = org.insert("Property__c", [{"Name": "Maple"}])[0].id
    results = org.update(
        PP,
        [
            {FRAUD: True},
            {"Id": "nonsense", FRAUD: True},
            {"Id": "a0X8c00000ZZZZZ", FRAUD: True},
            {"Id": other_object, FRAUD: True},
            {"Id": a.id, FRAUD: True},
            {"Id": a.id, FRAUD: False},
            {"Id": b.id, FRAUD: True},
        ],
    )
    assert codes(results) == [
        "MISSING_ARGUMENT",
        "MALFORMED_ID",
        "INVALID_CROSS_REFERENCE_KEY",
        "INVALID_CROSS_REFERENCE_KEY",
        "DUPLICATE_VALUE",
        "DUPLICATE_VALUE",
        None,
    ]


def test_delete_hides_records_from_rows_unless_deleted_ones_are_asked_for() -> None:
    org = Org()
    [a, b] = upsert(org, {EXT: "p-1"}, {EXT: "p-2"})
    results = org.delete([str(a.id), "garbage", str(a.id)])
    assert results[0] == SaveResult(a.id, True)
    assert codes(results) == [None, "MALFORMED_ID", "ENTITY_IS_DELETED"]
    assert org.count(PP) == 1
    assert org.get(PP, str(a.id)) is None
    assert [r["Id"] for r in org.rows(PP)] == [b.id]
    every = org.rows(PP, include_deleted=True)
    assert [(r["Id"], r["IsDeleted"]) for r in every] == [(a.id, True), (b.id, False)]
    assert codes(org.delete([str(a.id)])) == ["ENTITY_IS_DELETED"]
    assert codes(org.update(PP, [{"Id": a.id, FRAUD: True}])) == ["ENTITY_IS_DELETED"]
    # the external ID is free again: upserting it creates a new record
    [again] = upsert(org, {EXT: "p-1"})
    assert again.created is True and again.id != a.id


def test_delete_all_or_none_keeps_everything_when_one_id_fails() -> None:
    org = Org()
    [a] = upsert(org, {EXT: "p-1"})
    results = org.delete([str(a.id), "a0X8c00000ZZZZZZZZ"], all_or_none=True)
    assert codes(results) == ["ALL_OR_NONE_OPERATION_ROLLED_BACK", "INVALID_CROSS_REFERENCE_KEY"]
    assert org.count(PP) == 1


# --- upsert ---------------------------------------------------------------------------------


def test_upsert_creates_then_updates_matching_case_insensitively() -> None:
    org = Org()
    first = upsert(org, {EXT: "prop-000123", FRAUD: True}, {EXT: "prop-000124"})
    assert [(r.success, r.created) for r in first] == [(True, True), (True, True)]
    second = upsert(org, {EXT: "PROP-000123", FRAUD: False}, {EXT: "prop-000125"})
    assert [(r.success, r.created) for r in second] == [(True, False), (True, True)]
    assert second[0].id == first[0].id
    assert second[0].to_json(with_created=True)["created"] is False
    assert org.count(PP) == 3
    row = org.get(PP, str(first[0].id))
    assert row is not None and row[FRAUD] is False
    assert [r["Id"] for r in org.find(PP, EXT, "Prop-000123")] == [first[0].id]


def test_case_sensitive_external_ids_match_exactly() -> None:
    org = org_with_thing()
    results = org.upsert(
        "Thing__c",
        "Code__c",
        [{"Code__c": "abc", "Required__c": "r"}, {"Code__c": "ABC", "Required__c": "r"}],
    )
    assert [r.created for r in results] == [True, True]  # different values, no duplicate
    assert org.find("Thing__c", "Code__c", "ABC")[0]["Id"] == results[1].id
    [again] = org.upsert("Thing__c", "Code__c", [{"Code__c": "abc", "Name": "x"}])
    assert (again.created, again.id) == (False, results[0].id)


def test_the_same_external_id_twice_in_a_request_fails_every_occurrence() -> None:
    org = Org()
    results = upsert(org, {EXT: "p-1"}, {EXT: "p-2"}, {EXT: "P-1"})
    assert codes(results) == ["DUPLICATE_VALUE", None, "DUPLICATE_VALUE"]
    assert results[0].errors[0] == RecordError(
        "DUPLICATE_VALUE", "Duplicate external id specified: p-1", (EXT,)
    )
    assert results[2].errors[0].message == "Duplicate external id specified: P-1"
    assert org.count(PP) == 1


def test_the_same_external_id_in_different_chunks_is_a_later_update() -> None:
    org = Org()
    records = [{EXT: f"p-{i}"} for i in range(TRIGGER_CHUNK)] + [{EXT: "p-0", FRAUD: True}]
    results = upsert(org, *records)
    assert all(r.success for r in results)
    assert (results[-1].created, results[-1].id) == (False, results[0].id)
    row = org.get(PP, str(results[0].id))
    assert row is not None and row[FRAUD] is True


def test_a_value_already_on_two_records_is_duplicate_external_id() -> None:
    org = Org()
    [a, b] = upsert(
        org,
        {EXT: "p-1", "Snappt_Property_ID__c": "s-1"},
        {EXT: "p-2", "Snappt_Property_ID__c": "S-1"},
    )
    [result] = org.upsert(PP, "Snappt_Property_ID__c", [{"Snappt_Property_ID__c": "s-1"}])
    assert result.errors[0].status_code == "DUPLICATE_EXTERNAL_ID"
    assert f"[{a.id}, {b.id}]" in result.errors[0].message
    assert len(org.find(PP, "Snappt_Property_ID__c", "s-1")) == 2


def test_a_unique_value_held_by_another_record_is_duplicate_value() -> None:
    org = Org()
    [a] = upsert(org, {EXT: "p-1", "Snappt_Property_ID__c": "s-1"})
    results = org.upsert(
        PP,
        "Snappt_Property_ID__c",
        [
            {"Snappt_Property_ID__c": "s-2", EXT: "P-1"},  # Reverse_ETL_ID__c is unique
            {"Snappt_Property_ID__c": "s-3", EXT: "p-9"},
            {"Snappt_Property_ID__c": "s-4", EXT: "p-9"},
        ],
    )
    assert codes(results) == ["DUPLICATE_VALUE", None, "DUPLICATE_VALUE"]
    assert results[0].errors[0].message == (
        f"duplicate value found: {EXT} duplicates value on record with id: {a.id}"
    )
    assert "<unknown>" in results[2].errors[0].message


def test_a_record_without_its_external_id_value_fails() -> None:
    org = Org()
    results = upsert(org, {FRAUD: True}, {EXT: None}, {EXT: ""}, {EXT: "p-1"})
    assert codes(results) == ["MISSING_ARGUMENT"] * 3 + [None]
    assert results[0].errors[0].fields == (EXT,)


@pytest.mark.parametrize("field", ["Nope__c", START, "Name"])
def test_upsert_on_a_field_that_is_no_external_id_is_not_found(field: str) -> None:
    org = Org()  # Name is idLookup but no External ID: REST and Bulk upsert refuse it too (§6)
    with pytest.raises(ApiError) as caught:
        org.upsert(PP, field, [{field: "x"}])
    assert (caught.value.status, caught.value.error_code) == (404, "NOT_FOUND")
    assert caught.value.message == "The requested resource does not exist"


def test_results_come_back_in_request_order() -> None:
    org = Org()
    [existing] = upsert(org, {EXT: "p-0"})
    records = [{EXT: "p-1"}, {EXT: "p-0"}, {EXT: "p-2", START: "bad"}, {EXT: "p-3"}]
    results = upsert(org, *records)
    assert [(r.success, r.created) for r in results] == [
        (True, True),
        (True, False),
        (False, None),
        (True, True),
    ]
    assert results[1].id == existing.id
    rows = {r[EXT]: r["Id"] for r in org.rows(PP)}
    assert [rows["p-1"], rows["p-0"], rows["p-3"]] == [results[0].id, results[1].id, results[3].id]


def test_lookups_can_be_set_through_the_parents_external_id() -> None:
    org = Org()
    [parent] = org.insert("Property__c", [{"Name": "Maple Court"}])
    results = upsert(
        org,
        {EXT: "p-1", "Property__r": {"Name": "maple court"}},
        {EXT: "p-2", "Property__r": {"Name": "Elm"}},
    )
    assert codes(results) == [None, "INVALID_FIELD"]
    row = org.get(PP, str(results[0].id))
    assert row is not None and row["Property__c"] == parent.id
    [csv] = org.upsert(PP, EXT, [{EXT: "p-3", "Property__r.Name": "Maple Court"}], source="csv")
    assert csv.success
    assert org.find(PP, EXT, "p-3")[0]["Property__c"] == parent.id


# --- allOrNone ------------------------------------------------------------------------------


def test_all_or_none_false_saves_the_good_records() -> None:
    org = Org()
    results = upsert(org, {EXT: "p-1"}, {EXT: "p-2", START: "nope"}, {EXT: "p-3"})
    assert [r.success for r in results] == [True, False, True]
    assert org.count(PP) == 2


def test_all_or_none_true_rolls_back_every_record_when_one_fails() -> None:
    org = Org()
    [kept] = upsert(org, {EXT: "p-0", FRAUD: True})
    results = upsert(
        org,
        {EXT: "p-0", FRAUD: False},  # an update, rolled back
        {EXT: "p-1"},  # an insert, rolled back
        {EXT: "p-2", START: "nope"},  # the cause
        all_or_none=True,
    )
    assert codes(results) == [
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "JSON_PARSER_ERROR",
    ]
    assert not any(r.success for r in results)
    assert results[0].errors[0] == RecordError(
        "ALL_OR_NONE_OPERATION_ROLLED_BACK", ROLLED_BACK_MESSAGE
    )
    assert results[1].id is None  # the new record never existed
    assert results[0].to_json(with_created=True)["errors"] == [
        {
            "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "message": ROLLED_BACK_MESSAGE,
            "fields": [],
        }
    ]
    assert org.count(PP) == 1
    row = org.get(PP, str(kept.id))
    assert row is not None and row[FRAUD] is True
    assert org.find(PP, EXT, "p-1") == []


def test_all_or_none_true_saves_everything_when_nothing_fails() -> None:
    org = Org()
    results = upsert(org, {EXT: "p-1"}, {EXT: "p-2"}, all_or_none=True)
    assert [r.success for r in results] == [True, True]
    assert org.count(PP) == 2


# --- trigger chunks and rules ---------------------------------------------------------------


class ChunkRules:
    """Records every call; fails chunk number ``fail_chunk`` whole, like a flow hitting a limit."""

    def __init__(self, fail_chunk: int | None = None, fail_key: str | None = None) -> None:
        self.calls: list[tuple[str, str, list[dict[str, Any]]]] = []
        self.fail_chunk = fail_chunk
        self.fail_key = fail_key

    def before_save(
        self, sobject: str, operation: str, chunk: Sequence[Mapping[str, Any]]
    ) -> Sequence[RecordError | None]:
        self.calls.append((sobject, operation, [dict(r) for r in chunk]))
        if len(self.calls) - 1 == self.fail_chunk:
            error = RecordError("CANNOT_EXECUTE_FLOW_TRIGGER", "Apex CPU time limit exceeded")
            return [error] * len(chunk)
        validation = RecordError("FIELD_CUSTOM_VALIDATION_EXCEPTION", "no", (FRAUD,))
        return [validation if r.get(EXT) == self.fail_key else None for r in chunk]


def test_rules_see_each_chunk_of_200_and_can_fail_a_whole_chunk() -> None:
    rules = ChunkRules(fail_chunk=1)
    org = Org(rules=rules)
    records = [{EXT: f"p-{i:03d}"} for i in range(450)]
    results = upsert(org, *records)
    assert [len(chunk) for _, _, chunk in rules.calls] == [200, 200, 50]
    assert {(sobject, op) for sobject, op, _ in rules.calls} == {(PP, "upsert")}
    assert rules.calls[1][2][0][EXT] == "p-200"
    assert all(r.success for r in results[:200] + results[400:])
    assert codes(results[200:400]) == ["CANNOT_EXECUTE_FLOW_TRIGGER"] * 200
    assert org.count(PP) == 250


def test_rules_see_would_be_values_with_the_id_of_updated_records() -> None:
    rules = ChunkRules()
    org = Org(rules=rules)
    [made] = upsert(org, {EXT: "p-1", FRAUD: True})
    org.update(PP, [{"Id": made.id, START: "2026-01-31"}])
    _, operation, [seen] = rules.calls[-1]
    assert operation == "update"
    assert seen["Id"] == made.id
    assert seen[FRAUD] is True  # stored value kept
    assert seen[START] == dt.date(2026, 1, 31)  # new value
    assert rules.calls[0][2][0]["Id"] is None  # a new record has no Id yet
    org.delete([str(made.id)])
    assert rules.calls[-1][1] == "delete"


def test_rules_fail_single_records_and_records_that_failed_checks_are_not_shown() -> None:
    rules = ChunkRules(fail_key="p-2")
    org = Org(rules=rules)
    results = upsert(org, {EXT: "p-1"}, {EXT: "p-2"}, {EXT: "p-3", START: "bad"})
    assert codes(results) == [None, "FIELD_CUSTOM_VALIDATION_EXCEPTION", "JSON_PARSER_ERROR"]
    assert [r[EXT] for r in rules.calls[0][2]] == ["p-1", "p-2"]
    assert org.count(PP) == 1


def test_rules_can_be_swapped_on_a_running_org() -> None:
    org = Org()
    org.rules = ChunkRules(fail_chunk=0)
    assert codes(upsert(org, {EXT: "p-1"})) == ["CANNOT_EXECUTE_FLOW_TRIGGER"]


def test_a_request_level_error_inside_a_call_undoes_earlier_chunks() -> None:
    class Outage:
        def __init__(self) -> None:
            self.calls = 0

        def before_save(
            self, sobject: str, operation: str, chunk: Sequence[Mapping[str, Any]]
        ) -> Sequence[RecordError | None]:
            self.calls += 1
            if self.calls == 2:
                raise ApiError(503, "SERVER_UNAVAILABLE", "down")
            return [None] * len(chunk)

    org = Org(rules=Outage())
    with pytest.raises(ApiError):
        upsert(org, *[{EXT: f"p-{i}"} for i in range(300)])
    assert org.count(PP) == 0
    assert org.rows(PP, include_deleted=True) == []


# --- Bulk CSV values ------------------------------------------------------------------------


def test_csv_empty_cells_leave_fields_alone_and_na_clears_them() -> None:
    org = Org()
    [made] = upsert(org, {EXT: "p-1", FRAUD: True, START: "2026-01-31", "Name": "Maple"})
    rows = [{EXT: "p-1", FRAUD: "", START: "#N/A", "Name": ""}]
    [result] = org.upsert(PP, EXT, rows, source="csv")
    assert (result.success, result.created) == (True, False)
    row = org.get(PP, str(made.id))
    assert row is not None
    assert (row[FRAUD], row[START], row["Name"]) == (True, None, "Maple")


def test_csv_values_are_parsed_and_bad_ones_fail_their_row() -> None:
    org = Org()
    rows = [
        {EXT: "p-1", FRAUD: "TRUE", START: "2026-01-31"},
        {EXT: "p-2", FRAUD: "yes"},
        {EXT: "", FRAUD: "true"},
    ]
    results = org.upsert(PP, EXT, rows, source="csv")
    assert codes(results) == [None, "INVALID_TYPE_ON_FIELD_IN_RECORD", "MISSING_ARGUMENT"]
    row = org.get(PP, str(results[0].id))
    assert row is not None and (row[FRAUD], row[START]) == (True, dt.date(2026, 1, 31))


def test_csv_insert_and_update() -> None:
    org = Org()
    [made] = org.insert(PP, [{"Id": "", EXT: "p-1", FRAUD: "true"}], source="csv")
    assert made.created is True
    [changed] = org.update(PP, [{"Id": str(made.id), FRAUD: "false"}], source="csv")
    assert changed.success
    row = org.get(PP, str(made.id))
    assert row is not None and row[FRAUD] is False


# --- persistence ----------------------------------------------------------------------------


def test_an_org_restarted_from_its_file_has_the_same_records(tmp_path: Path) -> None:
    path = tmp_path / "org" / "sandbox.db"
    org = Org(path=path)
    made = upsert(org, {EXT: "p-1", FRAUD: True, START: "2026-01-31"}, {EXT: "p-2"}, {EXT: "p-3"})
    org.update(PP, [{"Id": made[1].id, "Name": "Elm"}])
    org.delete([str(made[2].id)])
    upsert(org, {EXT: "p-4"}, {EXT: "p-5", START: "bad"}, all_or_none=True)  # not saved
    [parent] = org.insert("Property__c", [{"Name": "Maple"}])
    before = org.rows(PP, include_deleted=True)
    org.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    again = Org(path=path)
    assert again.rows(PP, include_deleted=True) == before
    assert again.count(PP) == 2
    assert again.get(PP, str(made[2].id)) is None
    row = again.get(PP, str(made[0].id))
    assert row is not None
    assert (row[FRAUD], row[START]) == (True, dt.date(2026, 1, 31))
    assert row["CreatedDate"].tzinfo is not None
    assert again.get("Property__c", str(parent.id)) is not None
    # indexes are rebuilt and Ids are never reused
    [update] = upsert(again, {EXT: "P-1", "Name": "Oak"})
    assert (update.created, update.id) == (False, made[0].id)
    [new] = upsert(again, {EXT: "p-6"})
    assert new.id not in {r["Id"] for r in before}
    again.close()


# --- scale and concurrency ------------------------------------------------------------------


def test_100000_records_upsert_in_bulk_sized_batches() -> None:
    org = Org()
    rows = []
    for i in range(100_000):
        row = {EXT: f"prop-{i:06d}", "Name": f"Property {i}", "Is_Multi_Property__c": "false"}
        for enabled, start, updated in PRODUCTS:
            row |= {enabled: "true" if i % 20 else "false", start: "2026-01-31", updated: ""}
        rows.append(row)
    for first in range(0, len(rows), 10_000):
        results = org.upsert(PP, EXT, rows[first : first + 10_000], source="csv")
        assert all(r.success and r.created for r in results)
    assert org.count(PP) == 100_000
    again = org.upsert(PP, EXT, [{EXT: "PROP-099999", FRAUD: "false"}], source="csv")
    assert (again[0].success, again[0].created) == (True, False)
    assert org.count(PP) == 100_000


def test_concurrent_writers_get_distinct_ids() -> None:
    org = Org()
    ids: list[str | None] = []
    lock = threading.Lock()

    def write(worker: int) -> None:
        for n in range(50):
            results = upsert(org, {EXT: f"w{worker}-{n}"})
            with lock:
                ids.extend(r.id for r in results)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == len(set(ids)) == 400
    assert org.count(PP) == 400
