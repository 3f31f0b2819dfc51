"""A PostgreSQL product database synced to a SQL table, with the features model, end to end."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import yaml
from e2e_cli import Trueup

from trueup.destinations.sql import create_table
from trueup.schema import FieldSpec, FieldType

pytestmark = pytest.mark.postgres

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
OAK = "11111111-1111-1111-1111-111111111111"
MAPLE_A = "aaaaaaaa-0000-0000-0000-00000000000a"  # created first: it represents the group
MAPLE_B = "bbbbbbbb-0000-0000-0000-00000000000b"
BIRCH = "33333333-3333-3333-3333-333333333333"
CEDAR = "44444444-4444-4444-4444-444444444444"
MAPLE_SF = "a0B000000000001AAA"
PROPERTIES = [
    # id, name, sfdc_id, inserted_at
    (OAK, "Oak Flats", None, "2023-01-01 10:00+00"),
    (MAPLE_B, "Maple Court B", MAPLE_SF, "2022-06-01 00:00+00"),
    (MAPLE_A, "Maple Court A", MAPLE_SF, "2022-05-01 00:00+00"),
    (BIRCH, "Birch House", "a0B000000000002AAA", "2021-03-03 03:03+00"),
    (CEDAR, "Cedar Lofts", "", "2021-01-01 00:00+00"),  # a blank sfdc_id counts as none
]
FEATURES = [
    # property_id, feature_code, enabled, enabled_at, updated_at
    (OAK, "fraud_detection", True, "2023-02-01 09:00+00", "2023-03-01 23:30-05"),
    (MAPLE_B, "fraud_detection", True, "2022-07-10 10:00+00", "2023-01-05 10:00+00"),
    (MAPLE_A, "fraud_detection", True, "2022-06-15 23:30-05", "2022-06-16 04:30+00"),
    (MAPLE_A, "income_verification", False, None, "2022-06-20 00:00+00"),
    (MAPLE_B, "income_verification", True, "2024-03-31 22:00-05", "2024-04-01 03:00+00"),
    (CEDAR, "income_verification", True, "2021-02-01 00:00+00", "2021-02-01 00:00+00"),
]
MAPPING = {
    "key": "Reverse_ETL_ID__c",
    "member_id": "Snappt_Property_ID__c",
    "member_name": "Name",
    "group_id": "Property__c",
    "is_multi_member": "Is_Multi_Property__c",
    "fraud_detection_enabled": "Fraud_Detection_Enabled__c",
    "fraud_detection_start_date": "Fraud_Detection_Start_Date__c",
    "income_verification_enabled": "Income_Verification_Enabled__c",
    "income_verification_start_date": "Income_Verification_Start_Date__c",
}
FIELDS = [
    FieldSpec("Reverse_ETL_ID__c", FieldType.TEXT, nullable=False, length=255, unique=True),
    FieldSpec("Snappt_Property_ID__c", FieldType.TEXT, length=36),
    FieldSpec("Name", FieldType.TEXT, length=80),
    FieldSpec("Property__c", FieldType.TEXT, length=18),
    FieldSpec("Is_Multi_Property__c", FieldType.BOOLEAN, nullable=False),
    FieldSpec("Fraud_Detection_Enabled__c", FieldType.BOOLEAN, nullable=False),
    FieldSpec("Fraud_Detection_Start_Date__c", FieldType.DATE),
    FieldSpec("Income_Verification_Enabled__c", FieldType.BOOLEAN, nullable=False),
    FieldSpec("Income_Verification_Start_Date__c", FieldType.DATE),
]


def _product_database(pg_url: str, schema: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(DDL.format(s=f'"{schema}"'))
        with conn.cursor() as cur:
            cur.executemany(
                f'INSERT INTO "{schema}".properties (id, name, sfdc_id, inserted_at) '
                "VALUES (%s, %s, %s, %s)",
                PROPERTIES,
            )
            cur.executemany(
                f'INSERT INTO "{schema}".property_features VALUES (%s, %s, %s, %s, %s)',
                FEATURES,
            )


def test_postgres_features_to_a_sql_table(
    tmp_path: Path, trueup: Trueup, pg_url: str, pg_schema: str
) -> None:
    _product_database(pg_url, pg_schema)
    create_table(
        "sqlite:///crm.db", "Product_Property__c", FIELDS, "Reverse_ETL_ID__c", base_dir=tmp_path
    )
    url, password = _with_password(pg_url)
    env = {"PRODUCT_DB_URL": url}  # secrets come from the environment
    config = {
        "source": {"kind": "postgres", "url": "${PRODUCT_DB_URL}"},
        "model": {
            "kind": "features",
            "records_table": f"{pg_schema}.properties",
            "features_table": f"{pg_schema}.property_features",
            "products": ["fraud_detection", "income_verification"],
        },
        "key": "key",
        "destination": {"kind": "sql", "url": "sqlite:///crm.db", "table": "Product_Property__c"},
        "mapping": MAPPING,
    }
    (tmp_path / "trueup.yml").write_text(yaml.safe_dump(config))

    applied = trueup("apply", "--yes", env=env)

    assert applied.code == 0, applied.err
    assert applied.plan_counts() == {
        "create": 4,
        "update": 0,
        "unchanged": 0,
        "missing_in_source": 0,
        "invalid": 0,
    }
    assert applied.table_counts()["created"] == 4
    checked = trueup("check", env=env)
    assert checked.code == 0, checked.err
    assert "Accuracy: 100.00% (4 of 4 source records agree" in checked.out
    assert "Multi-member groups: 1 (1 agree)" in checked.out
    con = sqlite3.connect(tmp_path / "crm.db")
    try:
        rows = {
            row[0]: row[1:]
            for row in con.execute(
                'SELECT "Reverse_ETL_ID__c", "Snappt_Property_ID__c", "Name", "Property__c", '
                '"Is_Multi_Property__c", "Fraud_Detection_Enabled__c", '
                '"Fraud_Detection_Start_Date__c", "Income_Verification_Enabled__c", '
                '"Income_Verification_Start_Date__c" FROM "Product_Property__c"'
            )
        }
    finally:
        con.close()
    assert rows == {
        # the group: earliest member's id and name; on if on anywhere; earliest UTC start date
        MAPLE_SF: (MAPLE_A, "Maple Court A", MAPLE_SF, 1, 1, "2022-06-16", 1, "2024-04-01"),
        OAK: (OAK, "Oak Flats", None, 0, 1, "2023-02-01", 0, None),
        "a0B000000000002AAA": (BIRCH, "Birch House", "a0B000000000002AAA", 0, 0, None, 0, None),
        CEDAR: (CEDAR, "Cedar Lofts", None, 0, 0, None, 1, "2021-02-01"),
    }
    again = trueup("plan", "--json", env=env)
    assert again.json()["counts"]["create"] == again.json()["counts"]["update"] == 0
    # The password is never printed, saved in a plan or kept in the run store.
    runs = trueup("runs", "1", "--json", env=env)
    assert trueup("plan", "--out", "p.json", env=env).code == 0
    for ran in (applied, checked, again, runs):
        assert password not in ran.out + ran.err
    assert password not in (tmp_path / "p.json").read_text()
    assert password.encode() not in (tmp_path / ".trueup" / "state.db").read_bytes()


def _with_password(url: str) -> tuple[str, str]:
    """The URL with a password (the test server trusts local users, so any will do)."""
    parts = urlsplit(url)
    if parts.password:
        return url, parts.password
    password = "e2e-Secret-4711"
    netloc = f"{parts.username or 'postgres'}:{password}@{parts.hostname}:{parts.port or 5432}"
    return urlunsplit(parts._replace(netloc=netloc)), password
