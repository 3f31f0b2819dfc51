"""Bulk API 2.0 writes against the sandbox over HTTPS: outcomes from the result files, clearing a
field, the choice between REST and Bulk, sessions expiring mid-job, slow jobs, flaky endpoints.

Evidence comes from the server's side: the org's records and the sandbox's request log.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from trueup.apply import RetryPolicy, apply_plan
from trueup.config import GuardsConfig, SalesforceDestinationConfig
from trueup.config_salesforce import WritePath
from trueup.destinations.base import Operation, OutcomeStatus, WriteBatch
from trueup.destinations.salesforce.bulk import UNPROCESSED, BulkWriter
from trueup.destinations.salesforce.client import SalesforceClient
from trueup.destinations.salesforce.destination import SalesforceDestination
from trueup.diff import diff
from trueup.errors import AuthenticationError
from trueup.plan import Plan
from trueup.sandbox.server import Sandbox
from trueup.store import RunStore

OBJECT = "Product_Property__c"
KEY = "Reverse_ETL_ID__c"
DATE = "Fraud_Detection_Start_Date__c"
FLAG = "Fraud_Detection_Enabled__c"
FIELDS = [KEY, "Name", FLAG, DATE]
JOBS = "/jobs/ingest"
COLLECTIONS = "/composite/sobjects"
BAD_NAME = {
    "type": "validation",
    "object": OBJECT,
    "when": {"field": "Name", "equals": "Bad Name"},
    "message": "Name is not allowed",
}

Start = Callable[..., Sandbox]


def no_sleep(seconds: float) -> None:
    """Retries and polls without waiting (the sandbox answers at once unless told otherwise)."""


def config(sandbox: Sandbox, *, auth: str = "token", **options: Any) -> SalesforceDestinationConfig:
    if auth == "token":
        login = {"kind": "token", "instance_url": sandbox.url, "access_token": sandbox.access_token}
    else:
        login = {
            "kind": "client_credentials",
            "instance_url": sandbox.url,
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
        }
    return SalesforceDestinationConfig.model_validate(
        {
            "kind": "salesforce",
            "object": OBJECT,
            "ca_bundle": str(sandbox.ca_path),
            "timeout": 10,
            "auth": login,
            **options,
        }
    )


def client(sandbox: Sandbox, *, auth: str = "token") -> SalesforceClient:
    return SalesforceClient(config(sandbox, auth=auth), base_dir=Path("."))


def destination(sandbox: Sandbox, **options: Any) -> SalesforceDestination:
    return SalesforceDestination(
        config(sandbox, **options), key_field=KEY, fields=FIELDS, base_dir=Path(".")
    )


def seed(sandbox: Sandbox, keys: list[str]) -> dict[str, str]:
    """Records with these keys (a start date each); their Ids by key."""
    records = [{KEY: key, "Name": f"Old {key}", FLAG: False, DATE: "2024-01-02"} for key in keys]
    results = sandbox.state.org.insert(OBJECT, records)
    assert all(r.success for r in results)
    return {key: str(r.id) for key, r in zip(keys, results, strict=True)}


def stored(sandbox: Sandbox, key: str) -> dict[str, Any]:
    (record,) = sandbox.state.org.find(OBJECT, KEY, key)
    return record


def hits(sandbox: Sandbox, fragment: str) -> list[Any]:
    return [r for r in sandbox.state.requests if fragment in r.path]


def is_job_info(path: str) -> bool:
    """``.../jobs/ingest/{id}`` (not a result file)."""
    return path.rstrip("/").split("/")[-2] == "ingest"


def records(count: int, *, prefix: str = "n") -> list[dict[str, Any]]:
    return [
        {KEY: f"{prefix}-{i:05d}", "Name": f"New {i}", FLAG: i % 2 == 0, DATE: "2026-01-31"}
        for i in range(count)
    ]


# --- outcomes from the result files ---------------------------------------------------------------
def test_outcomes_per_record_from_the_result_files(sandbox_factory: Start) -> None:
    sandbox = sandbox_factory(faults={"records": [BAD_NAME]})
    ids = seed(sandbox, ["e-1", "e-2", "e-3"])
    batch = [
        {KEY: "n-1", "Name": "Brand new", FLAG: True, DATE: dt.date(2026, 2, 1)},
        {KEY: "e-2", "Name": "Renamed", FLAG: True},
        {KEY: "e-3", "Name": "Bad Name"},  # the validation rule rejects it
        {KEY: "E-1", "Name": "Case does not matter"},  # external IDs match without case
        {KEY: "n-2", "Name": "Bad Name"},
    ]
    with client(sandbox) as sf:
        outcomes = BulkWriter(sf, OBJECT, KEY, sleep=no_sleep).upsert(batch)

    assert [(o.key, o.status) for o in outcomes] == [
        ("n-1", OutcomeStatus.CREATED),
        ("e-2", OutcomeStatus.UPDATED),
        ("e-3", OutcomeStatus.FAILED),
        ("E-1", OutcomeStatus.UPDATED),
        ("n-2", OutcomeStatus.FAILED),
    ]
    assert outcomes[0].destination_id == stored(sandbox, "n-1")["Id"]
    assert outcomes[1].destination_id == ids["e-2"] and outcomes[3].destination_id == ids["e-1"]
    failed = outcomes[2]
    assert failed.error_code == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert failed.message == "Name is not allowed" and failed.fields == ("Name",)
    assert failed.destination_id == ids["e-3"]  # Salesforce knows which record it refused
    # What the org holds: the new record in full, the update to its fields, the refusals nowhere.
    assert stored(sandbox, "n-1")[DATE] == dt.date(2026, 2, 1)
    assert stored(sandbox, "e-2")["Name"] == "Renamed"
    assert stored(sandbox, "e-2")[DATE] == dt.date(2024, 1, 2)  # not in the upload: unchanged
    assert stored(sandbox, "e-3")["Name"] == "Old e-3"
    assert sandbox.state.org.find(OBJECT, KEY, "n-2") == []
    assert hits(sandbox, COLLECTIONS) == []
    steps = Counter(r.method for r in hits(sandbox, JOBS))
    assert steps["POST"] == 1 and steps["PUT"] == 1 and steps["PATCH"] == 1


def test_an_expired_static_token_after_closing_names_the_job(sandbox_factory: Start) -> None:
    sandbox = sandbox_factory(faults={"tokens": {"expire_after_calls": 4}})  # the first poll
    with client(sandbox) as sf, pytest.raises(AuthenticationError) as caught:
        BulkWriter(sf, OBJECT, KEY, sleep=no_sleep).upsert(records(3))
    assert "Bulk job 750" in str(caught.value) and "was closed" in str(caught.value)
    assert sandbox.state.org.count(OBJECT) == 3  # Salesforce ran it: trueup must not resend


def test_a_job_that_fails_reports_every_record(sandbox_factory: Start) -> None:
    sandbox = sandbox_factory()
    batch = [{KEY: f"n-{i}", "Name": "x", "Nope__c": "y"} for i in range(3)]
    with client(sandbox) as sf:
        outcomes = BulkWriter(sf, OBJECT, KEY, sleep=no_sleep).upsert(batch)
    assert [o.key for o in outcomes] == ["n-0", "n-1", "n-2"]
    assert {(o.status, o.error_code) for o in outcomes} == {(OutcomeStatus.FAILED, UNPROCESSED)}
    assert "Failed" in str(outcomes[0].message)
    assert "Field name not found : Nope__c" in str(outcomes[0].message)
    assert sandbox.state.org.count(OBJECT) == 0


def test_a_job_past_max_wait_is_aborted_and_its_records_reported(sandbox_factory: Start) -> None:
    sandbox = sandbox_factory(realistic_bulk=True, seconds_per_batch=30)  # queued for 30 s
    with client(sandbox) as sf:
        writer = BulkWriter(sf, OBJECT, KEY, poll_interval=0.05, max_wait=0.3)
        outcomes = writer.upsert(records(4))
    assert {(o.status, o.error_code) for o in outcomes} == {(OutcomeStatus.FAILED, UNPROCESSED)}
    assert "Aborted" in str(outcomes[0].message) and "max_wait" in str(outcomes[0].message)
    assert sandbox.state.jobs.info(writer.job_ids[0])["state"] == "Aborted"
    assert sandbox.state.org.count(OBJECT) == 0


def test_records_failed_by_their_chunk_or_a_lock_are_sent_again_through_rest(
    sandbox_factory: Start,
) -> None:
    chunk_limit = {"type": "flow_chunk_limit", "object": OBJECT, "max_records": 50}
    lock = {"type": "lock", "object": OBJECT, "keys": {"field": KEY, "values": ["n-00007"]}}
    sandbox = sandbox_factory(faults={"records": [BAD_NAME, {**lock, "times": 1}, chunk_limit]})
    names = [f"New {i}" for i in range(120)]
    names[3] = "Bad Name"
    table = pa.table({KEY: [f"n-{i:05d}" for i in range(120)], "Name": names})
    with destination(sandbox, write_path="bulk") as dest:
        result = dest.write(WriteBatch(Operation.UPSERT, KEY, table))
    statuses = Counter(o.status for o in result.outcomes)
    assert statuses == {OutcomeStatus.CREATED: 119, OutcomeStatus.FAILED: 1}
    assert result.outcomes[3].error_code == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert sandbox.state.org.count(OBJECT) == 119
    # Bulk first (every 200-record trigger chunk failed), then REST bisected down to 50 or fewer.
    assert len([r for r in hits(sandbox, JOBS) if r.method == "POST"]) == 1
    assert hits(sandbox, COLLECTIONS)


# --- clearing a field -----------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["rest", "bulk"])
def test_clearing_a_date_really_clears_it(sandbox_factory: Start, path: str) -> None:
    sandbox = sandbox_factory()
    seed(sandbox, ["e-1", "e-2"])
    batch = pa.table(
        {
            KEY: ["e-1", "e-2"],
            "Name": ["Cleared", "Dated"],
            DATE: pa.array([None, dt.date(2026, 3, 4)], pa.date32()),
        }
    )
    with destination(sandbox, write_path=path) as dest:
        result = dest.write(WriteBatch(Operation.UPSERT, KEY, batch))
        snapshot = dest.snapshot([KEY, "Name", DATE]).sort_by(KEY).to_pylist()
    assert [o.status for o in result.outcomes] == [OutcomeStatus.UPDATED] * 2
    assert stored(sandbox, "e-1")[DATE] is None
    assert snapshot == [
        {KEY: "e-1", "Name": "Cleared", DATE: None},
        {KEY: "e-2", "Name": "Dated", DATE: dt.date(2026, 3, 4)},
    ]
    used, unused = (JOBS, COLLECTIONS) if path == "bulk" else (COLLECTIONS, JOBS)
    assert hits(sandbox, used) and not hits(sandbox, unused)


# --- which path a run takes ----------------------------------------------------------------------
def plan_for(dest: SalesforceDestination, count: int) -> Plan:
    source = pa.table(
        {"k": [f"n-{i:03d}" for i in range(count)], "name": [f"New {i}" for i in range(count)]}
    )
    mapping = {"k": KEY, "name": "Name"}
    schema = dest.describe()
    result = diff(
        source,
        dest.snapshot([KEY, "Name"]),
        mapping=mapping,
        key="k",
        schema=schema,
        capabilities=dest.capabilities,
    )
    types = {name: schema.field(name).type for name in mapping.values()}
    return Plan.from_diff(result, config_fingerprint="c", destination=OBJECT, field_types=types)


@pytest.mark.parametrize(
    ("write_path", "count", "expected"),
    [
        ("auto", 5, WritePath.REST),  # at the threshold: REST
        ("auto", 6, WritePath.BULK),  # above it: Bulk
        ("rest", 6, WritePath.REST),
        ("bulk", 2, WritePath.BULK),
    ],
)
def test_apply_takes_the_path_the_config_and_run_size_call_for(
    sandbox_factory: Start, tmp_path: Path, write_path: str, count: int, expected: WritePath
) -> None:
    sandbox = sandbox_factory()
    options = {"write_path": write_path, "bulk_threshold": 5, "batch_size": 2, "concurrency": 1}
    with (
        destination(sandbox, **options) as dest,
        RunStore.open("sqlite:///state.db", base_dir=tmp_path) as store,
    ):
        plan = plan_for(dest, count)
        assert dest.write_path is (WritePath.BULK if write_path == "bulk" else WritePath.REST)
        result = apply_plan(plan, dest, store, batch_size=2, guards=GuardsConfig())
        assert dest.write_path is expected
    assert result.counts[OutcomeStatus.CREATED] == count
    assert sandbox.state.org.count(OBJECT) == count
    jobs = [r for r in hits(sandbox, JOBS) if r.method == "POST"]
    collections = hits(sandbox, COLLECTIONS)
    if expected is WritePath.BULK:
        assert len(jobs) == 1 and not collections  # one job holds up to 10,000 records
    else:
        assert not jobs and len(collections) == (count + 1) // 2


# --- sessions, slow jobs, flaky endpoints ---------------------------------------------------------
def test_a_session_expiring_mid_job_is_renewed_and_the_job_finishes(sandbox_factory: Start) -> None:
    sandbox = sandbox_factory(faults={"tokens": {"expire_after_calls": 3}})
    with client(sandbox, auth="client_credentials") as sf:
        outcomes = BulkWriter(sf, OBJECT, KEY, sleep=no_sleep).upsert(records(30))
        logins = sf.logins
    assert [o.status for o in outcomes] == [OutcomeStatus.CREATED] * 30
    expired = [r for r in hits(sandbox, JOBS) if r.status == 401]
    assert expired  # the Bulk calls themselves met the expiry...
    assert logins == 1 + len(expired)  # ...and each expiry cost exactly one login
    assert sandbox.state.org.count(OBJECT) == 30


def test_realistic_bulk_timing_is_polled_to_completion(sandbox_factory: Start) -> None:
    sandbox = sandbox_factory(realistic_bulk=True, seconds_per_batch=0.2)
    batch = records(20_000)
    with client(sandbox) as sf:
        outcomes = BulkWriter(sf, OBJECT, KEY, poll_interval=0.1).upsert(batch)
    assert Counter(o.status for o in outcomes) == {OutcomeStatus.CREATED: 20_000}
    assert [o.key for o in outcomes] == [r[KEY] for r in batch]
    polls = [r for r in hits(sandbox, JOBS) if r.method == "GET" and is_job_info(r.path)]
    assert len(polls) >= 3  # queued, then one 10,000-record batch per 0.2 s: polled meanwhile
    assert sandbox.state.org.count(OBJECT) == 20_000


def test_503s_on_the_bulk_endpoints_are_retried_and_nothing_is_lost(sandbox_factory: Start) -> None:
    flaky = {"match": "GET|POST|PUT|PATCH /services/data/*/jobs/*", "status": 503, "rate": 0.1}
    sandbox = sandbox_factory(faults={"seed": 11, "http": [flaky]})
    created: Counter[OutcomeStatus] = Counter()
    with client(sandbox) as sf:
        writer = BulkWriter(sf, OBJECT, KEY, sleep=no_sleep)
        for part in range(8):
            created.update(o.status for o in writer.upsert(records(10, prefix=f"p{part}")))
    assert [r for r in hits(sandbox, JOBS) if r.status == 503]  # the faults did fire
    assert created == {OutcomeStatus.CREATED: 80}  # each record saved once: never resent
    assert sandbox.state.org.count(OBJECT) == 80


def test_apply_on_the_bulk_path_survives_flaky_endpoints(
    sandbox_factory: Start, tmp_path: Path
) -> None:
    # The upload, the close and a poll each fail once and are retried.
    flaky = {"match": "* /services/data/*/jobs/*", "status": 503, "nth": [2, 4, 6]}
    sandbox = sandbox_factory(faults={"http": [flaky]})
    seed(sandbox, ["n-000", "n-001"])
    with (
        destination(sandbox, write_path="bulk") as dest,
        RunStore.open("sqlite:///state.db", base_dir=tmp_path) as store,
    ):
        plan = plan_for(dest, 12)
        fast = RetryPolicy(attempts=5, initial_wait=0.0, max_wait=0.0)
        result = apply_plan(plan, dest, store, batch_size=2, guards=GuardsConfig(), retry=fast)
    assert len([r for r in hits(sandbox, JOBS) if r.status == 503]) == 3
    assert result.counts[OutcomeStatus.CREATED] == 10
    assert result.counts[OutcomeStatus.UPDATED] == 2
    assert sandbox.state.org.count(OBJECT) == 12
