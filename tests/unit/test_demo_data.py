"""The demo data: deterministic, the realistic product mix, and exactly the drift it reports."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from trueup.config import SalesforceDestinationConfig, load_config
from trueup.config_salesforce import ClientCredentialsAuth
from trueup.demo_data import (
    CLIENT_ID_VAR,
    CLIENT_SECRET_VAR,
    DemoFiles,
    Drift,
    SandboxTarget,
    generate_demo,
    salesforce_id,
)
from trueup.destinations import open_destination
from trueup.diff import Action
from trueup.products import PRODUCT_FIELDS, PRODUCTS, SALESFORCE_OBJECT
from trueup.schema import FieldType

TODAY = date(2025, 6, 1)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoFiles:
    return generate_demo(tmp_path_factory.mktemp("demo"), today=TODAY)


@pytest.fixture(scope="module")
def con(demo: DemoFiles) -> duckdb.DuckDBPyConnection:
    """DuckDB with the source tables (read with sqlite3) and the CRM table attached."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    with sqlite3.connect(demo.source) as src:
        for table in ("properties", "property_features"):
            cur = src.execute(f"SELECT * FROM {table}")
            names = [c[0] for c in cur.description]
            rows = cur.fetchall()
            data = pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)})
            con.register(f"{table}_rows", data)
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM {table}_rows")
    with sqlite3.connect(demo.destination) as dst:
        cur = dst.execute(f"SELECT * FROM {SALESFORCE_OBJECT}")
        names = [c[0] for c in cur.description]
        rows = cur.fetchall()
    crm = pa.table({n: pa.array([r[i] for r in rows]) for i, n in enumerate(names)})
    con.register("crm_rows", crm)
    casts = [
        f"CAST({n} AS DATE) AS {n}"
        if column.endswith("_date")
        else f"CAST({n} AS BOOLEAN) AS {n}"
        if column.endswith("_enabled") or column == "is_multi_member"
        else n
        for column, n in PRODUCT_FIELDS.items()
    ]
    con.execute(f"CREATE TABLE dest AS SELECT {', '.join(casts)} FROM crm_rows")
    con.execute(_reference_model_sql())
    return con


def _reference_model_sql() -> str:
    """DESIGN.md §1's model, written independently of demo_data, in DuckDB SQL."""
    cols = []
    for p in PRODUCTS:
        cond = f"feature_code = '{p.code}'"
        cols += [
            f"coalesce(bool_or(enabled::BOOLEAN) FILTER ({cond}), false) AS {p.enabled_field}",
            f"min(CAST(timezone('UTC', enabled_at::TIMESTAMPTZ) AS DATE)) FILTER ({cond}) "
            f"AS {p.start_date_field}",
            f"max(CAST(timezone('UTC', f.updated_at::TIMESTAMPTZ) AS DATE)) FILTER ({cond}) "
            f"AS {p.updated_date_field}",
        ]
    per_product = [
        f"coalesce(f.{p.enabled_field}, false) AS {p.enabled_field}, "
        f"f.{p.start_date_field}, f.{p.updated_date_field}"
        for p in PRODUCTS
    ]
    return f"""
CREATE TABLE model AS
WITH members AS (
    SELECT coalesce(sfdc_id, id) AS key, count(*) AS n,
           arg_min(id, inserted_at::TIMESTAMPTZ) AS member_id,
           arg_min(name, inserted_at::TIMESTAMPTZ) AS member_name,
           any_value(sfdc_id) AS group_id
    FROM properties GROUP BY ALL
), features AS (
    SELECT coalesce(p.sfdc_id, p.id) AS key, {", ".join(cols)}
    FROM property_features f JOIN properties p ON p.id = f.property_id GROUP BY ALL
)
SELECT m.key AS Reverse_ETL_ID__c, m.member_id AS Snappt_Property_ID__c, m.member_name AS Name,
       m.group_id AS Property__c, m.n > 1 AS Is_Multi_Property__c,
       {", ".join(per_product)}
FROM members m LEFT JOIN features f USING (key)
"""


def _dump(files: DemoFiles) -> tuple[list[str], list[tuple[object, ...]], str]:
    with sqlite3.connect(files.source) as src:
        source = list(src.iterdump())
    crm = []
    if files.destination is not None:
        with sqlite3.connect(files.destination) as dst:
            crm = dst.execute(f"SELECT * FROM {SALESFORCE_OBJECT}").fetchall()
    return source, crm, files.config.read_text()


