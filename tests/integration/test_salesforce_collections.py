"""CollectionsWriter against a real sandbox over HTTPS, with the sandbox's scripted faults.

Evidence comes from the server's side where it can: the org's records, the sandbox's request log,
and the ``created`` flag (a record sent again after it saved would come back UPDATED, not CREATED).
The client is trueup's own ``SalesforceClient`` (token auth, the sandbox's CA); ``Recording`` wraps
it to note which keys each request carried and what came back.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from trueup.config_salesforce import SalesforceDestinationConfig
from trueup.destinations.base import OutcomeStatus, RecordOutcome
from trueup.destinations.salesforce.client import SalesforceClient
from trueup.destinations.salesforce.collections import CollectionsWriter
from trueup.errors import AuthenticationError, FatalDestinationError, TransientDestinationError
from trueup.sandbox.errors import RecordError
from trueup.sandbox.server import Sandbox

OBJ = "Product_Property__c"
EXT = "Reverse_ETL_ID__c"
UPSERT_PATH = f"/services/data/v59.0/composite/sobjects/{OBJ}/{EXT}"
FLOW_ERROR = "CANNOT_EXECUTE_FLOW_TRIGGER"

SandboxFactory = Callable[..., Sandbox]


class Recording:
    """Wraps a client; notes the keys of every collections request that got an answer."""

    def __init__(self, client: SalesforceClient) -> None:
        self.client = client
        self.calls: list[tuple[list[str], list[dict[str, Any]]]] = []
        self._lock = threading.Lock()

    def request(self, method: str, path: str, *, json: Any = None) -> httpx.Response:
        response = self.client.request(method, path, json=json)
        keys = [r[EXT] for r in json["records"]]
        with self._lock:
            self.calls.append((keys, response.json()))
        return response

    def sends(self) -> Counter[str]:
        """How many answered requests carried each key."""
        return Counter(k for keys, _ in self.calls for k in keys)

    def saved(self) -> Counter[str]:
        """How many answered requests saved each key."""
        return Counter(
            k
            for keys, answers in self.calls
            for k, a in zip(keys, answers, strict=True)
            if a["success"]
        )


@pytest.fixture()
def connect(tmp_path: Path) -> Iterator[Callable[[Sandbox], Recording]]:
    """trueup's SalesforceClient for a sandbox (its ready token, its CA), recorded."""
    clients: list[SalesforceClient] = []

    def make(sandbox: Sandbox) -> Recording:
        auth = {"kind": "token", "instance_url": sandbox.url, "access_token": sandbox.access_token}
        config = SalesforceDestinationConfig.model_validate(
            {"kind": "salesforce", "object": OBJ, "auth": auth, "ca_bundle": str(sandbox.ca_path)}
        )
        client = SalesforceClient(config, base_dir=tmp_path)
        clients.append(client)
        return Recording(client)

    yield make
    for client in clients:
        client.close()


def records(keys: Sequence[str], **values: Any) -> list[dict[str, Any]]:
    return [{EXT: k, "Name": f"Property {k}", **values} for k in keys]


def keys_of(n: int, prefix: str = "k") -> list[str]:
    return [f"{prefix}{i:04d}" for i in range(n)]


def writer(client: Any, **options: Any) -> CollectionsWriter:
    options.setdefault("sleep", lambda _s: None)
    return CollectionsWriter(client, OBJ, EXT, **options)


def statuses(outcomes: Sequence[RecordOutcome]) -> Counter[OutcomeStatus]:
    return Counter(o.status for o in outcomes)


def upserts(sandbox: Sandbox) -> list[int | None]:
    """Statuses of the collections upserts the sandbox received, in arrival order."""
    return [r.status for r in sandbox.state.requests if r.path == UPSERT_PATH]


def stored(sandbox: Sandbox) -> dict[str, dict[str, Any]]:
    return {row[EXT]: row for row in sandbox.state.org.rows(OBJ)}


def test_created_and_updated_come_from_salesforce_per_record(
    sandbox: Sandbox, connect: Any
) -> None:
    existing = sandbox.state.org.insert(OBJ, records(["k0001", "k0003"], Name="old"))
    client = connect(sandbox)

    outcomes = writer(client).upsert(
        records(keys_of(5), Fraud_Detection_Start_Date__c="2026-01-31")
    )

    assert [(o.key, o.status) for o in outcomes] == [
        ("k0000", OutcomeStatus.CREATED),
        ("k0001", OutcomeStatus.UPDATED),
        ("k0002", OutcomeStatus.CREATED),
        ("k0003", OutcomeStatus.UPDATED),
        ("k0004", OutcomeStatus.CREATED),
    ]
    org = stored(sandbox)
    assert [outcomes[1].destination_id, outcomes[3].destination_id] == [r.id for r in existing]
    assert all(org[o.key]["Id"] == o.destination_id for o in outcomes)
    assert org["k0001"]["Name"] == "Property k0001"
    assert str(org["k0004"]["Fraud_Detection_Start_Date__c"]) == "2026-01-31"
    assert upserts(sandbox) == [200]


