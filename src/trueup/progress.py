"""The small callback protocol through which the core reports progress; the CLI renders it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ProgressEvent:
    """Work done so far on one stage (``total`` is None when unknown)."""

    stage: str
    done: int
    total: int | None = None
    message: str = ""


class ProgressCallback(Protocol):
    """Receives progress events; must be cheap and must not raise."""

    def __call__(self, event: ProgressEvent) -> None: ...


def no_progress(event: ProgressEvent) -> None:
    """The default callback: report nothing."""
