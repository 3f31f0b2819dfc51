"""`trueup demo`: generate a drifted CRM, then plan → apply → check → plan again, step by step."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from rich.console import Console
from rich.rule import Rule

from trueup.apply import apply_plan
from trueup.check import run_check
from trueup.cli import render
from trueup.config import load_config
from trueup.demo_data import generate_demo
from trueup.destinations import open_destination
from trueup.diff import Action
from trueup.errors import CheckFailed, PlanError
from trueup.pipeline import make_plan
from trueup.store import RunStore

MARKER = ".trueup-demo"


def run_demo(out: Console, err: Console, *, directory: Path, properties: int, seed: int) -> None:
    """Run the whole demo in ``directory`` (recreated; refused if it holds anything else)."""
    _fresh_directory(directory)
    started = time.perf_counter()

    out.print(Rule("0. Demo data"))
    files = generate_demo(directory, seed=seed, properties=properties)
    out.print(f"Source: {files.source} ({properties:,} properties, features in long rows)")
    out.print(f"Destination: table Product_Property__c in {files.destination}, drifted:")
    for what, n in files.drift.items():
        out.print(f"  {what.replace('_', ' ')}: {n:,}")
    loaded = load_config(files.config)
    out.print(f"Config: {files.config}")

    out.print(Rule("1. Plan"))
    with render.progress_bar(err) as progress:
        plan = make_plan(loaded, progress=progress)
    render.render_plan(out, plan, sample=5)

    out.print(Rule("2. Apply"))
    with (
        open_destination(loaded) as destination,
        RunStore.open(
            loaded.config.store.url.get_secret_value(), base_dir=loaded.path.parent
        ) as store,
        render.progress_bar(err) as progress,
    ):
        result = apply_plan(
            plan,
            destination,
            store,
            batch_size=loaded.config.destination.batch_size,
            guards=loaded.config.guards,
            command="demo",
            progress=progress,
        )
    render.render_apply(out, result)

    out.print(Rule("3. Check (reads the destination itself)"))
    with render.progress_bar(err) as progress:
        report = run_check(loaded, progress=progress)
    render.render_check(out, report, min_accuracy=loaded.config.guards.min_accuracy)

    out.print(Rule("4. Plan again"))
    again = make_plan(loaded)
    out.print(
        f"Creates {again.counts[Action.CREATE]:,}, updates {again.counts[Action.UPDATE]:,}: "
        + ("the destination agrees." if again.write_count == 0 else "drift remains!")
    )
    out.print(Rule())
    out.print(
        f"Demo finished in {time.perf_counter() - started:.1f}s. Try: "
        f"trueup plan -c {files.config} · trueup runs -c {files.config} · "
        f"trueup runs {result.run_id} -c {files.config}"
    )
    if report.accuracy < loaded.config.guards.min_accuracy or again.write_count:
        raise CheckFailed("the demo did not converge")


def _fresh_directory(directory: Path) -> None:
    if directory.exists():
        if not (directory / MARKER).exists() and any(directory.iterdir()):
            raise PlanError(f"{directory} exists and is not a trueup demo folder; pick --dir")
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    (directory / MARKER).write_text("created by trueup demo; safe to delete\n")
