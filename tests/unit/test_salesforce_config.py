"""The Salesforce destination's config, retry helper and pre-flight: pure, no server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from trueup.config import SalesforceDestinationConfig, load_config
from trueup.config_salesforce import ClientCredentialsAuth, TokenAuth, WritePath
from trueup.destinations.base import Operation
from trueup.destinations.salesforce.client import _retry_after, with_retries
from trueup.destinations.salesforce.schema import describe_to_schema, preflight
from trueup.errors import ConfigError, FatalDestinationError, TransientDestinationError
from trueup.schema import FieldType

BASE = """\
source: {kind: sqlite, path: src.db}
model: {kind: sql, table: records}
key: id
mapping: {id: Reverse_ETL_ID__c, name: Name}
destination:
  kind: salesforce
  object: Product_Property__c
  auth: {kind: token, instance_url: "https://acme.my.salesforce.com", access_token: "${SF_TOKEN}"}
"""


def load(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "trueup.yml"
    path.write_text(text)
    return load_config(path)


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return str(caught.value)


def test_defaults_and_the_token_stay_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SF_TOKEN", "00Dxx!secret-token")
    config = load(tmp_path, BASE).config
    dest = config.destination
    assert isinstance(dest, SalesforceDestinationConfig)
    assert (dest.api_version, dest.timeout, dest.batch_size, dest.concurrency) == (
        "59.0",
        30.0,
        200,
        2,
    )
    assert isinstance(dest.auth, TokenAuth)
    assert dest.auth.access_token.get_secret_value() == "00Dxx!secret-token"
    assert "secret-token" not in repr(config) and "secret-token" not in config.model_dump_json()


def test_write_path_defaults_to_auto_above_2000_and_can_be_forced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SF_TOKEN", "x")
    dest = load(tmp_path, BASE).config.destination
    assert (dest.write_path, dest.bulk_threshold) == (WritePath.AUTO, 2000)
    text = BASE.replace(
        "object: Product_Property__c",
        "object: Product_Property__c\n  write_path: bulk\n  bulk_threshold: 1",
    )
    dest = load(tmp_path, text).config.destination
    assert (dest.write_path, dest.bulk_threshold) == (WritePath.BULK, 1)


def test_api_reserve_defaults_to_1000_and_may_be_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SF_TOKEN", "x")
    assert load(tmp_path, BASE).config.destination.api_reserve == 1000
    text = BASE.replace(
        "object: Product_Property__c", "object: Product_Property__c\n  api_reserve: 0"
    )
    assert load(tmp_path, text).config.destination.api_reserve == 0


def test_snapshot_chunk_size_defaults_to_50000(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SF_TOKEN", "x")
    assert load(tmp_path, BASE).config.destination.snapshot_chunk_size == 50_000
    text = BASE.replace(
        "object: Product_Property__c", "object: Product_Property__c\n  snapshot_chunk_size: 2000"
    )
    assert load(tmp_path, text).config.destination.snapshot_chunk_size == 2000


def test_fingerprint_ignores_the_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SF_TOKEN", "one")
    first = load(tmp_path, BASE).config.fingerprint()
    monkeypatch.setenv("SF_TOKEN", "two")
    assert load(tmp_path, BASE).config.fingerprint() == first


def test_client_credentials_with_a_my_domain_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SF_SECRET", "s")
    text = BASE.replace(
        'auth: {kind: token, instance_url: "https://acme.my.salesforce.com", '
        'access_token: "${SF_TOKEN}"}',
        "auth: {kind: client_credentials, instance_url: 'https://acme.my.salesforce.com/', "
        "client_id: app, client_secret: '${SF_SECRET}'}",
    )
    auth = load(tmp_path, text).config.destination.auth
    assert isinstance(auth, ClientCredentialsAuth)
    assert auth.token_url == "https://acme.my.salesforce.com"


TOKEN_AUTH = (
    'auth: {kind: token, instance_url: "https://acme.my.salesforce.com", '
    'access_token: "${SF_TOKEN}"}'
)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("object: Product_Property__c", "object: Product_Property__c\n  batch_size: 500",
         "destination.batch_size: must be between 1 and 200 (got 500)"),
        ("object: Product_Property__c", "object: Product_Property__c\n  concurrency: 0",
         "destination.concurrency: must be between 1 and 8 (got 0)"),
        ("object: Product_Property__c", "object: Product_Property__c\n  timeout: 0.5",
         "destination.timeout: must be between 1 and 600 (got 0.5)"),
        ("object: Product_Property__c", "object: Product_Property__c\n  api_version: latest",
         "destination.api_version: must be an API version such as '59.0'"),
        ("object: Product_Property__c", "object: \"Product'; DELETE\"",
         "destination.object: must be a plain identifier"),
        ("  object: Product_Property__c\n", "", "destination.object: required"),
        ("object: Product_Property__c", "object: Product_Property__c\n  bulk_threshold: 0",
         "destination.bulk_threshold: must be at least 1"),
        ("object: Product_Property__c", "object: Product_Property__c\n  write_path: soap",
         "destination.write_path:"),
        ("object: Product_Property__c", "object: Product_Property__c\n  api_reserve: -1",
         "destination.api_reserve: must be 0 or more"),
        ("object: Product_Property__c", "object: Product_Property__c\n  api_reserve: lots",
         "destination.api_reserve:"),
        ("object: Product_Property__c", "object: Product_Property__c\n  snapshot_chunk_size: 500",
         "destination.snapshot_chunk_size: must be between 2,000 and 5,000,000 records per "
         "snapshot query (got 500)"),
        (TOKEN_AUTH, "auth: {kind: oauth}", "destination.auth.kind: unknown kind 'oauth'"),
        (TOKEN_AUTH, "auth: {kind: token, instance_url: 'acme.my.salesforce.com', "
         "access_token: x}", "destination.auth.instance_url: must be an https:// URL"),
        (TOKEN_AUTH, "auth: {kind: token, instance_url: 'https://a.example'}",
         "destination.auth.access_token: required"),
        (TOKEN_AUTH, "auth: {kind: client_credentials, client_id: a, client_secret: b}",
         "destination.auth: give exactly one of 'instance_url' or 'login_url'"),
        (TOKEN_AUTH, "auth: {kind: jwt, client_id: a, username: u}",
         "destination.auth.private_key_file: required"),
        (TOKEN_AUTH, "auth: {kind: password, client_id: a, client_secret: b, username: u, "
         "pasword: p}", "destination.auth.password: required"),
    ],
)  # fmt: skip
def test_errors_name_the_dotted_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old: str, new: str, expected: str
) -> None:
    monkeypatch.setenv("SF_TOKEN", "x")
    assert old in BASE
    message = error_of(tmp_path, BASE.replace(old, new))
    assert f"trueup.yml: {expected}" in message


# --- with_retries --------------------------------------------------------------------------------
def test_with_retries_waits_at_least_retry_after() -> None:
    waits: list[float] = []
    calls = iter([TransientDestinationError("429", retry_after=7.0), None])

    def flaky() -> str:
        error = next(calls)
        if error is not None:
            raise error
        return "ok"

    assert with_retries(flaky, initial_wait=0.1, sleep=waits.append) == "ok"
    assert len(waits) == 1 and waits[0] >= 7.0


def test_with_retries_is_bounded_and_leaves_fatal_errors_alone() -> None:
    waits: list[float] = []

    def down() -> None:
        raise TransientDestinationError("503")

    with pytest.raises(TransientDestinationError):
        with_retries(down, attempts=3, initial_wait=0.1, max_wait=0.2, sleep=waits.append)
    assert len(waits) == 2 and all(0.1 <= w <= 0.3 for w in waits)

    def refused() -> None:
        raise FatalDestinationError("400")

    with pytest.raises(FatalDestinationError):
        with_retries(refused, sleep=waits.append)
    assert len(waits) == 2


def test_retry_after_reads_seconds_and_dates() -> None:
    assert _retry_after("3") == 3.0
    assert _retry_after(None) is None and _retry_after("soon") is None
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past


# --- describe and pre-flight ---------------------------------------------------------------------
def _field(name: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": kind,
        "length": extra.pop("length", 0),
        "nillable": extra.pop("nillable", True),
        "createable": extra.pop("createable", True),
        "updateable": extra.pop("updateable", True),
        "externalId": extra.pop("externalId", False),
        "unique": extra.pop("unique", False),
    }


DESCRIBE = {
    "name": "Product_Property__c",
    "fields": [
        _field("Id", "id", length=18, nillable=False, createable=False, updateable=False),
        _field("Name", "string", length=80),
        _field("Reverse_ETL_ID__c", "string", length=64, externalId=True, unique=True),
        _field("Fraud_Detection_Enabled__c", "boolean", nillable=False),
        _field("Fraud_Detection_Start_Date__c", "date"),
        _field("LastModifiedDate", "datetime", nillable=False, createable=False, updateable=False),
        _field("Score__c", "double"),
        _field("Seats__c", "int"),
        _field("Stage__c", "picklist", length=40),
        _field("Billing_Address__c", "address"),
        _field("Locked__c", "string", length=10, updateable=False),
    ],
}


def test_describe_types() -> None:
    description = describe_to_schema(DESCRIBE)
    fields = description.schema.fields
    assert {n: f.type for n, f in fields.items()} == {
        "Id": FieldType.TEXT,
        "Name": FieldType.TEXT,
        "Reverse_ETL_ID__c": FieldType.TEXT,
        "Fraud_Detection_Enabled__c": FieldType.BOOLEAN,
        "Fraud_Detection_Start_Date__c": FieldType.DATE,
        "LastModifiedDate": FieldType.DATETIME,
        "Score__c": FieldType.NUMBER,
        "Seats__c": FieldType.INTEGER,
        "Stage__c": FieldType.TEXT,
        "Locked__c": FieldType.TEXT,
    }
    assert description.unsupported == {"Billing_Address__c": "address"}
    assert not fields["Fraud_Detection_Enabled__c"].nullable  # checkboxes are never null
    assert fields["Name"].length == 80 and fields["Score__c"].length is None
    key = fields["Reverse_ETL_ID__c"]
    assert key.external_id and key.unique
    assert not fields["Id"].createable and not fields["Locked__c"].updateable


def test_preflight_lists_every_problem_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        preflight(
            describe_to_schema(DESCRIBE),
            ["Name", "Fraud_Detection_Enabeld__c", "Locked__c", "Billing_Address__c", "Seats__c"],
            "Name",
            operation=Operation.UPSERT,
            columns={"Seats__c": pa.field("seats", pa.date32())},
            file="trueup.yml",
        )
    error = caught.value
    assert error.path == "mapping" and str(error).startswith("trueup.yml: mapping: 5 problem(s)")
    message = str(error)
    assert "key field Name is not an External ID field" in message
    assert "(External ID fields: Reverse_ETL_ID__c)" in message
    assert "no field Fraud_Detection_Enabeld__c (did you mean Fraud_Detection_Enabled__c?)" in (
        message
    )
    assert "Locked__c is not updateable" in message
    assert "Billing_Address__c is a address field, which trueup cannot sync" in message
    assert "Seats__c is an integer field but model column seats is date32 (" in message


def test_preflight_passes_a_good_mapping_and_suggests_the_right_case() -> None:
    description = describe_to_schema(DESCRIBE)
    good = ["Name", "Fraud_Detection_Enabled__c", "Seats__c"]
    preflight(description, good, "Reverse_ETL_ID__c", operation=Operation.UPSERT)
    with pytest.raises(ConfigError, match=r"did you mean Reverse_ETL_ID__c\?"):
        preflight(description, good, "reverse_etl_id__c", operation=Operation.UPSERT)
    with pytest.raises(ConfigError, match="Id is not createable"):
        preflight(description, ["Id"], "Reverse_ETL_ID__c", operation=Operation.UPSERT)
