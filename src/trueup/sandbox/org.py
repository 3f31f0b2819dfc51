"""The org: objects, their records, and DML with Salesforce's per-record results.

Every write call (insert, update, upsert, delete) is one transaction. Records go through in trigger
chunks of ``TRIGGER_CHUNK``: each record is checked (fields, values, required, duplicates), the
surviving ones are shown to ``rules.before_save`` once per chunk, and the ones it lets through are
saved, so a later chunk sees an earlier chunk's records (the same external ID in two chunks is an
update, wire spec §7.4). With ``all_or_none`` any failure undoes the whole call (§7.2); a
request-level error (``ApiError``) always does. Results come back in request order.

State is guarded by one lock (one DML call at a time) and optionally written through to SQLite.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from trueup.sandbox.errors import RecordError, not_found
from trueup.sandbox.objects import SField, SObject, default_objects
from trueup.sandbox.rules import TRIGGER_CHUNK, NoRules, RecordRules
from trueup.sandbox.storage import OrgFile
from trueup.sandbox.table import SYSTEM_DATES, Table
from trueup.sandbox.values import TEXT, FieldValueError, from_csv, from_json
from trueup.sandbox.writes import (
    Pending,
    WriteCall,
    check_unique,
    flag_duplicate_keys,
    parse_id,
    prepare,
)

Source = Literal["json", "csv"]

ROLLED_BACK = RecordError(
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "Record rolled back because not all records were valid and the request was using AllOrNone "
    "header",
)


class JsonErrors(Enum):
    """Where an unknown field or an undeserialisable JSON value is reported (wire spec §12: [U])."""

    PER_RECORD = "per_record"  # in that record's errors[], the other records go on
    WHOLE_REQUEST = "whole_request"  # as a 400 for the request, as single-record calls do


@dataclass(frozen=True)
class SaveResult:
    """One record's outcome of a DML call."""

    id: str | None
    success: bool
    errors: tuple[RecordError, ...] = ()
    created: bool | None = None

    def to_json(self, *, with_created: bool) -> dict[str, Any]:
        """The result entry as sObject Collections return it (``created`` for upserts, §7.1)."""
        out: dict[str, Any] = {
            "id": self.id,
            "success": self.success,
            "errors": [e.to_json() for e in self.errors],
        }
        if with_created:
            out["created"] = bool(self.created)
        return out


@dataclass(frozen=True)
class _Undo:
    table: Table
    record_id: str
    before: list[Any] | None  # None: the record was inserted by this call


