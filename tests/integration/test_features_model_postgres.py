"""The features model on PostgreSQL: DESIGN.md §1 tables, hand-built rows, hand-computed output."""

from __future__ import annotations

from datetime import date

import psycopg
import pyarrow as pa
import pytest

from trueup.config import FeaturesModelConfig
from trueup.errors import SourceError
from trueup.models import build_model
from trueup.sources import PostgresSource

PRODUCTS = ["fraud_detection", "income_verification", "identity_verification"]

DDL = """
CREATE TABLE {s}.properties (
    id uuid PRIMARY KEY, name text NOT NULL, company_id uuid, sfdc_id text NULL, status text,
    inserted_at timestamptz, updated_at timestamptz
);
CREATE TABLE {s}.property_features (
    property_id uuid NOT NULL REFERENCES {s}.properties, feature_code text NOT NULL,
    enabled boolean NOT NULL, enabled_at timestamptz NULL, updated_at timestamptz NOT NULL,
    PRIMARY KEY (property_id, feature_code)
);
"""

SINGLE = "11111111-1111-1111-1111-111111111111"
MAPLE_B = "aaaaaaaa-0000-0000-0000-000000000001"
MAPLE_C = "bbbbbbbb-0000-0000-0000-000000000002"
MAPLE_A = "CCCCCCCC-0000-0000-0000-000000000003"  # PostgreSQL prints it lower-case
BIRCH = "33333333-3333-3333-3333-333333333333"
CEDAR_WEST = "44444444-4444-4444-4444-444444444444"
CEDAR_EAST = "dddddddd-0000-0000-0000-000000000004"

PROPERTIES = [
    # id, name, sfdc_id, inserted_at
    (SINGLE, "Oak Flats", None, "2023-01-01 10:00+00"),
    # one Salesforce property, three members; Maple A was created first but has the largest id
    (MAPLE_B, "Maple Court B", "a0B000000000001AAA", "2022-06-01 00:00+00"),
    (MAPLE_C, "Maple Court C", "a0B000000000001AAA", None),
    (MAPLE_A, "Maple Court A", "a0B000000000001AAA", "2022-05-01 00:00+00"),
    # a single member that already has a Salesforce property, and no feature rows at all
    (BIRCH, "Birch House", "a0B000000000002AAA", "2021-03-03 03:03+00"),
    # two members created at the same instant: the smaller id represents the group
    (CEDAR_EAST, "Cedar East", "a0B000000000003AAA", "2021-01-01 00:00+00"),
    (CEDAR_WEST, "Cedar West", "a0B000000000003AAA", "2021-01-01 00:00+00"),
]

FEATURES = [
    # property_id, feature_code, enabled, enabled_at, updated_at
    (SINGLE, "fraud_detection", True, "2023-02-01 09:00+00", "2023-03-01 23:30-05"),
    (SINGLE, "income_verification", False, None, "2023-03-02 08:00+00"),
    (
        SINGLE,
        "legacy_screening",
        True,
        "2020-01-01 00:00+00",
        "2020-01-01 00:00+00",
    ),  # not a product
    (MAPLE_B, "fraud_detection", True, "2022-07-10 10:00+00", "2023-01-05 10:00+00"),
    (MAPLE_B, "income_verification", False, None, "2023-01-05 10:00+00"),
    (MAPLE_C, "fraud_detection", False, None, "2024-04-01 10:00+00"),
    (MAPLE_C, "income_verification", True, "2024-03-31 22:00-05", "2024-04-01 03:00+00"),
    (MAPLE_A, "fraud_detection", True, "2022-06-15 23:30-05", "2022-06-16 04:30+00"),
    (CEDAR_EAST, "identity_verification", True, "2021-02-01 00:00+00", "2021-02-01 00:00+00"),
    (CEDAR_WEST, "identity_verification", False, None, "2021-01-15 12:00+00"),
]

OFF = {"enabled": False, "start_date": None, "updated_date": None}


