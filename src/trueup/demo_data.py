"""Realistic, deterministic demo data for the flagship job (DESIGN.md §1), from a seeded generator.

``generate_demo`` writes a SQLite product database (``properties``, ``property_features``) and the
``trueup.yml`` syncing it to a CRM. The CRM's records are what the features model produces from the
source, then drifted the way real CRMs drift (DESIGN.md §1, "What goes wrong"): records never
created, hand-edited flags, the all-false sync of recent records, and orphans whose key left the
source. A few source rows cannot be synced (names longer than ``Name``'s 80 characters).
``DemoFiles`` says exactly how much of each was injected and the plan it implies.

The CRM is either a SQLite table ``Product_Property__c`` (``crm.db``, the default: offline, used by
the end-to-end tests) or, given a ``SandboxTarget``, a Salesforce org: then the drifted records are
in ``DemoFiles.crm_records`` for the caller to load into the org, and ``trueup.yml`` logs in with
client credentials read from ``TRUEUP_SANDBOX_CLIENT_ID`` / ``TRUEUP_SANDBOX_CLIENT_SECRET``
(the file never holds a secret).
"""

from __future__ import annotations

import random
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from trueup.config import parse_config
from trueup.diff import Action
from trueup.products import PRODUCT_FIELDS, PRODUCTS, SALESFORCE_OBJECT, TEXT_LENGTHS
from trueup.sqltext import quote_ident

#: Share of active properties with each product on (churned properties have every product off).
PRODUCT_RATES: Mapping[str, float] = {
    "fraud_detection": 0.97,
    "income_verification": 0.92,
    "identity_verification": 0.008,
    "idv_only": 0.004,
    "payroll_linking": 0.006,
    "bank_linking": 0.007,
    "verification_of_rent": 0.003,
}
RECENT_DAYS = 60  # "recently created": inserted in the last 60 days
SHARED_SHARE = 0.03  # properties that share their Salesforce Property__c with 1-3 others
NO_SFDC_SHARE = 0.10  # properties not linked to a Salesforce Property__c yet
RECENT_SHARE = 0.09  # properties inserted in the last RECENT_DAYS
CHURNED_SHARE = 0.025
MISSING_SHARE = 0.12  # of records: never created in the CRM
WRONG_FLAG_SHARE = 0.06  # of records: one Enabled checkbox hand-edited the wrong way
ALL_FALSE_SHARE = 0.04  # of records (800 of 20,000): recent records synced with every flag false
ORPHAN_SHARE = 0.015  # of records (300 of 20,000): CRM records whose key left the source
INVALID_ROWS = 4  # properties whose names are longer than Name's 80 characters
CLIENT_ID_VAR = "TRUEUP_SANDBOX_CLIENT_ID"  # the Salesforce demo's login, from the environment
CLIENT_SECRET_VAR = "TRUEUP_SANDBOX_CLIENT_SECRET"

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_OFFSETS = (-4, -5, -5, -6, -6, -7, -8)  # US properties, hours from UTC
_WORDS = (  # noqa: SIM905 - a word list reads best as text
    "Oak Maple Cedar Willow Aspen Birch Magnolia Cypress Juniper Sycamore Hawthorne Laurel Pine "
    "Elm Alder Sierra Summit Harbor Bayview Lakeside Riverside Parkside Brookstone Stonegate "
    "Fairview Westwood Eastgate Northpoint Southridge Highland Meadow Canyon Mesa Vista Coral "
    "Sunset Crescent Heritage Liberty Arbor Foxrun Windsor Kingston Avalon Belmont Camden Preston "
    "Ashford Hudson Marlowe"
).split()
_PLACES = (  # noqa: SIM905
    "Ridge Creek Park Point Crossing Village Heights Landing Square Station Grove Hills Pointe "
    "Trails Gardens Springs Bluff Hollow Glen Commons"
).split()
_KINDS = (
    "Apartments",
    "Residences",
    "Lofts",
    "Flats",
    "Townhomes",
    "Apartment Homes",
    "Living",
    "Villas",
)


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


