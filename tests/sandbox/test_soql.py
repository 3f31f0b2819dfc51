"""The sandbox's SOQL subset: parsing, running over in-memory rows, and Salesforce's errors."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from trueup.sandbox.errors import ApiError
from trueup.sandbox.ids import mint
from trueup.sandbox.objects import SField, SObject, default_objects
from trueup.sandbox.soql import (
    And,
    Comparison,
    DayLiteral,
    Not,
    Op,
    Or,
    OrderItem,
    Query,
    parse,
    run,
)

OBJECTS = default_objects()
NOW = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)
PP = "Product_Property__c"
IDS = [mint("a0X", n) for n in range(1, 6)]
PROPERTY_ID = mint("a0P", 7)


def _row(n: int, name: str | None, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "Id": IDS[n],
        "Name": name,
        "IsDeleted": False,
        "CreatedDate": datetime(2026, 3, 1, 9, 0, tzinfo=UTC) + timedelta(days=n),
        "Reverse_ETL_ID__c": f"prop-{n:03d}",
        "Property__c": None,
        "Fraud_Detection_Enabled__c": False,
        "Fraud_Detection_Start_Date__c": None,
    }
    row.update(values)
    return row


ROWS = [
    _row(0, "Alpha Court", Fraud_Detection_Enabled__c=True, Property__c=PROPERTY_ID,
         Fraud_Detection_Start_Date__c=date(2026, 1, 31)),
    _row(1, "beta house", Fraud_Detection_Start_Date__c=date(2025, 12, 1)),
    _row(2, None, Fraud_Detection_Enabled__c=True, Fraud_Detection_Start_Date__c=date(2026, 2, 1),
         CreatedDate=datetime(2026, 3, 10, 0, 0, tzinfo=UTC)),
    _row(3, "ALPHA_100%", Property__c=PROPERTY_ID, CreatedDate=datetime(2026, 3, 9, 23, 59,
         tzinfo=UTC)),
    _row(4, "Gamma"),
]  # fmt: skip


def q(text: str) -> Query:
    return parse(text, OBJECTS, now=NOW)


def names(text: str, rows: list[dict[str, Any]] = ROWS) -> list[Any]:
    return [r["Name"] for r in run(q(text), rows)]


def select(where: str) -> list[Any]:
    """Names of the Product_Property__c rows matching ``where``, in row order."""
    return names(f"SELECT Name FROM {PP} WHERE {where}")


def api_error(text: str) -> ApiError:
    with pytest.raises(ApiError) as info:
        q(text)
    assert info.value.status == 400
    return info.value


# --- parsing -----------------------------------------------------------------------------------


def test_parse_full_query_uses_canonical_names() -> None:
    query = q(
        "select id, NAME, fraud_detection_enabled__c from product_property__C "
        "where name = 'x' and Fraud_Detection_Enabled__c = TRUE "
        "order by name desc, Id limit 10 offset 5"
    )
    assert query == Query(
        sobject=PP,
        fields=("Id", "Name", "Fraud_Detection_Enabled__c"),
        count_only=False,
        where=And(
            (
                Comparison("Name", "string", Op.EQ, ("x",)),
                Comparison("Fraud_Detection_Enabled__c", "boolean", Op.EQ, (True,)),
            )
        ),
        order_by=(OrderItem("Name", False, False), OrderItem("Id", True, True, "id")),
        limit=10,
        offset=5,
    )


def test_parse_count() -> None:
    query = q(f"SELECT COUNT() FROM {PP} WHERE Name != null")
    assert query.count_only and query.fields == ()
    assert query.where == Comparison("Name", "string", Op.NE, (None,))


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("Name <> 'a'", Comparison("Name", "string", Op.NE, ("a",))),
        ("Name < 'a'", Comparison("Name", "string", Op.LT, ("a",))),
        ("Name <= 'a'", Comparison("Name", "string", Op.LE, ("a",))),
        ("Name > 'a'", Comparison("Name", "string", Op.GT, ("a",))),
        ("Name >= 'a'", Comparison("Name", "string", Op.GE, ("a",))),
        ("Name IN ('a', 'b')", Comparison("Name", "string", Op.IN, ("a", "b"))),
        ("Name not in ('a')", Comparison("Name", "string", Op.NOT_IN, ("a",))),
        ("NOT Name = 'a'", Not(Comparison("Name", "string", Op.EQ, ("a",)))),
        ("Name = 'it\\'s \\\\ \\n \\u00e9'", Comparison(
            "Name", "string", Op.EQ, ("it's \\ \n é",))),
        ("Name = ''", Comparison("Name", "string", Op.EQ, (None,))),
        ("Fraud_Detection_Enabled__c = null", Comparison(
            "Fraud_Detection_Enabled__c", "boolean", Op.EQ, (False,))),
        ("Fraud_Detection_Start_Date__c = 2026-01-31", Comparison(
            "Fraud_Detection_Start_Date__c", "date", Op.EQ, (date(2026, 1, 31),))),
        ("Fraud_Detection_Start_Date__c = TODAY", Comparison(
            "Fraud_Detection_Start_Date__c", "date", Op.EQ, (DayLiteral(date(2026, 3, 10)),))),
        ("Fraud_Detection_Start_Date__c < yesterday", Comparison(
            "Fraud_Detection_Start_Date__c", "date", Op.LT, (DayLiteral(date(2026, 3, 9)),))),
        ("CreatedDate > 2026-01-31T10:00:00Z", Comparison(
            "CreatedDate", "datetime", Op.GT, (datetime(2026, 1, 31, 10, tzinfo=UTC),))),
        ("CreatedDate > 2026-01-31T10:00:00.5-08:00", Comparison(
            "CreatedDate", "datetime", Op.GT, (datetime(2026, 1, 31, 18, 0, 0, 500000, UTC),))),
        ("(Name = 'a' OR Name = 'b')", Or((
            Comparison("Name", "string", Op.EQ, ("a",)),
            Comparison("Name", "string", Op.EQ, ("b",))))),
        ("Product_Property__c.Name = 'a'", Comparison("Name", "string", Op.EQ, ("a",))),
    ],
)  # fmt: skip
def test_parse_where(where: str, expected: Any) -> None:
    assert q(f"SELECT Id FROM {PP} WHERE {where}").where == expected


def test_parse_datetime_keeps_the_instant_in_utc() -> None:
    value = q(f"SELECT Id FROM {PP} WHERE CreatedDate = 2026-01-31T10:00:00+05:30").where
    assert isinstance(value, Comparison)
    assert value.values[0] == datetime(2026, 1, 31, 4, 30, tzinfo=UTC)
    assert value.values[0].tzinfo == UTC
    assert value.values[0].utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("Name", OrderItem("Name", True, True)),
        ("Name ASC", OrderItem("Name", True, True)),
        ("Name DESC", OrderItem("Name", False, False)),
        ("Name ASC NULLS LAST", OrderItem("Name", True, False)),
        ("Name desc nulls first", OrderItem("Name", False, True)),
    ],
)
def test_parse_order_by_nulls_defaults(order: str, expected: OrderItem) -> None:
    assert q(f"SELECT Id FROM {PP} ORDER BY {order}").order_by == (expected,)


# --- running -----------------------------------------------------------------------------------


def test_result_rows_hold_exactly_the_selected_fields() -> None:
    result = run(q(f"SELECT name, Id FROM {PP} WHERE Id = '{IDS[0]}'"), ROWS)
    assert result == [{"Name": "Alpha Court", "Id": IDS[0]}]
    assert list(result[0]) == ["Name", "Id"]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("Name = 'ALPHA COURT'", ["Alpha Court"]),
        ("Name != 'alpha court'", ["beta house", None, "ALPHA_100%", "Gamma"]),
        ("Name = null", [None]),
        ("Name = ''", [None]),
        ("Name != null", ["Alpha Court", "beta house", "ALPHA_100%", "Gamma"]),
        ("Name IN ('gamma', 'BETA HOUSE')", ["beta house", "Gamma"]),
        ("Name NOT IN ('gamma', 'BETA HOUSE')", ["Alpha Court", None, "ALPHA_100%"]),
        ("Name IN ('gamma', null)", [None, "Gamma"]),
        ("Name < 'b'", ["Alpha Court", "ALPHA_100%"]),
        ("Name >= 'BETA'", ["beta house", "Gamma"]),
        ("NOT Name < 'b'", ["beta house", None, "Gamma"]),
        ("Name LIKE 'alpha%'", ["Alpha Court", "ALPHA_100%"]),
        ("Name LIKE '%a'", ["Gamma"]),
        ("Name LIKE '_eta%'", ["beta house"]),
        ("Name LIKE 'alpha\\_%'", ["ALPHA_100%"]),
        ("Name LIKE '%\\%'", ["ALPHA_100%"]),
        ("Name LIKE 'alpha'", []),
        ("Name LIKE null", []),
        ("NOT Name LIKE 'a%'", ["beta house", None, "Gamma"]),
        ("Fraud_Detection_Enabled__c = true", ["Alpha Court", None]),
        ("Fraud_Detection_Enabled__c = null", ["beta house", "ALPHA_100%", "Gamma"]),
        ("Fraud_Detection_Enabled__c != null", ["Alpha Court", None]),
        ("Fraud_Detection_Start_Date__c = 2026-01-31", ["Alpha Court"]),
        ("Fraud_Detection_Start_Date__c > 2026-01-01", ["Alpha Court", None]),
        ("Fraud_Detection_Start_Date__c < 2026-01-01", ["beta house"]),
        ("Fraud_Detection_Start_Date__c = null", ["ALPHA_100%", "Gamma"]),
        ("Fraud_Detection_Start_Date__c IN (2025-12-01, 2026-02-01)", ["beta house", None]),
        ("CreatedDate = 2026-03-10T00:00:00Z", [None]),
        ("CreatedDate = 2026-03-09T16:00:00-08:00", [None]),
        ("CreatedDate >= 2026-03-05T09:00:00Z", [None, "ALPHA_100%", "Gamma"]),
        ("CreatedDate = TODAY", [None]),
        ("CreatedDate = YESTERDAY", ["ALPHA_100%"]),
        ("CreatedDate < TODAY", ["Alpha Court", "beta house", "ALPHA_100%", "Gamma"]),
        ("CreatedDate > YESTERDAY", [None]),
        ("CreatedDate <= YESTERDAY", ["Alpha Court", "beta house", "ALPHA_100%", "Gamma"]),
        ("CreatedDate >= TOMORROW", []),
        ("Name = 'Gamma' OR Name = 'beta house' OR Name = null", ["beta house", None, "Gamma"]),
        ("Name LIKE 'a%' AND Fraud_Detection_Enabled__c = false", ["ALPHA_100%"]),
        ("(Name = 'Gamma' OR Name LIKE 'a%') AND NOT (Property__c != null)", ["Gamma"]),
        ("NOT (Name = 'Gamma' OR Name = null)", ["Alpha Court", "beta house", "ALPHA_100%"]),
    ],
)
def test_where(where: str, expected: list[Any]) -> None:
    assert select(where) == expected


def test_ids_match_in_15_and_18_characters_and_18_in_any_case() -> None:
    id18 = IDS[1]
    for literal in (id18, id18[:15], id18.lower(), id18.upper()):
        assert select(f"Id = '{literal}'") == ["beta house"], literal
    assert select(f"Id = '{id18[:15].lower()}'") == []  # a 15-character Id is case-sensitive
    assert select(f"Id IN ('{IDS[0][:15]}', '{IDS[4]}')") == ["Alpha Court", "Gamma"]
    assert len(select(f"Id NOT IN ('{IDS[0][:15]}', '{IDS[4].lower()}')")) == 3
    assert select(f"Property__c = '{PROPERTY_ID[:15]}'") == ["Alpha Court", "ALPHA_100%"]
    assert select("Property__c = null") == ["beta house", None, "Gamma"]


def test_case_sensitive_fields_compare_exactly() -> None:
    code = SField("Code__c", "string", case_sensitive=True)
    fields = {f.name: f for f in [SField("Id", "id"), code]}
    objects = {"Thing__c": SObject("Thing__c", "a0T", fields)}
    rows = [{"Id": mint("a0T", 1), "Code__c": "AbC"}, {"Id": mint("a0T", 2), "Code__c": "abc"}]
    query = parse("SELECT Code__c FROM Thing__c WHERE Code__c = 'abc'", objects)
    assert run(query, rows) == [{"Code__c": "abc"}]
    query = parse("SELECT Code__c FROM Thing__c WHERE Code__c LIKE 'abc'", objects)
    assert len(run(query, rows)) == 2  # LIKE always ignores case


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("Name", [None, "Alpha Court", "ALPHA_100%", "beta house", "Gamma"]),
        ("Name NULLS LAST", ["Alpha Court", "ALPHA_100%", "beta house", "Gamma", None]),
        ("Name DESC", ["Gamma", "beta house", "ALPHA_100%", "Alpha Court", None]),
        ("Name DESC NULLS FIRST", [None, "Gamma", "beta house", "ALPHA_100%", "Alpha Court"]),
        (
            "Fraud_Detection_Enabled__c DESC, Fraud_Detection_Start_Date__c",
            ["Alpha Court", None, "ALPHA_100%", "Gamma", "beta house"],
        ),
        (
            "Fraud_Detection_Start_Date__c DESC, Name DESC",
            [None, "Alpha Court", "beta house", "Gamma", "ALPHA_100%"],
        ),
        ("CreatedDate DESC", [None, "ALPHA_100%", "Gamma", "beta house", "Alpha Court"]),
    ],
)
def test_order_by(order: str, expected: list[Any]) -> None:
    assert names(f"SELECT Name FROM {PP} ORDER BY {order}") == expected


def test_ids_sort_by_value_and_paging_by_id_visits_each_record_once() -> None:
    # Minted Ids run through base-62 digits (0-9, A-Z, a-z): ...0Z, ...0a, ...0b, ... ...0z, ...10
    ids = [mint("a0X", n) for n in range(1, 150)]
    rows = [_row(0, None, Id=i, Property__c=i) for i in random.Random(3).sample(ids, len(ids))]

    def ordered(query: str) -> list[Any]:
        return [r["Id"] for r in run(q(f"SELECT Id FROM {PP} {query}"), rows)]

    assert ordered("ORDER BY Id") == ids
    assert ordered("ORDER BY Id DESC") == ids[::-1]
    assert [
        r["Property__c"] for r in run(q(f"SELECT Property__c FROM {PP} ORDER BY Property__c"), rows)
    ] == ids
    for literal in (ids[40], ids[40][:15], ids[40].lower()):
        assert ordered(f"WHERE Id > '{literal}' ORDER BY Id") == ids[41:], literal
    seen: list[Any] = []
    after = ""
    while True:
        where = f"WHERE Id > '{after}' " if after else ""
        chunk = ordered(f"{where}ORDER BY Id LIMIT 40")
        seen += chunk
        if len(chunk) < 40:
            break
        after = chunk[-1]
    assert seen == ids


@pytest.mark.parametrize(
    ("clauses", "expected"),
    [
        ("LIMIT 2", [None, "Alpha Court"]),
        ("LIMIT 0", []),
        ("OFFSET 3", ["beta house", "Gamma"]),
        ("LIMIT 2 OFFSET 1", ["Alpha Court", "ALPHA_100%"]),
        ("LIMIT 10 OFFSET 4", ["Gamma"]),
        ("OFFSET 2000", []),
    ],
)
def test_limit_and_offset(clauses: str, expected: list[Any]) -> None:
    assert names(f"SELECT Name FROM {PP} ORDER BY Name {clauses}") == expected


def test_count_returns_one_empty_row_per_match() -> None:
    assert len(run(q(f"SELECT COUNT() FROM {PP}"), ROWS)) == 5
    counted = run(q(f"SELECT count() FROM {PP} WHERE Fraud_Detection_Enabled__c = true"), ROWS)
    assert counted == [{}, {}]
    assert len(run(q(f"SELECT COUNT() FROM {PP} LIMIT 3"), ROWS)) == 3


def test_missing_keys_and_wrongly_typed_stored_values_never_raise() -> None:
    rows: list[dict[str, Any]] = [{"Id": IDS[0]}, {"Id": IDS[1], "Name": 5, "CreatedDate": "x"}]
    assert run(q(f"SELECT Name FROM {PP} WHERE Name = null"), rows) == [{"Name": None}]
    assert run(q(f"SELECT Name FROM {PP} WHERE CreatedDate > TODAY"), rows) == []
    assert run(q(f"SELECT Name FROM {PP} WHERE Name > 'a'"), rows) == []
    assert len(run(q(f"SELECT Name FROM {PP} ORDER BY Name, CreatedDate DESC"), rows)) == 2


# --- errors ------------------------------------------------------------------------------------

_NO_COLUMN = (
    "No such column '{}' on entity '{}'. If you are attempting to use a custom field, be sure to "
    "append the '__c' after the custom field name. Please reference your WSDL or the describe call "
    "for the appropriate names."
)


def test_unknown_object_message_matches_salesforce() -> None:
    error = api_error("SELECT Id FROM Nope__c")
    assert error.error_code == "INVALID_TYPE"
    assert error.message == (
        "\nSELECT Id FROM Nope__c\n               ^\nERROR at Row:1:Column:16\n"
        "sObject type 'Nope__c' is not supported. If you are attempting to use a custom object, "
        "be sure to append the '__c' after the entity name. Please reference your WSDL or the "
        "describe call for the appropriate names."
    )
    assert error.body() == [{"message": error.message, "errorCode": "INVALID_TYPE"}]


def test_unknown_field_message_matches_salesforce() -> None:
    error = api_error(f"SELECT Id,\n  Foo__c FROM {PP}")
    assert error.error_code == "INVALID_FIELD"
    expected = "\n  Foo__c FROM Product_Property__c\n  ^\nERROR at Row:2:Column:3\n"
    assert error.message == expected + _NO_COLUMN.format("Foo__c", PP)


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        # unknown names (§5.3)
        (f"SELECT Id FROM {PP} WHERE Nope = 1", "INVALID_FIELD", _NO_COLUMN.format("Nope", PP)),
        (f"SELECT Id FROM {PP} ORDER BY Nope", "INVALID_FIELD", _NO_COLUMN.format("Nope", PP)),
        (f"SELECT {PP}.Nope FROM {PP}", "INVALID_FIELD", _NO_COLUMN.format("Nope", PP)),
        ("SELECT Id FROM Account", "INVALID_TYPE", "sObject type 'Account' is not supported."),
        # literal of the wrong type for the field
        (f"SELECT Id FROM {PP} WHERE Fraud_Detection_Enabled__c = 'yes'", "INVALID_FIELD",
         "value of filter criterion for field 'Fraud_Detection_Enabled__c' must be of type "
         "boolean and should not be enclosed in quotes"),
        (f"SELECT Id FROM {PP} WHERE Fraud_Detection_Start_Date__c = 5", "INVALID_FIELD",
         "field 'Fraud_Detection_Start_Date__c' must be of type date and should not be enclosed"),
        (f"SELECT Id FROM {PP} WHERE Fraud_Detection_Start_Date__c = '2026-01-31'",
         "INVALID_FIELD", "must be of type date and should not be enclosed in quotes"),
        (f"SELECT Id FROM {PP} WHERE Fraud_Detection_Start_Date__c = 2026-01-31T00:00:00Z",
         "INVALID_FIELD", "must be of type date"),
        (f"SELECT Id FROM {PP} WHERE CreatedDate > 2026-01-31", "INVALID_FIELD",
         "field 'CreatedDate' must be of type dateTime and should not be enclosed in quotes"),
        (f"SELECT Id FROM {PP} WHERE Name = 5", "INVALID_FIELD",
         "field 'Name' must be of type string and should be enclosed in quotes"),
        (f"SELECT Id FROM {PP} WHERE Name IN ('a', true)", "INVALID_FIELD",
         "must be of type string and should be enclosed in quotes"),
        (f"SELECT Id FROM {PP} WHERE Id = 5", "INVALID_FIELD", "must be of type id"),
        (f"SELECT Id FROM {PP} WHERE Name = TODAY", "INVALID_FIELD", "must be of type string"),
        # Ids and operators
        (f"SELECT Id FROM {PP} WHERE Id = 'abc'", "INVALID_QUERY_FILTER_OPERATOR",
         "invalid ID field: abc"),
        (f"SELECT Id FROM {PP} WHERE Property__c IN ('{PROPERTY_ID}', '')",
         "INVALID_QUERY_FILTER_OPERATOR", "invalid ID field: "),
        (f"SELECT Id FROM {PP} WHERE Id LIKE 'a0X%'", "INVALID_QUERY_FILTER_OPERATOR",
         "invalid operator on id field: LIKE"),
        (f"SELECT Id FROM {PP} WHERE Fraud_Detection_Enabled__c LIKE 'a'",
         "INVALID_QUERY_FILTER_OPERATOR", "invalid operator on boolean field: LIKE"),
        # syntax
        ("", "MALFORMED_QUERY", "ERROR at Row:1:Column:1\nunexpected token: '<EOF>'"),
        ("DELETE FROM x", "MALFORMED_QUERY", "unexpected token: 'DELETE'"),
        (f"SELECT FROM {PP}", "MALFORMED_QUERY", "unexpected token: 'FROM'"),
        (f"SELECT Id, FROM {PP}", "MALFORMED_QUERY", "unexpected token: 'FROM'"),
        ("SELECT Id FROM", "MALFORMED_QUERY", "unexpected token: '<EOF>'"),
        (f"SELECT Id {PP}", "MALFORMED_QUERY", f"unexpected token: '{PP}'"),
        (f"SELECT Id FROM {PP} WHERE", "MALFORMED_QUERY", "unexpected token: '<EOF>'"),
        (f"SELECT Id FROM {PP} WHERE Name", "MALFORMED_QUERY", "unexpected token: '<EOF>'"),
        (f"SELECT Id FROM {PP} WHERE Name == 'a'", "MALFORMED_QUERY", "unexpected token: '='"),
        (f"SELECT Id FROM {PP} WHERE Name = a", "MALFORMED_QUERY", "unexpected token: 'a'"),
        (f"SELECT Id FROM {PP} WHERE Name IN ()", "MALFORMED_QUERY", "unexpected token: ')'"),
        (f"SELECT Id FROM {PP} WHERE Name IN ('a'", "MALFORMED_QUERY", "unexpected token: '<EOF>'"),
        (f"SELECT Id FROM {PP} WHERE Name NOT LIKE 'a'", "MALFORMED_QUERY",
         "unexpected token: 'NOT'"),
        (f"SELECT Id FROM {PP} WHERE (Name = 'a'", "MALFORMED_QUERY", "unexpected token: '<EOF>'"),
        (f"SELECT Id FROM {PP} WHERE Name = 'a' AND Name = 'b' OR Name = 'c'", "MALFORMED_QUERY",
         "ERROR at Row:1:Column:68\nunexpected token: 'OR'"),
        (f"SELECT Id FROM {PP} WHERE Name = 'a' OR Name = 'b' AND Name = 'c'", "MALFORMED_QUERY",
         "unexpected token: 'AND'"),
        (f"SELECT Id FROM {PP} LIMIT 'a'", "MALFORMED_QUERY", "unexpected token: ''a''"),
        (f"SELECT Id FROM {PP} LIMIT -1", "MALFORMED_QUERY", "unexpected token: '-1'"),
        (f"SELECT Id FROM {PP} LIMIT 1.5", "MALFORMED_QUERY", "unexpected token: '1.5'"),
        (f"SELECT Id FROM {PP} OFFSET 1 LIMIT 1", "MALFORMED_QUERY", "unexpected token: 'LIMIT'"),
        (f"SELECT Id FROM {PP} ORDER Name", "MALFORMED_QUERY", "unexpected token: 'Name'"),
        (f"SELECT Id FROM {PP} ORDER BY Name NULLS", "MALFORMED_QUERY", "'<EOF>'"),
        (f"SELECT Id FROM {PP} LIMIT 1 garbage", "MALFORMED_QUERY", "unexpected token: 'garbage'"),
        (f"SELECT Id, Name, id FROM {PP}", "MALFORMED_QUERY", "duplicate field selected: Id"),
        (f"SELECT COUNT(), Name FROM {PP}", "MALFORMED_QUERY", "unexpected token: ','"),
        (f"SELECT Id FROM {PP} WHERE Fraud_Detection_Start_Date__c = 2026-02-30",
         "MALFORMED_QUERY", "invalid date literal: 2026-02-30"),
        (f"SELECT Id FROM {PP} WHERE CreatedDate = 2026-01-31T10:00:00", "MALFORMED_QUERY",
         "invalid datetime literal: 2026-01-31T10:00:00"),
        (f"SELECT Id FROM {PP} WHERE CreatedDate = 2026-01-31T25:00:00Z", "MALFORMED_QUERY",
         "invalid datetime literal"),
        # lexical errors (ANTLR-style text)
        (f"SELECT Id FROM {PP} WHERE Name = \"a\"", "MALFORMED_QUERY",
         "line 1:48 no viable alternative at character '\"'"),
        (f"SELECT Id FROM {PP}\nWHERE Name = 'a", "MALFORMED_QUERY",
         "line 2:15 mismatched character '<EOF>' expecting '''"),
        (f"SELECT Id FROM {PP} WHERE Name = 'a\\d'", "MALFORMED_QUERY",
         "Invalid string literal 'a\\d'. Illegal character sequence '\\d' in string literal."),
        (f"SELECT Id FROM {PP} WHERE Name = '50\\%'", "MALFORMED_QUERY",
         "Illegal character sequence '\\%' in string literal."),
        (f"SELECT Id FROM {PP} WHERE Name = '\\u12'", "MALFORMED_QUERY",
         "Illegal character sequence '\\u' in string literal."),
        (f"SELECT Id FROM {PP}; DROP", "MALFORMED_QUERY", "no viable alternative at character ';'"),
        # limits
        (f"SELECT Id FROM {PP} LIMIT 10 OFFSET 2001", "NUMBER_OUTSIDE_VALID_RANGE",
         "Maximum SOQL offset allowed is 2000"),
    ],
)  # fmt: skip
def test_errors(text: str, code: str, message: str) -> None:
    error = api_error(text)
    assert error.error_code == code
    assert message in error.message


@pytest.mark.parametrize(
    ("text", "feature"),
    [
        (f"SELECT Property__r.Name FROM {PP}", "relationship queries ('Property__r.Name')"),
        (f"SELECT Id FROM {PP} WHERE Property__r.Name = 'a'", "relationship queries"),
        (f"SELECT Id FROM {PP} ORDER BY Property__r.Name", "relationship queries"),
        ("SELECT Id, (SELECT Id FROM Product_Properties__r) FROM Property__c", "subqueries"),
        (f"SELECT Id FROM {PP} WHERE Property__c IN (SELECT Id FROM Property__c)", "semi-join"),
        (f"SELECT Id FROM {PP} WHERE (SELECT Id FROM Property__c)", "subqueries"),
        (f"SELECT COUNT(Id) FROM {PP}", "aggregate functions other than COUNT()"),
        (f"SELECT MAX(CreatedDate) FROM {PP}", "SOQL functions such as MAX()"),
        (f"SELECT toLabel(Name) FROM {PP}", "SOQL functions such as toLabel()"),
        (f"SELECT FIELDS(ALL) FROM {PP}", "SOQL functions such as FIELDS()"),
        (f"SELECT TYPEOF What WHEN Account THEN Name END FROM {PP}", "TYPEOF"),
        (f"SELECT Id FROM {PP} WHERE CALENDAR_YEAR(CreatedDate) = 2026", "CALENDAR_YEAR()"),
        (f"SELECT Id FROM {PP} ORDER BY MAX(Name)", "SOQL functions such as MAX()"),
        (f"SELECT Name FROM {PP} GROUP BY Name", "GROUP BY"),
        (f"SELECT Id FROM {PP} WHERE Name = 'a' GROUP BY Name", "GROUP BY"),
        (f"SELECT Id FROM {PP} HAVING Name = 'a'", "HAVING"),
        (f"SELECT Id FROM {PP} WITH SECURITY_ENFORCED", "WITH clauses"),
        (f"SELECT Id FROM {PP} USING SCOPE mine", "USING SCOPE"),
        (f"SELECT Id FROM {PP} LIMIT 1 FOR UPDATE", "FOR UPDATE"),
        (f"SELECT Id FROM {PP} ORDER BY Name FOR VIEW", "FOR VIEW"),
        (f"SELECT Id FROM {PP} UPDATE TRACKING", "UPDATE TRACKING"),
        (f"SELECT Id FROM {PP} ALL ROWS", "ALL ROWS"),
        (f"SELECT p.Id FROM {PP} p", "object aliases"),
        (f"SELECT Id FROM {PP} WHERE CreatedDate = LAST_N_DAYS:30", "the date literal LAST_N_DAYS"),
        (f"SELECT Id FROM {PP} WHERE CreatedDate = THIS_MONTH", "the date literal THIS_MONTH"),
        (f"SELECT Id FROM {PP} WHERE Name = :name", "bind variables"),
        (f"SELECT Id FROM {PP} WHERE Name INCLUDES ('a')", "INCLUDES / EXCLUDES"),
    ],
)
def test_unsupported_features_are_malformed_query_saying_so(text: str, feature: str) -> None:
    error = api_error(text)
    assert error.error_code == "MALFORMED_QUERY"
    assert "The trueup sandbox does not support " in error.message
    assert feature in error.message
    assert "\nERROR at Row:1:Column:" in error.message


_FRAGMENTS = [
    "SELECT", "select", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "ASC",
    "DESC", "NULLS", "FIRST", "LAST", "LIMIT", "OFFSET", "COUNT", "(", ")", ",", "=", "!=", "<>",
    "<", "<=", ">", ">=", ":", ".", "'", "'a%'", "'it\\'s'", "'\\", "\\u00e9", "null", "TRUE",
    "false", "TODAY", "LAST_N_DAYS", "2026-01-31", "2026-13-45", "2026-01-31T10:00:00Z", "T",
    "12", "-3", "1.5", "99999999999999999999999999999", "Id", "Name", "CreatedDate",
    "Fraud_Detection_Enabled__c", "Fraud_Detection_Start_Date__c", "Property__c", "Property__r",
    PP, "Foo__c", f"'{IDS[0]}'", f"'{IDS[0][:15]}'", "\n", " ", "\t", '"', ";", "é", "\x00",
]  # fmt: skip


def test_random_input_raises_only_api_errors() -> None:
    rng = random.Random(20260310)
    head = f"SELECT Id, Name FROM {PP} WHERE "
    for attempt in range(4000):
        parts = rng.choices(_FRAGMENTS, k=rng.randint(0, 14))
        text = " ".join(parts) if attempt % 3 else "".join(parts)
        if attempt % 2:
            text = head + text
        if attempt % 7 == 0:
            text = "".join(chr(rng.randint(0, 0x2FF)) for _ in range(rng.randint(0, 30)))
        try:
            query = q(text)
        except ApiError as error:
            assert error.status in {400} and error.error_code and error.message
            continue
        run(query, ROWS)


_VALID = [
    f"SELECT Id, Name FROM {PP} WHERE (Name LIKE 'a\\_%' OR Id IN ('{IDS[0]}')) AND "
    "CreatedDate > 2026-01-31T10:00:00Z ORDER BY Name DESC NULLS LAST LIMIT 5 OFFSET 1",
    f"SELECT COUNT() FROM {PP} WHERE NOT Fraud_Detection_Start_Date__c = TODAY",
]


def test_mutated_valid_queries_raise_only_api_errors() -> None:
    rng = random.Random(7)
    parsed = 0
    for _ in range(6000):
        chars = list(rng.choice(_VALID))
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(chars))
            roll = rng.random()
            if roll < 0.4:
                del chars[pos]
            elif roll < 0.8:
                chars.insert(pos, rng.choice("'\\()%_,=<>! aZ09-:T.\n"))
            else:
                del chars[pos : pos + 3]
        try:
            query = q("".join(chars))
        except ApiError as error:
            assert error.status == 400 and error.error_code and error.message
            continue
        parsed += 1
        run(query, ROWS)
    assert parsed > 0  # some mutations stay valid, so run() is exercised too
