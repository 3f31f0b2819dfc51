"""The features model's semantics (DESIGN.md §1) on files and SQLite sources: quick, no server."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest

from trueup.config import FeaturesModelConfig
from trueup.errors import SourceError
from trueup.models import FeaturesModel, build_model
from trueup.models.features import output_schema
from trueup.sources import FilesSource, SQLiteSource

PRODUCTS = ["fraud_detection", "income_verification"]
SOLO = "11111111-1111-1111-1111-111111111111"
NOTHING = "33333333-3333-3333-3333-333333333333"
GROUP_B = "aaaaaaaa-0000-0000-0000-000000000001"
GROUP_A = "cccccccc-0000-0000-0000-000000000003"
ORPHAN = "eeeeeeee-0000-0000-0000-000000000009"

PROPERTIES_CSV = f"""\
id,name,sfdc_id,inserted_at
{SOLO},Solo,,2023-01-01 10:00:00+00:00
{GROUP_B},Group B,a0BGROUP1,2022-06-01 00:00:00+00:00
{GROUP_A},Group A,a0BGROUP1,2022-05-01 00:00:00+00:00
{NOTHING},Nothing,,2021-01-01 00:00:00+00:00
"""
# enabled_at carries offsets (timestamptz), updated_at has none (naive: taken as UTC). Group A's
# feature rows spell its uuid in upper case; the orphan row's property does not exist.
FEATURES_CSV = f"""\
property_id,feature_code,enabled,enabled_at,updated_at
{SOLO},fraud_detection,true,2024-03-10 23:30:00-05:00,2024-03-11 12:00:00
{SOLO},income_verification,false,,2024-03-11 12:00:00
{SOLO},other_product,true,2020-01-01 00:00:00+00:00,2020-01-01 00:00:00
{GROUP_B},fraud_detection,false,,2024-05-01 00:00:00
{GROUP_A.upper()},fraud_detection,true,2022-06-01 00:00:00+00:00,2022-06-01 00:00:00
{GROUP_A.upper()},income_verification,true,2022-07-01 00:00:00+00:00,2022-07-02 00:00:00
{ORPHAN},fraud_detection,true,2019-01-01 00:00:00+00:00,2019-01-01 00:00:00
"""


def _row(
    key: str, member: str, name: str, group: str | None, count: int, *flags: Any
) -> dict[str, Any]:
    row = {
        "key": key,
        "member_id": member,
        "member_name": name,
        "group_id": group,
        "is_multi_member": count > 1,
        "member_count": count,
    }
    for code, (enabled, start, updated) in zip(PRODUCTS, flags, strict=True):
        row |= {
            f"{code}_enabled": enabled,
            f"{code}_start_date": start,
            f"{code}_updated_date": updated,
        }
    return row


OFF = (False, None, None)
EXPECTED = [
    # 23:30 at -05:00 on 10 March is 11 March in UTC
    _row(SOLO, SOLO, "Solo", None, 1,
         (True, date(2024, 3, 11), date(2024, 3, 11)), (False, None, date(2024, 3, 11))),
    _row(NOTHING, NOTHING, "Nothing", None, 1, OFF, OFF),
    # any member enabled, earliest start, latest update; Group A was created first
    _row("a0BGROUP1", GROUP_A, "Group A", "a0BGROUP1", 2,
         (True, date(2022, 6, 1), date(2024, 5, 1)), (True, date(2022, 7, 1), date(2022, 7, 2))),
]  # fmt: skip


def _config(**overrides: Any) -> FeaturesModelConfig:
    return FeaturesModelConfig.model_validate(
        {"kind": "features", "products": PRODUCTS, **overrides}
    )


@pytest.fixture()
def files_source(tmp_path: Path) -> FilesSource:
    (tmp_path / "properties.csv").write_text(PROPERTIES_CSV)
    (tmp_path / "property_features.csv").write_text(FEATURES_CSV)
    return FilesSource(
        {
            "properties": tmp_path / "properties.csv",
            "property_features": tmp_path / "property_features.csv",
        }
    )


@pytest.fixture()
def new_york_duckdb(monkeypatch: pytest.MonkeyPatch) -> None:
    """New DuckDB connections start in New York time, as they would on a machine set to it."""
    connect = duckdb.connect

    def connect_in_new_york(*args: Any, **kwargs: Any) -> duckdb.DuckDBPyConnection:
        conn = connect(*args, **kwargs)
        conn.execute("SET TimeZone = 'America/New_York'")
        return conn

    monkeypatch.setattr(duckdb, "connect", connect_in_new_york)


@pytest.mark.usefixtures("new_york_duckdb")
def test_pivot_matches_hand_computed_rows_whatever_the_local_zone(
    files_source: FilesSource,
) -> None:
    with files_source:
        reader = build_model(_config()).read(files_source)
        assert reader.schema == output_schema(PRODUCTS)
        assert reader.read_all().to_pylist() == EXPECTED


def test_output_columns_are_in_contract_order() -> None:
    assert output_schema(["b_code", "a_code"]).names == [
        "key", "member_id", "member_name", "group_id", "is_multi_member", "member_count",
        "b_code_enabled", "b_code_start_date", "b_code_updated_date",
        "a_code_enabled", "a_code_start_date", "a_code_updated_date",
    ]  # fmt: skip


def test_a_missing_configured_column_names_table_column_and_what_exists(
    files_source: FilesSource,
) -> None:
    with files_source, pytest.raises(SourceError) as caught:
        FeaturesModel(_config(enabled="is_on")).read(files_source)
    message = str(caught.value)
    assert "table property_features has no column 'is_on'" in message
    assert "property_id, feature_code, enabled, enabled_at, updated_at" in message


def _sqlite(path: Path, properties: list[tuple[Any, ...]], features: list[tuple[Any, ...]]) -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE properties (id INTEGER PRIMARY KEY, name TEXT, sfdc_id TEXT,"
            " inserted_at TEXT)"
        )
        conn.execute(
            "CREATE TABLE property_features (property_id INTEGER, feature_code TEXT,"
            " enabled BOOLEAN, enabled_at TEXT, updated_at TEXT)"
        )
        conn.executemany("INSERT INTO properties VALUES (?, ?, ?, ?)", properties)
        conn.executemany("INSERT INTO property_features VALUES (?, ?, ?, ?, ?)", features)
    conn.close()
    return path


def test_sqlite_integer_ids_text_timestamps_and_blank_group(tmp_path: Path) -> None:
    path = _sqlite(
        tmp_path / "app.db",
        [(7, "Seven", "", "2024-01-01T00:00:00Z"), (8, "Eight", None, None)],
        [
            (7, "fraud_detection", 1, "2024-02-29T22:15:00-03:00", "2024-03-01T01:15:00Z"),
            (8, "income_verification", 0, None, "2024-01-05 08:00:00"),
        ],
    )
    with SQLiteSource(path) as source:
        rows = build_model(_config()).read(source).read_all().to_pylist()
    assert rows == [
        # a blank sfdc_id is no group: the key is the record's own id
        _row("7", "7", "Seven", None, 1, (True, date(2024, 3, 1), date(2024, 3, 1)), OFF),
        _row("8", "8", "Eight", None, 1, OFF, (False, None, date(2024, 1, 5))),
    ]


def test_no_records_gives_no_rows_with_the_fixed_schema(tmp_path: Path) -> None:
    with SQLiteSource(_sqlite(tmp_path / "empty.db", [], [])) as source:
        table = build_model(_config()).read(source).read_all()
    assert table.num_rows == 0
    assert table.schema == output_schema(PRODUCTS)
