"""Getting started and setting up: init, doctor, demo, sandbox."""

from __future__ import annotations

import json
import sqlite3
import sys
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from trueup.cli import render
from trueup.cli.common import (
    ConfigOption,
    JsonOption,
    app,
    err,
    out,
)
from trueup.doctor import run_doctor_file
from trueup.errors import (
    ConfigError,
    PlanError,
    TrueupError,
)


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
