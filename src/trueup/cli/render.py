"""Rich rendering of plans, apply results, check reports and runs; and the progress bar."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from trueup.apply import ApplyResult
from trueup.check import CheckReport
from trueup.destinations.base import OutcomeStatus
from trueup.diff import Action
from trueup.doctor import Check
from trueup.guards import GuardVerdict
from trueup.operations import SyncOperation
from trueup.plan import Plan
from trueup.progress import ProgressEvent
from trueup.store import RunDetail, RunSummary

if TYPE_CHECKING:
    from trueup.sandbox.server import Sandbox

ACTION_LABELS = {
    Action.CREATE: "create",
    Action.UPDATE: "update",
    Action.DELETE: "delete",
    Action.UNCHANGED: "unchanged",
    Action.MISSING_IN_SOURCE: "missing in source",
    Action.MISSING_IN_DESTINATION: "missing in destination",
    Action.EXISTS_IN_DESTINATION: "exists in destination",
    Action.INVALID: "invalid",
    Action.CONFLICT: "conflict",
}
# Shown only when the sync's operation (or a rollback) can produce them, or a plan has some.
_OPERATION_ACTIONS = (
    Action.DELETE,
    Action.MISSING_IN_DESTINATION,
    Action.EXISTS_IN_DESTINATION,
    Action.CONFLICT,
)
SAMPLE = 10


def show(value: Any) -> str:
    """A value as a reviewer reads it: null, booleans lower-case, dates ISO."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    return repr(value) if isinstance(value, str) else str(value)


def _titled(title: str) -> Table:
    """A table whose title sits on one line above it, however narrow its columns are."""
    return Table(title=title, title_justify="left", min_width=len(title))


def render_plan(console: Console, plan: Plan, *, sample: int = SAMPLE) -> None:
    """Summary table by action, per-field change counts, a sample of changes, invalid records."""
    title = f"Plan for {plan.destination}"
    if plan.reverts_run is not None:
        title = f"Rollback of run {plan.reverts_run} on {plan.destination}"
    elif plan.operation is not SyncOperation.UPSERT:
        title += f" ({plan.operation.value} only)"
    counts = _titled(title)
    counts.add_column("action")
    counts.add_column("records", justify="right")
    writes = (Action.CREATE, Action.UPDATE, Action.DELETE)
    for action, label in ACTION_LABELS.items():
        optional = action in _OPERATION_ACTIONS or (
            plan.reverts_run is not None and action not in writes  # a rollback: what it does
        )
        if optional and not plan.counts.get(action, 0):
            continue
        counts.add_row(label, f"{plan.counts.get(action, 0):,}")
    console.print(counts)

    changed = {f: n for f, n in plan.field_changes.items() if n}
    if changed:
        fields = _titled("Field changes (creates and updates)")
        fields.add_column("field")
        fields.add_column("records", justify="right")
        for name, n in sorted(changed.items(), key=lambda item: (-item[1], item[0])):
            fields.add_row(name, f"{n:,}")
        console.print(fields)

    updates = plan.sample(Action.UPDATE, sample)
    if updates.num_rows:
        table = _titled(f"Sample of updates (first {updates.num_rows})")
        for column in ("key", "field", "before", "after"):
            table.add_column(column)
        for row in updates.to_pylist():
            for name in row["changed"]:
                table.add_row(row["key"], name, show(row[f"before.{name}"]), show(row[name]))
        console.print(table)
    _conflicts(console, plan, sample)

    _key_list(console, plan, Action.INVALID, "Invalid records (not sent)", sample * 2)
    _key_list(console, plan, Action.MISSING_IN_SOURCE, "Missing in source (left alone)", sample)
    deleting = "created by the run" if plan.reverts_run is not None else "missing in source"
    _key_list(console, plan, Action.DELETE, f"To delete ({deleting})", sample)
    _key_list(
        console,
        plan,
        Action.MISSING_IN_DESTINATION,
        "Missing in destination (operation update: not created)",
        sample,
    )
    _key_list(
        console,
        plan,
        Action.EXISTS_IN_DESTINATION,
        "Exist in destination and differ (operation insert: not updated)",
        sample,
    )
    if plan.write_count == 0 and plan.reverts_run is not None:
        console.print(f"[green]Nothing to roll back in run {plan.reverts_run}.[/green]")
    elif plan.write_count == 0:
        console.print("[green]Nothing to apply: the destination already agrees.[/green]")


def _conflicts(console: Console, plan: Plan, limit: int) -> None:
    """A rollback's conflicts: records changed again since the run, field by field."""
    total = plan.counts.get(Action.CONFLICT, 0)
    if not total:
        return
    table = _titled(f"Conflicts (changed since the run, left alone): {total:,}")
    for column in ("key", "field", "run wrote", "now", "why"):
        table.add_column(column)
    for row in plan.sample(Action.CONFLICT, limit).to_pylist():
        for name in row["changed"]:
            now = show(row[f"before.{name}"])
            table.add_row(row["key"], name, show(row[name]), now, row["reason"])
    console.print(table)
    if total > limit:
        console.print(f"  … and {total - limit:,} more (all of them in --json / --out)")


