"""The Plan value: what a sync would do, key by key and field by field; saved, loaded, hashed.

A plan is built from a Diff plus the fingerprints of the config and the destination snapshot it
was computed from. Saved as JSON (format ``trueup.plan/1``, documented in docs/plan-format.md), it
can be reviewed and later applied exactly; apply refuses it when either fingerprint has changed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from trueup.diff import BEFORE, Action, Diff
from trueup.errors import PlanError
from trueup.operations import SyncOperation
from trueup.schema import ARROW_TYPES, FieldType

FORMAT = "trueup.plan/1"


@dataclass(frozen=True)
class Plan:
    """Every key's action, the fields that change (before → after) and the counts."""

    created_at: dt.datetime
    config_fingerprint: str
    destination: str
    destination_fingerprint: str
    key_field: str
    field_types: Mapping[str, FieldType]
    counts: Mapping[Action, int]
    field_changes: Mapping[str, int]
    records: pa.Table
    operation: SyncOperation = SyncOperation.UPSERT
    destination_rows: int = 0  # records in the snapshot
    destination_values: Mapping[str, int] = dataclasses.field(default_factory=dict)  # per field
    reverts_run: int | None = None  # a rollback plan (rollback.py): the run it reverts

    @classmethod
    def from_diff(
        cls,
        result: Diff,
        *,
        config_fingerprint: str,
        destination: str,
        field_types: Mapping[str, FieldType],
        operation: SyncOperation = SyncOperation.UPSERT,
    ) -> Plan:
        """Wrap a diff with the fingerprints that make the plan safe to apply later."""
        return cls(
            created_at=dt.datetime.now(dt.UTC),
            config_fingerprint=config_fingerprint,
            destination=destination,
            destination_fingerprint=result.snapshot_fingerprint,
            key_field=result.key_field,
            field_types={f: field_types[f] for f in result.fields},
            counts=dict(result.counts),
            field_changes=dict(result.field_changes),
            records=result.records.cast(records_schema(field_types, result.fields)),
            operation=operation,
            destination_rows=result.destination_rows,
            destination_values=dict(result.destination_values),
        )

    @property
    def fields(self) -> tuple[str, ...]:
        """The mapped destination fields other than the key, in mapping order."""
        return tuple(self.field_types)

    @property
    def source_rows(self) -> int:
        """Rows the model returned (every action but those of destination-only records)."""
        held = (Action.MISSING_IN_SOURCE, Action.DELETE)
        return sum(n for a, n in self.counts.items() if a not in held)

    @property
    def write_count(self) -> int:
        """How many records apply would send (creates, updates and deletes)."""
        return sum(self.counts.get(a, 0) for a in (Action.CREATE, Action.UPDATE, Action.DELETE))

    def rows(self, *actions: Action) -> pa.Table:
        """The plan's records whose action is one of ``actions``."""
        mask = pc.is_in(self.records["action"], pa.array([a.value for a in actions]))
        return self.records.filter(mask)

    def writes(self, *actions: Action) -> pa.Table:
        """Creates and updates (or the records of ``actions``) as destination records: the key
        field and every mapped field."""
        rows = self.rows(*(actions or (Action.CREATE, Action.UPDATE)))
        columns = [rows["key"], *(rows[f] for f in self.fields)]
        return pa.table(columns, names=[self.key_field, *self.fields])

    def deletes(self) -> pa.Table:
        """Records to delete, as destination records holding only the key field."""
        rows = self.rows(Action.DELETE)
        return pa.table([rows["key"]], names=[self.key_field])

    def sample(self, action: Action, limit: int) -> pa.Table:
        """The first ``limit`` records of ``action`` in key order (for reviews and reports)."""
        rows = self.rows(action)
        order = pc.sort_indices(rows, sort_keys=[("key", "ascending")])
        return rows.take(order[:limit])

    @property
    def fingerprint(self) -> str:
        """A hash of what the plan would do (header and records, not when it was made)."""
        body = {"header": self._header(), "records": self._records_json()}
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def _header(self) -> dict[str, Any]:
        # only rollback plans name a run: other plans' headers (and fingerprints) stay as they were
        reverts = {} if self.reverts_run is None else {"reverts_run": self.reverts_run}
        return reverts | {
            "config_fingerprint": self.config_fingerprint,
            "destination": self.destination,
            "destination_fingerprint": self.destination_fingerprint,
            "key_field": self.key_field,
            "operation": self.operation.value,
            "fields": {f: t.value for f, t in self.field_types.items()},
            "counts": {a.value: n for a, n in self.counts.items()},
            "field_changes": dict(self.field_changes),
            "destination_rows": self.destination_rows,
            "destination_values": dict(self.destination_values),
        }

    # --- JSON ------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The plan as a JSON-ready dict (format ``trueup.plan/1``)."""
        records = self._records_json()
        body = {"header": self._header(), "records": records}
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return {
            "format": FORMAT,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
            **self._header(),
            "plan_fingerprint": hashlib.sha256(text.encode()).hexdigest()[:16],
            "records": records,
        }

    def _records_json(self) -> list[dict[str, Any]]:
        records = []
        order = pc.sort_indices(
            self.records,
            sort_keys=[("action", "ascending"), ("key", "ascending")],
        )
        for row in self.records.take(order).to_pylist():
            action = row["action"]
            item: dict[str, Any] = {"key": row["key"], "action": action}
            if action in (Action.INVALID, Action.CONFLICT):
                item["reason"] = row["reason"]
            if action == Action.CONFLICT:
                item["conflicts"] = {
                    f: {"run_wrote": _encode(row[f]), "now": _encode(row[BEFORE + f])}
                    for f in row["changed"]
                }
            if action in _BOTH_SIDES:
                item["changes"] = {
                    f: {"before": _encode(row[BEFORE + f]), "after": _encode(row[f])}
                    for f in row["changed"]
                }
            prefix = BEFORE if action in _DESTINATION_ONLY else ""
            item["values"] = {f: _encode(row[prefix + f]) for f in self.fields}
            if action in _BOTH_SIDES:
                item["before"] = {f: _encode(row[BEFORE + f]) for f in self.fields}
            records.append(item)
        return records

    def save(self, path: Path) -> None:
        """Write the plan as JSON, atomically."""
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")
            tmp.replace(path)
        except OSError as exc:
            raise PlanError(f"{path}: cannot write plan: {exc.strerror}") from exc

    @classmethod
    def load(cls, path: Path) -> Plan:
        """Read a plan saved by ``save``; PlanError for a missing, corrupt or foreign file."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PlanError(f"{path}: no such plan file") from None
        except (OSError, ValueError) as exc:
            raise PlanError(f"{path}: not a readable plan file ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise PlanError(f"{path}: not a trueup plan (expected format {FORMAT})")
        try:
            return cls._from_json(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise PlanError(f"{path}: damaged plan file ({exc!r})") from None

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> Plan:
        field_types = {f: FieldType(t) for f, t in data["fields"].items()}
        columns: dict[str, list[Any]] = {"key": [], "action": [], "reason": [], "changed": []}
        for f in field_types:
            columns[f] = []
            columns[BEFORE + f] = []
        for item in data["records"]:
            action = Action(item["action"])
            values, changes = item.get("values", {}), item.get("changes", {})
            before = item.get("before", {})
            columns["key"].append(item["key"])
            columns["action"].append(action.value)
            columns["reason"].append(item.get("reason"))
            conflicting = item.get("conflicts", {}) if action is Action.CONFLICT else {}
            if action in (Action.CREATE, Action.MISSING_IN_DESTINATION):
                changed = [f for f in field_types if values.get(f) is not None]
            else:
                changed = list(conflicting or changes)
            columns["changed"].append(changed)
            for f, kind in field_types.items():
                dest_only = action in _DESTINATION_ONLY
                after = None if dest_only else values.get(f)
                if action is Action.CONFLICT:  # what the run wrote, in the conflicting fields
                    after = conflicting.get(f, {}).get("run_wrote")
                prior = values.get(f) if dest_only else before.get(f)
                columns[f].append(_decode(after, kind))
                columns[BEFORE + f].append(_decode(prior, kind))
        schema = records_schema(field_types, tuple(field_types))
        plan = cls(
            created_at=dt.datetime.fromisoformat(data["created_at"]),
            config_fingerprint=data["config_fingerprint"],
            destination=data["destination"],
            destination_fingerprint=data["destination_fingerprint"],
            key_field=data["key_field"],
            field_types=field_types,
            counts={a: int(data["counts"].get(a.value, 0)) for a in Action},
            field_changes={f: int(n) for f, n in data["field_changes"].items()},
            records=pa.table(columns, schema=schema),
            operation=SyncOperation(data.get("operation", SyncOperation.UPSERT.value)),
            destination_rows=int(data.get("destination_rows", 0)),
            destination_values={f: int(n) for f, n in data.get("destination_values", {}).items()},
            reverts_run=None if data.get("reverts_run") is None else int(data["reverts_run"]),
        )
        saved = data.get("plan_fingerprint")
        if saved is not None and saved != plan.fingerprint:
            raise ValueError("its records do not match its fingerprint (edited by hand?)")
        return plan


# Actions whose records hold the destination's values only, and both sides' values.
# A conflict's ``values`` are what the destination holds now; ``conflicts`` what the run wrote.
_DESTINATION_ONLY = frozenset({Action.MISSING_IN_SOURCE, Action.DELETE, Action.CONFLICT})
_BOTH_SIDES = frozenset({Action.UPDATE, Action.EXISTS_IN_DESTINATION})


def records_schema(field_types: Mapping[str, FieldType], fields: tuple[str, ...]) -> pa.Schema:
    """The Arrow schema of ``Plan.records`` for the given fields."""
    return pa.schema(
        [
            ("key", pa.string()),
            ("action", pa.string()),
            ("reason", pa.string()),
            ("changed", pa.list_(pa.string())),
        ]
        + [(f, ARROW_TYPES[field_types[f]]) for f in fields]
        + [(BEFORE + f, ARROW_TYPES[field_types[f]]) for f in fields]
    )


def _encode(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _decode(value: Any, kind: FieldType) -> Any:
    if value is None:
        return None
    if kind is FieldType.DATE:
        return dt.date.fromisoformat(value)
    if kind is FieldType.DATETIME:
        return dt.datetime.fromisoformat(value)
    return value
