"""The org's optional SQLite file, so a sandbox can stop and start again with its records.

One row per (object, Id): the record as JSON text (dates and dateTimes as ISO strings, parsed back
by field type on load) and whether it is deleted; one counter per object so Ids are never reused.
The org writes through after every committed DML call. The file is readable by its owner only.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from trueup.sandbox.table import Table

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    object  TEXT NOT NULL,
    id      TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    data    TEXT NOT NULL,
    PRIMARY KEY (object, id)
);
CREATE TABLE IF NOT EXISTS counters (
    object TEXT PRIMARY KEY,
    next   INTEGER NOT NULL
);
"""

_UPSERT_RECORD = """
INSERT INTO records (object, id, deleted, data) VALUES (?, ?, ?, ?)
ON CONFLICT (object, id) DO UPDATE SET deleted = excluded.deleted, data = excluded.data
"""

_UPSERT_COUNTER = """
INSERT INTO counters (object, next) VALUES (?, ?)
ON CONFLICT (object) DO UPDATE SET next = excluded.next
"""


def _encode(table: Table, values: list[Any]) -> str:
    data: dict[str, Any] = {}
    for name, value in zip(table.names, values, strict=True):
        if value is None:
            continue
        if isinstance(value, dt.date):  # datetime included: isoformat keeps the offset
            value = value.isoformat()
        data[name] = value
    return json.dumps(data, separators=(",", ":"))


def _decode(table: Table, text: str) -> list[Any]:
    values: list[Any] = [None] * len(table.names)
    for name, value in json.loads(text).items():
        field = table.sobject.field(name)
        if field is None:  # the object lost this field since the file was written
            continue
        if isinstance(value, str) and field.type == "date":
            value = dt.date.fromisoformat(value)
        elif isinstance(value, str) and field.type == "datetime":
            value = dt.datetime.fromisoformat(value)
        values[table.pos[field.name]] = value
    return values


class OrgFile:
    """An open SQLite file holding an org's records."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        os.chmod(path, 0o600)
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)

    def load(self, tables: Mapping[str, Table]) -> None:
        """Fill ``tables`` (keyed by object name) from the file; other objects' rows stay put."""
        for name, next_number in self._conn.execute("SELECT object, next FROM counters"):
            if name in tables:
                tables[name].next_number = max(tables[name].next_number, int(next_number))
        rows = self._conn.execute("SELECT object, id, deleted, data FROM records ORDER BY rowid")
        for name, record_id, deleted, data in rows:
            table = tables.get(name)
            if table is not None:
                table.put(record_id, _decode(table, data), deleted=bool(deleted))

    def save(self, changed: Iterable[tuple[Table, str]]) -> None:
        """Write the current state of the given records, and the Id counters, in one transaction."""
        rows = []
        tables: dict[str, Table] = {}
        for table, record_id in dict.fromkeys(changed):  # a record changed twice is written once
            values = table.records.get(record_id)
            tables[table.sobject.name] = table
            if values is not None:
                deleted = int(record_id in table.deleted)
                rows.append((table.sobject.name, record_id, deleted, _encode(table, values)))
        if not rows:
            return
        with self._conn:
            self._conn.execute("BEGIN")
            self._conn.executemany(_UPSERT_RECORD, rows)
            self._conn.executemany(
                _UPSERT_COUNTER, [(name, t.next_number) for name, t in tables.items()]
            )

    def close(self) -> None:
        """Close the file."""
        self._conn.close()
