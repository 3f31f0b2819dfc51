"""Checking the records of a DML call before they are saved: Ids, fields, values, duplicates.

Each record becomes a ``Pending``: the values it would be stored with, or the ``RecordError`` that
fails it. Codes and messages follow the wire spec where it quotes them (§7.4 duplicates, §9.1
catalogue) and real-org wording otherwise (marked [U] where the spec has nothing).
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trueup.sandbox.errors import ApiError, RecordError
from trueup.sandbox.ids import to_18
from trueup.sandbox.objects import SField, SObject
from trueup.sandbox.table import Table, lookup_key
from trueup.sandbox.values import UNCHANGED, FieldValueError, label

_ID = re.compile(r"[0-9A-Za-z]{15}(?:[0-9A-Za-z]{3})?\Z")

# Reported for the request as a whole when the org is told to (they are JSON deserialisation errors
# in a real org; wire spec §9.1 lists both as top-level, §12 leaves collections open).
PARSE_ERRORS = frozenset({"INVALID_FIELD", "JSON_PARSER_ERROR"})


def parse_id(raw: Any) -> str | None:
    """``raw`` as an 18-character Id, or None when it is not a well-formed Id."""
    if isinstance(raw, str) and _ID.match(raw):
        return to_18(raw)
    return None


@dataclass(frozen=True)
class WriteCall:
    """What one insert, update or upsert call is doing."""

    table: Table
    operation: str  # insert, update or upsert
    key: SField | None  # upsert: the external-ID field (or Id)
    parse: Callable[[SField, Any], Any]  # values.from_json or a CSV-cell parser
    whole_request: bool  # PARSE_ERRORS raise ApiError instead of failing the record
    tables: Mapping[str, Table]  # every object's table by lower-case name, for relationships
    resolved: dict[str, SField | None] = dataclasses.field(default_factory=dict)  # key -> field


@dataclass
class Pending:
    """One record on its way to the store."""

    table: Table | None = None
    record_id: str | None = None  # the existing record written (None: a new record)
    values: list[Any] | None = None  # as they would be stored
    error: RecordError | None = None
    key: Any = None  # lookup key for duplicate detection within a chunk
    key_text: str = ""

    @property
    def snapshot(self) -> dict[str, Any]:
        """The would-be stored record as ``{FieldName: value}`` (Id None for a new record)."""
        assert self.table is not None and self.values is not None
        return self.table.as_dict(self.values)


def _fail(call: WriteCall, p: Pending, error: RecordError) -> Pending:
    if call.whole_request and error.status_code in PARSE_ERRORS:
        raise ApiError(400, error.status_code, error.message, list(error.fields))
    p.error = error
    return p


def _blank(raw: Any) -> bool:
    return raw is None or raw == ""


def _check_type(call: WriteCall, attributes: Any) -> None:
    kind = attributes.get("type") if isinstance(attributes, Mapping) else None
    name = call.table.sobject.name
    if isinstance(kind, str) and kind.lower() != name.lower():
        # §7.1: every record must be of the URL's type; a malformed request is a 400 [U: wording].
        raise ApiError(400, "INVALID_TYPE", f"sObject type '{kind}' does not match '{name}'")


def _existing(call: WriteCall, p: Pending, raw: Any) -> RecordError | None:
    record_id = parse_id(raw)
    if record_id is None:
        return RecordError("MALFORMED_ID", f"malformed id {raw}", ("Id",))
    p.key, p.key_text = record_id, record_id
    if record_id not in call.table.records:  # includes another object's key prefix
        return RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
    p.record_id = record_id
    if record_id in call.table.deleted:
        return RecordError("ENTITY_IS_DELETED", "entity is deleted")
    return None


def _match(call: WriteCall, p: Pending, given: list[tuple[SField, Any]]) -> RecordError | None:
    key = call.key
    assert key is not None
    value = next((v for f, v in given if f.name == key.name), None)
    if isinstance(value, FieldValueError):
        return value.record_error()
    if value is None or value is UNCHANGED or value == "":
        # No external-ID value: MISSING_ARGUMENT as the SOAP/Bulk upsert reports it [U].
        return RecordError("MISSING_ARGUMENT", f"{key.name} not specified", (key.name,))
    p.key, p.key_text = lookup_key(key, value), str(value)
    found = call.table.matches(key, value)
    if len(found) > 1:
        # §7.4: a value already on two or more records.
        listed = ", ".join(found)
        message = f"{label(key)}: more than one record found for external id field: [{listed}]"
        return RecordError("DUPLICATE_EXTERNAL_ID", message, (key.name,))
    p.record_id = found[0] if found else None
    return None


def _lookup(sobject: SObject, relationship: str) -> SField | None:
    for field in sobject.fields.values():
        if field.type == "reference" and field.reference_to:
            name = field.name
            path = name[:-3] + "__r" if name.endswith("__c") else name.removesuffix("Id")
            if path.lower() == relationship.lower():
                return field
    return None


def _relationship(call: WriteCall, name: str, raw: Any) -> tuple[SField, Any] | RecordError | None:
    """A lookup set by the parent's external ID: ``Parent__r.Ext__c`` as a Bulk CSV column (§4,
    §8.6) or ``"Parent__r": {"Ext__c": value}`` in JSON; None when ``name`` is no such thing."""
    if "." in name:
        relationship, _, target = name.partition(".")
    elif isinstance(raw, Mapping):
        inner = [(k, v) for k, v in raw.items() if k != "attributes"]
        if len(inner) != 1:
            return None
        relationship, (target, raw) = name, inner[0]
    else:
        return None
    lookup = _lookup(call.table.sobject, relationship)
    parent = call.tables.get(lookup.reference_to[0].lower()) if lookup is not None else None
    key = parent.sobject.field(target) if parent is not None else None
    if lookup is None or parent is None or key is None or not (key.external_id or key.id_lookup):
        return None
    try:
        value = call.parse(key, raw)
    except FieldValueError as exc:
        return exc.record_error()
    if value is None or value is UNCHANGED:
        return lookup, raw  # the lookup's own parse leaves it unchanged or clears it
    found = parent.matches(key, value)
    if len(found) == 1:
        return lookup, found[0]
    entity = parent.sobject.name
    if not found:  # real-org wording [U]
        message = (
            f"Foreign key external ID: {value} not found for field {key.name} in entity {entity}"
        )
        return RecordError("INVALID_FIELD", message, (lookup.name,))
    message = (
        f"Foreign key external ID: {value} matches more than one record for field {key.name} "
        f"in entity {entity}"
    )
    return RecordError("DUPLICATE_EXTERNAL_ID", message, (lookup.name,))


def prepare(call: WriteCall, record: Mapping[str, Any]) -> Pending:
    """Check one record and work out the values it would be stored with."""
    table = call.table
    p = Pending(table)
    if not isinstance(record, Mapping):
        raise ApiError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of sObject")
    given: list[tuple[SField, Any]] = []  # parsed values (a FieldValueError when unparseable)
    id_raw: Any = None
    resolved, parse = call.resolved, call.parse
    for name, raw in record.items():
        if name == "attributes":
            _check_type(call, raw)
            continue
        try:
            spec = resolved[name]
        except KeyError:
            spec = resolved[name] = table.sobject.field(name)
        if spec is None:
            found = _relationship(call, name, raw)
            if isinstance(found, RecordError):
                p.error = found
                return p
            if found is None:
                # §9.1 INVALID_FIELD; per record unless the org reports it for the whole request.
                message = f"No such column '{name}' on sobject of type {table.sobject.name}"
                return _fail(call, p, RecordError("INVALID_FIELD", message))
            spec, raw = found
        elif spec.name == "Id":
            id_raw = raw
            continue
        try:
            given.append((spec, parse(spec, raw)))
        except FieldValueError as exc:
            given.append((spec, exc))
    by_id = call.operation == "update" or (call.key is not None and call.key.name == "Id")
    error: RecordError | None = None
    if by_id and not _blank(id_raw):
        error = _existing(call, p, id_raw)
    elif call.operation == "update":
        error = RecordError("MISSING_ARGUMENT", "Id not specified in an update call")
    elif not _blank(id_raw):
        if call.operation == "insert":
            error = RecordError(
                "INVALID_FIELD_FOR_INSERT_UPDATE", "cannot specify Id in an insert call", ("Id",)
            )
        else:  # an upsert by external ID names no Id (§7.1): Id is then just a read-only field
            given.append((table.sobject.fields["Id"], id_raw))
    if error is None and call.key is not None and not by_id:
        error = _match(call, p, given)
    if error is not None:
        return _fail(call, p, error)
    return _values(call, p, given)


def _values(call: WriteCall, p: Pending, given: list[tuple[SField, Any]]) -> Pending:
    table, pos = call.table, call.table.pos
    inserting = p.record_id is None
    is_key = call.key.name if call.key is not None else ""
    values = list(table.blank if p.record_id is None else table.records[p.record_id])
    blocked: list[str] = []
    parse_error: FieldValueError | None = None
    for spec, value in given:
        if not (spec.createable if inserting else spec.updateable):
            if spec.name != is_key:  # an upsert may repeat its key however the key is writable
                blocked.append(spec.name)
        elif isinstance(value, FieldValueError):
            parse_error = parse_error or value
        elif value is not UNCHANGED:
            values[pos[spec.name]] = value
    if blocked:
        message = (
            f"Unable to create/update fields: {', '.join(blocked)}. Please check the security "
            "settings of this field and verify that it is read/write for your profile or "
            "permission set."
        )
        error = RecordError("INVALID_FIELD_FOR_INSERT_UPDATE", message, tuple(blocked))
        return _fail(call, p, error)
    if parse_error is not None:
        return _fail(call, p, parse_error.record_error())
    if inserting:
        missing = [n for n in table.required_on_insert if values[pos[n]] is None]
    else:
        missing = [f.name for f, v in given if v is None and f.name in table.not_null]
    if missing:
        # §9.1 REQUIRED_FIELD_MISSING: "Required fields are missing: [Name]", fields ["Name"].
        message = f"Required fields are missing: [{', '.join(missing)}]"
        return _fail(call, p, RecordError("REQUIRED_FIELD_MISSING", message, tuple(missing)))
    p.values = values
    return p


def flag_duplicate_keys(call: WriteCall, pending: Sequence[Pending]) -> None:
    """Fail every record of a chunk whose upsert key (or update Id) another record repeats."""
    counts = Counter(p.key for p in pending if p.key is not None)
    for p in pending:
        if p.key is None or counts[p.key] < 2:
            continue
        if call.key is None:  # update: the same Id twice [U]
            p.error = RecordError("DUPLICATE_VALUE", f"Duplicate id in list: {p.key_text}")
        else:  # §7.4: "Duplicate external id specified: {value}", every occurrence fails
            message = f"Duplicate external id specified: {p.key_text}"
            p.error = RecordError("DUPLICATE_VALUE", message, (call.key.name,))


def check_unique(table: Table, pending: Sequence[Pending]) -> None:
    """Fail records whose unique-field value another record holds or an earlier one claims."""
    claimed: set[tuple[str, Any]] = set()
    for p in pending:
        if p.error is not None or p.values is None:
            continue
        for field in table.unique:
            value = p.values[table.pos[field.name]]
            if value is None:
                continue
            holders = [i for i in table.matches(field, value) if i != p.record_id]
            claim = (field.name, lookup_key(field, value))
            if holders:  # §7.4: unique field already used by another record
                message = (
                    f"duplicate value found: {field.name} duplicates value on record with id: "
                    f"{holders[0]}"
                )
            elif claim in claimed:  # an earlier record of this chunk has it; it has no Id yet
                message = (
                    "duplicate value found: <unknown> duplicates value on record with id: <unknown>"
                )
            else:
                claimed.add(claim)
                continue
            p.error = RecordError("DUPLICATE_VALUE", message, (field.name,))
            break
