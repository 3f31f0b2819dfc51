"""``trueup doctor``: every table, column and field the config names, checked in one table; a wrong
one fails its own row while every other row is still reported, and the exit code is 2."""

from __future__ import annotations

from typing import Any

from e2e_cli import CRM_TABLE, Demo, Ran, Trueup

from trueup.products import PRODUCT_FIELDS

KEY_FIELD = PRODUCT_FIELDS["key"]


def by_name(ran: Ran) -> dict[str, dict[str, Any]]:
    """The checks of a ``doctor --json`` run, by name."""
    body = ran.json()
    return {check["name"]: check for check in body["checks"]}


def failed(ran: Ran) -> set[str]:
    return {name for name, check in by_name(ran).items() if not check["passed"]}


def test_a_good_config_passes_every_check(demo: Demo, trueup: Trueup) -> None:
    ran = trueup("doctor")

    assert ran.code == 0, ran.err
    assert "✗" not in ran.out
    rows = [line for line in ran.out.splitlines() if line.startswith("│ ✓ │")]
    named = {row.split("│")[2].strip() for row in rows}
    assert {
        "config",
        "source connection",
        "source table properties",
        "source table property_features",
        "model columns",
        "destination connection",
        f"destination table {CRM_TABLE}",
        "field Name",
        f"key {KEY_FIELD}",
        "run store",
    } <= named
    assert {f"field {f}" for f in PRODUCT_FIELDS.values()} <= named
    assert "All 35 checks passed." in ran.out


def test_json_lists_every_check(demo: Demo, trueup: Trueup) -> None:
    ran = trueup("doctor", "--json")

    assert ran.code == 0, ran.err
    body = ran.json()
    assert body["passed"] is True
    checks = by_name(ran)
    assert checks["field Name"]["detail"] == "text(80), from member_name"
    assert checks[f"key {KEY_FIELD}"]["detail"].startswith("unique")
    assert all(c["passed"] and c["ran"] for c in body["checks"])


def test_a_wrong_source_table_fails_its_row_only(demo: Demo, trueup: Trueup) -> None:
    demo.edit_config(lambda c: c["model"].update(records_table="property"))

    ran = trueup("doctor", "--json")

    assert ran.code == 2
    assert failed(ran) == {"source table property"}
    assert "not found" in by_name(ran)["source table property"]["detail"]
    assert by_name(ran)["source table property_features"]["passed"]
    assert "doctor checks failed" in ran.error_line(2)


def test_a_missing_column_names_the_column_and_the_setting(demo: Demo, trueup: Trueup) -> None:
    demo.edit_config(lambda c: c["model"].update(name="title"))

    ran = trueup("doctor")

    assert ran.code == 2
    row = next(line for line in ran.out.splitlines() if "source table properties " in line)
    assert row.startswith("│ ✗ │")
    assert "'title' (model.name)" in row
    assert "1 of 35 checks failed." in ran.out


def test_a_misspelled_field_fails_with_a_suggestion(demo: Demo, trueup: Trueup) -> None:
    demo.edit_config(lambda c: c["mapping"].update(member_name="Nmae"))

    ran = trueup("doctor", "--json")

    assert ran.code == 2
    assert failed(ran) == {"field Nmae"}
    detail = by_name(ran)["field Nmae"]["detail"]
    assert "no field Nmae" in detail
    assert "did you mean Name?" in detail
    assert by_name(ran)["run store"]["passed"]


def test_a_wrong_destination_table_reports_its_fields_as_not_run(
    demo: Demo, trueup: Trueup
) -> None:
    demo.edit_config(lambda c: c["destination"].update(table="Product_Properties__c"))

    ran = trueup("doctor", "--json")

    assert ran.code == 2
    checks = by_name(ran)
    assert not checks["destination table Product_Properties__c"]["passed"]
    assert checks["destination table Product_Properties__c"]["ran"]
    not_run = {name for name, c in checks.items() if not c["ran"]}
    assert not_run == {f"field {f}" for f in PRODUCT_FIELDS.values()} | {f"key {KEY_FIELD}"}
    assert checks["source table properties"]["passed"]
    assert checks["run store"]["passed"]


def test_several_problems_are_all_reported(demo: Demo, trueup: Trueup) -> None:
    def break_it(c: dict[str, Any]) -> None:
        c["model"]["features_table"] = "features"
        c["mapping"]["member_id"] = "Snappt_Property_Id__c"

    demo.edit_config(break_it)

    ran = trueup("doctor", "--json")

    assert ran.code == 2
    assert failed(ran) == {"source table features", "field Snappt_Property_Id__c"}


def test_a_config_that_does_not_load_is_a_failed_row(demo: Demo, trueup: Trueup) -> None:
    demo.edit_config(lambda c: c["destination"].update(bogus_setting=1))

    ran = trueup("doctor", "--json")

    assert ran.code == 2
    checks = by_name(ran)
    assert "destination.bogus_setting" in checks["config"]["detail"]
    assert not checks["source connection"]["ran"]


def test_a_sql_model_query_is_run_for_no_rows(demo: Demo, trueup: Trueup) -> None:
    query = "SELECT id AS key, name AS member_name FROM properties"
    demo.edit_config(lambda c: c.update(model={"kind": "sql", "query": query}))

    ran = trueup("doctor", "--json")

    assert ran.code == 2
    checks = by_name(ran)
    assert checks["model query"]["passed"]
    assert failed(ran) == {"model columns"}
    detail = checks["model columns"]["detail"]
    assert "does not produce member_id" in detail
    assert "it produces: key, member_name" in detail


def test_a_sql_model_table_that_does_not_exist(demo: Demo, trueup: Trueup) -> None:
    demo.edit_config(lambda c: c.update(model={"kind": "sql", "table": "model_rows"}))

    ran = trueup("doctor", "--json")

    assert ran.code == 2
    checks = by_name(ran)
    assert "model_rows not found" in checks["source table model_rows"]["detail"]
    assert not checks["model columns"]["ran"]
    assert checks[f"destination table {CRM_TABLE}"]["passed"]
