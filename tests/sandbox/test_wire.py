"""The sandbox over real HTTPS with plain httpx/requests: status codes, headers, exact bodies."""

from __future__ import annotations

import re
import ssl
import time
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import requests

from trueup.sandbox.server import Sandbox

V = "/services/data/v59.0"
OBJ = "Product_Property__c"
EXT = "Reverse_ETL_ID__c"
INVALID_SESSION = b'[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]'
LIMIT_EXCEEDED = [
    {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
]
TOO_MANY = "record limit reached. cannot submit more than 200 records into this call"
NOT_FOUND = [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]


def client(sandbox: Sandbox, token: str | None = None) -> httpx.Client:
    """An httpx client trusting the sandbox's CA, with a session token unless told otherwise."""
    context = ssl.create_default_context(cafile=str(sandbox.ca_path))
    headers = {"Authorization": f"Bearer {token or sandbox.access_token}"}
    return httpx.Client(base_url=sandbox.url, verify=context, headers=headers, timeout=10)


def record(key: str, **fields: Any) -> dict[str, Any]:
    return {"attributes": {"type": OBJ}, EXT: key, "Name": f"name {key}", **fields}


def seed(sandbox: Sandbox, count: int, **fields: Any) -> list[str]:
    rows = [{EXT: f"k{i:03d}", "Name": f"name {i:03d}", **fields} for i in range(count)]
    results = sandbox.state.org.insert(OBJ, rows)
    assert all(r.success for r in results)
    return [str(r.id) for r in results]


# --- discovery, routing and error shapes ------------------------------------------------------


def test_versions_need_no_session_and_carry_no_limit_header(sandbox: Sandbox) -> None:
    with client(sandbox, token="nonsense") as http:
        r = http.get("/services/data/")
    assert r.status_code == 200
    assert {"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"} in r.json()
    assert "sforce-limit-info" not in r.headers


def test_any_version_with_or_without_trailing_slash(sandbox: Sandbox) -> None:
    with client(sandbox) as http:
        for path in ("/services/data/v62.0/limits", "/services/data/v62.0/limits/"):
            assert http.get(path).status_code == 200
        assert http.get(f"{V}/").json()["query"] == f"{V}/query"
        assert http.get(f"{V}/sobjects/{OBJ}/describe/").json()["name"] == OBJ


def test_bad_or_missing_token_gets_the_exact_401_body(sandbox: Sandbox) -> None:
    with client(sandbox, token="00Dnot!avalidtoken") as http:
        bad = http.get(f"{V}/limits/")
        missing = http.get(f"{V}/limits/", headers={"Authorization": ""})
    for r in (bad, missing):
        assert r.status_code == 401
        assert r.content == INVALID_SESSION
        assert r.headers["content-type"].startswith("application/json")


def test_token_endpoint_issues_working_tokens_and_refuses_bad_secrets(sandbox: Sandbox) -> None:
    with client(sandbox) as http:
        form = {"grant_type": "client_credentials", "client_id": sandbox.client_id}
        good = http.post(
            "/services/oauth2/token", data={**form, "client_secret": sandbox.client_secret}
        )
        bad = http.post("/services/oauth2/token", data={**form, "client_secret": "wrong"})
    assert good.status_code == 200
    body = good.json()
    assert body["instance_url"] == sandbox.url and body["token_type"] == "Bearer"
    with client(sandbox, token=body["access_token"]) as http:
        assert http.get(f"{V}/limits/").status_code == 200
    assert bad.status_code == 400
    assert bad.json() == {
        "error": "invalid_client",
        "error_description": "invalid client credentials",
    }


def test_password_and_jwt_bearer_logins_over_the_wire(sandbox_factory: Any) -> None:
    import datetime as dt

    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    sandbox = sandbox_factory(jwt_public_key=public)
    auth = sandbox.state.auth
    claims = {
        "iss": sandbox.client_id,
        "sub": auth.username,
        "aud": "https://login.salesforce.com",
        "exp": dt.datetime.now(dt.UTC) + dt.timedelta(minutes=3),
    }
    grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    with client(sandbox) as http:
        signed = http.post(
            "/services/oauth2/token",
            data={"grant_type": grant, "assertion": jwt.encode(claims, key, algorithm="RS256")},
        )
        forged = http.post(
            "/services/oauth2/token",
            data={"grant_type": grant, "assertion": jwt.encode(claims, other, algorithm="RS256")},
        )
        password = http.post(
            "/services/oauth2/token",
            data={
                "grant_type": "password",
                "client_id": sandbox.client_id,
                "client_secret": sandbox.client_secret,
                "username": auth.username,
                "password": auth.password + auth.security_token,
            },
        )
    assert signed.status_code == 200 and password.status_code == 200
    assert forged.status_code == 400 and forged.json()["error"] == "invalid_grant"
    for answer in (signed, password):
        with client(sandbox, token=answer.json()["access_token"]) as http:
            assert http.get(f"{V}/limits/").status_code == 200


def test_malformed_json_is_json_parser_error(sandbox: Sandbox) -> None:
    with client(sandbox) as http:
        r = http.post(
            f"{V}/composite/sobjects",
            content=b'{"allOrNone": false, "records": [',
            headers={"Content-Type": "application/json"},
        )
    assert r.status_code == 400
    [error] = r.json()
    assert error["errorCode"] == "JSON_PARSER_ERROR"
    assert re.search(r"at \[line:1, column:\d+\]$", error["message"])


def test_unknown_object_and_unknown_field(sandbox: Sandbox) -> None:
    with client(sandbox) as http:
        describe = http.get(f"{V}/sobjects/Nope__c/describe")
        query_type = http.get(f"{V}/query/", params={"q": "SELECT Id FROM Nope__c"})
        query_field = http.get(f"{V}/query/", params={"q": f"SELECT Foo__c FROM {OBJ}"})
        upsert_field = http.patch(f"{V}/sobjects/{OBJ}/Foo__c/x", json={"Name": "n"})
        not_external = http.patch(f"{V}/composite/sobjects/{OBJ}/Name", json={"records": []})
    assert describe.status_code == 404 and describe.json() == NOT_FOUND
    assert query_type.status_code == 400
    assert query_type.json()[0]["errorCode"] == "INVALID_TYPE"
    assert "sObject type 'Nope__c' is not supported" in query_type.json()[0]["message"]
    assert query_field.status_code == 400
    assert query_field.json()[0]["errorCode"] == "INVALID_FIELD"
    assert "No such column 'Foo__c'" in query_field.json()[0]["message"]
    assert upsert_field.status_code == 404 and upsert_field.json() == NOT_FOUND
    assert not_external.status_code == 404 and not_external.json() == NOT_FOUND


def test_unknown_route_is_404_and_wrong_method_405(sandbox: Sandbox) -> None:
    with client(sandbox) as http:
        unknown = http.get(f"{V}/no/such/thing")
        wrong = http.delete(f"{V}/limits/")
    assert unknown.status_code == 404 and unknown.json() == NOT_FOUND
    assert wrong.status_code == 405
    assert wrong.json()[0]["errorCode"] == "METHOD_NOT_ALLOWED"


def test_unexpected_error_is_a_salesforce_shaped_500(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(sandbox.state.org, "rows", broken)
    with client(sandbox) as http:
        r = http.get(f"{V}/query/", params={"q": f"SELECT Id FROM {OBJ}"})
        after = http.get(f"{V}/limits/")  # the connection and the server survive
    assert r.status_code == 500
    [error] = r.json()
    assert error["errorCode"] == "UNKNOWN_EXCEPTION" and "disk on fire" in error["message"]
    assert after.status_code == 200
    assert sandbox.state.requests[-2].error == "RuntimeError: disk on fire"


# --- limits -----------------------------------------------------------------------------------


def test_limit_header_counts_down_then_403(sandbox_factory: Any) -> None:
    sandbox = sandbox_factory(api_limit=3)
    with client(sandbox) as http:
        first = http.get(f"{V}/limits/")
        second = http.get(f"{V}/sobjects/")
        third = http.get(f"{V}/limits/")
        refused = http.get(f"{V}/limits/")
        unauthenticated = http.get(f"{V}/limits/", headers={"Authorization": "Bearer x"})
    assert first.headers["Sforce-Limit-Info"] == "api-usage=1/3"
    assert first.json()["DailyApiRequests"] == {"Max": 3, "Remaining": 2}
    assert second.headers["Sforce-Limit-Info"] == "api-usage=2/3"
    assert third.json()["DailyApiRequests"] == {"Max": 3, "Remaining": 0}
    assert refused.status_code == 403
    assert refused.json() == LIMIT_EXCEEDED
    assert refused.headers["Sforce-Limit-Info"] == "api-usage=3/3"
    assert unauthenticated.status_code == 401  # the session is checked before the allocation


# --- query --------------------------------------------------------------------------------------


def test_query_pages_with_locator_paths_and_typed_values(sandbox_factory: Any) -> None:
    sandbox = sandbox_factory(page_size=3)
    seed(sandbox, 7, Fraud_Detection_Enabled__c=True, Fraud_Detection_Start_Date__c="2026-01-31")
    q = (
        f"SELECT {EXT}, Fraud_Detection_Enabled__c, Fraud_Detection_Start_Date__c, "
        f"LastModifiedDate FROM {OBJ} ORDER BY {EXT}"
    )
    seen: list[dict[str, Any]] = []
    with client(sandbox) as http:
        page = http.get(f"{V}/query/", params={"q": q}).json()
        assert re.fullmatch(rf"{V}/query/01g\w{{15}}-3", page["nextRecordsUrl"])
        while True:
            assert page["totalSize"] == 7
            seen += page["records"]
            if page["done"]:
                assert "nextRecordsUrl" not in page
                break
            page = http.get(page["nextRecordsUrl"]).json()
    assert [r[EXT] for r in seen] == [f"k{i:03d}" for i in range(7)]
    first = seen[0]
    assert first["attributes"]["type"] == OBJ
    assert re.fullmatch(rf"{V}/sobjects/{OBJ}/a0X\w{{15}}", first["attributes"]["url"])
    assert first["Fraud_Detection_Enabled__c"] is True
    assert first["Fraud_Detection_Start_Date__c"] == "2026-01-31"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000", first["LastModifiedDate"])
    assert "Id" not in first  # not selected: only in attributes.url


def test_count_query_batch_size_header_and_bad_locator(sandbox_factory: Any) -> None:
    sandbox = sandbox_factory()
    seed(sandbox, 450)
    with client(sandbox) as http:
        count = http.get(f"{V}/query", params={"q": f"SELECT COUNT() FROM {OBJ}"}).json()
        sized = http.get(
            f"{V}/query",
            params={"q": f"SELECT Id FROM {OBJ}"},
            headers={"Sforce-Query-Options": "batchSize=200"},
        ).json()
        bad = http.get(f"{V}/query/01gNOPE-200")
    assert count == {"totalSize": 450, "done": True, "records": []}
    assert len(sized["records"]) == 200 and sized["nextRecordsUrl"].endswith("-200")
    assert bad.status_code == 400 and bad.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_query_all_sees_deleted_records(sandbox: Sandbox) -> None:
    [doomed, kept] = seed(sandbox, 2)
    with client(sandbox) as http:
        assert http.delete(f"{V}/sobjects/{OBJ}/{doomed}").status_code == 204
        live = http.get(f"{V}/query/", params={"q": f"SELECT Id, IsDeleted FROM {OBJ}"}).json()
        every = http.get(f"{V}/queryAll/", params={"q": f"SELECT Id, IsDeleted FROM {OBJ}"}).json()
    assert [r["Id"] for r in live["records"]] == [kept]
    assert {r["Id"]: r["IsDeleted"] for r in every["records"]} == {doomed: True, kept: False}


# --- single records ---------------------------------------------------------------------------


def test_single_record_create_read_update_delete(sandbox: Sandbox) -> None:
    with client(sandbox) as http:
        created = http.post(f"{V}/sobjects/{OBJ}/", json={"Name": "one", EXT: "k1"})
        assert created.status_code == 201
        body = created.json()
        assert body == {"id": body["id"], "success": True, "errors": []}
        url = f"{V}/sobjects/{OBJ}/{body['id']}"
        assert http.patch(url, json={"Name": "two"}).status_code == 204
        got = http.get(url).json()
        assert got["Name"] == "two" and got["Id"] == body["id"]
        assert got["Fraud_Detection_Enabled__c"] is False  # checkbox default
        assert http.delete(url).status_code == 204
        assert http.get(url).status_code == 404
        too_long = http.post(f"{V}/sobjects/{OBJ}/", json={"Name": "x" * 81})
    assert too_long.status_code == 400
    assert too_long.json()[0]["errorCode"] == "STRING_TOO_LONG"


def test_upsert_by_external_id_201_then_200_then_300(sandbox: Sandbox) -> None:
    with client(sandbox) as http:
        url = f"{V}/sobjects/{OBJ}/{EXT}/k1"
        first = http.patch(url, json={"Name": "one"})
        second = http.patch(url, json={"Name": "uno"})
        old_api = http.patch(url.replace("v59.0", "v45.0"), json={"Name": "eins"})
        update_only = http.patch(f"{V}/sobjects/{OBJ}/{EXT}/k9?updateOnly=true", json={})
        for key in ("a", "b"):
            http.post(f"{V}/sobjects/{OBJ}/", json={"Name": key, "Snappt_Property_ID__c": "dup"})
        ambiguous = http.patch(f"{V}/sobjects/{OBJ}/Snappt_Property_ID__c/dup", json={"Name": "c"})
        by_key = http.get(url).json()
    assert first.status_code == 201
    assert first.json() == {
        "id": first.json()["id"],
        "success": True,
        "errors": [],
        "created": True,
    }
    assert second.status_code == 200
    assert second.json() == {
        "id": first.json()["id"],
        "success": True,
        "errors": [],
        "created": False,
    }
    assert old_api.status_code == 204 and old_api.content == b""
    assert update_only.status_code == 404
    assert ambiguous.status_code == 300
    assert len(ambiguous.json()) == 2 and all(
        u.startswith(f"{V}/sobjects/{OBJ}/") for u in ambiguous.json()
    )
    assert by_key["Name"] == "eins"


def test_describe_and_if_modified_since(sandbox: Sandbox) -> None:
    with client(sandbox) as http:
        listed = http.get(f"{V}/sobjects/").json()
        full = http.get(f"{V}/sobjects/{OBJ}/describe")
        since = format_datetime(sandbox.state.started, usegmt=True)
        unchanged = http.get(f"{V}/sobjects/{OBJ}/describe", headers={"If-Modified-Since": since})
    assert {o["name"] for o in listed["sobjects"]} == {"Property__c", OBJ}
    fields = {f["name"]: f for f in full.json()["fields"]}
    assert fields[EXT]["externalId"] is True and fields[EXT]["length"] == 64
    assert unchanged.status_code == 304 and unchanged.content == b""


# --- collections ------------------------------------------------------------------------------


def test_201_records_is_exceeded_id_limit_and_nothing_is_written(sandbox: Sandbox) -> None:
    records = [record(f"k{i}") for i in range(201)]
    with client(sandbox) as http:
        r = http.patch(
            f"{V}/composite/sobjects/{OBJ}/{EXT}", json={"allOrNone": False, "records": records}
        )
        create = http.post(f"{V}/composite/sobjects", json={"records": records})
    for response in (r, create):
        assert response.status_code == 400
        assert response.json() == [{"message": TOO_MANY, "errorCode": "EXCEEDED_ID_LIMIT"}]
    assert sandbox.state.org.count(OBJ) == 0


def test_collections_create_update_delete_in_request_order(sandbox: Sandbox) -> None:
    with client(sandbox) as http:
        created = http.post(
            f"{V}/composite/sobjects",
            json={"records": [record("a"), record("b", Name="x" * 81), record("c")]},
        ).json()
        assert [r["success"] for r in created] == [True, False, True]
        assert "created" not in created[0]
        assert created[1]["errors"][0]["statusCode"] == "STRING_TOO_LONG"
        ids = [created[0]["id"], created[2]["id"]]
        updated = http.patch(
            f"{V}/composite/sobjects",
            json={"records": [{"attributes": {"type": OBJ}, "id": i, "Name": "new"} for i in ids]},
        ).json()
        deleted = http.delete(f"{V}/composite/sobjects", params={"ids": ",".join(ids)}).json()
        untyped = http.post(f"{V}/composite/sobjects", json={"records": [{"Name": "n"}]})
    assert [r["id"] for r in updated] == ids and all(r["success"] for r in updated)
    assert [r["id"] for r in deleted] == ids and all(r["success"] for r in deleted)
    assert untyped.status_code == 400
    assert untyped.json()[0] == {
        "message": "Must send a concrete entity type.",
        "errorCode": "INVALID_TYPE",
    }


def test_all_or_none_rolls_back_every_record(sandbox: Sandbox) -> None:
    records = [record("a"), record("b", Name="x" * 81), record("c")]
    with client(sandbox) as http:
        r = http.patch(
            f"{V}/composite/sobjects/{OBJ}/{EXT}", json={"allOrNone": True, "records": records}
        )
    assert r.status_code == 200
    codes = [result["errors"][0]["statusCode"] for result in r.json()]
    assert codes == [
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "STRING_TOO_LONG",
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    ]
    assert sandbox.state.org.count(OBJ) == 0


# --- Bulk 2.0 over the wire -------------------------------------------------------------------


def test_bulk_ingest_lifecycle(sandbox: Sandbox) -> None:
    csv_text = f"{EXT},Name\nk1,one\nk2,{'x' * 81}\n"
    with client(sandbox) as http:
        job = http.post(
            f"{V}/jobs/ingest",
            json={
                "object": OBJ,
                "operation": "upsert",
                "externalIdFieldName": EXT,
                "contentType": "CSV",
                "lineEnding": "LF",
            },
        ).json()
        assert (
            job["state"] == "Open"
            and job["contentUrl"] == f"services/data/v59.0/jobs/ingest/{job['id']}/batches"
        )
        upload = http.put(
            f"{V}/jobs/ingest/{job['id']}/batches",
            content=csv_text.encode(),
            headers={"Content-Type": "text/csv"},
        )
        assert upload.status_code == 201 and upload.content == b""
        closed = http.patch(f"{V}/jobs/ingest/{job['id']}/", json={"state": "UploadComplete"})
        assert closed.status_code == 200
        info = http.get(f"{V}/jobs/ingest/{job['id']}").json()
        ok = http.get(f"{V}/jobs/ingest/{job['id']}/successfulResults/")
        failed = http.get(f"{V}/jobs/ingest/{job['id']}/failedResults/")
        unprocessed = http.get(f"{V}/jobs/ingest/{job['id']}/unprocessedrecords/")
        listed = http.get(f"{V}/jobs/ingest").json()
        deleted = http.delete(f"{V}/jobs/ingest/{job['id']}")
        gone = http.get(f"{V}/jobs/ingest/{job['id']}")
    assert info["state"] == "JobComplete"
    assert (info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (2, 1)
    assert ok.headers["content-type"].startswith("text/csv")
    assert ok.text.splitlines()[0] == f'"sf__Id","sf__Created",{EXT},Name'
    assert ok.text.splitlines()[1].endswith('"true",k1,one')
    assert failed.text.splitlines()[1].startswith('"","STRING_TOO_LONG:')
    assert unprocessed.text.splitlines() == [f"{EXT},Name"]
    assert [j["id"] for j in listed["records"]] == [job["id"]]
    assert deleted.status_code == 204 and gone.status_code == 404


# --- faults -----------------------------------------------------------------------------------


def test_fault_503_and_429_with_retry_after(sandbox_factory: Any) -> None:
    sandbox = sandbox_factory(
        faults={
            "http": [
                {"match": "GET /services/data/*/sobjects*", "status": 503, "nth": [1]},
                {
                    "match": "GET /services/data/*/limits*",
                    "status": 429,
                    "retry_after": 7,
                    "nth": [1],
                },
            ]
        }
    )
    with client(sandbox) as http:
        unavailable = http.get(f"{V}/sobjects/")
        throttled = http.get(f"{V}/limits/")
        recovered = [http.get(f"{V}/sobjects/"), http.get(f"{V}/limits/")]
    assert unavailable.status_code == 503
    assert unavailable.json()[0]["errorCode"] == "SERVER_UNAVAILABLE"
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "7"
    assert [r.status_code for r in recovered] == [200, 200]
    log = [(e.path, e.status, e.fault) for e in sandbox.state.requests]
    assert log[0] == (f"{V}/sobjects/", 503, "503")


def test_record_faults_lock_and_validation_over_the_wire(sandbox_factory: Any) -> None:
    sandbox = sandbox_factory(
        faults={
            "records": [
                {
                    "type": "lock",
                    "object": OBJ,
                    "keys": {"field": EXT, "values": ["locked"]},
                    "times": 1,
                },
                {
                    "type": "validation",
                    "object": OBJ,
                    "when": {"field": "Name", "equals": "Bad Name"},
                    "message": "Name is not allowed",
                },
            ]
        }
    )
    body = {
        "allOrNone": False,
        "records": [record("locked"), record("bad", Name="Bad Name"), record("fine")],
    }
    path = f"{V}/composite/sobjects/{OBJ}/{EXT}"
    with client(sandbox) as http:
        first = http.patch(path, json=body).json()
        second = http.patch(path, json={"allOrNone": False, "records": [record("locked")]}).json()
    assert [r["success"] for r in first] == [False, False, True]
    assert first[0]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
    assert first[1]["errors"][0] == {
        "statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "message": "Name is not allowed",
        "fields": ["Name"],
    }
    assert second[0]["success"] is True and second[0]["created"] is True  # the lock was transient


def test_fault_delay_slows_the_answer(sandbox_factory: Any) -> None:
    sandbox = sandbox_factory(
        faults={"http": [{"match": "GET /services/data/*/limits*", "delay": 0.4}]}
    )
    with client(sandbox) as http:
        start = time.monotonic()
        r = http.get(f"{V}/limits/")
        elapsed = time.monotonic() - start
        with pytest.raises(httpx.ReadTimeout):
            http.get(f"{V}/limits/", timeout=0.1)
    assert r.status_code == 200 and elapsed >= 0.4


def test_fault_drop_is_a_connection_error_not_a_500(sandbox_factory: Any) -> None:
    sandbox = sandbox_factory(faults={"http": [{"match": "*", "drop": True, "nth": [1, 2]}]})
    with client(sandbox) as http, pytest.raises(httpx.RemoteProtocolError):
        http.get(f"{V}/limits/")
    with pytest.raises(requests.ConnectionError):
        requests.get(
            f"{sandbox.url}{V}/limits/",
            headers={"Authorization": f"Bearer {sandbox.access_token}"},
            verify=str(sandbox.ca_path),
            timeout=5,
        )
    with client(sandbox) as http:
        assert http.get(f"{V}/limits/").status_code == 200
    assert [e.status for e in sandbox.state.requests] == [None, None, 200]


def test_fault_token_expiry_then_a_new_token_works(sandbox_factory: Any) -> None:
    sandbox = sandbox_factory(faults={"tokens": {"expire_after_calls": 3}})
    with client(sandbox) as http:
        assert [http.get(f"{V}/limits/").status_code for _ in range(2)] == [200, 200]
        expired = http.get(f"{V}/limits/")
        still = http.get(f"{V}/limits/")
        fresh = http.post(
            "/services/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": sandbox.client_id,
                "client_secret": sandbox.client_secret,
            },
        ).json()["access_token"]
    assert expired.status_code == 401 and expired.content == INVALID_SESSION
    assert still.status_code == 401
    with client(sandbox, token=fresh) as http:
        assert http.get(f"{V}/limits/").status_code == 200


def test_request_log_is_served_without_a_session(sandbox: Sandbox) -> None:
    with client(sandbox) as http:
        http.get(f"{V}/query/", params={"q": f"SELECT Id FROM {OBJ}"})
        log = http.get("/__sandbox/requests", headers={"Authorization": ""}).json()
        assert http.delete("/__sandbox/requests").status_code == 204
        assert http.get("/__sandbox/requests").json() == []
    [entry] = log
    assert entry["method"] == "GET" and entry["path"] == f"{V}/query/"
    assert entry["query"].startswith("q=SELECT") and entry["status"] == 200
    assert entry["duration_ms"] >= 0 and entry["at"].endswith("+00:00")


# --- serving options ----------------------------------------------------------------------------


def test_plain_http_and_a_data_file_that_outlives_the_server(tmp_path: Any) -> None:
    data = tmp_path / "org.db"
    with Sandbox(http=True, data=data) as first:
        assert first.url.startswith("http://127.0.0.1:") and first.ca_path is None
        headers = {"Authorization": f"Bearer {first.access_token}"}
        r = httpx.post(f"{first.url}{V}/sobjects/{OBJ}/", json={"Name": "kept"}, headers=headers)
        assert r.status_code == 201
    with Sandbox(http=True, data=data) as second:
        headers = {"Authorization": f"Bearer {second.access_token}"}
        q = {"q": f"SELECT Name FROM {OBJ}"}
        page = httpx.get(f"{second.url}{V}/query/", params=q, headers=headers).json()
    assert [r["Name"] for r in page["records"]] == ["kept"]
