"""simple-salesforce 1.12.10 as an independent client of the sandbox (wire spec §11, option B).

The sandbox serves HTTPS with a per-sandbox CA; simple-salesforce gets a ``requests.Session``
that trusts it (``trust_env`` off so a CI's ``REQUESTS_CA_BUNDLE`` cannot override ``verify``).
Direct mode passes ``instance_url`` and the session id; login mode uses the client-credentials
flow with the token URL smuggled through ``domain`` (the library builds
``https://{domain}.salesforce.com/services/oauth2/token``; a trailing ``#`` turns the suffix into a
fragment that is never sent).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceExpiredSession, SalesforceMalformedRequest

from trueup.sandbox.server import Sandbox

OBJ = "Product_Property__c"
EXT = "Reverse_ETL_ID__c"
COLLECTION_UPSERT = f"composite/sobjects/{OBJ}/{EXT}"


def session_for(sandbox: Sandbox) -> requests.Session:
    session = requests.Session()
    session.verify = str(sandbox.ca_path)
    session.trust_env = False
    return session


def direct(sandbox: Sandbox) -> Salesforce:
    """Direct mode: no login, the sandbox's ready-made token."""
    return Salesforce(
        instance_url=sandbox.url, session_id=sandbox.access_token, session=session_for(sandbox)
    )


def logged_in(sandbox: Sandbox) -> Salesforce:
    """Client-credentials login against the sandbox's token endpoint (refreshes on 401)."""
    host = urlparse(sandbox.url).netloc
    return Salesforce(
        consumer_key=sandbox.client_id,
        consumer_secret=sandbox.client_secret,
        domain=f"{host}/services/oauth2/token#",
        session=session_for(sandbox),
    )


def payload(records: list[dict[str, Any]], *, all_or_none: bool = False) -> dict[str, Any]:
    return {
        "allOrNone": all_or_none,
        "records": [{"attributes": {"type": OBJ}, **r} for r in records],
    }


def seed(sandbox: Sandbox, keys: list[str]) -> None:
    results = sandbox.state.org.insert(OBJ, [{EXT: k, "Name": f"old {k}"} for k in keys])
    assert all(r.success for r in results)


def test_query_and_query_all_across_pages(sandbox_factory: Any) -> None:
    sandbox = sandbox_factory(page_size=4)
    seed(sandbox, [f"k{i:02d}" for i in range(10)])
    sf = direct(sandbox)
    soql = f"SELECT Id, {EXT}, Name FROM {OBJ} ORDER BY {EXT}"

    first = sf.query(soql)
    assert (first["totalSize"], first["done"], len(first["records"])) == (10, False, 4)
    second = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert [r[EXT] for r in second["records"]] == ["k04", "k05", "k06", "k07"]

    everything = sf.query_all(soql)
    assert everything["totalSize"] == 10 and everything["done"] is True
    assert [r[EXT] for r in everything["records"]] == [f"k{i:02d}" for i in range(10)]
    assert sf.api_usage["api-usage"].used == 5  # query, query_more, then three pages
    assert sf.query(f"SELECT COUNT() FROM {OBJ} WHERE {EXT} LIKE 'k0%'")["totalSize"] == 10

    sf.Product_Property__c.delete(everything["records"][0]["Id"])
    assert sf.query_all(soql)["totalSize"] == 9
    assert sf.query_all(soql, include_deleted=True)["totalSize"] == 10