def _key_list(console: Console, plan: Plan, action: Action, title: str, limit: int) -> None:
    total = plan.counts.get(action, 0)
    if not total:
        return
    shown = plan.sample(action, limit)
    table = _titled(f"{title}: {total:,}")
    table.add_column("key")
    if action is Action.INVALID:
        table.add_column("reason")
        for key, reason in zip(shown["key"].to_pylist(), shown["reason"].to_pylist(), strict=True):
            table.add_row(show(key) if key is None else key, reason)
    else:
        for key in shown["key"].to_pylist():
            table.add_row(key)
    console.print(table)
    if total > limit:
        console.print(f"  … and {total - limit:,} more (all of them in --json / --out)")


def render_guards(console: Console, verdicts: Sequence[GuardVerdict]) -> None:
    """One row per verdict: passed, tripped (blocks) or allowed past with --allow."""
    if not verdicts:
        return
    table = _titled("Guards")
    table.add_column("", no_wrap=True)
    table.add_column("guard", no_wrap=True)
    table.add_column("verdict")
    for v in verdicts:
        if not v.tripped:
            mark = Text("✓", style="green")
        elif v.allowed:
            mark = Text("!", style="yellow")
        else:
            mark = Text("✗", style="red")
        detail = v.message + (" (allowed by --allow)" if v.allowed else "")
        if v.tripped and v.examples:
            detail += f"; e.g. {', '.join(v.examples)}"
        table.add_row(mark, v.guard.value, detail)
    console.print(table)