def test_none_clears_a_field(sandbox: Sandbox, connect: Any) -> None:
    sandbox.state.org.insert(OBJ, records(["k0000"], Fraud_Detection_Start_Date__c="2026-01-31"))

    outcomes = writer(connect(sandbox)).upsert(
        records(["k0000"], Fraud_Detection_Start_Date__c=None)
    )

    assert outcomes[0].status is OutcomeStatus.UPDATED
    assert stored(sandbox)["k0000"]["Fraud_Detection_Start_Date__c"] is None


def test_flow_limit_bisects_and_shrinks_the_batch_size(
    sandbox_factory: SandboxFactory, connect: Any
) -> None:
    plan = {"records": [{"type": "flow_chunk_limit", "object": OBJ, "max_records": 50}]}
    sandbox = sandbox_factory(faults=plan)
    client = connect(sandbox)
    w = writer(client, batch_size=200, concurrency=2)

    outcomes = w.upsert(records(keys_of(200)))

    assert statuses(outcomes) == {OutcomeStatus.CREATED: 200}
    assert len(stored(sandbox)) == 200
    assert w.batch_size == 50
    # 200 fails whole, both 100s fail whole, four 50s land.
    assert sorted(len(keys) for keys, _ in client.calls) == [50, 50, 50, 50, 100, 100, 200]
    assert max(client.saved().values()) == 1
    assert all(len(keys) <= 50 for keys, answers in client.calls if answers[0]["success"])

    # The rest of the run goes out in 50s straight away: no failing request is repeated.
    client.calls.clear()
    again = w.upsert(records(keys_of(200), Name="renamed") + records(keys_of(100, "n")))
    assert statuses(again) == {OutcomeStatus.UPDATED: 200, OutcomeStatus.CREATED: 100}
    assert [len(keys) for keys, _ in client.calls] == [50] * 6
    assert all(a["success"] for _, answers in client.calls for a in answers)


class PoisonTrigger:
    """A trigger whose unhandled exception fails its whole chunk when one record is poison."""

    def before_save(
        self, sobject: str, operation: str, chunk: Sequence[Mapping[str, Any]]
    ) -> Sequence[RecordError | None]:
        if not any(r.get("Name") == "poison" for r in chunk):
            return [None] * len(chunk)
        error = RecordError(
            "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY",
            "Sync_Trigger: execution of AfterInsert caused by: System.LimitException: "
            "Too many SOQL queries: 101",
        )
        return [error] * len(chunk)


def test_bisection_isolates_the_one_bad_record(sandbox: Sandbox, connect: Any) -> None:
    sandbox.state.org.rules = PoisonTrigger()
    client = connect(sandbox)
    w = writer(client, batch_size=200)
    batch = records(keys_of(200))
    batch[137]["Name"] = "poison"

    outcomes = w.upsert(batch)

    failed = [o for o in outcomes if o.status is OutcomeStatus.FAILED]
    assert [(o.key, o.error_code) for o in failed] == [
        ("k0137", "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY")
    ]
    assert "System.LimitException" in (failed[0].message or "")
    assert statuses(outcomes)[OutcomeStatus.CREATED] == 199
    assert "k0137" not in stored(sandbox) and len(stored(sandbox)) == 199
    assert max(client.saved().values()) == 1  # nothing that saved was sent again
    assert w.batch_size == 100  # the largest size that went through


def test_locked_rows_are_retried_alone_until_they_save(
    sandbox_factory: SandboxFactory, connect: Any
) -> None:
    locked = ["k0003", "k0017"]
    plan = {
        "records": [
            {"type": "lock", "object": OBJ, "keys": {"field": EXT, "values": locked}, "times": 2}
        ]
    }
    sandbox = sandbox_factory(faults=plan)
    client = connect(sandbox)
    waits: list[float] = []

    outcomes = writer(client, sleep=waits.append).upsert(records(keys_of(30)))

    assert statuses(outcomes) == {OutcomeStatus.CREATED: 30}
    assert len(stored(sandbox)) == 30
    assert [keys for keys, _ in client.calls][1:] == [locked, locked]
    assert client.sends() == Counter({k: 3 if k in locked else 1 for k in keys_of(30)})
    assert upserts(sandbox) == [200, 200, 200]
    assert len(waits) == 2 and waits[1] > waits[0] > 0


def test_a_row_that_stays_locked_fails_after_the_attempts(
    sandbox_factory: SandboxFactory, connect: Any
) -> None:
    plan = {
        "records": [{"type": "lock", "object": OBJ, "keys": {"field": EXT, "values": ["k0001"]}}]
    }
    sandbox = sandbox_factory(faults=plan)
    client = connect(sandbox)

    outcomes = writer(client, attempts=3).upsert(records(keys_of(4)))

    assert outcomes[1].status is OutcomeStatus.FAILED
    assert outcomes[1].error_code == "UNABLE_TO_LOCK_ROW"
    assert statuses(outcomes)[OutcomeStatus.CREATED] == 3
    assert client.sends()["k0001"] == 3 and client.sends()["k0000"] == 1


