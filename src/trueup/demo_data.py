"""Realistic, deterministic demo data for the flagship job (DESIGN.md §1), from a seeded generator.

``generate_demo`` writes a SQLite product database (``properties``, ``property_features``, from
``trueup.demo_source``) and the ``trueup.yml`` syncing it to a CRM. The CRM's records are what the
features model produces from the source, then drifted the way real CRMs drift (DESIGN.md §1, "What
goes wrong"): records never created, hand-edited flags, the all-false sync of recent records, and
orphans whose key left the source. A few source rows cannot be synced (names longer than ``Name``'s
80 characters). ``DemoFiles`` says exactly how much of each was injected and the plan it implies.

The CRM is either a SQLite table ``Product_Property__c`` (``crm.db``, the default: offline, used by
the end-to-end tests) or, given a ``SandboxTarget``, a Salesforce org: then the drifted records are
in ``DemoFiles.crm_records`` for the caller to load into the org, and ``trueup.yml`` logs in with
client credentials read from ``TRUEUP_SANDBOX_CLIENT_ID`` / ``TRUEUP_SANDBOX_CLIENT_SECRET``
(the file never holds a secret).
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from trueup import demo_source
from trueup.config import parse_config
from trueup.demo_source import (
    PRODUCT_RATES,
    RECENT_DAYS,
    Feature,
    Property,
    property_name,
    random_uuid,
    salesforce_id,
)
from trueup.diff import Action
from trueup.products import PRODUCT_FIELDS, PRODUCTS, SALESFORCE_OBJECT, TEXT_LENGTHS
from trueup.sqltext import quote_ident

__all__ = [
    "CLIENT_ID_VAR",
    "CLIENT_SECRET_VAR",
    "DemoFiles",
    "Drift",
    "SandboxTarget",
    "demo_config",
    "demo_config_text",
    "destination_ddl",
    "generate_demo",
    "salesforce_id",
]

MISSING_SHARE = 0.12  # of records: never created in the CRM
WRONG_FLAG_SHARE = 0.06  # of records: one Enabled checkbox hand-edited the wrong way
ALL_FALSE_SHARE = 0.04  # of records (800 of 20,000): recent records synced with every flag false
ORPHAN_SHARE = 0.015  # of records (300 of 20,000): CRM records whose key left the source
CLIENT_ID_VAR = "TRUEUP_SANDBOX_CLIENT_ID"  # the Salesforce demo's login, from the environment
CLIENT_SECRET_VAR = "TRUEUP_SANDBOX_CLIENT_SECRET"


class Drift(StrEnum):
    """A way the demo CRM disagrees with the source."""

    MISSING = "missing"  # the record was never created → plan: create
    WRONG_FLAG = "wrong_flag"  # one Enabled checkbox is wrong → plan: update
    ALL_FALSE = "all_false"  # a recent record synced with every flag false, no dates → update
    ORPHAN = "orphan"  # the CRM record's key is not in the source → plan: missing_in_source


@dataclass(frozen=True)
class SandboxTarget:
    """A Salesforce org for the demo's CRM: its instance URL and the CA file that signs it."""

    instance_url: str
    ca_bundle: str = "ca.pem"  # relative to the demo folder


@dataclass(frozen=True)
class DemoFiles:
    """What ``generate_demo`` wrote, how it drifted the CRM and the plan counts that follow."""

    directory: Path
    source: Path  # SQLite: properties, property_features
    destination: Path | None  # SQLite: Product_Property__c; None when the CRM is Salesforce
    config: Path  # trueup.yml
    properties: int
    records: int  # rows the features model yields (one per Salesforce record)
    invalid: int  # source records that cannot be synced (the plan's `invalid`)
    drift: Mapping[Drift, int] = field(default_factory=dict)
    expected: Mapping[Action, int] = field(default_factory=dict)  # the plan's counts
    # The drifted CRM's records: field name → JSON value (dates YYYY-MM-DD), as an org takes them.
    crm_records: tuple[dict[str, Any], ...] = field(default=(), repr=False, compare=False)