def test_collections_upsert_mixed_created_updated_failed(sandbox: Sandbox) -> None:
    seed(sandbox, ["old1", "old2"])
    sf = direct(sandbox)
    records = [
        {EXT: "old1", "Name": "kept", "Fraud_Detection_Enabled__c": True},
        {EXT: "new1", "Name": "fresh", "Fraud_Detection_Start_Date__c": "2026-01-31"},
        {EXT: "bad1", "Name": "x" * 81},
        {EXT: "old2", "Fraud_Detection_Start_Date__c": None},
        {EXT: "new2", "Name": "fresh too"},
    ]
    results = sf.restful(COLLECTION_UPSERT, method="PATCH", json=payload(records))

    assert [(r["success"], r["created"]) for r in results] == [
        (True, False),
        (True, True),
        (False, False),
        (True, False),
        (True, True),
    ]
    assert results[2]["id"] is None
    assert results[2]["errors"][0]["statusCode"] == "STRING_TOO_LONG"
    assert results[2]["errors"][0]["fields"] == ["Name"]
    back = sf.query(f"SELECT {EXT}, Name, Fraud_Detection_Enabled__c FROM {OBJ} ORDER BY {EXT}")
    assert [(r[EXT], r["Name"]) for r in back["records"]] == [
        ("new1", "fresh"),
        ("new2", "fresh too"),
        ("old1", "kept"),
        ("old2", "old old2"),
    ]


def test_single_record_calls_describe_and_limits(sandbox: Sandbox) -> None:
    sf = direct(sandbox)
    assert sf.Product_Property__c.upsert(f"{EXT}/k1", {"Name": "one"}) == 201
    assert sf.Product_Property__c.upsert(f"{EXT}/k1", {"Name": "uno"}) == 200
    found = sf.Product_Property__c.get_by_custom_id(EXT, "k1")
    assert found["Name"] == "uno"
    sf.Product_Property__c.update(found["Id"], {"Name": "eins"})
    assert sf.Product_Property__c.get(found["Id"])["Name"] == "eins"
    assert {o["name"] for o in sf.describe()["sobjects"]} == {"Property__c", OBJ}
    assert sf.Product_Property__c.describe()["keyPrefix"] == "a0X"
    limits = sf.limits()
    assert limits["DailyApiRequests"]["Max"] == 15000
    assert limits["DailyApiRequests"]["Remaining"] == 15000 - sf.api_usage["api-usage"].used
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query(f"SELECT Nope__c FROM {OBJ}")
    assert caught.value.content[0]["errorCode"] == "INVALID_FIELD"


def test_login_refreshes_after_the_session_expires(sandbox_factory: Any) -> None:
    expire_second_query = {"match": "GET /services/data/*/query*", "expire_session": True}
    sandbox = sandbox_factory(faults={"http": [{**expire_second_query, "nth": [2]}]})
    sf = logged_in(sandbox)
    assert sf.sf_instance == urlparse(sandbox.url).netloc
    for _ in range(3):
        assert sf.query(f"SELECT COUNT() FROM {OBJ}")["totalSize"] == 0
    seen = [(e.method, e.path.rsplit("/", 2)[-2], e.status) for e in sandbox.state.requests]
    assert seen == [
        ("POST", "oauth2", 200),
        ("GET", "query", 200),
        ("GET", "query", 401),
        ("POST", "oauth2", 200),
        ("GET", "query", 200),
        ("GET", "query", 200),
    ]
    stale = direct(sandbox)  # direct mode holds the revoked token and cannot refresh
    with pytest.raises(SalesforceExpiredSession):
        stale.query(f"SELECT COUNT() FROM {OBJ}")


def test_bulk2_upsert_and_result_files(sandbox: Sandbox) -> None:
    seed(sandbox, ["k1"])
    sf = direct(sandbox)
    records = [
        {EXT: "k1", "Name": "updated"},
        {EXT: "k2", "Name": "created"},
        {EXT: "k3", "Name": "x" * 81},
    ]
    [result] = sf.bulk2.Product_Property__c.upsert(records=records, external_id_field=EXT, wait=0)
    assert result["numberRecordsProcessed"] == 3 and result["numberRecordsFailed"] == 1
    handler = sf.bulk2.Product_Property__c
    ok = list(csv.DictReader(io.StringIO(handler.get_successful_records(result["job_id"]))))
    failed = list(csv.DictReader(io.StringIO(handler.get_failed_records(result["job_id"]))))
    assert {(r[EXT], r["sf__Created"]) for r in ok} == {("k1", "false"), ("k2", "true")}
    assert [r[EXT] for r in failed] == ["k3"]
    assert failed[0]["sf__Error"].startswith("STRING_TOO_LONG:")


