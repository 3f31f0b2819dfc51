"""Snapshots read in chunks by Id (``WHERE Id > '<last Id>' ORDER BY Id LIMIT n``) against the
sandbox over HTTPS: the same table as one big query, the chunk queries in the sandbox's request
log, records without a key counted and left out, and a bad ``snapshot_chunk_size`` refused."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pyarrow as pa
import pytest

from trueup.config import SalesforceDestinationConfig, load_config
from trueup.destinations.salesforce.destination import SalesforceDestination
from trueup.destinations.salesforce.snapshot import chunk_soql, soql_id
from trueup.errors import ConfigError, FatalDestinationError
from trueup.sandbox.server import Sandbox

OBJECT = "Product_Property__c"
KEY = "Reverse_ETL_ID__c"
FIELDS = [
    KEY,
    "Name",
    "Fraud_Detection_Enabled__c",
    "Fraud_Detection_Start_Date__c",
    "Is_Multi_Property__c",
    "Property__c",
]
READ = [*FIELDS, "CreatedDate"]  # the snapshot may read fields the mapping does not write
RECORDS = 5000
UNKEYED_EVERY = 499  # every 499th record has no key: 11 of them, in every chunk

Start = Callable[..., Sandbox]


def destination(sandbox: Sandbox, chunk_size: int) -> SalesforceDestination:
    config = SalesforceDestinationConfig.model_validate(
        {
            "kind": "salesforce",
            "object": OBJECT,
            "ca_bundle": str(sandbox.ca_path),
            "timeout": 30,
            "auth": {
                "kind": "token",
                "instance_url": sandbox.url,
                "access_token": sandbox.access_token,
            },
            "snapshot_chunk_size": chunk_size,
        }
    )
    return SalesforceDestination(config, key_field=KEY, fields=FIELDS, base_dir=Path("."))


def seed(sandbox: Sandbox) -> list[str]:
    """RECORDS records, some without a key; their Ids in creation (= Id) order."""
    parent = sandbox.state.org.insert("Property__c", [{"Name": "Parent"}])[0].id
    records: list[dict[str, Any]] = []
    for i in range(RECORDS):
        record: dict[str, Any] = {
            "Name": f"Property {i}",
            "Fraud_Detection_Enabled__c": i % 3 == 0,
            "Fraud_Detection_Start_Date__c": f"2024-{i % 12 + 1:02d}-01" if i % 5 else None,
            "Property__c": parent if i % 7 == 0 else None,
        }
        if i % UNKEYED_EVERY:
            record[KEY] = f"k-{i:05d}"
        records.append(record)
    results = sandbox.state.org.insert(OBJECT, records)
    assert all(r.success for r in results)
    return [str(r.id) for r in results]


def inspect(sandbox: Sandbox) -> httpx.Client:
    """A client for the sandbox's inspection routes (no session needed)."""
    trust = ssl.create_default_context(cafile=str(sandbox.ca_path))
    return httpx.Client(base_url=sandbox.url, verify=trust)


def logged_queries(sandbox: Sandbox) -> list[str | None]:
    """The SOQL of each query call in the sandbox's request log (None for a next page)."""
    with inspect(sandbox) as http:
        log = http.get("/__sandbox/requests").json()
    found: list[str | None] = []
    for entry in log:
        if entry["method"] == "GET" and "/query" in entry["path"]:
            found.append(parse_qs(entry["query"]).get("q", [None])[0])
    return found


def clear_log(sandbox: Sandbox) -> None:
    with inspect(sandbox) as http:
        assert http.delete("/__sandbox/requests").status_code == 204


