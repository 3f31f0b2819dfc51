"""`trueup check`: read both sides now and report how far they agree."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from trueup.check import run_check, stored_check
from trueup.cli import render
from trueup.cli.common import (
    ConfigOption,
    app,
    err,
    open_store,
    out,
    writing,
)
from trueup.config import load_config
from trueup.errors import (
    CheckFailed,
)
from trueup.report import ReportFormat, render_report

TREND_CHECKS = 30  # past checks the HTML report charts


@app.command()
def check(
    config: ConfigOption = Path("trueup.yml"),
    fmt: Annotated[
        ReportFormat,
        typer.Option(
            "--format",
            "-f",
            case_sensitive=False,
            help=(
                "text: tables for the terminal; json: every figure (docs/check-report.md); "
                "csv: one row per mismatched record and field; html: a self-contained page "
                "with charts (agreement per field, mismatches by product, accuracy over past "
                "checks)."
            ),
        ),
    ] = ReportFormat.TEXT,
    save: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the report to this file, not to standard output."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
) -> None:
    """Read source and destination now; report how far they agree; exit 8 if a threshold fails.

    Thresholds: guards.min_accuracy, and guards.max_missing / guards.max_missing_pct when set.

    Every check is kept in the run store; the HTML report charts accuracy over past checks.

    In cron: trueup check --format html --out report.html || alert-the-team
    """
    if as_json:
        if fmt not in (ReportFormat.TEXT, ReportFormat.JSON):
            raise typer.BadParameter(
                f"--json means --format json; it cannot go with --format {fmt.value}",
                param_hint="'--json'",
            )
        fmt = ReportFormat.JSON
    loaded = load_config(config)
    with render.progress_bar(err) as progress:
        report = run_check(loaded, progress=progress)
    with open_store(loaded) as store:
        store.record_check(stored_check(report))
        past = store.list_checks(destination=report.destination, limit=TREND_CHECKS)
    minimum = loaded.config.guards.min_accuracy
    if save is None:
        if fmt is ReportFormat.TEXT:
            render.render_check(out, report, min_accuracy=minimum)
        else:
            sys.stdout.write(render_report(report, fmt, history=past[::-1]).decode())
    else:
        with writing(save, binary=fmt is not ReportFormat.TEXT) as sink:
            if fmt is ReportFormat.TEXT:
                render.render_check(Console(file=sink, width=120), report, min_accuracy=minimum)
            else:
                sink.write(render_report(report, fmt, history=past[::-1]))
        verdict = "passed" if report.passed else "failed"
        out.print(
            f"Wrote the {fmt.value} report to {save} (accuracy {report.accuracy:.2f}%, "
            f"thresholds {verdict}).",
            highlight=False,
            soft_wrap=True,
        )
    failed = report.failed_thresholds()
    if failed:
        raise CheckFailed("; ".join(t.describe() for t in failed))