def generate_demo(
    directory: Path,
    *,
    seed: int = 7,
    properties: int = 20_000,
    today: date | None = None,
    salesforce: SandboxTarget | None = None,
) -> DemoFiles:
    """Write source.db, trueup.yml and (without ``salesforce``) crm.db into ``directory``.

    With ``salesforce`` no crm.db is written: the config points at that org, and the records to
    load into it are ``crm_records``. Files are replaced.
    """
    if properties < 100:
        raise ValueError("the demo needs at least 100 properties")
    rng = random.Random(seed)
    now = datetime.combine(today or datetime.now(UTC).date(), time(0), UTC)
    directory.mkdir(parents=True, exist_ok=True)
    props = demo_source.properties(rng, properties, now)
    feats = demo_source.features(rng, props, now)
    records = _model_records(props, feats)
    invalid_keys = {k for k, r in records.items() if len(r["Name"]) > TEXT_LENGTHS["Name"]}
    crm, drift = _drift(rng, records, invalid_keys, props, now)
    source, config = directory / "source.db", directory / "trueup.yml"
    destination = None if salesforce else directory / "crm.db"
    demo_source.write_source(source, props, feats)
    if destination is not None:
        _write_destination(destination, crm)
    text = demo_config_text(salesforce)
    # The demo's config must always be valid (``${VAR}`` references are checked as written).
    parse_config(yaml.safe_load(text), file=str(config))
    config.write_text(text, encoding="utf-8")
    updates = drift[Drift.WRONG_FLAG] + drift[Drift.ALL_FALSE]
    expected = {
        Action.CREATE: drift[Drift.MISSING],
        Action.UPDATE: updates,
        Action.UNCHANGED: len(records) - drift[Drift.MISSING] - updates - len(invalid_keys),
        Action.MISSING_IN_SOURCE: drift[Drift.ORPHAN],
        Action.INVALID: len(invalid_keys),
    }
    return DemoFiles(
        directory=directory,
        source=source,
        destination=destination,
        config=config,
        properties=properties,
        records=len(records),
        invalid=len(invalid_keys),
        drift=drift,
        expected=expected,
        crm_records=tuple({k: _json_value(v) for k, v in row.items()} for row in crm),
    )


# --- the model's output and the drifted CRM -------------------------------------------------------
def _model_records(
    props: Sequence[Property], feats: Sequence[Feature]
) -> dict[str, dict[str, Any]]:
    """What the features model yields (DESIGN.md §1), keyed by record key, in field names."""
    by_prop: dict[str, dict[str, Feature]] = {}
    for f in feats:
        by_prop.setdefault(f.property_id, {})[f.code] = f
    groups: dict[str, list[Property]] = {}
    for p in props:
        groups.setdefault(p.sfdc_id or p.id, []).append(p)
    records: dict[str, dict[str, Any]] = {}
    for key, members in groups.items():
        first = min(members, key=lambda m: m.inserted_at)
        row: dict[str, Any] = {
            PRODUCT_FIELDS["key"]: key,
            PRODUCT_FIELDS["member_id"]: first.id,
            PRODUCT_FIELDS["member_name"]: first.name,
            PRODUCT_FIELDS["group_id"]: first.sfdc_id,
            PRODUCT_FIELDS["is_multi_member"]: len(members) > 1,
        }
        for product in PRODUCTS:
            rows = [r for m in members if (r := by_prop.get(m.id, {}).get(product.code))]
            starts = [r.enabled_at.astimezone(UTC).date() for r in rows if r.enabled_at]
            row[product.enabled_field] = any(r.enabled for r in rows)
            row[product.start_date_field] = min(starts, default=None)
            row[product.updated_date_field] = max(
                (r.updated_at.astimezone(UTC).date() for r in rows), default=None
            )
        records[key] = row
    return records


def _enabled_any(record: Mapping[str, Any]) -> bool:
    return any(record[p.enabled_field] for p in PRODUCTS)


def _drift(
    rng: random.Random,
    records: Mapping[str, dict[str, Any]],
    invalid_keys: set[str],
    props: Sequence[Property],
    now: datetime,
) -> tuple[list[dict[str, Any]], dict[Drift, int]]:
    """The CRM's rows: the model's records minus, plus and edited by each kind of drift."""
    n = len(records)
    valid = [k for k in records if k not in invalid_keys]
    missing = set(rng.sample(valid, round(n * MISSING_SHARE)))
    created: dict[str, datetime] = {}
    for prop in props:
        key = prop.sfdc_id or prop.id
        created[key] = min(created.get(key, prop.inserted_at), prop.inserted_at)
    recent = [
        k
        for k in valid
        if k not in missing
        and created[k] >= now - timedelta(days=RECENT_DAYS)
        and _enabled_any(records[k])
    ]
    all_false = set(rng.sample(recent, min(len(recent), round(len(props) * ALL_FALSE_SHARE))))
    rest = [k for k in valid if k not in missing and k not in all_false]
    wrong = set(rng.sample(rest, round(n * WRONG_FLAG_SHARE)))
    weights = [35 if PRODUCT_RATES[p.code] > 0.5 else 6 for p in PRODUCTS]

    crm: list[dict[str, Any]] = []
    for key in valid:
        if key in missing:
            continue
        row = dict(records[key])
        if key in all_false:
            for p in PRODUCTS:
                row[p.enabled_field] = False
                row[p.start_date_field] = row[p.updated_date_field] = None
        elif key in wrong:
            product = rng.choices(PRODUCTS, weights)[0]
            row[product.enabled_field] = not row[product.enabled_field]
        crm.append(row)
    orphans = round(len(props) * ORPHAN_SHARE)
    for _ in range(orphans):
        crm.insert(rng.randrange(len(crm) + 1), _orphan(rng, records, now))
    drift = {
        Drift.MISSING: len(missing),
        Drift.WRONG_FLAG: len(wrong),
        Drift.ALL_FALSE: len(all_false),
        Drift.ORPHAN: orphans,
    }
    return crm, drift