# --- acceptance -----------------------------------------------------------------------------


def test_acceptance_bulk_upsert_of_100k_accounts_for_every_row(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    total = 100_000
    existing = [f"k{i:06d}" for i in range(0, total, 10)]  # every 10th key is an update
    sandbox.state.org.insert(OBJ, [{EXT: k, "Name": "before"} for k in existing])
    too_long = {i for i in range(total) if i % 97 == 5}  # STRING_TOO_LONG on Name
    source = tmp_path / "upsert.csv"
    with source.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(
            [EXT, "Name", "Fraud_Detection_Enabled__c", "Fraud_Detection_Start_Date__c"]
        )
        for i in range(total):
            name = "x" * 81 if i in too_long else f"property {i}"
            writer.writerow([f"k{i:06d}", name, "true" if i % 2 else "false", "2026-01-31"])

    sf = direct(sandbox)
    [result] = sf.bulk2.Product_Property__c.upsert(
        csv_file=str(source), external_id_field=EXT, wait=0
    )
    assert result["numberRecordsTotal"] == total
    assert result["numberRecordsProcessed"] == total
    assert result["numberRecordsFailed"] == len(too_long)

    handler = sf.bulk2.Product_Property__c
    ok = list(csv.DictReader(io.StringIO(handler.get_successful_records(result["job_id"]))))
    failed = list(csv.DictReader(io.StringIO(handler.get_failed_records(result["job_id"]))))
    unprocessed = handler.get_unprocessed_records(result["job_id"]).splitlines()
    ok_keys, failed_keys = [r[EXT] for r in ok], [r[EXT] for r in failed]
    assert len(ok_keys) + len(failed_keys) == total
    assert set(ok_keys) | set(failed_keys) == {f"k{i:06d}" for i in range(total)}
    assert set(failed_keys) == {f"k{i:06d}" for i in too_long}
    assert all(r["sf__Error"].startswith("STRING_TOO_LONG:") for r in failed)
    assert len(unprocessed) <= 1  # a header at most
    updated = {r[EXT] for r in ok if r["sf__Created"] == "false"}
    assert updated == set(existing) - set(failed_keys)
    assert all(len(r["sf__Id"]) == 18 for r in ok)
    assert sandbox.state.org.count(OBJ) == total - len(too_long - {int(k[1:]) for k in existing})


def test_acceptance_flow_limit_fails_a_200_chunk_whole_but_not_50s(sandbox_factory: Any) -> None:
    sandbox = sandbox_factory(
        faults={
            "records": [
                {
                    "type": "flow_chunk_limit",
                    "object": OBJ,
                    "max_records": 50,
                    "flow": "Property Rollup",
                }
            ]
        }
    )
    sf = direct(sandbox)
    records = [{EXT: f"k{i:03d}", "Name": f"property {i}"} for i in range(200)]

    whole = sf.restful(COLLECTION_UPSERT, method="PATCH", json=payload(records))
    assert len(whole) == 200
    assert not any(r["success"] for r in whole)
    assert {r["errors"][0]["statusCode"] for r in whole} == {"CANNOT_EXECUTE_FLOW_TRIGGER"}
    assert len({r["errors"][0]["message"] for r in whole}) == 1  # one error for the whole chunk
    assert "Property Rollup" in whole[0]["errors"][0]["message"]
    assert sf.query(f"SELECT COUNT() FROM {OBJ}")["totalSize"] == 0

    for start in range(0, 200, 50):
        part = sf.restful(
            COLLECTION_UPSERT, method="PATCH", json=payload(records[start : start + 50])
        )
        assert [(r["success"], r["created"]) for r in part] == [(True, True)] * 50
    assert sf.query(f"SELECT COUNT() FROM {OBJ}")["totalSize"] == 200