def render_doctor(console: Console, checks: list[Check]) -> None:
    """One row per check: ✓ or ✗, what was checked, what was found (or why it did not run)."""
    table = _titled("trueup doctor")
    table.add_column("", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("detail")
    for check in checks:
        mark = Text("✓", style="green") if check.passed else Text("✗", style="red")
        table.add_row(mark, check.name, Text(check.detail, style="" if check.ran else "dim"))
    console.print(table)
    failed = sum(1 for c in checks if not c.passed)
    if failed:
        console.print(f"[red]{failed} of {len(checks)} checks failed.[/red]")
    else:
        console.print(f"[green]All {len(checks)} checks passed.[/green]")


def render_apply(console: Console, result: ApplyResult, plan: Plan) -> None:
    """Outcome counts as the destination reported them, and failures by error code."""
    table = _titled(f"Run {result.run_id}: {result.status.value}")
    table.add_column("outcome")
    table.add_column("records", justify="right")
    table.add_row("processed", f"{result.processed:,}")
    for status in OutcomeStatus:
        if status is OutcomeStatus.DELETED and not result.counts.get(status, 0):
            continue
        table.add_row(status.value, f"{result.counts.get(status, 0):,}")
    table.add_row("unchanged (not sent)", f"{plan.counts.get(Action.UNCHANGED, 0):,}")
    table.add_row("invalid (not sent)", f"{plan.counts.get(Action.INVALID, 0):,}")
    table.add_row("error rate", f"{result.error_rate:.2%}")
    console.print(table)
    for code, n in sorted(result.error_codes.items(), key=lambda item: -item[1]):
        console.print(f"  failed with {code}: {n:,}")
    if result.message:
        console.print(f"[yellow]{result.message}[/yellow]")


def render_check(console: Console, report: CheckReport, *, min_accuracy: float) -> None:
    """Per-field agreement, accuracy, missing and extra keys, invalid records, groups."""
    colour = "green" if report.accuracy >= min_accuracy else "red"
    console.print(
        f"Accuracy: [{colour}]{report.accuracy:.2f}%[/{colour}] "
        f"({report.agreeing:,} of {report.compared:,} source records agree; "
        f"required {min_accuracy:g}%)"
    )
    table = _titled("Field agreement (records on both sides)")
    table.add_column("field")
    table.add_column("agree", justify="right")
    table.add_column("differ", justify="right")
    for name, pct in report.field_agreement().items():
        table.add_row(name, f"{pct:.2f}%", f"{report.field_mismatches[name]:,}")
    console.print(table)
    console.print(f"Missing in destination: {len(report.missing_in_destination):,}")
    console.print(
        f"Extra in destination (key not in source): {len(report.extra_in_destination):,}"
        + _sample(report.extra_in_destination)
    )
    console.print(f"Invalid in source (not compared): {len(report.invalid):,}")
    for key, reason in report.invalid[:SAMPLE]:
        console.print(f"  {key}: {reason}")
    if report.multi_member_groups is not None:
        console.print(
            f"Multi-member groups: {report.multi_member_groups:,} "
            f"({report.multi_member_agreeing:,} agree)"
        )


def _sample(keys: tuple[str, ...]) -> str:
    if not keys:
        return ""
    more = f", … {len(keys) - 3:,} more" if len(keys) > 3 else ""
    return " (" + ", ".join(keys[:3]) + more + ")"


def render_runs(console: Console, runs: list[RunSummary]) -> None:
    """One line per run, newest first."""
    if not runs:
        console.print("No runs yet.")
        return
    table = _titled("Runs (started, UTC)")
    table.box, table.pad_edge = box.SIMPLE_HEAD, False
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("started", no_wrap=True)
    table.add_column("command", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for column in OUTCOME_COLUMNS:
        table.add_column(column, justify="right", no_wrap=True)
    for run in runs:
        table.add_row(
            str(run.id),
            run.started_at.strftime("%b %d %H:%M"),
            _command(run),
            run.status.value,
            *(f"{run.counts.get(k, 0):,}" for k in OUTCOME_COLUMNS),
        )
    console.print(table)


OUTCOME_COLUMNS = ("created", "updated", "deleted", "failed", "skipped")


def _command(run: RunSummary) -> str:
    """The run's command; a rollback names the run it reverts."""
    if run.reverts_run is None:
        return run.command
    return f"{run.command} of {run.reverts_run}"


def render_run(console: Console, detail: RunDetail) -> None:
    """One run: outcome counts, plan counts, failures by code and the failed records."""
    run = detail.summary
    console.print(f"Run {run.id}: {_command(run)} → {run.destination}, {run.status.value}")
    ended = run.finished_at.isoformat(timespec="seconds") if run.finished_at else "not finished"
    console.print(f"  started {run.started_at.isoformat(timespec='seconds')}")
    console.print(f"  finished {ended}")
    console.print(f"  plan {run.plan_fingerprint}, config {run.config_fingerprint}")
    if detail.message:
        console.print(f"  {detail.message}")
    for guard in detail.guards:
        allowed = " (allowed by --allow)" if guard.get("allowed") else ""
        console.print(f"  guard {guard.get('guard')}: {guard.get('message')}{allowed}")
    table = _titled("Plan and outcomes")
    table.add_column("planned")
    table.add_column("records", justify="right")
    table.add_column("outcome")
    table.add_column("records", justify="right")
    planned = [(k.removeprefix("plan."), n) for k, n in run.counts.items() if k.startswith("plan.")]
    outcomes = [(k, run.counts.get(k, 0)) for k in OUTCOME_COLUMNS]
    for i in range(max(len(planned), len(outcomes))):
        left = planned[i] if i < len(planned) else ("", None)
        right = outcomes[i] if i < len(outcomes) else ("", None)
        table.add_row(
            left[0].replace("_", " "),
            "" if left[1] is None else f"{left[1]:,}",
            right[0],
            "" if right[1] is None else f"{right[1]:,}",
        )
    console.print(table)
    for code, n in sorted(detail.error_codes.items(), key=lambda item: -item[1]):
        console.print(f"  failed with {code}: {n:,}")
    if detail.failures:
        failures = _titled("Failed records")
        for column in ("key", "batch", "code", "message"):
            failures.add_column(column)
        for outcome in detail.failures[:50]:
            failures.add_row(
                outcome.key, str(outcome.batch), outcome.error_code or "", outcome.message or ""
            )
        console.print(failures)


@contextmanager
def progress_bar(console: Console) -> Iterator[Any]:
    """A Rich progress bar driven by the core's ProgressEvents (silent when not a terminal)."""
    with Progress(
        TextColumn("{task.description:<18}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:
        tasks: dict[str, Any] = {}

        def report(event: ProgressEvent) -> None:
            if event.stage not in tasks:
                tasks[event.stage] = bar.add_task(event.stage, total=event.total)
            bar.update(tasks[event.stage], completed=event.done, total=event.total)

        yield report


def sandbox_banner(sandbox: Sandbox, faults: list[str]) -> list[str]:
    """What ``trueup sandbox`` prints once it serves: credentials and commands to paste."""
    from shlex import quote

    version = "59.0"
    url, token = sandbox.url, sandbox.access_token
    ca = f"--cacert {quote(str(sandbox.ca_path))} " if sandbox.ca_path else ""
    auth = quote(f"Authorization: Bearer {token}")
    query = quote(f"{url}/services/data/v{version}/query/?q=SELECT+Id,Name+FROM+Property__c")
    lines = [
        "trueup sandbox: a local Salesforce-compatible API",
        f"  instance URL:   {url}",
        f"  client id:      {sandbox.client_id}",
        f"  client secret:  {sandbox.client_secret}",
        f"  username:       {sandbox.state.auth.username} (password flow; password "
        f"{sandbox.state.auth.password!r})",
        f"  access token:   {token}",
        f"  CA certificate: {sandbox.ca_path if sandbox.ca_path else '(plain HTTP)'}",
        f"  faults:         {'none' if not faults else faults[0]}",
        *(f"                  {line}" for line in faults[1:]),
        "Try it:",
        f"  curl {ca}-H {auth} {url}/services/data/v{version}/limits/",
        f"  curl {ca}-H {auth} {query}",
        f"  curl {ca}{url}/services/oauth2/token -d grant_type=client_credentials "
        f"-d client_id={quote(sandbox.client_id)} -d client_secret={quote(sandbox.client_secret)}",
        f"  requests seen: curl {ca}{url}/__sandbox/requests",
        "Serving until Ctrl-C.",
    ]
    return lines