def _orphan(rng: random.Random, records: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """A CRM record for a property deleted from the product database."""
    while (key := salesforce_id(rng)) in records:
        pass
    row: dict[str, Any] = {
        PRODUCT_FIELDS["key"]: key,
        PRODUCT_FIELDS["member_id"]: random_uuid(rng),
        PRODUCT_FIELDS["member_name"]: property_name(rng),
        PRODUCT_FIELDS["group_id"]: key,
        PRODUCT_FIELDS["is_multi_member"]: False,
    }
    for p in PRODUCTS:
        on = rng.random() < PRODUCT_RATES[p.code]
        start = (now - timedelta(days=rng.randint(400, 2000))).date() if on else None
        row[p.enabled_field] = on
        row[p.start_date_field] = start
        row[p.updated_date_field] = start + timedelta(days=rng.randint(0, 300)) if start else None
    return row


def destination_ddl(table: str = SALESFORCE_OBJECT) -> str:
    """CREATE TABLE for a SQL stand-in of ``Product_Property__c`` with Salesforce's field types."""
    cols = [f"{quote_ident(PRODUCT_FIELDS['key'])} VARCHAR PRIMARY KEY"]
    for column, name in PRODUCT_FIELDS.items():
        if column == "key":
            continue
        if name in TEXT_LENGTHS:
            # DuckDB forgets VARCHAR(n)'s length; the CHECK keeps it, and enforces it.
            n = TEXT_LENGTHS[name]
            sql_type = f"VARCHAR({n}) CHECK (length({quote_ident(name)}) <= {n})"
        elif column.endswith("_date"):
            sql_type = "DATE"
        else:
            sql_type = "BOOLEAN NOT NULL"  # checkboxes are never null in Salesforce
        cols.append(f"{quote_ident(name)} {sql_type}")
    return f"CREATE TABLE {quote_ident(table)} (\n    " + ",\n    ".join(cols) + "\n)"


def _write_destination(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """The CRM stand-in as a SQLite table: SQLite keeps VARCHAR(80), so describe() sees lengths."""
    path.unlink(missing_ok=True)
    fields = list(PRODUCT_FIELDS.values())
    columns = ", ".join(quote_ident(f) for f in fields)
    marks = ", ".join("?" for _ in fields)
    con = sqlite3.connect(path)
    try:
        with con:
            con.execute(destination_ddl())
            con.executemany(
                f"INSERT INTO {quote_ident(SALESFORCE_OBJECT)} ({columns}) VALUES ({marks})",
                ([_sqlite_value(r[f]) for f in fields] for r in rows),
            )
    finally:
        con.close()


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


# --- the config -----------------------------------------------------------------------------------
def demo_config(salesforce: SandboxTarget | None = None) -> dict[str, Any]:
    """The demo's trueup.yml as data: SQLite source, features model, and a SQLite CRM table or
    (given ``salesforce``) the org's ``Product_Property__c``, logged in with client credentials."""
    destination: dict[str, Any] = {
        "kind": "sql",
        "url": "sqlite:///crm.db",
        "table": SALESFORCE_OBJECT,
        "batch_size": 500,
    }
    if salesforce is not None:
        destination = {
            "kind": "salesforce",
            "object": SALESFORCE_OBJECT,
            "auth": {
                "kind": "client_credentials",
                "instance_url": salesforce.instance_url,
                "client_id": f"${{{CLIENT_ID_VAR}}}",
                "client_secret": f"${{{CLIENT_SECRET_VAR}}}",
            },
            "ca_bundle": salesforce.ca_bundle,
            "batch_size": 200,
        }
    return {
        "version": 1,
        "source": {"kind": "sqlite", "path": "source.db"},
        "model": {"kind": "features", "products": [p.code for p in PRODUCTS]},
        "key": "key",
        "destination": destination,
        "mapping": dict(PRODUCT_FIELDS),
        "guards": {"max_error_rate": 0.05, "min_accuracy": 100},
        "store": {"url": "sqlite:///.trueup/state.db"},
    }


def demo_config_text(salesforce: SandboxTarget | None = None) -> str:
    """The demo's trueup.yml, with a header saying what it joins."""
    if salesforce is None:
        header = (
            "# trueup demo: product features from a SQLite product database (source.db) to a\n"
            "# SQLite stand-in for Salesforce's Product_Property__c (crm.db). Paths are relative\n"
            "# to this file. Written by trueup; see `trueup init` for a PostgreSQL template.\n"
        )
    else:
        header = (
            "# trueup demo: product features from a SQLite product database (source.db) to\n"
            "# Product_Property__c in a trueup sandbox org (a local Salesforce-compatible API).\n"
            f"# The login comes from ${CLIENT_ID_VAR} and ${CLIENT_SECRET_VAR}; ca.pem\n"
            "# is the sandbox's CA. Written by `trueup demo`; see `trueup init` for a template.\n"
        )
    return header + yaml.safe_dump(demo_config(salesforce), sort_keys=False, width=100)
