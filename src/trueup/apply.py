"""Apply a plan: batches, retries of transient failures, per-record outcomes, the error-rate brake.

Order of work for every batch, so a crash at any point loses nothing:
1. the before-image of every field the batch changes is stored;
2. the batch is sent (retried with backoff while the destination reports a transient failure);
3. the destination's per-record outcomes are stored — before the next batch is sent.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from trueup.config import GuardsConfig
from trueup.destinations.base import (
    BatchResult,
    Destination,
    Operation,
    OutcomeStatus,
    PreparesRun,
    RecordOutcome,
    WriteBatch,
)
from trueup.diff import BEFORE, Action
from trueup.errors import TransientDestinationError
from trueup.plan import Plan
from trueup.progress import ProgressCallback, ProgressEvent, no_progress
from trueup.store import BeforeImage, RunStatus, RunStore

NULL_KEY = "(null key)"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a transient failure of one batch is retried."""

    attempts: int = 5
    initial_wait: float = 0.5
    max_wait: float = 30.0


@dataclass(frozen=True)
class ApplyResult:
    """What a run did, from the destination's own per-record answers."""

    run_id: int
    status: RunStatus
    counts: Mapping[OutcomeStatus, int]
    error_codes: Mapping[str, int] = field(default_factory=dict)
    message: str | None = None

    @property
    def processed(self) -> int:
        """Records sent to the destination that got an answer."""
        return sum(
            self.counts[s]
            for s in (OutcomeStatus.CREATED, OutcomeStatus.UPDATED, OutcomeStatus.FAILED)
        )

    @property
    def error_rate(self) -> float:
        """Failed records as a share of processed records."""
        return self.counts[OutcomeStatus.FAILED] / self.processed if self.processed else 0.0


def apply_plan(
    plan: Plan,
    destination: Destination,
    store: RunStore,
    *,
    batch_size: int,
    guards: GuardsConfig,
    command: str = "apply",
    retry: RetryPolicy = RetryPolicy(),
    progress: ProgressCallback = no_progress,
) -> ApplyResult:
    """Send the plan's creates and updates in batches; record every outcome in the run store.

    A destination that ``PreparesRun`` is told how many records will be sent first (Salesforce
    picks its write path from it). Records per write: the destination's ``write_size`` when it
    has one, else ``batch_size``; never more than its ``max_batch_size``.
    """
    if isinstance(destination, PreparesRun):
        destination.prepare_run(plan.write_count)
    caps = destination.capabilities
    size = max(1, min(caps.write_size or batch_size, caps.max_batch_size))
    run_id = store.start_run(
        command=command,
        destination=plan.destination,
        config_fingerprint=plan.config_fingerprint,
        plan_fingerprint=plan.fingerprint,
        plan_counts={f"plan.{a.value}": n for a, n in plan.counts.items()},
    )
    counts: Counter[OutcomeStatus] = Counter({s: 0 for s in OutcomeStatus})
    codes: Counter[str] = Counter()
    try:
        invalid = _invalid_outcomes(plan)
        if invalid:
            store.record_batch(run_id, 0, invalid, [])
            counts[OutcomeStatus.SKIPPED] += len(invalid)
        rows = plan.rows(Action.CREATE, Action.UPDATE)
        writes = plan.writes()
        total = writes.num_rows
        progress(ProgressEvent("apply", 0, total))
        for number, start in enumerate(range(0, total, size), start=1):
            batch = WriteBatch(Operation.UPSERT, plan.key_field, writes.slice(start, size), number)
            store.record_batch(run_id, number, [], _before_images(rows.slice(start, size)))
            result = _write(destination, batch, retry)
            store.record_batch(run_id, number, result.outcomes, [])
            for outcome in result.outcomes:
                counts[outcome.status] += 1
                if outcome.status is OutcomeStatus.FAILED:
                    codes[outcome.error_code or "UNKNOWN"] += 1
            progress(ProgressEvent("apply", min(start + size, total), total))
            if _brake(counts, guards):
                return _stop(store, run_id, counts, codes, writes.slice(start + size), plan)
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        status = RunStatus.STOPPED if interrupted else RunStatus.FAILED
        store.finish_run(run_id, status, message=_short(exc))
        raise
    store.finish_run(run_id, RunStatus.SUCCEEDED)
    return ApplyResult(run_id, RunStatus.SUCCEEDED, dict(counts), dict(codes))


def _write(destination: Destination, batch: WriteBatch, retry: RetryPolicy) -> BatchResult:
    retrying = Retrying(
        retry=retry_if_exception_type(TransientDestinationError),
        stop=stop_after_attempt(retry.attempts),
        wait=wait_exponential(multiplier=retry.initial_wait, max=retry.max_wait)
        + wait_random(0, retry.initial_wait),  # jitter, so parallel runs do not retry in step
        reraise=True,
    )
    result: BatchResult = retrying(destination.write, batch)
    return result


def _brake(counts: Counter[OutcomeStatus], guards: GuardsConfig) -> bool:
    processed = counts[OutcomeStatus.CREATED] + counts[OutcomeStatus.UPDATED]
    failed = counts[OutcomeStatus.FAILED]
    processed += failed
    return processed >= guards.min_error_sample and failed / processed > guards.max_error_rate


def _stop(
    store: RunStore,
    run_id: int,
    counts: Counter[OutcomeStatus],
    codes: Counter[str],
    unsent: pa.Table,
    plan: Plan,
) -> ApplyResult:
    skipped = [
        RecordOutcome(key, OutcomeStatus.SKIPPED, "NOT_SENT", "not sent: error-rate brake")
        for key in unsent[plan.key_field].to_pylist()
    ]
    if skipped:
        store.record_batch(run_id, -1, skipped, [])
    counts[OutcomeStatus.SKIPPED] += len(skipped)
    failed = counts[OutcomeStatus.FAILED]
    processed = failed + counts[OutcomeStatus.CREATED] + counts[OutcomeStatus.UPDATED]
    message = (
        f"stopped: {failed} of {processed} records failed ({failed / processed:.1%}), above "
        f"guards.max_error_rate; {len(skipped)} records not sent"
    )
    store.finish_run(run_id, RunStatus.STOPPED, message=message)
    return ApplyResult(run_id, RunStatus.STOPPED, dict(counts), dict(codes), message)


def _invalid_outcomes(plan: Plan) -> list[RecordOutcome]:
    rows = plan.rows(Action.INVALID)
    return [
        RecordOutcome(key if key is not None else NULL_KEY, OutcomeStatus.SKIPPED, "INVALID", why)
        for key, why in zip(rows["key"].to_pylist(), rows["reason"].to_pylist(), strict=True)
    ]


def _before_images(rows: pa.Table) -> list[BeforeImage]:
    images = []
    for row in rows.to_pylist():
        for name in row["changed"]:
            images.append(
                BeforeImage(row["key"], name, _json(row[BEFORE + name]), _json(row[name]))
            )
    return images


def _json(value: Any) -> str | None:
    if value is None:
        return None
    if hasattr(value, "isoformat"):
        return json.dumps(value.isoformat())
    return json.dumps(value)


def _short(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:500]
