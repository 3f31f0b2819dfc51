"""Benchmark: 100,000 changed records synced to an in-process sandbox org, per write path.

    .venv/bin/python bench/salesforce_bench.py [--records 100000] [--paths rest,bulk]
        [--batch-size 200] [--concurrency 2] [--keep DIR]

For each path, a fresh HTTPS sandbox (no faults) and a fresh project folder: a SQLite source table
of ``--records`` rows (``sql`` model), an org holding half of them with other values, so the plan
is half creates and half updates, every record changed. Then the real ``make_plan`` and
``apply_plan`` as ``trueup apply`` runs them (client-credentials login, the sandbox's CA), with the
destination's ``write_path`` forced (``bulk`` only when the config has ``write_path``).

Printed per path: plan seconds; apply seconds and records/s; data API calls the apply used (the
sandbox's own counter, the one ``/limits`` reports), per 1,000 records; logins; and the outcome
counts, which must be every record created or updated (exit status 1 otherwise). The sandbox
answers on loopback in the same process, so the figures measure trueup and the wire protocol,
not Salesforce's server time: a real org takes longer per call, so calls per 1,000 records is the
figure that carries over.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from trueup.apply import apply_plan
from trueup.config import SalesforceDestinationConfig, load_config
from trueup.destinations import open_destination
from trueup.destinations.base import OutcomeStatus
from trueup.pipeline import make_plan
from trueup.sandbox.server import Sandbox
from trueup.store import RunStore

OBJECT = "Product_Property__c"
FIELDS = {  # source column → Product_Property__c field
    "key": "Reverse_ETL_ID__c",
    "name": "Name",
    "fraud": "Fraud_Detection_Enabled__c",
    "fraud_start": "Fraud_Detection_Start_Date__c",
    "income": "Income_Verification_Enabled__c",
    "income_start": "Income_Verification_Start_Date__c",
    "multi": "Is_Multi_Property__c",
}
ID_VAR, SECRET_VAR = "BENCH_SANDBOX_CLIENT_ID", "BENCH_SANDBOX_CLIENT_SECRET"
HAS_WRITE_PATH = "write_path" in SalesforceDestinationConfig.model_fields


def _row(i: int) -> dict[str, Any]:
    start = dt.date(2020, 1, 1) + dt.timedelta(days=i % 1500)
    return {
        "key": f"bench-{i:08d}",
        "name": f"Property {i}",
        "fraud": i % 10 != 0,
        "fraud_start": start.isoformat() if i % 10 != 0 else None,
        "income": i % 7 != 0,
        "income_start": (start + dt.timedelta(days=3)).isoformat() if i % 7 != 0 else None,
        "multi": i % 50 == 0,
    }


def _write_source(path: Path, records: int) -> None:
    con = sqlite3.connect(path)
    try:
        with con:
            con.execute(
                "CREATE TABLE properties (key TEXT PRIMARY KEY, name TEXT, fraud BOOLEAN, "
                "fraud_start DATE, income BOOLEAN, income_start DATE, multi BOOLEAN)"
            )
            con.executemany(
                "INSERT INTO properties VALUES "
                "(:key, :name, :fraud, :fraud_start, :income, :income_start, :multi)",
                (_row(i) for i in range(records)),
            )
    finally:
        con.close()


def _stale(i: int) -> dict[str, Any]:
    """What the org holds for an existing record: every flag the other way, no dates."""
    row = _row(i)
    record = {FIELDS[c]: v for c, v in row.items()}
    record.update(
        {FIELDS["fraud"]: not row["fraud"], FIELDS["income"]: not row["income"]},
        **{FIELDS["fraud_start"]: None, FIELDS["income_start"]: None},
    )
    return record


def _config(folder: Path, sandbox: Sandbox, args: argparse.Namespace, path: str) -> Path:
    destination: dict[str, Any] = {
        "kind": "salesforce",
        "object": OBJECT,
        "auth": {
            "kind": "client_credentials",
            "instance_url": sandbox.url,
            "client_id": f"${{{ID_VAR}}}",
            "client_secret": f"${{{SECRET_VAR}}}",
        },
        "ca_bundle": "ca.pem",
        "batch_size": args.batch_size,
        "concurrency": args.concurrency,
    }
    if HAS_WRITE_PATH:
        destination["write_path"] = path
    config = {
        "version": 1,
        "source": {"kind": "sqlite", "path": "source.db"},
        "model": {"kind": "sql", "table": "properties"},
        "key": "key",
        "destination": destination,
        "mapping": FIELDS,
        "guards": {"max_error_rate": 0.01, "min_accuracy": 100},
        "store": {"url": "sqlite:///.trueup/state.db"},
    }
    file = folder / "trueup.yml"
    file.write_text(yaml.safe_dump(config, sort_keys=False))
    return file


def run_path(path: str, args: argparse.Namespace, root: Path) -> bool:
    """Sync ``args.records`` changed records through ``path``; print its figures."""
    folder = root / path
    folder.mkdir(parents=True)
    _write_source(folder / "source.db", args.records)
    with Sandbox(ca_out=folder / "ca.pem", api_limit=10**9) as sandbox:
        existing = args.records // 2
        sandbox.state.org.insert(OBJECT, [_stale(i) for i in range(existing)])
        os.environ.update({ID_VAR: sandbox.client_id, SECRET_VAR: sandbox.client_secret})
        loaded = load_config(_config(folder, sandbox, args, path))

        started = time.perf_counter()
        plan = make_plan(loaded)
        plan_s = time.perf_counter() - started
        calls_before = sandbox.state.api_used
        with (
            open_destination(loaded) as destination,
            RunStore.open(loaded.config.store.url.get_secret_value(), base_dir=folder) as store,
        ):
            started = time.perf_counter()
            result = apply_plan(
                plan,
                destination,
                store,
                batch_size=loaded.config.destination.batch_size,
                guards=loaded.config.guards,
                command="bench",
            )
            apply_s = time.perf_counter() - started
            logins = getattr(getattr(destination, "client", None), "logins", None)
        calls = sandbox.state.api_used - calls_before
    sent = plan.write_count
    created = result.counts.get(OutcomeStatus.CREATED, 0)
    updated = result.counts.get(OutcomeStatus.UPDATED, 0)
    failed = result.counts.get(OutcomeStatus.FAILED, 0)
    print(
        f"{path:>5}: {sent:,} changed records ({created:,} created, {updated:,} updated, "
        f"{failed:,} failed)\n"
        f"       plan {plan_s:.1f} s; apply {apply_s:.1f} s = {sent / apply_s:,.0f} records/s\n"
        f"       {calls:,} API calls = {calls * 1000 / sent:.2f} per 1,000 records"
        + (f"; {logins} login(s)" if logins is not None else ""),
        flush=True,
    )
    ok = created == args.records - existing and updated == existing and failed == 0
    if not ok:
        print(f"       expected {args.records - existing:,} created and {existing:,} updated")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--paths", default="rest,bulk" if HAS_WRITE_PATH else "rest")
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    if not HAS_WRITE_PATH and paths != ["rest"]:
        parser.error("this trueup has one write path (REST); there is no write_path to force")
    root = args.keep or Path(tempfile.mkdtemp(prefix="trueup-sf-bench-"))
    if args.keep is not None:
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"trueup → sandbox: {args.records:,} records, half creates, half updates; "
        f"batch_size {args.batch_size}, concurrency {args.concurrency}"
    )
    ok = True
    try:
        for path in paths:
            try:
                ok = run_path(path, args, root) and ok
            except Exception as exc:  # a path that fails is reported; the others still run
                print(f"{path:>5}: failed: {type(exc).__name__}: {exc}")
                ok = False
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