@dataclass
class _Property:
    id: str
    name: str
    company_id: str
    sfdc_id: str | None
    status: str
    inserted_at: datetime
    updated_at: datetime
    offset: int  # the property's local UTC offset, hours


@dataclass
class _Feature:
    property_id: str
    code: str
    enabled: bool
    enabled_at: datetime | None  # aware, at the property's local offset
    updated_at: datetime  # aware, UTC


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
    props = _properties(rng, properties, now)
    feats = _features(rng, props, now)
    records = _model_records(props, feats)
    invalid_keys = {k for k, r in records.items() if len(r["Name"]) > TEXT_LENGTHS["Name"]}
    crm, drift = _drift(rng, records, invalid_keys, props, now)
    source, config = directory / "source.db", directory / "trueup.yml"
    destination = None if salesforce else directory / "crm.db"
    _write_source(source, props, feats)
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


# --- the product database -------------------------------------------------------------------------
def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def salesforce_id(rng: random.Random, prefix: str = "a0X") -> str:
    """An 18-character Salesforce-style Id: 15-character Id plus its case-safe checksum."""
    body = prefix + "5e0000" + "".join(rng.choice(_B62) for _ in range(6))
    suffix = ""
    for i in range(3):
        bits = sum(1 << j for j, c in enumerate(body[i * 5 : i * 5 + 5]) if "A" <= c <= "Z")
        suffix += "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[bits]
    return body + suffix


def _name(rng: random.Random) -> str:
    a, b, kind = rng.choice(_WORDS), rng.choice(_PLACES), rng.choice(_KINDS)
    form = rng.random()
    if form < 0.45:
        return f"{a} {b} {kind}"
    if form < 0.7:
        return f"The {kind} at {a} {b}"
    if form < 0.85:
        return f"{a} {b}"
    return f"{rng.randint(100, 9999)} {a} {rng.choice(('Avenue', 'Street', 'Boulevard'))}"


def _long_name(rng: random.Random) -> str:
    a, b, c = rng.choice(_WORDS), rng.choice(_PLACES), rng.choice(_WORDS)
    return (
        f"The Residences at {a} {b} Phase II - Senior and Family Living Community "
        f"(formerly {c} Gardens Apartment Homes)"
    )


def _moment(rng: random.Random, start: datetime, end: datetime) -> datetime:
    return start + timedelta(seconds=rng.randrange(max(1, int((end - start).total_seconds()))))


