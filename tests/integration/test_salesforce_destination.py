"""The Salesforce destination against the sandbox over HTTPS: describe, pre-flight, snapshot paging,
logins and re-logins, and the failures reads must survive. (Writes: the shared suite.)"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from trueup.config import SalesforceDestinationConfig, load_config
from trueup.destinations import open_destination
from trueup.destinations.base import Operation, OutcomeStatus, WriteBatch
from trueup.destinations.salesforce.destination import SalesforceDestination
from trueup.errors import (
    AuthenticationError,
    ConfigError,
    DestinationSchemaError,
    FatalDestinationError,
    TransientDestinationError,
)
from trueup.sandbox.server import Sandbox
from trueup.schema import FieldType

OBJECT = "Product_Property__c"
KEY = "Reverse_ETL_ID__c"
FIELDS = [
    KEY,
    "Name",
    "Fraud_Detection_Enabled__c",
    "Fraud_Detection_Start_Date__c",
    "Is_Multi_Property__c",
]

Start = Callable[..., Sandbox]


def token_auth(sandbox: Sandbox) -> dict[str, Any]:
    return {"kind": "token", "instance_url": sandbox.url, "access_token": sandbox.access_token}


def client_credentials(sandbox: Sandbox) -> dict[str, Any]:
    return {
        "kind": "client_credentials",
        "instance_url": sandbox.url,
        "client_id": sandbox.client_id,
        "client_secret": sandbox.client_secret,
    }


def destination(
    sandbox: Sandbox,
    auth: dict[str, Any] | None = None,
    *,
    fields: list[str] = FIELDS,
    key: str = KEY,
    base_dir: Path = Path("."),
    **options: Any,
) -> SalesforceDestination:
    config = SalesforceDestinationConfig.model_validate(
        {
            "kind": "salesforce",
            "object": OBJECT,
            "ca_bundle": str(sandbox.ca_path),
            "timeout": 10,
            "auth": auth or token_auth(sandbox),
            **options,
        }
    )
    return SalesforceDestination(config, key_field=key, fields=fields, base_dir=base_dir)


def seed(sandbox: Sandbox, count: int, *, unkeyed: int = 0) -> None:
    records: list[dict[str, Any]] = [
        {
            KEY: f"k-{i:02d}",
            "Name": f"Property {i}",
            "Fraud_Detection_Enabled__c": i % 2 == 0,
            "Fraud_Detection_Start_Date__c": f"2024-01-{i + 1:02d}" if i % 3 else None,
        }
        for i in range(count)
    ]
    records += [{"Name": f"No key {i}"} for i in range(unkeyed)]
    results = sandbox.state.org.insert(OBJECT, records)
    assert all(r.success for r in results)


def calls(sandbox: Sandbox, method: str, fragment: str) -> list[Any]:
    return [r for r in sandbox.state.requests if r.method == method and fragment in r.path]


# --- describe and pre-flight ---------------------------------------------------------------------
def test_describe_maps_salesforce_types(sandbox_factory: Start) -> None:
    with destination(sandbox_factory()) as dest:
        schema = dest.describe()
        assert dest.describe() is schema  # read once
    fields = schema.fields
    assert fields[KEY].type is FieldType.TEXT and fields[KEY].external_id and fields[KEY].unique
    assert fields[KEY].length == 64
    flag = fields["Fraud_Detection_Enabled__c"]
    assert flag.type is FieldType.BOOLEAN and not flag.nullable
    assert fields["Fraud_Detection_Start_Date__c"].type is FieldType.DATE
    assert fields["LastModifiedDate"].type is FieldType.DATETIME
    assert not fields["Id"].createable and not fields["Id"].updateable
    assert fields["Property__c"].type is FieldType.TEXT  # a lookup holds an Id


def test_preflight_lists_every_problem_and_nothing_is_written(
    sandbox_factory: Start, tmp_path: Path
) -> None:
    sandbox = sandbox_factory()
    (tmp_path / "src.db").touch()
    (tmp_path / "trueup.yml").write_text(
        f"""\
source: {{kind: sqlite, path: src.db}}
model: {{kind: sql, table: records}}
key: name
mapping: {{name: Name, flag: Fraud_Detection_Enabeld__c, made: CreatedDate}}
destination:
  kind: salesforce
  object: {OBJECT}
  ca_bundle: {sandbox.ca_path}
  auth: {{kind: token, instance_url: "{sandbox.url}", access_token: "{sandbox.access_token}"}}
