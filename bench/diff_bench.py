"""Benchmark: trueup's plan step against one plain DuckDB FULL OUTER JOIN over the same data.

    .venv/bin/python bench/diff_bench.py --rows 1000000 [--updated 0.05 --inserted 0.005
        --deleted 0.005 --repeat 3 --seed 1 --regenerate]

Data (generated in DuckDB SQL from hashes of the row number, cached under bench/data/<params>/):
``source.parquet`` holds the features model's columns (key, member_id, member_name, group_id,
is_multi_member, 7 products x enabled/start date/updated date); ``crm.duckdb`` holds table
``Product_Property__c`` with the Salesforce field names and the same values, except ``--updated``
rows with one or more changed fields, ``--inserted`` rows only in the source and ``--deleted`` rows
only in the destination. ``expected.json`` holds the counts by construction; ``trueup.yml`` is a
``files`` source + ``sql`` model (``table: model``) + ``sql`` destination config.

Generation and each measured step run in fresh interpreters (``--step generate|plan|baseline``)
so each peak RSS (``ru_maxrss``) is the step's own; "at start" is the RSS after imports.
Exit status 1 when any step's counts differ from expected.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import yaml

from trueup.demo_data import destination_ddl
from trueup.products import PRODUCT_FIELDS, PRODUCTS, SALESFORCE_OBJECT
from trueup.sqltext import quote_ident, quote_literal

HERE = Path(__file__).resolve().parent
ACTIONS = ("create", "update", "unchanged", "missing_in_source", "invalid")
RATES = (0.95, 0.90, 0.008, 0.004, 0.006, 0.007, 0.003)  # share of rows with each product on
_WORDS = "Oak Maple Cedar Willow Aspen Birch Summit Harbor Lakeside Riverside Meadow Canyon"
_PLACES = "Ridge Creek Park Point Crossing Village Heights Landing Square Grove Hills Commons"


# --- data -----------------------------------------------------------------------------------------
def _h(seed: int, salt: int, modulo: int) -> str:
    """A deterministic pseudo-random integer in [0, modulo) for row ``i``."""
    return f"CAST(hash(i, {seed}, {salt}) % {modulo} AS BIGINT)"


def _model_columns(seed: int) -> dict[str, str]:
    """SQL per model column, over an integer row number ``i``."""
    words = "[" + ", ".join(quote_literal(w) for w in _WORDS.split()) + "]"
    places = "[" + ", ".join(quote_literal(w) for w in _PLACES.split()) + "]"
    cols = {
        "key": "printf('a0X5e%013d', i)",
        "member_id": (
            f"printf('%08x-%04x-4%03x-a%03x-%012x', {_h(seed, 1, 2**32)}, {_h(seed, 2, 2**16)}, "
            f"{_h(seed, 3, 2**12)}, {_h(seed, 4, 2**12)}, {_h(seed, 5, 2**48)})"
        ),
        "member_name": (
            f"{words}[1 + {_h(seed, 6, 12)}] || ' ' || {places}[1 + {_h(seed, 7, 12)}] "
            f"|| ' Apartments ' || i"
        ),
        "group_id": (
            f"CASE WHEN {_h(seed, 8, 10)} > 0 THEN printf('a0X8c%013d', {_h(seed, 9, 10**13)}) END"
        ),
        "is_multi_member": f"{_h(seed, 10, 100)} < 3",
    }
    for n, (product, rate) in enumerate(zip(PRODUCTS, RATES, strict=True)):
        on = f"({_h(seed, 20 + n, 100_000)} < {round(rate * 100_000)})"
        start = f"DATE '2019-01-01' + CAST({_h(seed, 30 + n, 2200)} AS INTEGER)"
        cols[f"{product.code}_enabled"] = on
        cols[f"{product.code}_start_date"] = f"CASE WHEN {on} THEN {start} END"
        cols[f"{product.code}_updated_date"] = (
            f"CASE WHEN {on} THEN {start} + CAST({_h(seed, 40 + n, 300)} AS INTEGER) END"
        )
    return cols


def _is_updated(seed: int, updated: float, keep: int) -> str:
    """SQL: is row ``i`` one whose destination record differs from the source."""
    return f"(i < {keep} AND {_h(seed, 90, 1_000_000)} < {round(updated * 1_000_000)})"


def _destination_columns(seed: int, updated: float, keep: int) -> list[str]:
    """SQL per destination field: the model's value, changed on the ``updated`` rows."""
    cols = _model_columns(seed)
    is_updated = _is_updated(seed, updated, keep)
    kind = _h(seed, 91, 4)  # which field changes
    which = _h(seed, 92, len(PRODUCTS))  # for kind 1: which product's flag flips
    also_multi = f"{_h(seed, 93, 4)} = 0"  # and a second change on a quarter of them
    fraud = PRODUCTS[0].code
    changes: dict[str, str] = {
        f"{fraud}_enabled": f"{kind} = 0",
        f"{fraud}_start_date": f"{kind} = 2",
        "member_name": f"{kind} = 3",
        "is_multi_member": also_multi,
    }
    out = []
    for column, field in PRODUCT_FIELDS.items():
        expr = cols[column]
        if column.endswith("_enabled"):
            n = next(i for i, p in enumerate(PRODUCTS) if column == f"{p.code}_enabled")
            flip = f"({kind} = 1 AND {which} = {n})"
            if column in changes:
                flip = f"({flip} OR {changes[column]})"
            expr = f"CASE WHEN {is_updated} AND {flip} THEN NOT ({expr}) ELSE {expr} END"
        elif column == "is_multi_member":
            expr = f"CASE WHEN {is_updated} AND {also_multi} THEN NOT ({expr}) ELSE {expr} END"
        elif column in changes and column.endswith("_start_date"):
            new = f"coalesce({expr}, DATE '2020-01-01') + 1"
            expr = f"CASE WHEN {is_updated} AND {changes[column]} THEN {new} ELSE {expr} END"
        elif column == "member_name":
            new = f"({expr}) || ' (old)'"
            expr = f"CASE WHEN {is_updated} AND {changes[column]} THEN {new} ELSE {expr} END"
        out.append(f"{expr} AS {quote_ident(field)}")
    return out


