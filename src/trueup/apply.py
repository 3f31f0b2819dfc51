"""Apply a plan: batches, retries of transient failures, per-record outcomes, the error-rate brake.

Order of work for every batch, so a crash at any point loses nothing:
1. the before-image of every field the batch changes is stored;
2. the batch is sent (retried with backoff while the destination reports a transient failure);
3. the destination's per-record outcomes are stored — before the next batch is sent.

A run stops early (status STOPPED, the records not sent stored as SKIPPED) when the error-rate
brake trips or the destination's API allocation reaches its reserve (``ApiAllowanceExhausted``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
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
from trueup.errors import ApiAllowanceExhausted, TransientDestinationError
from trueup.plan import Plan
from trueup.progress import ProgressCallback, ProgressEvent, no_progress
from trueup.store import BeforeImage, RunStatus, RunStore

NULL_KEY = "(null key)"
NOT_SENT = "NOT_SENT"  # SKIPPED: trueup stopped before sending the record
NOT_CONFIRMED = "NOT_CONFIRMED"  # SKIPPED: in a write the run stopped in the middle of


class StopReason(StrEnum):
    """Why a run stopped before sending every record."""

    ERROR_RATE = "error_rate"  # guards.max_error_rate passed
    API_RESERVE = "api_reserve"  # the destination's API allocation reached its reserve


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
    stop_reason: StopReason | None = None  # set when status is STOPPED

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
    picks its write path from it, and may refuse the run: ApiAllowanceExhausted, before any run
    is recorded). Records per write: the destination's ``write_size`` when it has one, else
    ``batch_size``; never more than its ``max_batch_size``.
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
            try:
                result = _write(destination, batch, retry)
            except ApiAllowanceExhausted as exc:
                # Stopped mid-write: part of this batch may be saved; else none of it was sent.
                in_flight = size if exc.mid_write else 0
                skipped = _skipped(writes.slice(start, in_flight), plan, NOT_CONFIRMED)
                skipped += _skipped(writes.slice(start + in_flight), plan, NOT_SENT, "API reserve")
                return _stop(
                    store, run_id, counts, codes, skipped, str(exc), StopReason.API_RESERVE
                )
            store.record_batch(run_id, number, result.outcomes, [])
            for outcome in result.outcomes:
                counts[outcome.status] += 1
                if outcome.status is OutcomeStatus.FAILED:
                    codes[outcome.error_code or "UNKNOWN"] += 1
            progress(ProgressEvent("apply", min(start + size, total), total))
            if _brake(counts, guards):
                skipped = _skipped(writes.slice(start + size), plan, NOT_SENT, "error-rate brake")
                message = _brake_message(counts)
                return _stop(store, run_id, counts, codes, skipped, message, StopReason.ERROR_RATE)
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


def _brake_message(counts: Counter[OutcomeStatus]) -> str:
    failed = counts[OutcomeStatus.FAILED]
    processed = failed + counts[OutcomeStatus.CREATED] + counts[OutcomeStatus.UPDATED]
    return (
        f"{failed} of {processed} records failed ({failed / processed:.1%}), above "
        "guards.max_error_rate"
    )


def _skipped(rows: pa.Table, plan: Plan, code: str, why: str = "") -> list[RecordOutcome]:
    """SKIPPED outcomes for ``rows``: NOT_SENT (with ``why``) or NOT_CONFIRMED."""
    if code == NOT_CONFIRMED:
        message = (
            "not confirmed: the run stopped while this batch was being sent; it may be partly "
            "written (the next plan shows what is still to do)"
        )
    else:
        message = f"not sent: {why}"
    return [
        RecordOutcome(key, OutcomeStatus.SKIPPED, code, message)
        for key in rows[plan.key_field].to_pylist()
    ]


def _stop(
    store: RunStore,
    run_id: int,
    counts: Counter[OutcomeStatus],
    codes: Counter[str],
    skipped: list[RecordOutcome],
    message: str,
    reason: StopReason,
) -> ApplyResult:
    """Store the records not written as SKIPPED and finish the run as STOPPED."""
    if skipped:
        store.record_batch(run_id, -1, skipped, [])
    counts[OutcomeStatus.SKIPPED] += len(skipped)
    not_sent = sum(1 for o in skipped if o.error_code == NOT_SENT)
    message = f"stopped: {message}; {not_sent} records not sent"
    unconfirmed = len(skipped) - not_sent
    if unconfirmed:
        message += f", {unconfirmed} not confirmed"
    store.finish_run(run_id, RunStatus.STOPPED, message=message)
    return ApplyResult(run_id, RunStatus.STOPPED, dict(counts), dict(codes), message, reason)


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
