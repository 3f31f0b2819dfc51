"""The demo's product database: seeded properties and their feature rows, written to SQLite.

``properties`` and ``features`` draw from one ``random.Random`` in a fixed order, so a seed always
yields the same rows; ``write_source`` stores them as the ``properties`` and ``property_features``
tables the demo's features model reads (DESIGN.md §1). ``trueup.demo_data`` builds the CRM's
records from them and drifts those.
"""

from __future__ import annotations

import random
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, timezone
from pathlib import Path

from trueup.products import PRODUCTS

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
INVALID_ROWS = 4  # properties whose names are longer than Name's 80 characters

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


@dataclass
class Property:
    """A row of ``properties``: one rental property in the product database."""

    id: str
    name: str
    company_id: str
    sfdc_id: str | None
    status: str
    inserted_at: datetime
    updated_at: datetime
    offset: int  # the property's local UTC offset, hours


@dataclass
class Feature:
    """A row of ``property_features``: one product's flag on one property."""

    property_id: str
    code: str
    enabled: bool
    enabled_at: datetime | None  # aware, at the property's local offset
    updated_at: datetime  # aware, UTC


def random_uuid(rng: random.Random) -> str:
    """A version-4 UUID drawn from ``rng``."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def salesforce_id(rng: random.Random, prefix: str = "a0X") -> str:
    """An 18-character Salesforce-style Id: 15-character Id plus its case-safe checksum."""
    body = prefix + "5e0000" + "".join(rng.choice(_B62) for _ in range(6))
    suffix = ""
    for i in range(3):
        bits = sum(1 << j for j, c in enumerate(body[i * 5 : i * 5 + 5]) if "A" <= c <= "Z")
        suffix += "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[bits]
    return body + suffix


def property_name(rng: random.Random) -> str:
    """A plausible US apartment community's name."""
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


def properties(rng: random.Random, count: int, now: datetime) -> list[Property]:
    """``count`` properties: some share a Salesforce Id, some are recent, churned or unlinked."""
    companies = [random_uuid(rng) for _ in range(max(1, count // 25))]
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
    out: list[Property] = []
    singles: list[int] = []
    for size in sizes:
        base, company = property_name(rng), rng.choice(companies)
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
                Property(
                    id=random_uuid(rng),
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


def _enabled_at(rng: random.Random, prop: Property, now: datetime, *, soon: bool) -> datetime:
    """A local moment after the property's creation; one in eight is late in the evening."""
    tz = timezone(timedelta(hours=prop.offset))
    first = prop.inserted_at.date() + timedelta(days=1)
    last = now.date() - timedelta(days=2)  # 23:59 at UTC-8 on that day is still in the past
    span = (last - first).days
    day = first + timedelta(days=rng.randint(0, min(span, 14) if soon else span))
    hour = rng.randint(20, 23) if rng.random() < 0.125 else rng.randint(8, 18)
    return datetime.combine(day, time(hour, rng.randrange(60), rng.randrange(60)), tz)


def features(rng: random.Random, props: Sequence[Property], now: datetime) -> list[Feature]:
    """Each property's product rows: on at ``PRODUCT_RATES``, some off (switched off or trials)."""
    out: list[Feature] = []
    for prop in props:
        for product in PRODUCTS:
            rate = PRODUCT_RATES[product.code]
            major = rate > 0.5
            on = prop.status != "churned" and rng.random() < rate
            if on:
                start = _enabled_at(rng, prop, now, soon=major)
                updated = _moment(rng, start.astimezone(UTC), now)
                out.append(Feature(prop.id, product.code, True, start, updated))
            elif rng.random() < (0.6 if major else 0.015):  # switched off, or a trial that ended
                updated = _moment(rng, prop.inserted_at, now)
                out.append(Feature(prop.id, product.code, False, None, updated))
    return out


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds")


def write_source(path: Path, props: Sequence[Property], feats: Sequence[Feature]) -> None:
    """Replace ``path`` with a SQLite database of ``properties`` and ``property_features``."""
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