def test_same_seed_same_files_other_seed_other_files(tmp_path: Path) -> None:
    one = generate_demo(tmp_path / "one", properties=1500, today=TODAY)
    two = generate_demo(tmp_path / "two", properties=1500, today=TODAY)
    three = generate_demo(tmp_path / "three", properties=1500, seed=8, today=TODAY)

    assert _dump(one) == _dump(two)
    assert (one.drift, one.expected) == (two.drift, two.expected)
    assert _dump(one)[0] != _dump(three)[0]


def test_generating_again_replaces_the_files(tmp_path: Path) -> None:
    first = _dump(generate_demo(tmp_path, properties=1500, today=TODAY))
    assert _dump(generate_demo(tmp_path, properties=1500, today=TODAY)) == first


def test_product_mix_is_realistic(demo: DemoFiles, con: duckdb.DuckDBPyConnection) -> None:
    shares = dict(
        con.sql(
            "SELECT feature_code, count(*) FILTER (WHERE enabled = 1) / 20000 "
            "FROM property_features GROUP BY ALL"
        ).fetchall()
    )
    assert 0.93 <= shares["fraud_detection"] <= 0.97
    assert 0.88 <= shares["income_verification"] <= 0.92
    for p in PRODUCTS[2:]:
        assert 0 < shares[p.code] < 0.01, p.code
    assert demo.properties == 20000


def test_some_properties_share_a_salesforce_property(con: duckdb.DuckDBPyConnection) -> None:
    shared, largest, ids_ok = con.sql(
        "SELECT sum(n) FILTER (WHERE n > 1) / 20000, max(n), "
        "bool_and(regexp_full_match(sfdc_id, 'a0X[0-9A-Za-z]{15}')) "
        "FROM (SELECT sfdc_id, count(*) AS n FROM properties WHERE sfdc_id IS NOT NULL GROUP BY 1)"
    ).fetchall()[0]
    assert 0.02 <= shared <= 0.04
    assert largest == 4
    assert ids_ok


def test_some_evening_starts_fall_on_the_next_utc_day(con: duckdb.DuckDBPyConnection) -> None:
    crossing, total = con.sql(
        "SELECT count(*) FILTER (WHERE CAST(timezone('UTC', enabled_at::TIMESTAMPTZ) AS DATE) "
        "<> CAST(left(enabled_at, 10) AS DATE)), count(enabled_at) FROM property_features"
    ).fetchall()[0]
    assert enabled_offsets_are_negative(con)
    assert 0.05 * total < crossing < 0.4 * total


def enabled_offsets_are_negative(con: duckdb.DuckDBPyConnection) -> bool:
    (ok,) = con.sql(
        "SELECT bool_and(regexp_full_match(enabled_at, '.*T.*-0[4-8]:00')) "
        "FROM property_features WHERE enabled_at IS NOT NULL"
    ).fetchall()[0]
    return bool(ok)


def test_drift_numbers_are_in_the_requested_ranges(demo: DemoFiles) -> None:
    assert 0.11 * demo.records <= demo.drift[Drift.MISSING] <= 0.13 * demo.records
    assert 0.05 * demo.records <= demo.drift[Drift.WRONG_FLAG] <= 0.07 * demo.records
    # 4%: repairing them flips under 10% of the fraud flags, inside the default flip guard
    assert 770 <= demo.drift[Drift.ALL_FALSE] <= 830
    assert 280 <= demo.drift[Drift.ORPHAN] <= 320
    assert 3 <= demo.invalid <= 5
    assert sum(demo.expected.get(a, 0) for a in Action if a is not Action.MISSING_IN_SOURCE) == (
        demo.records
    )


def test_crm_differs_from_the_model_exactly_by_the_reported_drift(
    demo: DemoFiles, con: duckdb.DuckDBPyConnection
) -> None:
    fields = [c for (c,) in con.sql("SELECT column_name FROM (DESCRIBE model)").fetchall()]
    distinct = " + ".join(f"(m.{f} IS DISTINCT FROM d.{f})::INT" for f in fields[1:])
    all_false = " AND ".join(
        f"NOT d.{p.enabled_field} AND d.{p.start_date_field} IS NULL" for p in PRODUCTS
    )
    row = con.sql(
        f"""
        SELECT count(*) FILTER (WHERE d.Reverse_ETL_ID__c IS NULL AND length(m.Name) <= 80),
               count(*) FILTER (WHERE m.Reverse_ETL_ID__c IS NULL),
               count(*) FILTER (WHERE {all_false} AND {distinct} > 0 AND m.key_ok),
               count(*) FILTER (WHERE {distinct} = 1 AND m.key_ok),
               count(*) FILTER (WHERE {distinct} > 0 AND m.key_ok AND d.present),
               count(*) FILTER (WHERE length(m.Name) > 80),
               count(*) FILTER (WHERE length(m.Name) > 80 AND d.Reverse_ETL_ID__c IS NULL)
        FROM (SELECT *, TRUE AS key_ok FROM model) m
        FULL JOIN (SELECT *, TRUE AS present FROM dest) d USING (Reverse_ETL_ID__c)
        """
    ).fetchall()[0]
    missing, orphans, all_false_n, wrong, changed, invalid, invalid_absent = row
    assert missing == demo.drift[Drift.MISSING]
    assert orphans == demo.drift[Drift.ORPHAN]
    assert all_false_n == demo.drift[Drift.ALL_FALSE]
    assert wrong == demo.drift[Drift.WRONG_FLAG]
    assert changed == demo.expected[Action.UPDATE]
    assert invalid == invalid_absent == demo.invalid == demo.expected[Action.INVALID]
    assert con.sql("SELECT count(*) FROM model").fetchall()[0] == (demo.records,)


