"""The run store: runs, per-record outcomes and before-images (SQLite file or PostgreSQL).

store.values      RunStatus, BeforeImage, RunSummary, StoredOutcome, RunDetail
store.runs        RunStore: open, start_run, record_batch, finish_run, list/get, close
store.tables      the tables' current shape
store.migrations  numbered schema migrations (append a step to change the schema)
store.engine      URL → engine; owner-only SQLite files; SQLite transaction handling
"""

from __future__ import annotations

from trueup.store.migrations import LATEST_VERSION
from trueup.store.runs import RunStore
from trueup.store.values import BeforeImage, RunDetail, RunStatus, RunSummary, StoredOutcome

__all__ = [
    "LATEST_VERSION",
    "BeforeImage",
    "RunDetail",
    "RunStatus",
    "RunStore",
    "RunSummary",
    "StoredOutcome",
]
