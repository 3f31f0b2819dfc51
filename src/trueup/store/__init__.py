"""The run store: runs, per-record outcomes and before-images (SQLite file or PostgreSQL).

store.values      RunStatus, BeforeImage, RunSummary, StoredOutcome, RunDetail, StoredCheck,
                  SyncLock, InterruptedRun
store.runs        RunStore: open, start_run, record_batch, finish_run, list/get, record/list
                  checks, reap_interrupted, sync_lock, close
store.locks       per-sync locks with a heartbeat; telling a dead run's process from a live one
store.tables      the tables' current shape
store.migrations  numbered schema migrations (append a step to change the schema)
store.engine      URL → engine; owner-only SQLite files; SQLite transaction handling
"""

from __future__ import annotations

from trueup.store.migrations import LATEST_VERSION
from trueup.store.runs import RunStore
from trueup.store.values import (
    BeforeImage,
    InterruptedRun,
    RunDetail,
    RunStatus,
    RunSummary,
    StoredCheck,
    StoredOutcome,
    SyncLock,
)

__all__ = [
    "LATEST_VERSION",
    "BeforeImage",
    "InterruptedRun",
    "RunDetail",
    "RunStatus",
    "RunStore",
    "RunSummary",
    "StoredCheck",
    "StoredOutcome",
    "SyncLock",
]
