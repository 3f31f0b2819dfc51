"""The trueup command line: Typer commands, one error boundary, documented exit codes."""

from __future__ import annotations

import json
import sqlite3
import sys
import traceback
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from trueup import __version__
from trueup.apply import ApplyResult, StopReason, apply_plan
from trueup.check import run_check
from trueup.cli import render
from trueup.config import LoadedConfig, load_config
from trueup.destinations import open_destination
from trueup.doctor import run_doctor_file
from trueup.errors import (
    ApiAllowanceExhausted,
    CheckFailed,
    ConfigError,
    ErrorRateExceeded,
    PlanError,
    TrueupError,
)
from trueup.pipeline import ensure_fresh, make_plan
from trueup.plan import Plan
from trueup.store import RunStatus, RunStore

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
)
out = Console()
err = Console(stderr=True)
_state: dict[str, Any] = {"debug": False}

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="Path to trueup.yml.", envvar="TRUEUP_CONFIG")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _version(value: bool) -> None:
    if value:
        out.print(f"trueup {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print version.")
    ] = False,
) -> None:
    _state["debug"] = debug


def _open_store(loaded: LoadedConfig) -> RunStore:
    url = loaded.config.store.url.get_secret_value()
    return RunStore.open(url, base_dir=loaded.path.parent)


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the config.")] = Path("trueup.yml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write an example trueup.yml: product features from PostgreSQL to Product_Property__c."""
    if path.exists() and not force:
        raise PlanError(f"{path} exists; pass --force to overwrite it")
    text = resources.files("trueup").joinpath("examples/product_features.yml").read_text()
    path.write_text(text, encoding="utf-8")
    out.print(
        f"Wrote {path}. Set TRUEUP_SOURCE_URL and TRUEUP_DESTINATION_URL, then run "
        f"'trueup plan -c {path}'."
    )


@app.command()
def doctor(config: ConfigOption = Path("trueup.yml"), as_json: JsonOption = False) -> None:
    """Check every table, column and destination field the config names, before anything runs."""
    checks = run_doctor_file(config)
    failed = sum(1 for c in checks if not c.passed)
    if as_json:
        body = {
            "passed": failed == 0,
            "checks": [
                {"name": c.name, "passed": c.passed, "ran": c.ran, "detail": c.detail}
                for c in checks
            ],
        }
        sys.stdout.write(json.dumps(body, indent=1) + "\n")
    else:
        render.render_doctor(out, checks)
    if failed:
        raise ConfigError(f"{failed} of {len(checks)} doctor checks failed", file=str(config))


@app.command()
def plan(
    config: ConfigOption = Path("trueup.yml"),
    as_json: JsonOption = False,
    save: Annotated[
        Path | None, typer.Option("--out", "-o", help="Save the plan to this JSON file.")
    ] = None,
) -> None:
    """Show what apply would do: creates, updates (field, before → after), the rest."""
    loaded = load_config(config)
    with render.progress_bar(err) as progress:
        result = make_plan(loaded, progress=progress)
    if save is not None:
        result.save(save)
    if as_json:
        sys.stdout.write(json.dumps(result.to_json(), indent=1) + "\n")
        return
    render.render_plan(out, result)
    if save is not None:
        out.print(f"Saved plan to {save} (apply it with 'trueup apply --plan {save}').")


@app.command()
def apply(
    config: ConfigOption = Path("trueup.yml"),
    saved: Annotated[
        Path | None,
        typer.Option("--plan", help="Apply exactly this saved plan; refused if it is stale."),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Plan (or load a saved plan), then write creates and updates in batches."""
    loaded = load_config(config)
    destination = open_destination(loaded)
    with destination:
        if saved is not None:
            the_plan = Plan.load(saved)
            ensure_fresh(the_plan, loaded, destination)
        else:
            with render.progress_bar(err) as progress:
                the_plan = make_plan(loaded, progress=progress)
        if not as_json:
            render.render_plan(out, the_plan)
        if the_plan.write_count == 0:
            if as_json:
                sys.stdout.write(json.dumps({"run": None, "written": 0}) + "\n")
            return
        if not yes:
            if not sys.stdin.isatty():
                raise PlanError("not applying without confirmation; pass --yes")
            typer.confirm(f"Apply {the_plan.write_count:,} changes?", abort=True)
        with _open_store(loaded) as store, render.progress_bar(err) as progress:
            result = apply_plan(
                the_plan,
                destination,
                store,
                batch_size=loaded.config.destination.batch_size,
                guards=loaded.config.guards,
                progress=progress,
            )
        write_path = getattr(destination, "write_path", None)
    if write_path is not None and not as_json:
        out.print(f"Written through {write_path.value.upper()}")  # Salesforce: REST or BULK
    _finish_apply(result, as_json=as_json)


