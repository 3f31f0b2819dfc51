"""How CollectionsWriter reads answers the sandbox does not produce: several errors per record,
a result missing ``created``, a result list of the wrong length. A canned-answer client stands in
for the wire; everything else is tested against the sandbox in tests/integration.
"""

from __future__ import annotations

from typing import Any

import pytest

from trueup.destinations.base import OutcomeStatus, RecordOutcome
from trueup.destinations.salesforce.collections import CollectionsWriter
from trueup.errors import FatalDestinationError


class CannedAnswer:
    """Answers every request with the same parsed body."""

    def __init__(self, body: Any) -> None:
        self.body = body
        self.sent: list[Any] = []

    def request(self, method: str, path: str, *, json: Any = None) -> CannedAnswer:
        self.sent.append((method, path, json))
        return self

    def json(self) -> Any:
        return self.body


def write(body: Any, records: list[dict[str, Any]]) -> tuple[list[RecordOutcome], CannedAnswer]:
    client = CannedAnswer(body)
    writer = CollectionsWriter(client, "Product_Property__c", "Reverse_ETL_ID__c")
    return writer.upsert(records), client


def test_several_errors_become_one_outcome() -> None:
    errors = [
        {
            "statusCode": "STRING_TOO_LONG",
            "message": "Name: data value too large",
            "fields": ["Name"],
        },
        {"statusCode": "REQUIRED_FIELD_MISSING", "message": "Required", "fields": ["Name", "X__c"]},
    ]
    body = [{"id": None, "success": False, "created": False, "errors": errors}]

    outcomes, client = write(body, [{"Reverse_ETL_ID__c": 42, "Name": "x" * 300}])

    assert outcomes == [
        RecordOutcome(
            key="42",
            status=OutcomeStatus.FAILED,
            error_code="STRING_TOO_LONG",
            message="Name: data value too large; Required",
            fields=("Name", "X__c"),
        )
    ]
    method, path, sent = client.sent[0]
    assert (method, path) == ("PATCH", "composite/sobjects/Product_Property__c/Reverse_ETL_ID__c")
    assert sent == {
        "allOrNone": False,
        "records": [
            {
                "attributes": {"type": "Product_Property__c"},
                "Reverse_ETL_ID__c": 42,
                "Name": "x" * 300,
            }
        ],
    }
    assert len(client.sent) == 1  # permanent: not resent


def test_a_success_without_created_is_refused_rather_than_guessed() -> None:
    body = [{"id": "a0X000000000001AAA", "success": True, "errors": []}]

    with pytest.raises(FatalDestinationError, match="created"):
        write(body, [{"Reverse_ETL_ID__c": "a"}])


def test_a_result_list_of_the_wrong_length_is_refused() -> None:
    body = [{"id": "a0X000000000001AAA", "success": True, "errors": [], "created": True}]

    with pytest.raises(FatalDestinationError, match="1 results for 2 records"):
        write(body, [{"Reverse_ETL_ID__c": "a"}, {"Reverse_ETL_ID__c": "b"}])
