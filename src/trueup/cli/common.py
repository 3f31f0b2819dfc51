"""What every command shares: the Typer app, the consoles, common options, the run store,
the sync lock and warnings."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import markup
from rich.console import Console

from trueup.apply import ApplyResult, apply_plan
from trueup.cli import render
from trueup.config import LoadedConfig
from trueup.destinations.base import Destination
from trueup.errors import PlanError, TrueupError
from trueup.guards import GuardName, GuardVerdict
from trueup.pipeline import destination_name
from trueup.plan import Plan
from trueup.store import RunStore

EXIT_INTERNAL = 70

app = typer.Typer(
    name="trueup",
    help=(
        "Keep a CRM true to your source-of-truth database: plan what differs, apply it in "
        "batches with per-record outcomes, check the result by reading the destination itself. "
        "New here? Run 'trueup demo'. Exit codes are listed in the README."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # docstrings reflow as paragraphs
)
out = Console()
err = Console(stderr=True)
state: dict[str, Any] = {"debug": False}

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="Path to trueup.yml.", envvar="TRUEUP_CONFIG")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
AllowOption = Annotated[
    list[GuardName] | None,
    typer.Option(
        "--allow",
        help="Let this run past a guard that trips (repeatable; recorded in the run): "
        "flip, nulls, max_changes, change_share, source_drop.",
        case_sensitive=False,
    ),
]


def open_store(loaded: LoadedConfig) -> RunStore:
    url = loaded.config.store.url.get_secret_value()
    return RunStore.open(url, base_dir=loaded.path.parent)


@contextmanager
def sync_locked(loaded: LoadedConfig) -> Iterator[None]:
    """Hold the sync's lock for a command that writes (SyncLocked, exit 11, if a live run holds
    it), after marking runs whose process died interrupted; SIGTERM then stops it as Ctrl-C does
    (the run is recorded as stopped, the lock released, exit 130)."""
    with sigterm_interrupts(), open_store(loaded) as store:
        reap(store)
        with store.sync_lock(destination_name(loaded.config)) as held:
            if held.cleared is not None:
                err.print(f"warning: {held.cleared.describe()}", highlight=False, soft_wrap=True)
            yield


def reap(store: RunStore) -> None:
    """Mark runs whose process is gone interrupted, saying so on stderr."""
    for run in store.reap_interrupted():
        err.print(f"warning: run {run.id} {run.message}", highlight=False, soft_wrap=True)


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def warn(message: str) -> None:
    err.print(
        f"[yellow]warning:[/yellow] {markup.escape(message)}", highlight=False, soft_wrap=True
    )


@contextmanager
def writing(path: Path, *, binary: bool = False) -> Iterator[Any]:
    """Open ``path`` for writing; a failure to open it is a one-line trueup error."""
    try:
        sink = path.open("wb") if binary else path.open("w", encoding="utf-8")
    except OSError as exc:
        raise TrueupError(f"cannot write the report to {path}: {exc.strerror}") from None
    with sink:
        yield sink


def confirm(question: str, *, yes: bool, refusal: str) -> None:
    """Ask ``question`` unless ``yes``; off a terminal, refuse (PlanError ``refusal``)."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise PlanError(refusal)
    typer.confirm(question, abort=True)


def run_apply(
    loaded: LoadedConfig,
    plan: Plan,
    destination: Destination,
    *,
    command: str = "apply",
    verdicts: Sequence[GuardVerdict] = (),
) -> tuple[ApplyResult, str | None]:
    """Apply ``plan`` with a progress bar; the result and the write path taken (Salesforce:
    rest or bulk; None elsewhere)."""
    with open_store(loaded) as store, render.progress_bar(err) as progress:
        result = apply_plan(
            plan,
            destination,
            store,
            batch_size=loaded.config.destination.batch_size,
            guards=loaded.config.guards,
            command=command,
            verdicts=verdicts,
            progress=progress,
        )
    path = getattr(destination, "write_path", None)
    return result, (path.value if path is not None else None)