def _finish_apply(result: ApplyResult, *, as_json: bool) -> None:
    if as_json:
        body = {
            "run": result.run_id,
            "status": result.status.value,
            "counts": {s.value: n for s, n in result.counts.items()},
            "error_codes": dict(result.error_codes),
            "error_rate": result.error_rate,
            "message": result.message,
            "stop_reason": result.stop_reason.value if result.stop_reason else None,
        }
        sys.stdout.write(json.dumps(body, indent=1) + "\n")
    else:
        render.render_apply(out, result)
    if result.status is not RunStatus.STOPPED:
        return
    if result.stop_reason is StopReason.API_RESERVE:
        raise ApiAllowanceExhausted(result.message or "stopped at the API reserve")
    raise ErrorRateExceeded(result.message or "stopped by the error-rate brake")


@app.command()
def check(config: ConfigOption = Path("trueup.yml"), as_json: JsonOption = False) -> None:
    """Read source and destination now; report agreement; fail below guards.min_accuracy."""
    loaded = load_config(config)
    with render.progress_bar(err) as progress:
        report = run_check(loaded, progress=progress)
    minimum = loaded.config.guards.min_accuracy
    if as_json:
        body = {
            "accuracy": report.accuracy,
            "compared": report.compared,
            "agreeing": report.agreeing,
            "field_agreement": report.field_agreement(),
            "missing_in_destination": list(report.missing_in_destination),
            "extra_in_destination": list(report.extra_in_destination),
            "invalid": [{"key": k, "reason": r} for k, r in report.invalid],
            "multi_member_groups": report.multi_member_groups,
            "multi_member_agreeing": report.multi_member_agreeing,
        }
        sys.stdout.write(json.dumps(body, indent=1) + "\n")
    else:
        render.render_check(out, report, min_accuracy=minimum)
    if report.accuracy < minimum:
        raise CheckFailed(
            f"accuracy {report.accuracy:.2f}% is below guards.min_accuracy ({minimum:g}%)"
        )


