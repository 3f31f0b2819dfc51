"""Commands that plan and write a sync: plan, apply, export."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from trueup import run_report
from trueup.apply import ApplyResult, StopReason
from trueup.check import CheckReport, run_check, stored_check
from trueup.cli import render
from trueup.cli.common import (
    AllowOption,
    ConfigOption,
    JsonOption,
    app,
    confirm,
    err,
    open_store,
    out,
    run_apply,
    sync_locked,
    warn,
)
from trueup.config import LoadedConfig, load_config
from trueup.destinations import open_destination
from trueup.diff import Action
from trueup.errors import (
    ApiAllowanceExhausted,
    ErrorRateExceeded,
    TrueupError,
)
from trueup.export import MANIFEST, ExportManifest, ExportOperation, export_plan
from trueup.export import MAX_BATCH_SIZE as MAX_EXPORT_BATCH
from trueup.guards import GuardVerdict, enforce, judge
from trueup.pipeline import ensure_fresh, make_plan
from trueup.plan import Plan
from trueup.store import RunStatus
from trueup.store.values import StoredOutcome


@app.command()
def plan(
    config: ConfigOption = Path("trueup.yml"),
    as_json: JsonOption = False,
    save: Annotated[
        Path | None, typer.Option("--out", "-o", help="Save the plan to this JSON file.")
    ] = None,
    allow: AllowOption = None,
) -> None:
    """Show what apply would do, field by field, and the guards' verdicts.

    Creates, updates (field, before → after), deletes and what is left alone, with the reason.
    Exits 6 when a guard blocks the plan (the plan is still shown, and saved with --out).
    """
    loaded = load_config(config)
    with render.progress_bar(err) as progress:
        result = make_plan(loaded, progress=progress)
    with open_store(loaded) as store:
        verdicts = judge(result, loaded.config.guards, store, allow=allow or ())
    if save is not None:
        result.save(save)
    if as_json:
        body = result.to_json() | {"guards": [v.to_json() for v in verdicts]}
        sys.stdout.write(json.dumps(body, indent=1) + "\n")
    else:
        render.render_plan(out, result)
        render.render_guards(out, verdicts)
        if save is not None:
            out.print(f"Saved plan to {save} (apply it with 'trueup apply --plan {save}').")
    enforce(verdicts)


@app.command()
def apply(
    config: ConfigOption = Path("trueup.yml"),
    saved: Annotated[
        Path | None,
        typer.Option("--plan", help="Apply exactly this saved plan; refused if it is stale."),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
    allow: AllowOption = None,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Write the run report (Markdown, docs/run-report.md) to this file; it is "
            "also posted to notify.webhook_url when one is configured.",
        ),
    ] = None,
) -> None:
    """Plan (or load a saved plan), pass the guards, then write the changes in batches.

    Creates, updates and deletes go in batches the destination can digest; each record's outcome
    is Salesforce's (or the database's) own answer, stored in the run store. A guard that trips
    blocks the run (exit 6, nothing written) unless --allow names it.
    """
    if report is not None and not report.parent.is_dir():
        raise typer.BadParameter(f"no such folder: {report.parent}", param_hint="'--report'")
    loaded = load_config(config)
    destination = open_destination(loaded)
    with sync_locked(loaded), destination:
        if saved is not None:
            the_plan = Plan.load(saved)
            ensure_fresh(the_plan, loaded, destination)
        else:
            with render.progress_bar(err) as progress:
                the_plan = make_plan(loaded, progress=progress)
        with open_store(loaded) as store:
            verdicts = judge(the_plan, loaded.config.guards, store, allow=allow or ())
        if not as_json:
            render.render_plan(out, the_plan)
            render.render_guards(out, verdicts)
        try:
            enforce(verdicts)
        finally:  # blocked (posted as a problem) or not: nothing was written yet
            if the_plan.write_count == 0 or any(v.blocks for v in verdicts):
                _report_apply(loaded, None, the_plan, verdicts, report, as_json=as_json)
        if the_plan.write_count == 0:
            if as_json:
                sys.stdout.write(json.dumps({"run": None, "written": 0}) + "\n")
            return
        confirm(
            f"Apply {the_plan.write_count:,} changes?",
            yes=yes,
            refusal="not applying without confirmation; pass --yes",
        )
        result, write_path = run_apply(loaded, the_plan, destination, verdicts=verdicts)
    if write_path is not None and not as_json:
        out.print(f"Written through {write_path.upper()}")
    try:
        _finish_apply(result, the_plan, write_path=write_path, as_json=as_json)
    finally:  # also when the run stopped: the report never changes the exit code
        _report_apply(loaded, result, the_plan, verdicts, report, as_json=as_json)


def _report_apply(
    loaded: LoadedConfig,
    result: ApplyResult | None,
    plan: Plan,
    verdicts: Sequence[GuardVerdict],
    report: Path | None,
    *,
    as_json: bool,
) -> None:
    """Write the run report to --report and post it to notify.webhook_url (not for a plan
    with nothing to apply); every problem here is a warning, never an error."""
    notify = loaded.config.notify
    ran = result is not None or any(v.blocks for v in verdicts)
    if report is None and (notify.webhook_url is None or not ran):
        return
    try:
        check: CheckReport | None = None
        failures: list[StoredOutcome] = []
        duration: timedelta | None = None
        if result is not None and notify.check_after_apply:
            try:
                with render.progress_bar(err) as progress:
                    check = run_check(loaded, progress=progress)
            except TrueupError as exc:
                warn(f"the check after apply failed: {exc}")
        with open_store(loaded) as store:
            if check is not None:
                store.record_check(stored_check(check))
            if result is not None:
                detail = store.get_run(result.run_id)
                failures = detail.failures
                started, finished = detail.summary.started_at, detail.summary.finished_at
                duration = finished - started if finished else None
        text = run_report.render_markdown(
            result, plan, verdicts, check, failures=failures, duration=duration
        )
    except (TrueupError, OSError) as exc:
        warn(f"no run report: {exc}")
        return
    if report is not None:
        try:
            report.write_text(text, encoding="utf-8")
        except OSError as exc:
            warn(f"cannot write the run report to {report}: {exc.strerror}")
        else:
            if not as_json:
                out.print(f"Wrote the run report to {report}", highlight=False, markup=False)
    if notify.webhook_url is None or not ran:
        return
    if notify.when == "problems" and not run_report.has_problems(result, verdicts, check):
        return
    delivery = run_report.post_report(text, notify)
    if not delivery.delivered:
        warn(f"the run report was not posted: {delivery.detail}")


def _finish_apply(
    result: ApplyResult, plan: Plan, *, write_path: str | None, as_json: bool
) -> None:
    if as_json:
        body = {
            "run": result.run_id,
            "status": result.status.value,
            "operation": plan.operation.value,
            "write_path": write_path,
            "processed": result.processed,
            "unchanged": plan.counts[Action.UNCHANGED],
            "invalid": plan.counts[Action.INVALID],
            "counts": {s.value: n for s, n in result.counts.items()},
            "error_codes": dict(result.error_codes),
            "error_rate": result.error_rate,
            "message": result.message,
            "stop_reason": result.stop_reason.value if result.stop_reason else None,
        }
        sys.stdout.write(json.dumps(body, indent=1) + "\n")
    else:
        render.render_apply(out, result, plan)
    if result.status is not RunStatus.STOPPED:
        return
    if result.stop_reason is StopReason.API_RESERVE:
        raise ApiAllowanceExhausted(result.message or "stopped at the API reserve")
    raise ErrorRateExceeded(result.message or "stopped by the error-rate brake")


@app.command()
def export(
    directory: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Directory for the files; created if missing, must be empty unless --force.",
        ),
    ],
    config: ConfigOption = Path("trueup.yml"),
    batch_size: Annotated[
        int,
        typer.Option("--batch-size", min=1, max=MAX_EXPORT_BATCH, help="Records per file."),
    ] = 200,
    saved: Annotated[
        Path | None,
        typer.Option("--plan", help="Export exactly this saved plan; refused if it is stale."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace an earlier export in --out: remove its CSV files and manifest "
            "(other files are kept).",
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the manifest (JSON) instead of the summary.")
    ] = False,
    allow: AllowOption = None,
) -> None:
    """Write the plan's creates and updates as Data Loader CSV files, one per batch.

    Files are named by operation and record range (upsert-00001-00050.csv, ...), in key order,
    with a header of API field names (the key first), UTF-8, RFC 4180 quoting, empty cells for
    null; manifest.json lists each file with its range, row count and sha256. Nothing is written
    to the destination; the guards judge the plan first (exit 6 unless --allow). Load the
    files with Data Loader's Upsert on the key field, with "Insert null values" on; see
    docs/export.md.
    """
    loaded = load_config(config)
    if saved is not None:
        the_plan = Plan.load(saved)
        with open_destination(loaded) as destination:
            ensure_fresh(the_plan, loaded, destination)
    else:
        with render.progress_bar(err) as progress:
            the_plan = make_plan(loaded, progress=progress)
    # Files loaded by hand reach the destination too: the same guards stand before them.
    with open_store(loaded) as store:
        enforce(judge(the_plan, loaded.config.guards, store, allow=allow or ()))
    with render.progress_bar(err) as progress:
        manifest = export_plan(
            the_plan, directory, batch_size=batch_size, force=force, progress=progress
        )
    if as_json:
        sys.stdout.write(json.dumps(manifest.to_json(), indent=1) + "\n")
        return
    for line in _export_summary(manifest):
        out.print(line, highlight=False, markup=False, soft_wrap=True)


def _export_summary(manifest: ExportManifest) -> list[str]:
    counts = manifest.counts
    what = f"{counts[Action.CREATE]:,} creates, {counts[Action.UPDATE]:,} updates"
    deletes = sum(f.rows for f in manifest.files if f.operation is ExportOperation.DELETE)
    if deletes:
        what += f", {deletes:,} deletes"
    lines = [
        f"Exported {manifest.records:,} records ({what}) in {len(manifest.files):,} files "
        f"of up to {manifest.batch_size:,} to {manifest.directory}",
        f"Manifest: {manifest.directory / MANIFEST} (plan {manifest.plan_fingerprint}). Load "
        f"with Data Loader: Upsert, External ID field {manifest.key_field}.",
    ]
    if manifest.clearing_updates:
        lines.append(
            f"{manifest.clearing_updates:,} updates clear a field: turn on Data Loader's "
            "'Insert null values' setting, or they keep the old value."
        )
    if counts[Action.INVALID]:
        lines.append(f"{counts[Action.INVALID]:,} invalid records not exported (see trueup plan).")
    return lines