"""
    )
    with open_destination(load_config(tmp_path / "trueup.yml")) as dest:
        assert isinstance(dest, SalesforceDestination)
        with pytest.raises(ConfigError) as caught:
            dest.write(WriteBatch(Operation.UPSERT, "Name", pa.table({"Name": ["x"]}), number=1))
    message = str(caught.value)
    assert caught.value.path == "mapping" and "trueup.yml: mapping: 4 problem(s)" in message
    assert f"key field Name is not an External ID field of {OBJECT}" in message
    assert "no field Fraud_Detection_Enabeld__c (did you mean Fraud_Detection_Enabled__c?)" in (
        message
    )
    assert "CreatedDate is not createable" in message
    assert "CreatedDate is not updateable" in message
    assert sandbox.state.org.count(OBJECT) == 0
    assert not [r for r in sandbox.state.requests if r.method in ("POST", "PATCH")]


def test_an_unknown_object_is_a_schema_error(sandbox_factory: Start) -> None:
    sandbox = sandbox_factory()
    config = SalesforceDestinationConfig.model_validate(
        {
            "kind": "salesforce",
            "object": "Nope__c",
            "ca_bundle": str(sandbox.ca_path),
            "auth": token_auth(sandbox),
        }
    )
    with (
        SalesforceDestination(config, key_field=KEY, fields=[KEY], base_dir=Path(".")) as dest,
        pytest.raises(DestinationSchemaError, match="no object Nope__c"),
    ):
        dest.describe()


# --- snapshot ------------------------------------------------------------------------------------
def test_snapshot_pages_through_everything_in_canonical_types(sandbox_factory: Start) -> None:
    sandbox = sandbox_factory(page_size=3)
    seed(sandbox, 8, unkeyed=2)
    with destination(sandbox) as dest:
        table = dest.snapshot(FIELDS)
        assert dest.unkeyed == 2
    assert table.column_names == FIELDS
    assert table.schema.field("Fraud_Detection_Enabled__c").type == pa.bool_()
    assert table.schema.field("Fraud_Detection_Start_Date__c").type == pa.date32()
    rows = {r[KEY]: r for r in table.to_pylist()}
    assert sorted(rows) == [f"k-{i:02d}" for i in range(8)]
    assert rows["k-01"]["Fraud_Detection_Start_Date__c"] == dt.date(2024, 1, 2)
    assert rows["k-03"]["Fraud_Detection_Start_Date__c"] is None
    assert rows["k-02"]["Fraud_Detection_Enabled__c"] is True
    assert rows["k-00"]["Is_Multi_Property__c"] is False  # a checkbox is never null
    pages = calls(sandbox, "GET", "/query")
    assert len(pages) == 4  # 10 records, 3 a page


def test_snapshot_datetimes_are_utc(sandbox_factory: Start) -> None:
    sandbox = sandbox_factory()
    seed(sandbox, 1)
    with destination(sandbox) as dest:
        table = dest.snapshot([KEY, "CreatedDate"])
    assert table.schema.field("CreatedDate").type == pa.timestamp("us", tz="UTC")
    created = table.column("CreatedDate")[0].as_py()
    assert abs((created - dt.datetime.now(dt.UTC)).total_seconds()) < 60


def test_a_field_not_in_describe_never_reaches_soql(sandbox_factory: Start) -> None:
    sandbox = sandbox_factory()
    with destination(sandbox) as dest, pytest.raises(DestinationSchemaError, match="Name, x"):
        dest.snapshot([KEY, "Name, x"])
    assert not calls(sandbox, "GET", "/query")


# --- logins --------------------------------------------------------------------------------------
def test_an_expiring_session_is_renewed_once_per_expiry(sandbox_factory: Start) -> None:
    sandbox = sandbox_factory(page_size=2, faults={"tokens": {"expire_after_calls": 3}})
    seed(sandbox, 9)
    with destination(sandbox, client_credentials(sandbox)) as dest:
        table = dest.snapshot(FIELDS)
        rows = [{KEY: f"k-{i:02d}", "Name": f"Renamed {i}"} for i in range(9)]
        result = dest.write(WriteBatch(Operation.UPSERT, KEY, pa.Table.from_pylist(rows)))
        logins = dest.client.logins
    assert table.num_rows == 9
    assert [o.status for o in result.outcomes] == [OutcomeStatus.UPDATED] * 9
    refused = [r for r in sandbox.state.requests if r.status == 401]
    assert refused and logins == 1 + len(refused)  # one login per expiry, never a loop
    assert {r["Name"] for r in sandbox.state.org.rows(OBJECT)} == {f"Renamed {i}" for i in range(9)}


def test_an_expired_static_token_is_an_authentication_error(sandbox_factory: Start) -> None:
    sandbox = sandbox_factory()
    with destination(sandbox) as dest:
        dest.describe()
        sandbox.state.auth.revoke_all()
        with pytest.raises(AuthenticationError) as caught:
            dest.snapshot(FIELDS)
    assert caught.value.exit_code == 4
    assert "INVALID_SESSION_ID" in str(caught.value)
    assert sandbox.access_token not in str(caught.value)
    assert len([r for r in sandbox.state.requests if r.status == 401]) == 1


def test_a_refused_login_names_the_reason_not_the_secret(sandbox_factory: Start) -> None:
    sandbox = sandbox_factory()
    auth = {**client_credentials(sandbox), "client_secret": "WRONG-SECRET-123"}
    with destination(sandbox, auth) as dest, pytest.raises(AuthenticationError) as caught:
        dest.describe()
    assert "invalid_client" in str(caught.value)
    assert "WRONG-SECRET-123" not in str(caught.value)


def test_password_login(sandbox_factory: Start) -> None:
    sandbox = sandbox_factory()
    auth = {
        "kind": "password",
        "login_url": sandbox.url,
        "client_id": sandbox.client_id,
        "client_secret": sandbox.client_secret,
        "username": "sandbox@trueup.local",
        "password": "sandbox-password",
    }
    with destination(sandbox, auth) as dest:
        assert KEY in dest.describe().fields
        assert dest.client.logins == 1


def test_jwt_login_with_a_key_file_relative_to_the_config(
    sandbox_factory: Start, tmp_path: Path
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "sf.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    sandbox = sandbox_factory(jwt_public_key=public)
    auth = {
        "kind": "jwt",
        "login_url": sandbox.url,
        "client_id": sandbox.client_id,
        "username": "sandbox@trueup.local",
        "private_key_file": "sf.key",
    }
    with destination(sandbox, auth, base_dir=tmp_path) as dest:
        assert KEY in dest.describe().fields
    with (
        destination(sandbox, {**auth, "private_key_file": "none.key"}, base_dir=tmp_path) as dest,
        pytest.raises(ConfigError, match=r"destination\.auth\.private_key_file: no such file"),
    ):
        dest.describe()


# --- failures ------------------------------------------------------------------------------------
def test_503_and_429_on_reads_are_retried_honouring_retry_after(sandbox_factory: Start) -> None:
    faults = {
        "http": [
            {"match": "GET /services/data/*/describe*", "status": 503, "nth": [1]},
            {"match": "GET /services/data/*/query*", "status": 429, "retry_after": 1, "nth": [2]},
        ]
    }
    sandbox = sandbox_factory(page_size=2, faults=faults)
    seed(sandbox, 5)
    began = time.monotonic()
    with destination(sandbox) as dest:
        table = dest.snapshot(FIELDS)
    assert table.num_rows == 5
    assert time.monotonic() - began >= 1.0  # waited as long as the 429 asked
    assert [r.status for r in calls(sandbox, "GET", "/describe")] == [503, 200]
    assert [r.status for r in calls(sandbox, "GET", "/query")] == [200, 429, 200, 200]


def test_request_itself_never_retries(sandbox_factory: Start) -> None:
    faults = {"http": [{"match": "GET /services/data/*/limits*", "drop": True, "nth": [1]}]}
    sandbox = sandbox_factory(faults=faults)
    with destination(sandbox) as dest:
        with pytest.raises(TransientDestinationError, match="connection failed"):
            dest.client.request("GET", "limits/")
        assert dest.client.limits()["DailyApiRequests"]["Max"] == 15000
        assert dest.client.api_usage is not None


def test_a_4xx_carries_salesforce_error_code_and_body(sandbox_factory: Start) -> None:
    sandbox = sandbox_factory()
    with destination(sandbox) as dest, pytest.raises(FatalDestinationError) as caught:
        dest.client.request("GET", "query/", params={"q": "SELECT Nope__c FROM " + OBJECT})
    assert "INVALID_FIELD: " in str(caught.value)
    assert isinstance(caught.value.body, list) and caught.value.body[0]["errorCode"]


def test_an_untrusted_certificate_says_which_setting_to_fix(sandbox_factory: Start) -> None:
    sandbox = sandbox_factory()
    config = SalesforceDestinationConfig.model_validate(
        {"kind": "salesforce", "object": OBJECT, "auth": token_auth(sandbox)}
    )
    dest = SalesforceDestination(config, key_field=KEY, fields=FIELDS, base_dir=Path("."))
    with dest, pytest.raises(FatalDestinationError, match="ca_bundle"):
        dest.describe()