def test_all_false_records_are_recent(con: duckdb.DuckDBPyConnection) -> None:
    enabled = " AND ".join(
        f"NOT d.{p.enabled_field} AND d.{p.start_date_field} IS NULL" for p in PRODUCTS
    )
    (oldest,) = con.sql(
        f"""
        SELECT min(created)::DATE FROM dest d
        JOIN (SELECT coalesce(sfdc_id, id) AS key, min(inserted_at::TIMESTAMPTZ) AS created
              FROM properties GROUP BY 1) p ON p.key = d.Reverse_ETL_ID__c
        JOIN model m USING (Reverse_ETL_ID__c)
        WHERE {enabled} AND m.Fraud_Detection_Enabled__c
        """
    ).fetchall()[0]
    assert oldest >= date(2025, 4, 2)


def test_destination_types_and_config(demo: DemoFiles) -> None:
    loaded = load_config(demo.config)
    with open_destination(loaded) as destination:
        fields = destination.describe().fields
    assert fields["Reverse_ETL_ID__c"].type is FieldType.TEXT
    assert fields["Reverse_ETL_ID__c"].unique
    assert fields["Is_Multi_Property__c"].type is FieldType.BOOLEAN
    assert not fields["Is_Multi_Property__c"].nullable
    assert fields["VOR_Start_Date__c"].type is FieldType.DATE
    assert fields["Name"].length == 80
    assert loaded.config.destination.batch_size == 500
    assert loaded.config.source.kind == "sqlite"


def test_salesforce_ids_carry_their_case_checksum() -> None:
    import random

    sid = salesforce_id(random.Random(1))
    assert len(sid) == 18 and sid.startswith("a0X")
    suffix = "".join(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[
            sum(1 << j for j, c in enumerate(sid[i * 5 : i * 5 + 5]) if c.isupper())
        ]
        for i in range(3)
    )
    assert sid[15:] == suffix


def test_a_salesforce_demo_drifts_the_same_records_for_the_org(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sql = generate_demo(tmp_path / "sql", properties=1500, today=TODAY)
    target = SandboxTarget("https://127.0.0.1:8443", "ca.pem")
    org = generate_demo(tmp_path / "org", properties=1500, today=TODAY, salesforce=target)

    # The same source, drift and plan; the CRM's rows are records for the org, not a crm.db.
    assert _dump(org)[0] == _dump(sql)[0]
    assert (org.drift, org.expected) == (sql.drift, sql.expected)
    assert org.destination is None and not (tmp_path / "org" / "crm.db").exists()
    assert sql.destination is not None
    with sqlite3.connect(sql.destination) as dst:
        dst.row_factory = sqlite3.Row
        rows = [dict(r) for r in dst.execute(f"SELECT * FROM {SALESFORCE_OBJECT}")]
    as_sqlite = [
        {k: int(v) if isinstance(v, bool) else v for k, v in r.items()} for r in org.crm_records
    ]
    assert as_sqlite == rows
    assert all(isinstance(r["Is_Multi_Property__c"], bool) for r in org.crm_records)

    # The config logs in with client credentials named, not held: it loads once they are set.
    text = org.config.read_text()
    assert f"${{{CLIENT_ID_VAR}}}" in text and f"${{{CLIENT_SECRET_VAR}}}" in text
    monkeypatch.setenv(CLIENT_ID_VAR, "demo-client")
    monkeypatch.setenv(CLIENT_SECRET_VAR, "demo-secret-value")
    destination = load_config(org.config).config.destination
    assert isinstance(destination, SalesforceDestinationConfig)
    assert isinstance(destination.auth, ClientCredentialsAuth)
    assert destination.auth.instance_url == "https://127.0.0.1:8443"
    assert destination.auth.client_secret.get_secret_value() == "demo-secret-value"
    assert destination.ca_bundle == "ca.pem"
    assert destination.object == SALESFORCE_OBJECT