def generate(
    directory: Path, *, rows: int, updated: float, inserted: float, deleted: float, seed: int
) -> dict[str, int]:
    """Write source.parquet, crm.duckdb, trueup.yml and expected.json; return the counts."""
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    n_ins, n_del = round(rows * inserted), round(rows * deleted)
    keep = rows - n_ins  # rows [0, keep) on both sides, [keep, rows) source only
    model = ", ".join(f"{sql} AS {quote_ident(c)}" for c, sql in _model_columns(seed).items())
    con = duckdb.connect(str(tmp / "crm.duckdb"))
    try:
        con.execute(
            f"COPY (SELECT {model} FROM range({rows}) t(i)) TO "
            f"{quote_literal(str(tmp / 'source.parquet'))} (FORMAT parquet)"
        )
        con.execute(destination_ddl())
        fields = ", ".join(quote_ident(f) for f in PRODUCT_FIELDS.values())
        dest = ", ".join(_destination_columns(seed, updated, keep))
        # The CRM holds its rows in another order than the source.
        con.execute(
            f"INSERT INTO {quote_ident(SALESFORCE_OBJECT)} ({fields}) SELECT {dest} FROM "
            f"(SELECT i FROM range({rows + n_del}) t(i) WHERE i < {keep} OR i >= {rows} "
            f"ORDER BY hash(i, {seed}, 99))"
        )
        (n_upd,) = con.sql(
            f"SELECT count(*) FROM range({rows}) t(i) WHERE {_is_updated(seed, updated, keep)}"
        ).fetchall()[0]
    finally:
        con.close()
    expected = {
        "source_rows": rows,
        "destination_rows": keep + n_del,
        "create": n_ins,
        "update": int(n_upd),
        "unchanged": keep - int(n_upd),
        "missing_in_source": n_del,
        "invalid": 0,
    }
    (tmp / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")
    (tmp / "trueup.yml").write_text(yaml.safe_dump(_config(), sort_keys=False))
    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)
    return expected


def _config() -> dict[str, Any]:
    return {
        "version": 1,
        "source": {"kind": "files", "tables": {"model": "source.parquet"}},
        "model": {"kind": "sql", "table": "model"},
        "key": "key",
        "destination": {
            "kind": "sql",
            "url": "duckdb:///crm.duckdb",
            "table": SALESFORCE_OBJECT,
            "batch_size": 500,
        },
        "mapping": dict(PRODUCT_FIELDS),
        "store": {"url": "sqlite:///.trueup/state.db"},
    }


# --- measured steps (each in its own interpreter) -------------------------------------------------
def step_plan(directory: Path) -> Callable[[], dict[str, int]]:
    """trueup's plan step: load config, read the model, snapshot, diff, build the Plan value."""
    # imported before the clock starts: the benchmark times the plan, not Python's imports
    import trueup.destinations.sql
    import trueup.sources.files  # noqa: F401
    from trueup.config import load_config
    from trueup.pipeline import make_plan

    def run() -> dict[str, int]:
        plan = make_plan(load_config(directory / "trueup.yml"))
        return {str(action): int(n) for action, n in plan.counts.items()}

    return run


def baseline_sql(parquet: Path) -> str:
    """One FULL OUTER JOIN classifying every key, counted by class."""
    key_field = PRODUCT_FIELDS["key"]
    differs = " OR ".join(
        f"s.{quote_ident(c)} IS DISTINCT FROM d.{quote_ident(f)}"
        for c, f in PRODUCT_FIELDS.items()
        if c != "key"
    )
    return f"""
SELECT CASE
         WHEN d.{quote_ident(key_field)} IS NULL THEN 'create'
         WHEN s.key IS NULL THEN 'missing_in_source'
         WHEN {differs} THEN 'update'
         ELSE 'unchanged'
       END AS action, count(*) AS n
FROM read_parquet({quote_literal(str(parquet))}) s
FULL OUTER JOIN {quote_ident(SALESFORCE_OBJECT)} d ON s.key = d.{quote_ident(key_field)}
GROUP BY 1
"""