def test_chunked_snapshot_equals_one_big_query(sandbox_factory: Start) -> None:
    sandbox = sandbox_factory(page_size=700)
    ids = seed(sandbox)
    with destination(sandbox, chunk_size=2000) as dest:
        chunked = dest.snapshot(READ)
        unkeyed = dest.unkeyed
    chunked_calls = logged_queries(sandbox)
    clear_log(sandbox)
    with destination(sandbox, chunk_size=5_000_000) as dest:
        whole = dest.snapshot(READ)
        assert dest.unkeyed == unkeyed
    whole_calls = logged_queries(sandbox)

    assert chunked.schema == whole.schema and chunked.equals(whole)
    assert chunked.column_names == READ
    assert chunked.schema.field("Fraud_Detection_Start_Date__c").type == pa.date32()
    assert chunked.schema.field("CreatedDate").type == pa.timestamp("us", tz="UTC")
    assert chunked.schema.field("Is_Multi_Property__c").type == pa.bool_()
    keys = chunked.column(KEY).to_pylist()
    expected = [f"k-{i:05d}" for i in range(RECORDS) if i % UNKEYED_EVERY]
    assert len(keys) == len(set(keys)) == len(expected) and sorted(keys) == expected
    assert unkeyed == RECORDS - len(expected) == 11

    # Three chunks of at most 2,000 (2,000 + 2,000 + 1,000), each paged 700 at a time.
    def chunk(after: str | None) -> str:
        where = f"WHERE Id > '{after}' " if after else ""
        return f"SELECT Id, {', '.join(READ)} FROM {OBJECT} {where}ORDER BY Id LIMIT 2000"

    pages = [None, None]  # next pages of the query before (nextRecordsUrl)
    assert chunked_calls == [chunk(None), *pages, chunk(ids[1999]), *pages, chunk(ids[3999]), None]
    assert len(whole_calls) == len(chunked_calls) == 8  # chunking cost no extra call here


def test_a_full_last_chunk_is_followed_by_one_empty_query(sandbox_factory: Start) -> None:
    sandbox = sandbox_factory()
    records = [{KEY: f"k-{i:04d}", "Name": f"P {i}"} for i in range(4000)]
    ids = [str(r.id) for r in sandbox.state.org.insert(OBJECT, records)]
    with destination(sandbox, chunk_size=2000) as dest:
        table = dest.snapshot([KEY, "Name"])
    assert table.num_rows == 4000 and dest.unkeyed == 0
    queries = [q or "" for q in logged_queries(sandbox)]
    assert len(queries) == 3
    assert "WHERE" not in queries[0]
    assert f"WHERE Id > '{ids[1999]}'" in queries[1] and f"WHERE Id > '{ids[3999]}'" in queries[2]


def test_an_empty_object_is_one_query(sandbox_factory: Start) -> None:
    sandbox = sandbox_factory()
    with destination(sandbox, chunk_size=2000) as dest:
        table = dest.snapshot(READ)
    assert table.num_rows == 0 and table.column_names == READ
    assert table.schema.field("Fraud_Detection_Start_Date__c").type == pa.date32()
    assert len(logged_queries(sandbox)) == 1


@pytest.mark.parametrize("size", ["100", "1999", "5000001", "lots"])
def test_a_bad_chunk_size_is_refused_before_anything_is_sent(
    sandbox_factory: Start, tmp_path: Path, size: str
) -> None:
    sandbox = sandbox_factory()
    (tmp_path / "src.db").touch()
    (tmp_path / "trueup.yml").write_text(
        f"""\
source: {{kind: sqlite, path: src.db}}
model: {{kind: sql, table: records}}
key: id
mapping: {{id: {KEY}, name: Name}}
destination:
  kind: salesforce
  object: {OBJECT}
  ca_bundle: {sandbox.ca_path}
  auth: {{kind: token, instance_url: "{sandbox.url}", access_token: "{sandbox.access_token}"}}
  snapshot_chunk_size: {size}
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "trueup.yml")
    message = str(caught.value)
    assert "trueup.yml: destination.snapshot_chunk_size:" in message
    if size != "lots":
        assert f"must be between 2,000 and 5,000,000 records per snapshot query (got {size})" in (
            message
        )
    assert not sandbox.state.requests


def test_the_id_in_a_chunk_filter_is_checked_and_quoted() -> None:
    record_id = "a0X8c00000AbCdEEAV"
    assert chunk_soql(OBJECT, [KEY], after=record_id, chunk_size=2000) == (
        f"SELECT Id, {KEY} FROM {OBJECT} WHERE Id > 'a0X8c00000AbCdEEAV' ORDER BY Id LIMIT 2000"
    )
    assert soql_id(record_id[:15]) == "'a0X8c00000AbCdE'"
    for bad in ["a0X8c00000AbCd' OR Name != '", "a0X8c00000AbCd", "", "a0X8c00000AbCdEEA\\"]:
        with pytest.raises(FatalDestinationError, match="not 15 or 18 letters and digits"):
            soql_id(bad)
