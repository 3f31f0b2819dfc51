"""The whole trueup exception tree.

    TrueupError                      root; every error trueup raises on purpose
    ├── ConfigError                  bad trueup.yml: file, dotted field path, what was expected
    ├── SourceError                  the source cannot be reached or read, or a model is wrong
    ├── PlanError                    a plan cannot be built, saved or loaded
    │   └── StalePlanError           a saved plan no longer matches the config or the destination
    ├── GuardBlocked                 a guard refused the plan
    ├── StoreError                   the run store cannot be opened, migrated or written
    ├── SyncLocked                   another live run of the same sync holds its lock
    ├── CheckFailed                  a check ran and a threshold failed (min_accuracy, max_missing)
    ├── ErrorRateExceeded            apply stopped because too many records failed
    ├── ApiAllowanceExhausted        the destination's daily API allocation is down to its reserve
    └── DestinationError             the destination failed as a whole (a rejected record is data)
        ├── TransientDestinationError    worth retrying: 429, 5xx, lock errors, timeouts
        └── FatalDestinationError        not worth retrying
            ├── AuthenticationError      credentials refused
            └── DestinationSchemaError   a mapped field or table is missing or does not fit

Each class carries the CLI exit code it maps to (documented in the README), so the CLI's single
error boundary needs no table of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for annotations: the destinations package imports this module
    from trueup.destinations.base import RecordOutcome
    from trueup.store.values import SyncLock


class TrueupError(Exception):
    """Root of every error trueup raises on purpose."""

    exit_code = 1


class ConfigError(TrueupError):
    """The configuration is invalid; the message names the file and the dotted field path."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, path: str | None = None) -> None:
        self.file = file
        self.path = path
        self.detail = message
        prefix = ": ".join(part for part in (file, path) if part)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class SourceError(TrueupError):
    """The source cannot be reached or read, or the model does not fit the source."""

    exit_code = 3


class DestinationError(TrueupError):
    """The destination failed as a whole (a rejected record is an outcome, not an error).

    ``body`` is the destination's parsed answer, when it gave one (e.g. Salesforce's error array).
    """

    exit_code = 4

    def __init__(self, message: str = "", *, body: object = None) -> None:
        super().__init__(message)
        self.body = body


class TransientDestinationError(DestinationError):
    """A destination failure worth retrying (429, 5xx, lock errors, timeouts).

    ``retry_after`` is the wait the destination asked for (seconds), when it said.
    """

    def __init__(
        self, message: str, *, retry_after: float | None = None, body: object = None
    ) -> None:
        super().__init__(message, body=body)
        self.retry_after = retry_after


class FatalDestinationError(DestinationError):
    """A destination failure that retrying will not fix."""


class AuthenticationError(FatalDestinationError):
    """The destination refused the credentials."""


class DestinationSchemaError(FatalDestinationError):
    """A mapped table or field does not exist at the destination, or has an incompatible type."""


class PlanError(TrueupError):
    """A plan cannot be built, saved or loaded."""

    exit_code = 5


class StalePlanError(PlanError):
    """A saved plan no longer matches the config or the destination; nothing was written."""


class GuardBlocked(TrueupError):
    """A guard refused the plan; nothing was written."""

    exit_code = 6


class ErrorRateExceeded(TrueupError):
    """Apply stopped because the share of failed records passed guards.max_error_rate."""

    exit_code = 7


class ApiAllowanceExhausted(TrueupError):
    """The destination's daily API allocation is down to the configured reserve, or spent.

    Raised before a run that would need more than is left above the reserve (nothing written),
    before a write or a request once the reserve is reached, and when the destination refuses a
    call because the allocation is spent. ``mid_write`` is True when raised while a write was
    under way (part of it may be saved), False when nothing of the current write was sent.
    """

    exit_code = 10

    def __init__(
        self,
        message: str,
        *,
        mid_write: bool = False,
        partial: Sequence[RecordOutcome | None] | None = None,
    ) -> None:
        super().__init__(message)
        self.mid_write = mid_write
        # With mid_write: the outcomes Salesforce gave before the stop, one place per record of
        # the interrupted write (None: no answer, so not confirmed either way).
        self.partial = tuple(partial) if partial is not None else None


class CheckFailed(TrueupError):
    """A check found agreement below guards.min_accuracy or too many records missing."""

    exit_code = 8


class StoreError(TrueupError):
    """The run store cannot be opened, migrated or written."""

    exit_code = 9


class SyncLocked(TrueupError):
    """Another live process (an apply or a rollback) holds this sync's lock; nothing was written.

    ``holder`` names it: its host, pid and since when, from the lock row.
    """

    exit_code = 11

    def __init__(self, message: str, *, holder: SyncLock) -> None:
        super().__init__(message)
        self.holder = holder
