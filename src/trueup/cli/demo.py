"""`trueup demo`: a drifted Salesforce org on the local sandbox, then plan → apply → check → plan
again against it, step by step.

The sandbox runs in this process over HTTPS (its CA in the demo folder) and keeps its org in
``org.db``, so ``trueup sandbox --data`` can serve the same records afterwards. trueup talks to it
as to any org: client-credentials login, describe, SOQL, sObject Collections upserts. The login's
id and secret reach the config only through environment variables set in this process.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.rule import Rule

from trueup.check import run_check, stored_check
from trueup.cli import render
from trueup.cli.common import run_apply
from trueup.config import load_config
from trueup.demo_data import CLIENT_ID_VAR, CLIENT_SECRET_VAR, SandboxTarget, generate_demo
from trueup.destinations import open_destination
from trueup.destinations.base import OutcomeStatus
from trueup.diff import Action
from trueup.errors import CheckFailed, PlanError, TrueupError
from trueup.guards import judge
from trueup.pipeline import make_plan
from trueup.products import SALESFORCE_OBJECT
from trueup.report import ReportFormat, render_report
from trueup.store import RunStore

if TYPE_CHECKING:
    from trueup.sandbox.app import SandboxState

MARKER = ".trueup-demo"
ORG_FILE = "org.db"
CA_FILE = "ca.pem"
REPORT_FILE = "check-report.html"


def run_demo(out: Console, err: Console, *, directory: Path, properties: int, seed: int) -> None:
    """Run the whole demo in ``directory`` (recreated; refused if it holds anything else)."""
    _fresh_directory(directory)
    started = time.perf_counter()
    # Imported here: the sandbox (uvicorn, trustme) is only needed by this command.
    from trueup.sandbox.server import Sandbox

    out.print(Rule("0. Demo data"))
    with Sandbox(data=directory / ORG_FILE, ca_out=directory / CA_FILE) as sandbox:
        target = SandboxTarget(sandbox.url, CA_FILE)
        files = generate_demo(directory, seed=seed, properties=properties, salesforce=target)
        saved = sandbox.state.org.insert(SALESFORCE_OBJECT, files.crm_records)
        loaded_ok = sum(r.success for r in saved)
        if loaded_ok != len(saved):
            raise TrueupError(f"the sandbox refused {len(saved) - loaded_ok} of the demo's records")
        out.print(f"Source: {files.source} ({properties:,} properties, features in long rows)")
        out.print(
            f"Destination: {SALESFORCE_OBJECT} in a Salesforce sandbox org at {sandbox.url} "
            f"({loaded_ok:,} records, kept in {directory / ORG_FILE}), drifted:"
        )
        for what, n in files.drift.items():
            out.print(f"  {what.replace('_', ' ')}: {n:,}")
        out.print(
            f"Config: {files.config} (client credentials from ${CLIENT_ID_VAR} and "
            f"${CLIENT_SECRET_VAR}, set by the demo for itself)"
        )
        login = {CLIENT_ID_VAR: sandbox.client_id, CLIENT_SECRET_VAR: sandbox.client_secret}
        with _environment(login):
            run_id = _steps(out, err, files.config, sandbox.state)
        port = sandbox.port
    config = files.config
    out.print(f"Demo finished in {time.perf_counter() - started:.1f}s.")
    out.print(
        "To explore the org, serve it again: trueup sandbox "
        f"--data {directory / ORG_FILE} --port {port} --ca-out {directory / CA_FILE}; "
        f"export {CLIENT_ID_VAR} and {CLIENT_SECRET_VAR} from the client id and secret it "
        f"prints; then try: trueup plan -c {config} · trueup runs {run_id} -c {config}"
    )


def _steps(out: Console, err: Console, config: Path, state: SandboxState) -> int:
    """Plan, apply, check and plan again against the running sandbox; the apply's run id."""
    loaded = load_config(config)
    out.print(Rule("1. Plan (reads the org now: describe, SOQL)"))
    with render.progress_bar(err) as progress:
        plan = make_plan(loaded, progress=progress)
    render.render_plan(out, plan, sample=5)
    store_url = loaded.config.store.url.get_secret_value()
    with RunStore.open(store_url, base_dir=loaded.path.parent) as store:
        verdicts = judge(plan, loaded.config.guards, store)
    render.render_guards(out, verdicts)

    out.print(Rule("2. Apply (upserts by Reverse_ETL_ID__c)"))
    calls_before = state.api_used
    with open_destination(loaded) as destination:
        result, path = run_apply(loaded, plan, destination, command="demo", verdicts=verdicts)
    render.render_apply(out, result, plan)
    out.print(_as_reported(result.counts, state.api_used - calls_before, path))

    out.print(Rule("3. Check (reads the org itself)"))
    with render.progress_bar(err) as progress:
        report = run_check(loaded, progress=progress)
    render.render_check(out, report, min_accuracy=loaded.config.guards.min_accuracy)
    with RunStore.open(store_url, base_dir=loaded.path.parent) as store:
        store.record_check(stored_check(report))
        past = store.list_checks(destination=report.destination, limit=30)
    page = loaded.path.parent / REPORT_FILE
    page.write_bytes(render_report(report, ReportFormat.HTML, history=past[::-1]))
    out.print(f"The check as a page with charts: {page} (trueup check --format html)")

    out.print(Rule("4. Plan again"))
    again = make_plan(loaded)
    out.print(
        f"Creates {again.counts[Action.CREATE]:,}, updates {again.counts[Action.UPDATE]:,}: "
        + ("the org agrees." if again.write_count == 0 else "drift remains!")
    )
    out.print(Rule())
    if not report.passed or again.write_count:
        raise CheckFailed("the demo did not converge")
    return result.run_id


def _as_reported(counts: Mapping[OutcomeStatus, int], calls: int, path: object) -> str:
    tally = Counter(counts)
    via = f" through the {path} write path" if path is not None else ""
    return (
        f"Salesforce answered {tally[OutcomeStatus.CREATED]:,} created and "
        f"{tally[OutcomeStatus.UPDATED]:,} updated (its own answer per record), "
        f"{tally[OutcomeStatus.FAILED]:,} failed, in {calls:,} API calls{via}."
    )


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the block, then restore what was there."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _fresh_directory(directory: Path) -> None:
    if directory.exists():
        if not (directory / MARKER).exists() and any(directory.iterdir()):
            raise PlanError(f"{directory} exists and is not a trueup demo folder; pick --dir")
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    (directory / MARKER).write_text("created by trueup demo; safe to delete\n")