def _properties(rng: random.Random, count: int, now: datetime) -> list[_Property]:
    companies = [_uuid(rng) for _ in range(max(1, count // 25))]
    sfdc_seen: set[str] = set()

    def new_sfdc() -> str:
        while (sid := salesforce_id(rng)) in sfdc_seen:
            pass
        sfdc_seen.add(sid)
        return sid

    sizes: list[int] = []
    shared = round(count * SHARED_SHARE)
    while shared >= 2:
        size = min(rng.randint(2, 4), shared)
        sizes.append(size)
        shared -= size
    sizes += [1] * (count - sum(sizes))
    rng.shuffle(sizes)
    out: list[_Property] = []
    singles: list[int] = []
    for size in sizes:
        base, company = _name(rng), rng.choice(companies)
        sfdc = None if size == 1 and rng.random() < NO_SFDC_SHARE else new_sfdc()
        if size == 1:
            singles.append(len(out))
        for i in range(size):
            recent = rng.random() < RECENT_SHARE
            inserted = _moment(
                rng,
                now - timedelta(days=RECENT_DAYS - 2) if recent else now - timedelta(days=6 * 365),
                now - timedelta(days=3) if recent else now - timedelta(days=RECENT_DAYS + 2),
            )
            churned = not recent and rng.random() < CHURNED_SHARE
            out.append(
                _Property(
                    id=_uuid(rng),
                    name=base if size == 1 else f"{base} - Building {'ABCD'[i]}",
                    company_id=company,
                    sfdc_id=sfdc,
                    status="churned" if churned else ("onboarding" if recent else "active"),
                    inserted_at=inserted,
                    updated_at=_moment(rng, inserted, now),
                    offset=rng.choice(_OFFSETS),
                )
            )
    for i in rng.sample(singles, INVALID_ROWS):  # names no CRM Name field (80) can hold
        out[i].name = _long_name(rng)
    return out


def _enabled_at(rng: random.Random, prop: _Property, now: datetime, *, soon: bool) -> datetime:
    """A local moment after the property's creation; one in eight is late in the evening."""
    tz = timezone(timedelta(hours=prop.offset))
    first = prop.inserted_at.date() + timedelta(days=1)
    last = now.date() - timedelta(days=2)  # 23:59 at UTC-8 on that day is still in the past
    span = (last - first).days
    day = first + timedelta(days=rng.randint(0, min(span, 14) if soon else span))
    hour = rng.randint(20, 23) if rng.random() < 0.125 else rng.randint(8, 18)
    return datetime.combine(day, time(hour, rng.randrange(60), rng.randrange(60)), tz)


def _features(rng: random.Random, props: Sequence[_Property], now: datetime) -> list[_Feature]:
    out: list[_Feature] = []
    for prop in props:
        for product in PRODUCTS:
            rate = PRODUCT_RATES[product.code]
            major = rate > 0.5
            on = prop.status != "churned" and rng.random() < rate
            if on:
                start = _enabled_at(rng, prop, now, soon=major)
                updated = _moment(rng, start.astimezone(UTC), now)
                out.append(_Feature(prop.id, product.code, True, start, updated))
            elif rng.random() < (0.6 if major else 0.015):  # switched off, or a trial that ended
                updated = _moment(rng, prop.inserted_at, now)
                out.append(_Feature(prop.id, product.code, False, None, updated))
    return out


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds")


def _write_source(path: Path, props: Sequence[_Property], feats: Sequence[_Feature]) -> None:
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    try:
        con.executescript(
            """
            CREATE TABLE properties (
                id TEXT PRIMARY KEY, name TEXT NOT NULL, company_id TEXT, sfdc_id TEXT,
                status TEXT, inserted_at TIMESTAMP, updated_at TIMESTAMP);
            CREATE TABLE property_features (
                property_id TEXT NOT NULL REFERENCES properties(id), feature_code TEXT NOT NULL,
                enabled BOOLEAN NOT NULL, enabled_at TIMESTAMP, updated_at TIMESTAMP NOT NULL,
                PRIMARY KEY (property_id, feature_code));
            """
        )
        con.executemany(
            "INSERT INTO properties VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    p.id,
                    p.name,
                    p.company_id,
                    p.sfdc_id,
                    p.status,
                    _iso(p.inserted_at),
                    _iso(p.updated_at),
                )
                for p in props
            ],
        )
        con.executemany(
            "INSERT INTO property_features VALUES (?, ?, ?, ?, ?)",
            [
                (f.property_id, f.code, int(f.enabled), _iso(f.enabled_at), _iso(f.updated_at))
                for f in feats
            ],
        )
        con.commit()
    finally:
        con.close()


# --- the model's output and the drifted CRM -------------------------------------------------------
def _model_records(
    props: Sequence[_Property], feats: Sequence[_Feature]
) -> dict[str, dict[str, Any]]:
    """What the features model yields (DESIGN.md §1), keyed by record key, in field names."""
    by_prop: dict[str, dict[str, _Feature]] = {}
    for f in feats:
        by_prop.setdefault(f.property_id, {})[f.code] = f
    groups: dict[str, list[_Property]] = {}
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
    props: Sequence[_Property],
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
        PRODUCT_FIELDS["member_id"]: _uuid(rng),
        PRODUCT_FIELDS["member_name"]: _name(rng),
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
