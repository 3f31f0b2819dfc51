"""Reading a whole Salesforce object in chunks by key filter ("PK chunking" by hand).

One ``SELECT <fields> FROM <object>`` over a large object is one long-lived query cursor: its
locator expires when left idle, and a big unfiltered query may time out. So the object is read
in chunks of ``chunk_size`` records, ordered by Id, each chunk starting after the last Id of the
one before (keyset pagination on the always-indexed Id)::

    SELECT Id, <fields> FROM <object> ORDER BY Id LIMIT <chunk>
    SELECT Id, <fields> FROM <object> WHERE Id > '<last Id>' ORDER BY Id LIMIT <chunk>
    ...

until a chunk returns fewer than ``chunk_size`` records. Each chunk is still one query whose
``nextRecordsUrl`` pages are followed (up to 2,000 records a page). The object and field names
must come from the describe; the Id comes from Salesforce's answer and is checked (15 or 18
letters and digits) and quoted before it enters SOQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from trueup.destinations.salesforce.client import SalesforceClient
from trueup.errors import FatalDestinationError

ID_FIELD = "Id"
_RECORD_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")


@dataclass(frozen=True)
class SnapshotColumns:
    """What a snapshot read: the JSON values of each selected field, for records with a key."""

    columns: dict[str, list[Any]]
    unkeyed: int  # records without a key value (left out: they cannot match the source)


def read_snapshot(
    client: SalesforceClient,
    sobject: str,
    key_field: str,
    fields: Sequence[str],
    *,
    chunk_size: int,
) -> SnapshotColumns:
    """Every record of ``sobject``, read in Id order ``chunk_size`` records a query.

    ``fields`` (which must include ``key_field``) are names from the describe; a record whose
    ``key_field`` is null or empty is counted in ``unkeyed`` and left out.
    """
    columns: dict[str, list[Any]] = {name: [] for name in fields}
    unkeyed = 0
    for record in _chunked(client, sobject, fields, chunk_size=chunk_size):
        if record.get(key_field) in (None, ""):
            unkeyed += 1
            continue
        for name in fields:
            columns[name].append(record.get(name))
    return SnapshotColumns(columns, unkeyed)


def chunk_soql(sobject: str, fields: Sequence[str], *, after: str | None, chunk_size: int) -> str:
    """The query for the chunk after Id ``after`` (None: the first chunk)."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1 (got {chunk_size})")
    selected = ", ".join(dict.fromkeys([ID_FIELD, *fields]))
    where = "" if after is None else f" WHERE {ID_FIELD} > {soql_id(after)}"
    return f"SELECT {selected} FROM {sobject}{where} ORDER BY {ID_FIELD} LIMIT {chunk_size}"


def soql_id(value: str) -> str:
    """A record Id as a quoted SOQL literal; anything but 15 or 18 letters and digits is refused."""
    if not _RECORD_ID.fullmatch(value):
        raise FatalDestinationError(
            f"Salesforce answered with a record Id that is not 15 or 18 letters and digits: "
            f"{value[:40]!r}"
        )
    # A no-op for a checked Id; it keeps the literal safe should the check ever be loosened.
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def _chunked(
    client: SalesforceClient, sobject: str, fields: Sequence[str], *, chunk_size: int
) -> Iterator[dict[str, Any]]:
    """Every record, one chunk query after another, each query followed through its pages."""
    after: str | None = None
    while True:
        soql = chunk_soql(sobject, fields, after=after, chunk_size=chunk_size)
        count = 0
        last = ""
        for record in client.query(soql):
            count += 1
            last = str(record.get(ID_FIELD) or "")
            yield record
        if count < chunk_size:
            return
        if last == after:  # the filter was not applied: never loop for ever
            raise FatalDestinationError(
                f"Salesforce returned the same {sobject} records again after Id {after}; "
                "the snapshot cannot advance"
            )
        after = last