def test_transient_http_failures_are_resent_until_everything_lands(
    sandbox_factory: SandboxFactory, connect: Any
) -> None:
    plan = {
        "seed": 11,
        "http": [
            {"match": "PATCH /services/data/*/composite/*", "status": 503, "rate": 0.1},
            {"match": "PATCH /services/data/*/composite/*", "drop": True, "nth": [3]},
        ],
    }
    sandbox = sandbox_factory(faults=plan)
    client = connect(sandbox)

    outcomes = writer(client, batch_size=20, concurrency=4).upsert(records(keys_of(600)))

    assert statuses(outcomes) == {OutcomeStatus.CREATED: 600}
    assert len(stored(sandbox)) == 600
    sent = upserts(sandbox)
    assert sent.count(503) >= 1 and sent.count(None) == 1  # the faults really happened
    assert sent.count(200) == 30  # each 20-record chunk saved exactly once


def test_retry_after_is_honoured(sandbox_factory: SandboxFactory, connect: Any) -> None:
    plan = {"http": [{"match": "PATCH *", "status": 429, "retry_after": 7, "nth": [1]}]}
    sandbox = sandbox_factory(faults=plan)
    waits: list[float] = []

    outcomes = writer(connect(sandbox), sleep=waits.append, max_wait=2.0).upsert(
        records(keys_of(3))
    )

    assert statuses(outcomes) == {OutcomeStatus.CREATED: 3}
    assert upserts(sandbox) == [429, 200]
    assert len(waits) == 1 and waits[0] >= 7


def test_transient_failures_give_up_after_the_attempts(
    sandbox_factory: SandboxFactory, connect: Any
) -> None:
    sandbox = sandbox_factory(faults={"http": [{"match": "PATCH *", "status": 503}]})
    waits: list[float] = []

    with pytest.raises(TransientDestinationError):
        writer(connect(sandbox), attempts=3, sleep=waits.append).upsert(records(keys_of(3)))

    assert upserts(sandbox) == [503, 503, 503]
    assert len(waits) == 2


def test_validation_failures_are_permanent_and_only_theirs(
    sandbox_factory: SandboxFactory, connect: Any
) -> None:
    rule = {
        "type": "validation",
        "object": OBJ,
        "when": {"field": "Name", "equals": "Bad Name"},
        "message": "Name is not allowed",
    }
    sandbox = sandbox_factory(faults={"records": [rule]})
    client = connect(sandbox)
    batch = records(keys_of(120))
    bad = {"k0005", "k0050", "k0119"}
    for r in batch:
        if r[EXT] in bad:
            r["Name"] = "Bad Name"

    outcomes = writer(client, batch_size=50).upsert(batch)

    failed = {o.key: o for o in outcomes if o.status is OutcomeStatus.FAILED}
    assert set(failed) == bad
    for o in failed.values():
        assert (o.error_code, o.message, o.fields) == (
            "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "Name is not allowed",
            ("Name",),
        )
        assert o.destination_id is None
    assert statuses(outcomes)[OutcomeStatus.CREATED] == 117
    assert set(stored(sandbox)) == set(keys_of(120)) - bad
    assert set(client.sends().values()) == {1}  # nothing resent
    assert upserts(sandbox) == [200, 200, 200]


def test_outcomes_keep_input_order_with_concurrency(sandbox: Sandbox, connect: Any) -> None:
    sandbox.state.org.insert(OBJ, records(keys_of(300)[::3]))
    order = keys_of(300)[::-1]
    client = connect(sandbox)

    outcomes = writer(client, batch_size=7, concurrency=4).upsert(records(order))

    assert [o.key for o in outcomes] == order
    expected = [
        OutcomeStatus.UPDATED if int(k[1:]) % 3 == 0 else OutcomeStatus.CREATED for k in order
    ]
    assert [o.status for o in outcomes] == expected
    assert len(client.calls) == 43


def test_a_fatal_request_error_propagates(sandbox: Sandbox, connect: Any) -> None:
    w = CollectionsWriter(connect(sandbox), OBJ, "Name", sleep=lambda _s: None)  # no external ID

    with pytest.raises(FatalDestinationError, match="NOT_FOUND"):
        w.upsert([{"Name": "x"}])


def test_batch_size_is_bounded_by_the_collections_limit(sandbox: Sandbox, connect: Any) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        writer(connect(sandbox), batch_size=201)


def test_an_expired_token_that_cannot_be_renewed_stops_the_run(
    sandbox_factory: SandboxFactory, connect: Any
) -> None:
    sandbox = sandbox_factory(faults={"http": [{"match": "PATCH *", "expire_session": True}]})

    with pytest.raises(AuthenticationError):
        writer(connect(sandbox)).upsert(records(keys_of(3)))

    assert stored(sandbox) == {}
