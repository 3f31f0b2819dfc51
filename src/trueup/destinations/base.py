"""The Destination interface: what a CRM, table or file set must offer for trueup to sync it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Protocol, runtime_checkable

import duckdb
import pyarrow as pa

from trueup.schema import DestinationSchema


class Operation(StrEnum):
    """What a write does with each record."""

    UPSERT = "upsert"  # create or update by key; the destination says which happened
    UPDATE = "update"  # update existing records only; a key the destination lacks fails
    INSERT = "insert"  # create new records only; a key the destination holds fails
    DELETE = "delete"  # delete records by key (the batch holds only the key column)


class OutcomeStatus(StrEnum):
    """What happened to one record, as the destination reported it."""

    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Capabilities:
    """What a destination can do and how it stores values (the diff normalises accordingly)."""

    max_batch_size: int
    operations: frozenset[Operation] = frozenset({Operation.UPSERT})
    trims_text: bool = False  # stores text without leading/trailing whitespace
    empty_text_is_null: bool = False  # stores '' as null
    reports_created: bool = True  # tells created from updated per record
    # Records per write call the destination prefers (Salesforce: request size times requests
    # in flight); when set, apply sends this many instead of the config's batch_size.
    write_size: int | None = None


@dataclass(frozen=True)
class WriteBatch:
    """Records to write: one row per record, columns are destination field names.

    ``records`` always contains ``key_field``; values are already in canonical types for the fields
    (bool, date, timestamp[us, UTC], int64, float64, string).
    """

    operation: Operation
    key_field: str
    records: pa.Table
    number: int = 0


@dataclass(frozen=True)
class RecordOutcome:
    """The destination's answer for one record of a batch."""

    key: str
    status: OutcomeStatus
    error_code: str | None = None
    message: str | None = None
    fields: tuple[str, ...] = ()
    destination_id: str | None = None


@dataclass(frozen=True)
class BatchResult:
    """Per-record outcomes of one write, in the order of the batch's records."""

    outcomes: tuple[RecordOutcome, ...] = field(default_factory=tuple)

    def count(self, status: OutcomeStatus) -> int:
        """How many outcomes have ``status``."""
        return sum(1 for o in self.outcomes if o.status is status)


class Destination(ABC):
    """A place trueup keeps true: describe it, read it now, write batches to it.

    A record the destination rejects is a ``RecordOutcome`` with status FAILED, not an exception.
    Failures of the whole call raise ``TransientDestinationError`` (worth retrying) or
    ``FatalDestinationError``.
    """

    @property
    @abstractmethod
    def capabilities(self) -> Capabilities:
        """What this destination can do."""

    @abstractmethod
    def describe(self) -> DestinationSchema:
        """The fields the destination object holds, with types and rules."""

    @abstractmethod
    def snapshot(self, fields: Sequence[str]) -> pa.Table:
        """What the destination holds now for ``fields`` (the key field among them)."""

    @abstractmethod
    def write(self, batch: WriteBatch) -> BatchResult:
        """Write one batch; return one outcome per record, in order."""

    @abstractmethod
    def close(self) -> None:
        """Release connections and files."""

    def __enter__(self) -> Destination:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@runtime_checkable
class DuckDBReadable(Protocol):
    """A destination DuckDB can read in place (the plan step then diffs without Arrow copies)."""

    def duckdb_snapshot(self, con: duckdb.DuckDBPyConnection, fields: Sequence[str]) -> str | None:
        """Make the destination readable in ``con``; SQL selecting ``fields`` exactly as
        ``snapshot`` returns them (same types), or None when this instance cannot."""


@runtime_checkable
class PreparesRun(Protocol):
    """A destination that wants the size of a run before its first write (e.g. to pick a path)."""

    def prepare_run(self, total_writes: int) -> None:
        """Called once by apply, before any write, with the number of records it will send."""