def _row(
    key: str,
    member_id: str,
    name: str,
    group_id: str | None,
    count: int,
    **products: dict[str, object],
) -> dict[str, object]:
    row: dict[str, object] = {
        "key": key,
        "member_id": member_id,
        "member_name": name,
        "group_id": group_id,
        "is_multi_member": count > 1,
        "member_count": count,
    }
    for code in PRODUCTS:
        for field, value in products.get(code, OFF).items():
            row[f"{code}_{field}"] = value
    return row


def _on(start: date | None, updated: date) -> dict[str, object]:
    return {"enabled": True, "start_date": start, "updated_date": updated}


def _off(updated: date) -> dict[str, object]:
    return {"enabled": False, "start_date": None, "updated_date": updated}


EXPECTED = [
    _row(
        SINGLE, SINGLE, "Oak Flats", None, 1,
        fraud_detection=_on(date(2023, 2, 1), date(2023, 3, 2)),  # 23:30 at -05:00 is 2 March UTC
        income_verification=_off(date(2023, 3, 2)),
    ),
    _row(
        "a0B000000000001AAA", MAPLE_A.lower(), "Maple Court A", "a0B000000000001AAA", 3,
        fraud_detection=_on(date(2022, 6, 16), date(2024, 4, 1)),  # earliest start, latest update
        income_verification=_on(date(2024, 4, 1), date(2024, 4, 1)),  # enabled on one member
    ),
    _row("a0B000000000002AAA", BIRCH, "Birch House", "a0B000000000002AAA", 1),
    _row(
        "a0B000000000003AAA", CEDAR_WEST, "Cedar West", "a0B000000000003AAA", 2,
        identity_verification=_on(date(2021, 2, 1), date(2021, 2, 1)),
    ),
]  # fmt: skip

SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("member_id", pa.string()),
        ("member_name", pa.string()),
        ("group_id", pa.string()),
        ("is_multi_member", pa.bool_()),
        ("member_count", pa.int64()),
        ("fraud_detection_enabled", pa.bool_()),
        ("fraud_detection_start_date", pa.date32()),
        ("fraud_detection_updated_date", pa.date32()),
        ("income_verification_enabled", pa.bool_()),
        ("income_verification_start_date", pa.date32()),
        ("income_verification_updated_date", pa.date32()),
        ("identity_verification_enabled", pa.bool_()),
        ("identity_verification_start_date", pa.date32()),
        ("identity_verification_updated_date", pa.date32()),
    ]
)


@pytest.fixture()
def features_db(pg_url: str, pg_schema: str) -> str:
    """The two tables of DESIGN.md §1 in a fresh schema, filled with the rows above."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(DDL.format(s=f'"{pg_schema}"'))
        with conn.cursor() as cur:
            cur.executemany(
                f'INSERT INTO "{pg_schema}".properties (id, name, sfdc_id, inserted_at)'
                " VALUES (%s, %s, %s, %s)",
                PROPERTIES,
            )
            cur.executemany(
                f'INSERT INTO "{pg_schema}".property_features VALUES (%s, %s, %s, %s, %s)',
                FEATURES,
            )
    return pg_schema


def _config(schema: str, **overrides: object) -> FeaturesModelConfig:
    return FeaturesModelConfig.model_validate(
        {
            "kind": "features",
            "records_table": f"{schema}.properties",
            "features_table": f"{schema}.property_features",
            "products": PRODUCTS,
            **overrides,
        }
    )


def test_features_model_matches_hand_computed_rows(pg_url: str, features_db: str) -> None:
    with PostgresSource(pg_url, fetch_size=3) as source:
        reader = build_model(_config(features_db)).read(source)
        assert reader.schema == SCHEMA
        assert reader.read_all().to_pylist() == EXPECTED


def test_a_configured_column_missing_from_the_table_names_it(pg_url: str, features_db: str) -> None:
    config = _config(features_db, created_at="created_on")
    with PostgresSource(pg_url) as source, pytest.raises(SourceError) as caught:
        build_model(config).read(source)
    message = str(caught.value)
    assert f"table {features_db}.properties has no column 'created_on'" in message
    assert "inserted_at" in message  # the columns that do exist are listed