@app.command()
def runs(
    run_id: Annotated[int | None, typer.Argument(help="Show this run in detail.")] = None,
    config: ConfigOption = Path("trueup.yml"),
    limit: Annotated[int, typer.Option(help="How many runs to list.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """List recent runs, or show one run with its outcome counts and failures."""
    loaded = load_config(config)
    with _open_store(loaded) as store:
        if run_id is None:
            listed = store.list_runs(limit)
            if as_json:
                sys.stdout.write(json.dumps([_run_json(r) for r in listed], indent=1) + "\n")
            else:
                render.render_runs(out, listed)
            return
        detail = store.get_run(run_id)
    if as_json:
        body = _run_json(detail.summary) | {
            "message": detail.message,
            "error_codes": detail.error_codes,
            "failures": [
                {"key": f.key, "batch": f.batch, "error_code": f.error_code, "message": f.message}
                for f in detail.failures
            ],
        }
        sys.stdout.write(json.dumps(body, indent=1) + "\n")
    else:
        render.render_run(out, detail)


def _run_json(run: Any) -> dict[str, Any]:
    return {
        "id": run.id,
        "command": run.command,
        "status": run.status.value,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "destination": run.destination,
        "config_fingerprint": run.config_fingerprint,
        "plan_fingerprint": run.plan_fingerprint,
        "counts": run.counts,
    }


@app.command()
def demo(
    directory: Annotated[
        Path, typer.Option("--dir", help="Working folder for the demo's data (recreated).")
    ] = Path("trueup-demo"),
    properties: Annotated[int, typer.Option(help="How many source properties.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed for the generated data.")] = 7,
) -> None:
    """End to end on built-in data: generate a drifted CRM, plan, apply, check, re-plan."""
    from trueup.cli.demo import run_demo

    run_demo(out, err, directory=directory, properties=properties, seed=seed)


@app.command()
def sandbox(
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 8443,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    http: Annotated[bool, typer.Option("--http", help="Plain HTTP instead of HTTPS.")] = False,
    data: Annotated[
        Path | None, typer.Option("--data", help="Keep the org's records in this SQLite file.")
    ] = None,
    faults: Annotated[
        Path | None, typer.Option("--faults", help="Fault plan (YAML or JSON) to inject.")
    ] = None,
    page_size: Annotated[int, typer.Option(help="Records per query page.")] = 2000,
    api_limit: Annotated[int, typer.Option(help="Daily API request allocation.")] = 15000,
    realistic_bulk: Annotated[
        bool, typer.Option("--realistic-bulk", help="Bulk jobs take time, one batch a second.")
    ] = False,
    ca_out: Annotated[
        Path | None, typer.Option("--ca-out", help="Write the CA certificate (PEM) here.")
    ] = None,
    token_ttl: Annotated[
        float, typer.Option(help="Seconds a session lives without use before it expires.")
    ] = 7200.0,
    jwt_key: Annotated[
        Path | None,
        typer.Option(
            "--jwt-key", help="Public key or certificate (PEM) that JWT bearer logins must match."
        ),
    ] = None,
) -> None:
    """Start the local Salesforce-compatible sandbox and serve it until Ctrl-C."""
    from trueup.sandbox.faults import FaultPlan
    from trueup.sandbox.server import Sandbox, serve_forever

    plan = FaultPlan.none()
    if faults is not None:
        try:
            plan = FaultPlan.load(faults)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    key = None
    if jwt_key is not None:
        try:
            key = jwt_key.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"cannot read the JWT key: {exc.strerror}", file=str(jwt_key)
            ) from None

    def ready(running: Sandbox) -> None:
        for line in render.sandbox_banner(running, plan.describe()):
            out.print(line, soft_wrap=True, highlight=False, markup=False)
        sys.stdout.flush()

    try:
        serve_forever(
            ready,
            host=host,
            port=port,
            http=http,
            data=data,
            faults=plan,
            page_size=page_size,
            api_limit=api_limit,
            realistic_bulk=realistic_bulk,
            ca_out=ca_out,
            token_ttl=token_ttl,
            jwt_public_key=key,
        )
    except sqlite3.Error as exc:
        raise ConfigError(
            f"cannot use it as the sandbox's data file: {exc}", file=str(data)
        ) from None
    except OSError as exc:
        raise TrueupError(f"cannot serve the sandbox on {host}:{port}: {exc.strerror}") from None
    out.print("sandbox stopped")


def main() -> None:
    """Entry point: run the app inside the single error boundary."""
    try:
        app()
    except TrueupError as exc:
        if _state["debug"]:
            traceback.print_exc()
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # the boundary: a bug must still end in one line
        if _state["debug"]:
            traceback.print_exc()
        err.print(
            f"[red]internal error:[/red] {type(exc).__name__}: {exc} "
            "(run with --debug for the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(EXIT_INTERNAL)
