"""The daily API allocation against the sandbox (``api_limit``): a run that would eat into
``destination.api_reserve`` is refused before anything is written, a run that reaches it stops
between batches with every record accounted for, and a spent allocation (403) stops the run.

Evidence comes from the server's side (the org's records, the request log, the calls it counted)
and from the run store.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from trueup.apply import ApplyResult, RetryPolicy, StopReason, apply_plan
from trueup.config import GuardsConfig, SalesforceDestinationConfig
from trueup.destinations.base import OutcomeStatus
from trueup.destinations.salesforce.destination import SalesforceDestination
from trueup.diff import diff
from trueup.errors import ApiAllowanceExhausted
from trueup.plan import Plan
from trueup.progress import ProgressCallback, ProgressEvent, no_progress
from trueup.sandbox.server import Sandbox
from trueup.store import RunStatus, RunStore

OBJECT = "Product_Property__c"
KEY = "Reverse_ETL_ID__c"
COLLECTIONS = "/composite/sobjects"
LIMIT = 60  # the sandbox org's daily API allocation
RESERVE = 20
FAST = RetryPolicy(attempts=3, initial_wait=0.0, max_wait=0.0)

Start = Callable[..., Sandbox]


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[RunStore]:
    with RunStore.open("sqlite:///state.db", base_dir=tmp_path) as opened:
        yield opened


def destination(
    sandbox: Sandbox, *, reserve: int = RESERVE, batch_size: int = 2, concurrency: int = 1
) -> SalesforceDestination:
    """REST; by default two records a request, one at a time: calls are easy to count."""
    config = SalesforceDestinationConfig.model_validate(
        {
            "kind": "salesforce",
            "object": OBJECT,
            "ca_bundle": str(sandbox.ca_path),
            "timeout": 10,
            "auth": {
                "kind": "token",
                "instance_url": sandbox.url,
                "access_token": sandbox.access_token,
            },
            "write_path": "rest",
            "batch_size": batch_size,
            "concurrency": concurrency,
            "api_reserve": reserve,
        }
    )
    return SalesforceDestination(config, key_field=KEY, fields=[KEY, "Name"], base_dir=Path("."))


def plan_for(dest: SalesforceDestination, count: int) -> Plan:
    """Create ``count`` records (costs two calls: describe and the snapshot query)."""
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


def apply(
    dest: SalesforceDestination,
    plan: Plan,
    store: RunStore,
    progress: ProgressCallback = no_progress,
) -> ApplyResult:
    return apply_plan(
        plan, dest, store, batch_size=2, guards=GuardsConfig(), retry=FAST, progress=progress
    )


def skipped_by_code(store: RunStore, run_id: int) -> Counter[str]:
    outcomes = store.outcomes(run_id)
    return Counter(o.error_code or "" for o in outcomes if o.status == OutcomeStatus.SKIPPED)


def test_a_run_that_would_eat_into_the_reserve_is_refused_before_writing(
    sandbox_factory: Start, store: RunStore
) -> None:
    sandbox = sandbox_factory(api_limit=LIMIT)
    with destination(sandbox) as dest:
        plan = plan_for(dest, 80)  # 40 requests + 4 for resends
        with pytest.raises(ApiAllowanceExhausted) as caught:
            apply(dest, plan, store)
    message = str(caught.value)
    # describe, query and /limits have been counted: 57 left; 57 - 44 leaves 13 < 20.
    assert "57 of 60 requests left" in message
    assert "needs about 44" in message and "api_reserve keeps 20" in message
    assert "nothing was written" in message
    assert caught.value.exit_code == 10
    assert not [r for r in sandbox.state.requests if COLLECTIONS in r.path]
    assert sandbox.state.org.count(OBJECT) == 0
    assert store.list_runs() == []  # refused before a run started


def test_a_run_that_fits_is_not_refused(sandbox_factory: Start, store: RunStore) -> None:
    sandbox = sandbox_factory(api_limit=LIMIT)
    with destination(sandbox) as dest:
        result = apply(dest, plan_for(dest, 40), store)  # 57 - 22 leaves 35
    assert result.status is RunStatus.SUCCEEDED
    assert result.counts[OutcomeStatus.CREATED] == 40
    assert sandbox.state.api_remaining() > RESERVE


def test_a_run_that_reaches_the_reserve_stops_between_batches(
    sandbox_factory: Start, store: RunStore
) -> None:
    # A flow that fails every chunk of more than one record: each two-record request is split,
    # so the run costs about twice the 22 calls estimated for it and reaches the reserve.
    flow = {"type": "flow_chunk_limit", "object": OBJECT, "max_records": 1}
    sandbox = sandbox_factory(api_limit=LIMIT, faults={"records": [flow]})
    with destination(sandbox) as dest:
        result = apply(dest, plan_for(dest, 40), store)
    assert result.status is RunStatus.STOPPED
    assert result.stop_reason is StopReason.API_RESERVE
    message = result.message or ""
    assert message.startswith("stopped: Salesforce's daily API allocation is down to 20 of 60")
    assert "at destination.api_reserve (20)" in message
    created = result.counts[OutcomeStatus.CREATED]
    skipped = result.counts[OutcomeStatus.SKIPPED]
    assert 0 < created < 40 and created + skipped == 40
    assert message.endswith(f"; {skipped} records not sent")
    # What was sent is in the org and stored; the rest was not sent and is stored as such.
    assert sandbox.state.org.count(OBJECT) == created
    assert skipped_by_code(store, result.run_id) == {"NOT_SENT": skipped}
    unsent = [o for o in store.outcomes(result.run_id) if o.status == OutcomeStatus.SKIPPED]
    assert {o.message for o in unsent} == {"not sent: API reserve"}
    detail = store.get_run(result.run_id)
    assert detail.summary.status is RunStatus.STOPPED and detail.message == message
    assert sandbox.state.api_remaining() == RESERVE  # stopped at the reserve, not past it
    assert not [r for r in sandbox.state.requests if r.status == 403]


def test_splitting_chunks_within_one_write_stops_at_the_reserve_too(
    sandbox_factory: Start, store: RunStore
) -> None:
    # One write of 40 records (8 requests of 5 in flight), estimated at 9 calls; the flow makes
    # every chunk split down to single records: far more calls than the whole reserve.
    flow = {"type": "flow_chunk_limit", "object": OBJECT, "max_records": 1}
    sandbox = sandbox_factory(api_limit=LIMIT, faults={"records": [flow]})
    with destination(sandbox, batch_size=5, concurrency=8) as dest:
        result = apply(dest, plan_for(dest, 40), store)
    assert result.status is RunStatus.STOPPED
    assert result.stop_reason is StopReason.API_RESERVE
    assert "at destination.api_reserve (20)" in (result.message or "")
    # Checked before every request: at most the requests already in flight go past it.
    assert sandbox.state.api_remaining() >= RESERVE - 8
    assert not [r for r in sandbox.state.requests if r.status == 403]
    # The write was under way: what Salesforce confirmed is stored as created (and is exactly
    # what the org holds); only the records without an answer are NOT_CONFIRMED.
    saved = sandbox.state.org.count(OBJECT)
    assert 0 < saved < 40
    assert result.counts[OutcomeStatus.CREATED] == saved
    created = {o.key for o in store.outcomes(result.run_id) if o.status == OutcomeStatus.CREATED}
    held = {r[KEY] for r in sandbox.state.org.rows(OBJECT)}
    assert created == held
    assert skipped_by_code(store, result.run_id) == {"NOT_CONFIRMED": 40 - saved}
    assert (result.message or "").endswith(f"; 0 records not sent, {40 - saved} not confirmed")


def test_a_spent_allocation_stops_the_run_and_is_not_retried(
    sandbox_factory: Start, store: RunStore
) -> None:
    sandbox = sandbox_factory(api_limit=LIMIT)

    def other_integrations(event: ProgressEvent) -> None:
        if event.done == 2:  # after the first batch, something else spends the rest
            sandbox.state.api_used = sandbox.state.api_limit

    with destination(sandbox, reserve=0) as dest:
        result = apply(dest, plan_for(dest, 10), store, progress=other_integrations)
    assert result.status is RunStatus.STOPPED
    assert result.stop_reason is StopReason.API_RESERVE
    assert "REQUEST_LIMIT_EXCEEDED" in (result.message or "")
    refused = [r for r in sandbox.state.requests if r.status == 403]
    assert len(refused) == 1 and COLLECTIONS in refused[0].path  # refused once, not resent
    assert result.counts[OutcomeStatus.CREATED] == 2
    # The batch in flight is not confirmed (a refused request saves nothing, but a batch may
    # span several requests); the rest was never sent.
    assert skipped_by_code(store, result.run_id) == {"NOT_CONFIRMED": 2, "NOT_SENT": 6}
    assert (result.message or "").endswith("; 6 records not sent, 2 not confirmed")
    assert sandbox.state.org.count(OBJECT) == 2
