"""The values the run store hands back: runs, their outcomes and before-images."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from trueup.destinations.base import OutcomeStatus


class RunStatus(StrEnum):
    """Where a run stands."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"  # a brake, a guard or an interruption ended it early


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
