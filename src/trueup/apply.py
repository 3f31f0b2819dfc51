"""Apply a plan: batches, retries of transient failures, per-record outcomes, the error-rate brake.

Order of work for every batch, so a crash at any point loses nothing:
1. the before-image of every field the batch changes is stored;
2. the batch is sent (retried with backoff while the destination reports a transient failure);
3. the destination's per-record outcomes are stored — before the next batch is sent.

A run stops early (status STOPPED, the records not sent stored as SKIPPED) when the error-rate
brake trips or the destination's API allocation reaches its reserve (``ApiAllowanceExhausted``).
A run ended by an exception (FAILED) or Ctrl-C / SIGTERM (STOPPED) stores the records of the batch
in flight as SKIPPED NOT_CONFIRMED; a run whose process is killed stays RUNNING until the next
apply or ``trueup runs`` finds its process gone and marks it INTERRUPTED the same way
(store/locks.py). Either way the next run plans against the destination as it is.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from contextlib import suppress
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
from trueup.errors import ApiAllowanceExhausted, StoreError, TransientDestinationError
from trueup.guards import GuardVerdict, enforce
from trueup.operations import SyncOperation
from trueup.plan import Plan
from trueup.progress import ProgressCallback, ProgressEvent, no_progress
from trueup.store import BeforeImage, RunStatus, RunStore

NULL_KEY = "(null key)"
NOT_SENT = "NOT_SENT"  # SKIPPED: trueup stopped before sending the record
NOT_CONFIRMED = "NOT_CONFIRMED"  # SKIPPED: in a write the run stopped in the middle of


# Outcomes of records the destination answered for (the error rate's denominator).
_ANSWERED = (
    OutcomeStatus.CREATED,
    OutcomeStatus.UPDATED,
    OutcomeStatus.DELETED,
    OutcomeStatus.FAILED,
)


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
        return sum(self.counts.get(s, 0) for s in _ANSWERED)

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
    verdicts: Sequence[GuardVerdict] = (),
    retry: RetryPolicy = RetryPolicy(),
    progress: ProgressCallback = no_progress,
) -> ApplyResult:
    """Send the plan's creates, updates and deletes in batches; store every outcome.

    ``verdicts`` are the guards' judgement of the plan (guards.evaluate): a blocking one refuses
    the run (GuardBlocked) before anything is sent or recorded; the others are stored in the run.

    A destination that ``PreparesRun`` is told how many records will be sent first (Salesforce
    picks its write path from it, and may refuse the run: ApiAllowanceExhausted, before any run
    is recorded). Records per write: the destination's ``write_size`` when it has one, else
    ``batch_size``; never more than its ``max_batch_size``.

    A rollback plan (``plan.reverts_run`` set) is recorded as a ``rollback`` run of that run,
    however it is applied (``trueup rollback``, or ``trueup apply --plan`` of a saved one).
    """
    enforce(verdicts)
    if isinstance(destination, PreparesRun):
        destination.prepare_run(plan.write_count)
    caps = destination.capabilities
    size = max(1, min(caps.write_size or batch_size, caps.max_batch_size))
    run_id = store.start_run(
        command="rollback" if plan.reverts_run is not None else command,
        destination=plan.destination,
        config_fingerprint=plan.config_fingerprint,
        plan_fingerprint=plan.fingerprint,
        plan_counts={f"plan.{a.value}": n for a, n in plan.counts.items()},
        guards=[v.to_json() for v in verdicts if v.tripped],
        reverts_run=plan.reverts_run,
    )
    counts: Counter[OutcomeStatus] = Counter({s: 0 for s in OutcomeStatus})
    codes: Counter[str] = Counter()
    try:
        invalid = _invalid_outcomes(plan)
        if invalid:
            store.record_batch(run_id, 0, invalid, [])
            counts[OutcomeStatus.SKIPPED] += len(invalid)
        batches = _batches(plan, size)
        total = sum(b.records.num_rows for b, _ in batches)
        done = 0
        progress(ProgressEvent("apply", 0, total))
        for position, (batch, images) in enumerate(batches):
            store.record_batch(run_id, batch.number, [], images)
            later = [b.records for b, _ in batches[position + 1 :]]
            try:
                result = _write(destination, batch, retry)
            except ApiAllowanceExhausted as exc:
                # Stopped mid-write: part of this batch may be saved; else none of it was sent.
                saved, skipped = _interrupted(batch, exc, plan.key_field)
                _count(saved, counts, codes)
                store.record_batch(run_id, batch.number, saved, [])
                for records in later:
                    skipped += _skipped(records, plan.key_field, NOT_SENT, "API reserve")
                return _stop(
                    store, run_id, counts, codes, skipped, str(exc), StopReason.API_RESERVE
                )
            store.record_batch(run_id, batch.number, result.outcomes, [])
            _count(result.outcomes, counts, codes)
            done += batch.records.num_rows
            progress(ProgressEvent("apply", done, total))
            if _brake(counts, guards):
                skipped = []
                for records in later:
                    skipped += _skipped(records, plan.key_field, NOT_SENT, "error-rate brake")
                message = _brake_message(counts)
                return _stop(store, run_id, counts, codes, skipped, message, StopReason.ERROR_RATE)
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        status = RunStatus.STOPPED if interrupted else RunStatus.FAILED
        with suppress(StoreError):  # the batch in flight, if any: NOT_CONFIRMED (may be written)
            store.mark_unconfirmed(run_id)
        store.finish_run(run_id, status, message=_short(exc))
        raise
    store.finish_run(run_id, RunStatus.SUCCEEDED)
    return ApplyResult(run_id, RunStatus.SUCCEEDED, dict(counts), dict(codes))


def _batches(plan: Plan, size: int) -> list[tuple[WriteBatch, list[BeforeImage]]]:
    """Every write of the run, in order (creates and updates, then deletes), numbered from 1,
    each with the before-images to store before it is sent.

    An upsert plan sends creates and updates together. Any other plan sends its creates as
    inserts and its updates as updates, so no update creates a record and no create overwrites
    one (a sync's update or insert plan holds only one of the two; a rollback plan holds both).
    """
    out: list[tuple[WriteBatch, list[BeforeImage]]] = []
    writes: list[tuple[Operation, tuple[Action, ...]]]
    if plan.operation is SyncOperation.UPSERT:
        writes = [(Operation.UPSERT, (Action.CREATE, Action.UPDATE))]
    else:
        writes = [(Operation.INSERT, (Action.CREATE,)), (Operation.UPDATE, (Action.UPDATE,))]
    phases = [
        *((op, plan.writes(*actions), plan.rows(*actions)) for op, actions in writes),
        (Operation.DELETE, plan.deletes(), plan.rows(Action.DELETE)),
    ]
    for operation, records, rows in phases:
        for start in range(0, records.num_rows, size):
            number = len(out) + 1
            batch = WriteBatch(operation, plan.key_field, records.slice(start, size), number)
            images = _before_images(
                rows.slice(start, size), plan.fields, deleted=operation is Operation.DELETE
            )
            out.append((batch, images))
    return out


def _count(
    outcomes: Sequence[RecordOutcome], counts: Counter[OutcomeStatus], codes: Counter[str]
) -> None:
    for outcome in outcomes:
        counts[outcome.status] += 1
        if outcome.status is OutcomeStatus.FAILED:
            codes[outcome.error_code or "UNKNOWN"] += 1


def _interrupted(
    batch: WriteBatch, exc: ApiAllowanceExhausted, key_field: str
) -> tuple[list[RecordOutcome], list[RecordOutcome]]:
    """The outcomes the destination confirmed before it stopped, and the rest as SKIPPED:
    NOT_CONFIRMED when the write was under way, NOT_SENT when it never started."""
    if not exc.mid_write:
        return [], _skipped(batch.records, key_field, NOT_SENT, "API reserve")
    partial = exc.partial or (None,) * batch.records.num_rows
    keys = batch.records[key_field].to_pylist()
    saved = [o for o in partial if o is not None]
    unknown = [k for k, o in zip(keys, partial, strict=True) if o is None]
    table = pa.table({key_field: pa.array(unknown, batch.records.schema.field(key_field).type)})
    return saved, _skipped(table, key_field, NOT_CONFIRMED)


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
    processed = sum(counts[s] for s in _ANSWERED)
    failed = counts[OutcomeStatus.FAILED]
    return processed >= guards.min_error_sample and failed / processed > guards.max_error_rate


def _brake_message(counts: Counter[OutcomeStatus]) -> str:
    failed = counts[OutcomeStatus.FAILED]
    processed = sum(counts[s] for s in _ANSWERED)
    return (
        f"{failed} of {processed} records failed ({failed / processed:.1%}), above "
        "guards.max_error_rate"
    )


def _skipped(rows: pa.Table, key_field: str, code: str, why: str = "") -> list[RecordOutcome]:
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
        for key in rows[key_field].to_pylist()
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


def _before_images(
    rows: pa.Table, fields: Sequence[str], *, deleted: bool = False
) -> list[BeforeImage]:
    """What each changed field held before: for a delete, every field (after: null)."""
    images = []
    for row in rows.to_pylist():
        for name in fields if deleted else row["changed"]:
            after = None if deleted else _json(row[name])
            images.append(BeforeImage(row["key"], name, _json(row[BEFORE + name]), after))
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
