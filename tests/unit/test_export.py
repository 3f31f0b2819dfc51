"""The export writer: Data Loader cells, file naming and order, the manifest, refusals.

Plans are made by the real diff from small source and destination tables.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from trueup.csv_cells import CellStyle, csv_cell
from trueup.destinations.base import Capabilities
from trueup.diff import Action, diff
from trueup.errors import PlanError
from trueup.export import MANIFEST, export_plan, owns
from trueup.plan import Plan
from trueup.schema import DestinationSchema, FieldSpec, FieldType

UTC = dt.UTC
PLUS2 = dt.timezone(dt.timedelta(hours=2))
KEY = "Ext__c"
SCHEMA = DestinationSchema(
    "Thing__c",
    {
        KEY: FieldSpec(KEY, FieldType.TEXT, nullable=False, unique=True, external_id=True),
        "Name": FieldSpec("Name", FieldType.TEXT, length=80),
        "Active__c": FieldSpec("Active__c", FieldType.BOOLEAN, nullable=False),
        "Since__c": FieldSpec("Since__c", FieldType.DATE),
        "Seen_At__c": FieldSpec("Seen_At__c", FieldType.DATETIME),
        "Count__c": FieldSpec("Count__c", FieldType.INTEGER),
        "Score__c": FieldSpec("Score__c", FieldType.NUMBER),
    },
)
MAPPING = {
    "id": KEY,
    "name": "Name",
    "active": "Active__c",
    "since": "Since__c",
    "seen_at": "Seen_At__c",
    "count": "Count__c",
    "score": "Score__c",
}
SOURCE = pa.schema(
    [
        ("id", pa.string()),
        ("name", pa.string()),
        ("active", pa.bool_()),
        ("since", pa.date32()),
        ("seen_at", pa.timestamp("us", tz="UTC")),
        ("count", pa.int64()),
        ("score", pa.float64()),
    ]
)
SNAPSHOT = pa.schema([(MAPPING[f.name], f.type) for f in SOURCE])
HEADER = "Ext__c,Name,Active__c,Since__c,Seen_At__c,Count__c,Score__c\r\n"


def rec(key: str | None, name: str | None = "n", **values: Any) -> dict[str, Any]:
    """A source row (model columns); unset fields are null, ``active`` is true."""
    return {"id": key, "name": name, "active": True} | values


def make_plan(source: Sequence[dict[str, Any]], destination: Sequence[dict[str, Any]] = ()) -> Plan:
    """The plan of ``source`` against a destination holding ``destination`` (model columns)."""
    result = diff(
        pa.Table.from_pylist(list(source), schema=SOURCE),
        pa.Table.from_pylist(
            [{MAPPING[c]: v for c, v in r.items()} for r in destination], schema=SNAPSHOT
        ),
        mapping=MAPPING,
        key="id",
        schema=SCHEMA,
        capabilities=Capabilities(max_batch_size=200),
    )
    return Plan.from_diff(
        result,
        config_fingerprint="cfg",
        destination="salesforce:Thing__c",
        field_types={f: s.type for f, s in SCHEMA.fields.items()},
    )


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- cells ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "cell"),
    [
        (None, ""),
        (True, "true"),
        (False, "false"),
        (dt.date(2024, 2, 29), "2024-02-29"),
        (dt.datetime(2024, 3, 1, 14, 0, 5, tzinfo=PLUS2), "2024-03-01T12:00:05.000Z"),
        (dt.datetime(2024, 3, 1, 12, 0, 5, 123987, tzinfo=UTC), "2024-03-01T12:00:05.123Z"),
        (dt.datetime(2024, 3, 1, 12, 0, 5), "2024-03-01T12:00:05.000Z"),  # naive is UTC
        (dt.datetime(5, 1, 2, 3, 4, 5, tzinfo=UTC), "0005-01-02T03:04:05.000Z"),
        (0, "0"),
        (-42, "-42"),
        (2.5, "2.5"),
        (1e-05, "0.00001"),
        (1e16, "10000000000000000"),
        (Decimal("1E+3"), "1000"),
        ('Say "hi", ok', 'Say "hi", ok'),
    ],
)
def test_data_loader_cells(value: object, cell: str) -> None:
    assert csv_cell(value, CellStyle.DATA_LOADER) == cell


@pytest.mark.parametrize("value", [float("nan"), float("inf"), object()])
def test_a_value_data_loader_cannot_load_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match="cannot write"):
        csv_cell(value, CellStyle.DATA_LOADER)


def test_the_csv_destination_style_is_unchanged() -> None:
    assert csv_cell(dt.datetime(2024, 3, 1, 14, 0, 5, tzinfo=PLUS2)) == "2024-03-01T12:00:05Z"
    assert csv_cell(1e-05) == "1e-05"


# --- files ---------------------------------------------------------------------------------------
def test_one_file_per_batch_named_by_record_range_in_key_order(tmp_path: Path) -> None:
    keys = ["g", "c", "a", "e", "b", "f", "d"]
    plan = make_plan([rec(k) for k in keys], [rec("b", "old"), rec("e", "old")])
    out = tmp_path / "export"

    manifest = export_plan(plan, out, batch_size=3)

    assert names(out) == [
        MANIFEST,
        "upsert-00001-00003.csv",
        "upsert-00004-00006.csv",
        "upsert-00007-00007.csv",
    ]  # no temporary files left behind
    files = [read_csv(out / f.name) for f in manifest.files]
    assert [[r[KEY] for r in rows] for rows in files] == [["a", "b", "c"], ["d", "e", "f"], ["g"]]
    assert [(f.first_record, f.last_record, f.rows) for f in manifest.files] == [
        (1, 3, 3),
        (4, 6, 3),
        (7, 7, 1),
    ]
    assert [(f.first_key, f.last_key) for f in manifest.files] == [
        ("a", "c"),
        ("d", "f"),
        ("g", "g"),
    ]
    assert manifest.records == 7


def test_every_type_null_and_rfc4180_quoting_byte_for_byte(tmp_path: Path) -> None:
    full = rec(
        "a",
        'Say "hi", to\nMaple Court, Zürich',
        active=False,
        since=dt.date(2024, 2, 29),
        seen_at=dt.datetime(2024, 3, 1, 12, 0, 5, 123000, tzinfo=UTC),
        count=7,
        score=0.25,
    )
    plan = make_plan([full, rec("b", None)])

    export_plan(plan, tmp_path, batch_size=10)

    body = (tmp_path / "upsert-00001-00002.csv").read_bytes()
    assert body == (
        HEADER
        + 'a,"Say ""hi"", to\nMaple Court, Zürich",'
        + "false,2024-02-29,2024-03-01T12:00:05.123Z,7,0.25\r\n"
        + "b,,true,,,,\r\n"
    ).encode("utf-8")
    rows = read_csv(tmp_path / "upsert-00001-00002.csv")
    assert rows[0]["Name"] == 'Say "hi", to\nMaple Court, Zürich'


def test_updates_carry_every_mapped_field_like_apply(tmp_path: Path) -> None:
    before = rec("a", "Old", since=dt.date(2020, 1, 1), count=3)
    plan = make_plan([rec("a", "New", since=dt.date(2020, 1, 1), count=3)], [before])
    assert plan.counts[Action.UPDATE] == 1

    export_plan(plan, tmp_path, batch_size=10)

    (only,) = read_csv(tmp_path / "upsert-00001-00001.csv")
    assert only == {
        KEY: "a",
        "Name": "New",
        "Active__c": "true",
        "Since__c": "2020-01-01",
        "Seen_At__c": "",
        "Count__c": "3",
        "Score__c": "",
    }


def test_invalid_unchanged_and_missing_records_are_not_exported(tmp_path: Path) -> None:
    source = [rec("a"), rec("same"), rec("dup"), rec("dup"), rec(None), rec("long", "x" * 81)]
    plan = make_plan(source, [rec("same"), rec("orphan")])
    assert plan.counts[Action.INVALID] == 4

    manifest = export_plan(plan, tmp_path, batch_size=10)

    assert [r[KEY] for r in read_csv(tmp_path / "upsert-00001-00001.csv")] == ["a"]
    body = json.loads((tmp_path / MANIFEST).read_text())
    assert body["invalid_not_exported"] == 4
    assert body["counts"]["invalid"] == 4
    assert body["counts"]["unchanged"] == 1
    assert body["counts"]["missing_in_source"] == 1
    assert body["records"] == manifest.records == 1


def test_a_plan_with_nothing_to_write_gives_only_a_manifest(tmp_path: Path) -> None:
    plan = make_plan([rec("a")], [rec("a")])

    manifest = export_plan(plan, tmp_path / "out", batch_size=10)

    assert names(tmp_path / "out") == [MANIFEST]
    assert manifest.files == () and manifest.records == 0


def test_the_range_widens_past_99999_records(tmp_path: Path) -> None:
    plan = make_plan([rec(f"k{i:06d}") for i in range(100_001)])

    manifest = export_plan(plan, tmp_path, batch_size=10_000)

    assert manifest.files[0].name == "upsert-000001-010000.csv"
    assert manifest.files[-1].name == "upsert-100001-100001.csv"
    assert all(owns(f.name) for f in manifest.files)


# --- manifest ------------------------------------------------------------------------------------
def test_the_manifest_describes_the_plan_and_every_file(tmp_path: Path) -> None:
    source = [rec(k, "New") for k in "abcde"] + [rec("f", None), rec(None)]
    plan = make_plan(source, [rec("a", "Old"), rec("f", "Had a name")])

    manifest = export_plan(plan, tmp_path, batch_size=2)

    body = json.loads((tmp_path / MANIFEST).read_text(encoding="utf-8"))
    assert body == manifest.to_json()
    assert body["format"] == "trueup.export/1"
    assert body["plan_fingerprint"] == plan.fingerprint
    assert body["config_fingerprint"] == "cfg"
    assert body["destination"] == "salesforce:Thing__c"
    assert body["destination_fingerprint"] == plan.destination_fingerprint
    assert body["key_field"] == KEY
    assert body["operation"] == "upsert"
    assert body["columns"] == HEADER.strip().split(",")
    assert body["encoding"] == "UTF-8"
    assert body["batch_size"] == 2
    assert body["counts"] == {a.value: n for a, n in plan.counts.items()}
    assert (body["counts"]["create"], body["counts"]["update"]) == (4, 2)
    assert body["records"] == 6
    assert body["invalid_not_exported"] == 1
    assert body["updates_clearing_fields"] == 1  # f: Name goes from a value to null
    assert "Insert null values" in body["nulls"]
    assert [f["name"] for f in body["files"]] == [
        "upsert-00001-00002.csv",
        "upsert-00003-00004.csv",
        "upsert-00005-00006.csv",
    ]
    for entry in body["files"]:
        data = (tmp_path / entry["name"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["rows"] == len(read_csv(tmp_path / entry["name"])) == 2
        assert entry["operation"] == "upsert"
        assert entry["last_record"] - entry["first_record"] + 1 == entry["rows"]


# --- the directory -------------------------------------------------------------------------------
def test_a_non_empty_directory_is_refused_and_left_alone(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    plan = make_plan([rec("a")])

    with pytest.raises(PlanError, match=r"not empty.*--force"):
        export_plan(plan, tmp_path, batch_size=10)

    assert names(tmp_path) == ["notes.txt"]


def test_a_previous_export_is_refused_without_force(tmp_path: Path) -> None:
    export_plan(make_plan([rec("a")]), tmp_path, batch_size=10)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    with pytest.raises(PlanError, match="not empty"):
        export_plan(make_plan([rec("b")]), tmp_path, batch_size=10)

    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_force_removes_only_the_files_an_export_owns(tmp_path: Path) -> None:
    export_plan(make_plan([rec(k) for k in "abcde"]), tmp_path, batch_size=2)
    (tmp_path / ".trueup-export-crashed.tmp").write_text("half")
    keep = ["notes.txt", "upsert-notes.csv", "batch-000001.csv", "upsert-1-2.csv"]
    for name in keep:
        (tmp_path / name).write_text("theirs")
    (tmp_path / "sub").mkdir()

    manifest = export_plan(make_plan([rec("z")]), tmp_path, batch_size=2, force=True)

    assert [f.name for f in manifest.files] == ["upsert-00001-00001.csv"]
    assert names(tmp_path) == sorted([*keep, "sub", MANIFEST, "upsert-00001-00001.csv"])
    assert all((tmp_path / name).read_text() == "theirs" for name in keep)


def test_a_file_in_the_way_of_the_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("")
    with pytest.raises(PlanError, match="not a directory"):
        export_plan(make_plan([rec("a")]), tmp_path / "out", batch_size=10)


@pytest.mark.parametrize("size", [0, 10_001])
def test_the_batch_size_is_bounded(tmp_path: Path, size: int) -> None:
    with pytest.raises(ValueError, match="between 1 and 10000"):
        export_plan(make_plan([rec("a")]), tmp_path, batch_size=size)
    assert names(tmp_path) == []


# --- deletes -------------------------------------------------------------------------------------
DELETE = next((a for a in Action if a.value == "delete"), None)


@pytest.mark.skipif(DELETE is None, reason="plans have no delete action")
def test_deletes_go_to_their_own_files_holding_only_the_key(tmp_path: Path) -> None:
    assert DELETE is not None
    plan = make_plan([rec("a")], [rec("y"), rec("x"), rec("w")])
    action = plan.records["action"]
    relabelled = pc.if_else(pc.equal(action, Action.MISSING_IN_SOURCE.value), DELETE.value, action)
    counts = dict(plan.counts) | {DELETE: 3, Action.MISSING_IN_SOURCE: 0}
    plan = dataclasses.replace(
        plan,
        records=plan.records.set_column(1, "action", relabelled),
        counts=counts,
    )

    manifest = export_plan(plan, tmp_path, batch_size=2)

    assert names(tmp_path) == [
        "delete-00001-00002.csv",
        "delete-00003-00003.csv",
        MANIFEST,
        "upsert-00001-00001.csv",
    ]
    assert (tmp_path / "delete-00001-00002.csv").read_text() == f"{KEY}\nw\nx\n"
    assert [f.operation.value for f in manifest.files] == ["upsert", "delete", "delete"]
    assert manifest.records == 4