def step_baseline(directory: Path) -> Callable[[], dict[str, int]]:
    """The plain DuckDB join over the same parquet file and table."""

    def run() -> dict[str, int]:
        con = duckdb.connect(str(directory / "crm.duckdb"), read_only=True)
        try:
            counts = dict(con.sql(baseline_sql(directory / "source.parquet")).fetchall())
        finally:
            con.close()
        return {a: int(counts.get(a, 0)) for a in ACTIONS}

    return run


def warm_page_cache(directory: Path) -> None:
    """Read every data file once so each measured step starts from the same warm cache."""
    for path in directory.iterdir():
        with path.open("rb") as handle:
            while handle.read(1 << 24):
                pass


def run_step(step: str, directory: Path) -> None:
    """Child process: run one step, print its time, peak RSS and counts as one JSON line."""
    measured = {"plan": step_plan, "baseline": step_baseline}[step](directory)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    counts = measured()
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps(
            {"seconds": seconds, "peak_kib": peak, "start_kib": rss_before, "counts": counts}
        )
    )


def measure(step: str, directory: Path) -> dict[str, Any]:
    """Run one step in a fresh interpreter and parse its JSON line."""
    done = subprocess.run(
        [sys.executable, __file__, "--step", step, "--data", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"{step} step failed (exit {done.returncode})")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- driver ---------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--updated", type=float, default=0.05)
    parser.add_argument("--inserted", type=float, default=0.005)
    parser.add_argument("--deleted", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--steps", default="plan,baseline", help="comma-separated steps to time")
    parser.add_argument("--regenerate", action="store_true", help="ignore cached data")
    parser.add_argument("--step", choices=("generate", "plan", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.step == "generate":
        generate(
            args.data,
            rows=args.rows,
            updated=args.updated,
            inserted=args.inserted,
            deleted=args.deleted,
            seed=args.seed,
        )
        return 0
    if args.step:
        run_step(args.step, args.data)
        return 0

    name = f"rows{args.rows}-u{args.updated}-i{args.inserted}-d{args.deleted}-s{args.seed}"
    directory = HERE / "data" / name
    if args.regenerate or not (directory / "expected.json").exists():
        started = time.perf_counter()
        # In its own process: Linux keeps ru_maxrss across fork+exec, so a parent grown by
        # generating would set a floor under every measured child's peak.
        params = [
            f"--{p}={getattr(args, p)}" for p in ("rows", "updated", "inserted", "deleted", "seed")
        ]
        subprocess.run(
            [sys.executable, __file__, "--step", "generate", "--data", str(directory), *params],
            check=True,
        )
        print(f"generated {directory.relative_to(HERE)} in {time.perf_counter() - started:.1f} s")
    expected = json.loads((directory / "expected.json").read_text())
    keys = expected["source_rows"] + expected["missing_in_source"]
    print(
        f"rows: {args.rows:,} source, {expected['destination_rows']:,} destination; expected "
        + ", ".join(f"{a} {expected[a]:,}" for a in ACTIONS)
    )

    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    warm_page_cache(directory)  # else the first step measured pays for the disk reads alone
    results: dict[str, list[dict[str, Any]]] = {s: [] for s in steps}
    for _ in range(args.repeat):
        for step in steps:  # interleaved, so drift in machine load hits both alike
            results[step].append(measure(step, directory))

    ok = True
    best: dict[str, float] = {}
    print(
        f"\n{'step':<9} {'best s':>8} {'median s':>9} {'keys/s':>12} {'peak RSS':>10} "
        f"{'at start':>10}  counts"
    )
    for step, runs in results.items():
        times = [r["seconds"] for r in runs]
        best[step] = min(times)
        peak_mib = max(r["peak_kib"] for r in runs) / 1024
        start_mib = max(r["start_kib"] for r in runs) / 1024
        wrong = [
            f"{a}: {r['counts'].get(a, 0):,} != {expected[a]:,}"
            for r in runs
            for a in ACTIONS
            if r["counts"].get(a, 0) != expected[a]
        ]
        ok = ok and not wrong
        verdict = "ok" if not wrong else "MISMATCH " + "; ".join(sorted(set(wrong)))
        print(
            f"{step:<9} {best[step]:>8.2f} {statistics.median(times):>9.2f} "
            f"{keys / best[step]:>12,.0f} {peak_mib:>6.0f} MiB {start_mib:>6.0f} MiB  {verdict}"
        )
    if "plan" in best and "baseline" in best:
        ratio = best["plan"] / best["baseline"]
        print(f"\nplan / baseline (best): {ratio:.1f}x; keys = source rows + destination-only rows")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