def _now() -> dt.datetime:
    now = dt.datetime.now(dt.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class Org:
    """A Salesforce org in memory: describe-shaped objects and their records."""

    def __init__(
        self,
        objects: Mapping[str, SObject] | None = None,
        *,
        rules: RecordRules | None = None,
        path: Path | None = None,
        json_errors: JsonErrors = JsonErrors.PER_RECORD,
    ) -> None:
        found = dict(objects) if objects is not None else default_objects()
        self._objects = MappingProxyType(found)
        self._folded = {obj.name.lower(): obj for obj in found.values()}
        self._tables = {obj.name: Table(obj) for obj in found.values()}
        self._folded_tables = {name.lower(): table for name, table in self._tables.items()}
        self._by_prefix = {obj.key_prefix: self._tables[obj.name] for obj in found.values()}
        self.rules: RecordRules = rules if rules is not None else NoRules()
        self.json_errors = json_errors
        self._lock = threading.RLock()
        self._file = OrgFile(path) if path is not None else None
        if self._file is not None:
            self._file.load(self._tables)

    @property
    def objects(self) -> Mapping[str, SObject]:
        """The org's objects by name."""
        return self._objects

    def sobject(self, name: str) -> SObject:
        """The object called ``name`` (any case); 404 NOT_FOUND otherwise."""
        obj = self._folded.get(name.lower())
        if obj is None:
            raise not_found()
        return obj

    def close(self) -> None:
        """Close the SQLite file, if any."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    # -- writes ---------------------------------------------------------------------------

    def insert(
        self,
        sobject: str,
        records: Sequence[Mapping[str, Any]],
        *,
        all_or_none: bool = False,
        source: Source = "json",
    ) -> list[SaveResult]:
        """Create records (none may carry an Id)."""
        return self._write("insert", sobject, records, None, all_or_none, source)

    def update(
        self,
        sobject: str,
        records: Sequence[Mapping[str, Any]],
        *,
        all_or_none: bool = False,
        source: Source = "json",
    ) -> list[SaveResult]:
        """Change records, each named by its ``Id``."""
        return self._write("update", sobject, records, None, all_or_none, source)

    def upsert(
        self,
        sobject: str,
        external_field: str,
        records: Sequence[Mapping[str, Any]],
        *,
        all_or_none: bool = False,
        source: Source = "json",
    ) -> list[SaveResult]:
        """Update the record whose ``external_field`` matches, or create one (§7.1, §7.4)."""
        obj = self.sobject(sobject)
        key = obj.field(external_field)
        if key is None or not (key.external_id or key.name == "Id"):
            # §6: a field that is no external ID gets 404 "The requested resource does not exist".
            raise not_found()
        return self._write("upsert", sobject, records, key, all_or_none, source)

    def delete(self, ids: Sequence[str], *, all_or_none: bool = False) -> list[SaveResult]:
        """Delete records of any object by Id (they stay visible to ``rows(include_deleted)``)."""
        with self._lock:
            undo: list[_Undo] = []
            results: list[SaveResult] = []
            now = _now()
            try:
                for start in range(0, len(ids), TRIGGER_CHUNK):
                    results += self._delete_chunk(ids[start : start + TRIGGER_CHUNK], now, undo)
            except BaseException:
                self._undo(undo)
                raise
            return self._finish(results, undo, all_or_none=all_or_none)

    def _write(
        self,
        operation: str,
        sobject: str,
        records: Sequence[Mapping[str, Any]],
        key: SField | None,
        all_or_none: bool,
        source: Source,
    ) -> list[SaveResult]:
        obj = self.sobject(sobject)
        with self._lock:
            call = WriteCall(
                table=self._tables[obj.name],
                operation=operation,
                key=key,
                parse=from_json if source == "json" else from_csv,
                whole_request=source == "json" and self.json_errors is JsonErrors.WHOLE_REQUEST,
                tables=self._folded_tables,
            )
            undo: list[_Undo] = []
            results: list[SaveResult] = []
            now = _now()
            try:
                for start in range(0, len(records), TRIGGER_CHUNK):
                    pending = [prepare(call, r) for r in records[start : start + TRIGGER_CHUNK]]
                    if operation != "insert":
                        flag_duplicate_keys(call, pending)
                    check_unique(call.table, pending)
                    self._apply_rules(obj.name, operation, pending)
                    results += [self._save(p, now, undo) for p in pending]
            except BaseException:
                self._undo(undo)
                raise
            return self._finish(results, undo, all_or_none=all_or_none)

    def _delete_chunk(
        self, ids: Sequence[str], now: dt.datetime, undo: list[_Undo]
    ) -> list[SaveResult]:
        pending: list[Pending] = []
        seen: set[str] = set()
        for raw in ids:
            pending.append(self._deletable(raw, seen))
        groups: dict[str, list[Pending]] = {}
        for p in pending:
            if p.error is None and p.table is not None:
                groups.setdefault(p.table.sobject.name, []).append(p)
        for name, group in groups.items():
            self._apply_rules(name, "delete", group)
        return [self._save(p, now, undo, delete=True) for p in pending]

    def _deletable(self, raw: Any, seen: set[str]) -> Pending:
        record_id = parse_id(raw)
        if record_id is None:
            return Pending(error=RecordError("MALFORMED_ID", f"malformed id {raw}"))
        table = self._by_prefix.get(record_id[:3])
        if table is None or record_id not in table.records:
            error = RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
            return Pending(error=error)
        if record_id in table.deleted or record_id in seen:
            error = RecordError("ENTITY_IS_DELETED", "entity is deleted")
            return Pending(table, record_id, error=error)
        seen.add(record_id)
        return Pending(table, record_id, values=list(table.records[record_id]))

    def _apply_rules(self, sobject: str, operation: str, pending: Sequence[Pending]) -> None:
        ready = [p for p in pending if p.error is None]
        if not ready or isinstance(self.rules, NoRules):
            return
        verdicts = self.rules.before_save(sobject, operation, [p.snapshot for p in ready])
        if len(verdicts) != len(ready):
            raise ValueError(f"rules gave {len(verdicts)} verdicts for {len(ready)} records")
        for p, verdict in zip(ready, verdicts, strict=True):
            if verdict is not None:
                p.error = verdict

    def _save(
        self, p: Pending, now: dt.datetime, undo: list[_Undo], *, delete: bool = False
    ) -> SaveResult:
        if p.error is not None:
            return SaveResult(p.record_id, False, (p.error,))
        table, values = p.table, p.values
        assert table is not None and values is not None
        pos = table.pos
        for name in SYSTEM_DATES[1:]:
            if name in pos:
                values[pos[name]] = now
        if p.record_id is not None:
            if delete and "IsDeleted" in pos:
                values[pos["IsDeleted"]] = True
            undo.append(_Undo(table, p.record_id, table.records[p.record_id]))
            table.put(p.record_id, values, deleted=delete)
            return SaveResult(p.record_id, True, created=None if delete else False)
        record_id = table.new_id()
        for name in ("Id", "CreatedDate"):
            if name in pos:
                values[pos[name]] = record_id if name == "Id" else now
        undo.append(_Undo(table, record_id, None))
        table.put(record_id, values)
        return SaveResult(record_id, True, created=True)

    def _finish(
        self, results: list[SaveResult], undo: list[_Undo], *, all_or_none: bool
    ) -> list[SaveResult]:
        if all_or_none and not all(r.success for r in results):
            self._undo(undo)
            return [r if not r.success else _rolled_back(r) for r in results]
        if self._file is not None and undo:
            self._file.save((u.table, u.record_id) for u in undo)
        return results

    @staticmethod
    def _undo(undo: list[_Undo]) -> None:
        for u in reversed(undo):
            if u.before is None:
                u.table.drop(u.record_id)
            else:
                u.table.put(u.record_id, u.before)

    # -- reads ----------------------------------------------------------------------------

    def get(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        """The live record with this Id (15 or 18 characters), or None."""
        table = self._tables[self.sobject(sobject).name]
        found = parse_id(record_id)
        with self._lock:
            values = table.live(found) if found is not None else None
            return None if values is None else table.as_dict(values)

    def find(self, sobject: str, field: str, value: Any) -> list[dict[str, Any]]:
        """Live records whose ``field`` matches ``value`` (any case unless caseSensitive)."""
        table = self._tables[self.sobject(sobject).name]
        spec = table.sobject.field(field)
        if spec is None:
            raise not_found()
        if isinstance(value, str) and spec.type not in TEXT:
            try:  # a value from a URL: parse it as its field type
                value = from_csv(spec, value)
            except FieldValueError:
                return []
        if spec.name == "Id":
            value = parse_id(value)
        with self._lock:
            return [table.as_dict(table.records[i]) for i in table.matches(spec, value)]

    def rows(self, sobject: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Every record as ``{FieldName: value}`` (system fields included), in creation order."""
        table = self._tables[self.sobject(sobject).name]
        with self._lock:
            return list(table.rows(include_deleted=include_deleted))

    def count(self, sobject: str) -> int:
        """How many live records the object has."""
        table = self._tables[self.sobject(sobject).name]
        with self._lock:
            return table.count()


def _rolled_back(result: SaveResult) -> SaveResult:
    # §7.2: records that were fine carry ALL_OR_NONE_OPERATION_ROLLED_BACK; a new record has no Id.
    return SaveResult(None if result.created else result.id, False, (ROLLED_BACK,))
