"""CsvDestination: batch file naming, cell formats, atomic writes and the replay order."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from trueup.config import CsvDestinationConfig, LoadedConfig, parse_config
from trueup.destinations import open_destination
from trueup.destinations.base import Operation, OutcomeStatus, WriteBatch
from trueup.destinations.csv import CsvDestination
from trueup.destinations.sql import SqlDestination
from trueup.errors import DestinationSchemaError, FatalDestinationError
from trueup.schema import FieldType

KEY = "Reverse_ETL_ID__c"
FIELDS = [KEY, "Name", "Enabled__c", "Start_Date__c", "Seen_At__c", "Count__c"]


@pytest.fixture()
def destination(tmp_path: Path) -> CsvDestination:
    config = CsvDestinationConfig(
        kind="csv",
        directory="out/export",
        fields={"Enabled__c": "boolean", "Start_Date__c": "date", "Seen_At__c": "datetime"},
    )
    return CsvDestination(config, key_field=KEY, base_dir=tmp_path, fields=FIELDS)


def batch(rows: list[dict[str, Any]], schema: pa.Schema | None = None) -> WriteBatch:
    records = pa.Table.from_pylist(rows, schema=schema)
    return WriteBatch(operation=Operation.UPSERT, key_field=KEY, records=records)


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_each_write_adds_the_next_numbered_file(
    destination: CsvDestination, tmp_path: Path
) -> None:
    for n in range(3):
        destination.write(batch([{KEY: f"k{n}", "Name": "x"}]))
    assert destination.directory == tmp_path / "out" / "export"
    assert files(destination.directory) == [
        "batch-000001.csv",
        "batch-000002.csv",
        "batch-000003.csv",
    ]


def test_cells_use_true_false_iso_dates_utc_z_and_empty_for_null(
    destination: CsvDestination,
) -> None:
    plus2 = dt.timezone(dt.timedelta(hours=2))
    schema = pa.schema(
        [
            ("Name", pa.string()),
            (KEY, pa.string()),
            ("Enabled__c", pa.bool_()),
            ("Start_Date__c", pa.date32()),
            ("Seen_At__c", pa.timestamp("us", tz="UTC")),
            ("Count__c", pa.int64()),
        ]
    )
    rows = [
        {
            "Name": 'Say "hi", ok',
            KEY: "a",
            "Enabled__c": True,
            "Start_Date__c": dt.date(2024, 2, 29),
            "Seen_At__c": dt.datetime(2024, 3, 1, 14, 0, 5, tzinfo=plus2),
            "Count__c": 7,
        },
        {KEY: "b", "Enabled__c": False},
    ]
    destination.write(batch(rows, schema))
    text = (destination.directory / "batch-000001.csv").read_text(encoding="utf-8")
    assert text == (
        "Reverse_ETL_ID__c,Name,Enabled__c,Start_Date__c,Seen_At__c,Count__c\n"
        'a,"Say ""hi"", ok",true,2024-02-29,2024-03-01T12:00:05Z,7\n'
        "b,,false,,,\n"
    )


def test_outcomes_say_created_for_new_keys_and_updated_for_known_ones(
    destination: CsvDestination,
) -> None:
    first = destination.write(batch([{KEY: "a", "Name": "1"}, {KEY: "b", "Name": "1"}]))
    second = destination.write(batch([{KEY: "b", "Name": "2"}, {KEY: "c", "Name": "2"}]))
    assert [o.status for o in first.outcomes] == [OutcomeStatus.CREATED] * 2
    assert [(o.key, o.status) for o in second.outcomes] == [
        ("b", OutcomeStatus.UPDATED),
        ("c", OutcomeStatus.CREATED),
    ]


def test_files_written_by_another_writer_count_as_known_keys(
    destination: CsvDestination, tmp_path: Path
) -> None:
    destination.write(batch([{KEY: "a", "Name": "1"}]))
    (destination.directory / "batch-000002.csv").write_text(f"{KEY},Name\nz,elsewhere\n")
    result = destination.write(batch([{KEY: "z", "Name": "2"}]))
    assert [o.status for o in result.outcomes] == [OutcomeStatus.UPDATED]
    assert files(destination.directory)[-1] == "batch-000003.csv"


def test_a_failed_write_leaves_no_batch_file_and_no_temporary_file(
    destination: CsvDestination,
) -> None:
    schema = pa.schema([(KEY, pa.string()), ("Name", pa.list_(pa.string()))])
    bad = batch([{KEY: "a", "Name": None}, {KEY: "b", "Name": ["not", "a", "cell"]}], schema)
    with pytest.raises(DestinationSchemaError, match="list"):
        destination.write(bad)
    assert files(destination.directory) == []
    destination.write(batch([{KEY: "a", "Name": "ok"}]))
    assert files(destination.directory) == ["batch-000001.csv"]
    assert destination.snapshot([KEY]).column(KEY).to_pylist() == ["a"]


def test_a_record_without_a_key_fails_and_is_not_written(destination: CsvDestination) -> None:
    result = destination.write(batch([{KEY: None, "Name": "x"}, {KEY: "a", "Name": "y"}]))
    assert [(o.status, o.error_code) for o in result.outcomes] == [
        (OutcomeStatus.FAILED, "MISSING_KEY"),
        (OutcomeStatus.CREATED, None),
    ]
    assert destination.snapshot([KEY, "Name"]).to_pylist() == [{KEY: "a", "Name": "y"}]


def test_replay_goes_by_file_number_later_rows_win_and_absent_columns_keep_values(
    destination: CsvDestination,
) -> None:
    folder = destination.directory
    folder.mkdir(parents=True)
    (folder / "batch-000010.csv").write_text(f"{KEY},Name\na,tenth\n")
    (folder / "batch-000002.csv").write_text(f"{KEY},Name,Count__c\na,second,2\nb,second,\n")
    (folder / "batch-000001.csv").write_text(f"{KEY},Name,Count__c\na,first,1\nb,first,5\n")
    (folder / ".batch-x.csv.tmp").write_text(f"{KEY},Name\na,half written\n")
    (folder / "notes.csv").write_text(f"{KEY},Name\na,not a batch\n")
    snapshot = destination.snapshot([KEY, "Name", "Count__c"])
    assert snapshot.to_pylist() == [
        {KEY: "a", "Name": "tenth", "Count__c": "2"},
        {KEY: "b", "Name": "second", "Count__c": None},
    ]
    assert snapshot.schema == pa.schema([(n, pa.string()) for n in (KEY, "Name", "Count__c")])


def test_file_numbers_beyond_six_digits_sort_numerically(destination: CsvDestination) -> None:
    folder = destination.directory
    folder.mkdir(parents=True)
    (folder / "batch-999999.csv").write_text(f"{KEY},Name\na,old\n")
    (folder / "batch-1000000.csv").write_text(f"{KEY},Name\na,new\n")
    assert destination.snapshot(["Name"]).to_pylist() == [{"Name": "new"}]
    destination.write(batch([{KEY: "b", "Name": "x"}]))
    assert (folder / "batch-1000001.csv").is_file()


def test_snapshot_without_a_directory_is_empty_with_string_columns(
    destination: CsvDestination,
) -> None:
    snapshot = destination.snapshot([KEY, "Enabled__c"])
    assert snapshot.num_rows == 0
    assert snapshot.schema == pa.schema([(KEY, pa.string()), ("Enabled__c", pa.string())])


def test_describe_declares_types_and_treats_other_known_fields_as_text(
    destination: CsvDestination,
) -> None:
    schema = destination.describe()
    assert schema.field("Enabled__c").type is FieldType.BOOLEAN
    assert schema.field("Start_Date__c").type is FieldType.DATE
    assert schema.field("Name").type is FieldType.TEXT
    assert schema.field(KEY).unique and schema.field(KEY).external_id
    with pytest.raises(DestinationSchemaError, match="Unknown__c"):
        schema.field("Unknown__c")
    with pytest.raises(DestinationSchemaError, match="Unknown__c"):
        destination.write(batch([{KEY: "a", "Unknown__c": "x"}]))


def test_only_upserts_are_supported(destination: CsvDestination) -> None:
    assert destination.capabilities.operations == frozenset({Operation.UPSERT})
    assert destination.capabilities.empty_text_is_null
    records = pa.Table.from_pylist([{KEY: "a"}])
    with pytest.raises(FatalDestinationError, match="upsert"):
        destination.write(WriteBatch(Operation.UPDATE, KEY, records))


def _loaded(tmp_path: Path, destination: dict[str, Any]) -> LoadedConfig:
    raw = {
        "source": {"kind": "sqlite", "path": "source.db"},
        "model": {"kind": "sql", "table": "items"},
        "key": "id",
        "destination": destination,
        "mapping": {"id": KEY, "name": "Name"},
    }
    config = parse_config(raw, file="trueup.yml")
    return LoadedConfig(config=config, path=tmp_path / "conf" / "trueup.yml")


def test_open_destination_builds_csv_relative_to_the_config_file(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path, {"kind": "csv", "directory": "export"})
    with open_destination(loaded) as destination:
        assert isinstance(destination, CsvDestination)
        assert destination.directory == tmp_path / "conf" / "export"
        assert set(destination.describe().fields) == {KEY, "Name"}


def test_open_destination_builds_sql_without_connecting(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path, {"kind": "sql", "url": "sqlite:///dest.db", "table": "t"})
    with open_destination(loaded) as destination:
        assert isinstance(destination, SqlDestination)
        with pytest.raises(DestinationSchemaError, match=r"dest\.db"):
            destination.describe()
    assert not (tmp_path / "conf" / "dest.db").exists()
