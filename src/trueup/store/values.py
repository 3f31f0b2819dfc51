"""The values the run store hands back: runs, their outcomes and before-images."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from trueup.destinations.base import OutcomeStatus


class RunStatus(StrEnum):
    """Where a run stands."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"  # a brake, a guard or an interruption ended it early
    INTERRUPTED = "interrupted"  # its process died (killed, crashed) without finishing it


@dataclass(frozen=True)
class BeforeImage:
    """One field of one record as it was before a run changed it, and what the run wrote.

    ``before`` and ``after`` are JSON text (``json.dumps`` of the value, dates as ISO strings);
    the caller encodes them, the store keeps them as given.
    """

    key: str
    field: str
    before: str | None
    after: str | None


@dataclass(frozen=True)
class RunSummary:
    """One run at a glance.

    ``counts`` holds the stored outcome counts (``created``, ``updated``, ``failed``, ``skipped``,
    always present) and the plan counts given at start, under ``plan.<action>`` keys.
    """

    id: int
    command: str
    status: RunStatus
    started_at: datetime
    finished_at: datetime | None
    destination: str
    config_fingerprint: str
    plan_fingerprint: str
    counts: dict[str, int]
    host: str | None = None  # who ran it (None: a run recorded before trueup kept it)
    pid: int | None = None
    reverts_run: int | None = None  # a rollback: the run it reverts


@dataclass(frozen=True)
class StoredOutcome:
    """The destination's answer for one record, as the store kept it."""

    key: str
    status: OutcomeStatus
    error_code: str | None
    message: str | None
    batch: int


@dataclass(frozen=True)
class RunDetail:
    """One run with its failed records and how many failed with each error code."""

    summary: RunSummary
    failures: list[StoredOutcome]
    error_codes: dict[str, int]
    message: str | None
    guards: list[dict[str, Any]] = field(default_factory=list)  # tripped verdicts, as JSON


@dataclass(frozen=True)
class StoredCheck:
    """One ``trueup check`` as the store keeps it: its counts and per-field agreement (percent)."""

    checked_at: datetime
    config_fingerprint: str
    destination: str
    accuracy: float
    compared: int
    agreeing: int
    missing: int
    extra: int
    invalid: int
    passed: bool
    field_agreement: Mapping[str, float] = field(default_factory=dict)
    id: int | None = None  # set by the store


@dataclass(frozen=True)
class SyncLock:
    """The row that says one process is running a sync (``sync``: the destination's name)."""

    sync: str
    host: str
    pid: int
    acquired_at: datetime
    heartbeat_at: datetime
    run_id: int | None = None  # the run it is writing, once started

    def describe(self) -> str:
        """Who holds it, for messages: ``run 7, pid 4242 on host-a, since 2025-06-01 10:00 UTC``."""
        since = self.acquired_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        run = f"run {self.run_id}, " if self.run_id is not None else ""
        return f"{run}pid {self.pid} on {self.host}, since {since}"


@dataclass(frozen=True)
class InterruptedRun:
    """A run found RUNNING whose process is gone, as ``reap_interrupted`` marked it."""

    id: int
    host: str | None
    pid: int | None
    confirmed: int  # records the destination answered for, as stored
    unconfirmed: int  # records of the batch in flight: sent or about to be, no answer stored
    message: str
