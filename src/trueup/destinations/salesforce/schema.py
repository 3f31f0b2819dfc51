"""Salesforce describe → DestinationSchema, and the pre-flight check of a mapping against it.

Type mapping (describe ``type`` → FieldType): text-like types (string, textarea, picklist,
multipicklist, combobox, email, phone, url, id, reference, encryptedstring, time) → TEXT with their
``length``; boolean → BOOLEAN, never null (checkboxes store false); date → DATE; datetime →
DATETIME; double, currency, percent → NUMBER; int, long → INTEGER. Compound and binary fields
(address, location, base64, ...) cannot be synced and are listed as unsupported.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from trueup.destinations.base import Operation
from trueup.errors import ConfigError
from trueup.schema import DestinationSchema, FieldSpec, FieldType

TYPES: Mapping[str, FieldType] = {
    **{
        t: FieldType.TEXT
        for t in (
            "string",
            "textarea",
            "picklist",
            "multipicklist",
            "combobox",
            "email",
            "phone",
            "url",
            "id",
            "reference",
            "encryptedstring",
            "time",
        )
    },
    "boolean": FieldType.BOOLEAN,
    "date": FieldType.DATE,
    "datetime": FieldType.DATETIME,
    "double": FieldType.NUMBER,
    "currency": FieldType.NUMBER,
    "percent": FieldType.NUMBER,
    "int": FieldType.INTEGER,
    "long": FieldType.INTEGER,
}


@dataclass(frozen=True)
class SObjectDescription:
    """What describe says about an object: its syncable fields and the ones trueup cannot sync."""

    schema: DestinationSchema
    unsupported: Mapping[str, str] = field(default_factory=dict)  # field name → describe type


def describe_to_schema(describe: Mapping[str, Any]) -> SObjectDescription:
    """The DestinationSchema of a describe result (wire spec §4)."""
    fields: dict[str, FieldSpec] = {}
    unsupported: dict[str, str] = {}
    for entry in describe.get("fields", []):
        name, kind = str(entry["name"]), str(entry.get("type", "")).lower()
        field_type = TYPES.get(kind)
        if field_type is None:
            unsupported[name] = kind
            continue
        length = int(entry.get("length") or 0)
        fields[name] = FieldSpec(
            name=name,
            type=field_type,
            nullable=bool(entry.get("nillable", True)) and field_type is not FieldType.BOOLEAN,
            length=length if field_type is FieldType.TEXT and length > 0 else None,
            createable=bool(entry.get("createable", False)),
            updateable=bool(entry.get("updateable", False)),
            external_id=bool(entry.get("externalId", False)),
            unique=bool(entry.get("unique", False)),
        )
    schema = DestinationSchema(object_name=str(describe.get("name", "")), fields=fields)
    return SObjectDescription(schema, unsupported)


# Arrow type families a model column may have for each field type (the diff converts within them).
_COMPATIBLE: Mapping[FieldType, frozenset[str]] = {
    FieldType.TEXT: frozenset({"string", "bool", "integer", "floating", "decimal", "date", "ts"}),
    FieldType.BOOLEAN: frozenset({"bool", "integer", "string"}),
    FieldType.DATE: frozenset({"date", "ts", "string"}),
    FieldType.DATETIME: frozenset({"date", "ts", "string"}),
    FieldType.INTEGER: frozenset({"integer", "floating", "decimal", "bool", "string"}),
    FieldType.NUMBER: frozenset({"integer", "floating", "decimal", "bool", "string"}),
}


def _family(arrow_type: pa.DataType) -> str:
    checks = (
        (pa.types.is_boolean, "bool"),
        (pa.types.is_integer, "integer"),
        (pa.types.is_floating, "floating"),
        (pa.types.is_decimal, "decimal"),
        (pa.types.is_date, "date"),
        (pa.types.is_timestamp, "ts"),
        (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), "string"),
        (pa.types.is_null, "null"),
    )
    for check, name in checks:
        if check(arrow_type):
            return name
    return str(arrow_type)


def preflight(
    description: SObjectDescription | DestinationSchema,
    mapping_fields: Sequence[str],
    key_field: str,
    *,
    operation: Operation,
    column_types: Mapping[str, pa.DataType] | None = None,
    file: str | None = None,
) -> None:
    """Check a mapping against the object; raise ONE ConfigError (path ``mapping``) listing every
    problem: unknown fields (with a suggestion), a key that is not an External ID, fields the
    operation may not set, and model columns whose type cannot become the field's.

    ``column_types`` maps destination field name → the model column's Arrow type, when known.
    """
    if isinstance(description, DestinationSchema):
        description = SObjectDescription(description)
    schema = description.schema
    problems: list[str] = []
    for name in dict.fromkeys([key_field, *mapping_fields]):
        if name == key_field and name in schema.fields:
            problems += key_problems(schema, key_field)
        problems += field_problems(
            description,
            name,
            operation=operation,
            column_type=(column_types or {}).get(name),
        )
    if problems:
        listed = "".join(f"\n  - {p}" for p in problems)
        raise ConfigError(
            f"{len(problems)} problem(s) with the fields of {schema.object_name}:{listed}",
            file=file,
            path="mapping",
        )


def key_problems(schema: DestinationSchema, key_field: str) -> list[str]:
    """Why an upsert cannot match records by ``key_field`` (it must be an External ID field)."""
    spec = schema.fields.get(key_field)
    if spec is None or spec.external_id:
        return []
    ids = sorted(f.name for f in schema.fields.values() if f.external_id)
    known = f" (External ID fields: {', '.join(ids)})" if ids else " (it has none)"
    return [f"key field {key_field} is not an External ID field of {schema.object_name}{known}"]


def field_problems(
    description: SObjectDescription | DestinationSchema,
    name: str,
    *,
    operation: Operation,
    column_type: pa.DataType | None = None,
) -> list[str]:
    """Why ``operation`` cannot set field ``name``: unknown (with a suggestion), not createable or
    not updateable, or a model column of ``column_type`` that cannot become the field's type."""
    if isinstance(description, DestinationSchema):
        description = SObjectDescription(description)
    spec = description.schema.fields.get(name)
    if spec is None:
        return [_unknown(name, description)]
    problems: list[str] = []
    if operation is Operation.UPSERT and not spec.createable:
        problems.append(f"{name} is not createable (an upsert creates records)")
    if operation in (Operation.UPSERT, Operation.UPDATE) and not spec.updateable:
        problems.append(f"{name} is not updateable (an {operation.value} updates records)")
    if column_type is not None:
        family = _family(column_type)
        if family != "null" and family not in _COMPATIBLE[spec.type]:
            problems.append(
                f"{name} is {spec.type.value} in Salesforce but its model column is {column_type}"
            )
    return problems


def _unknown(name: str, description: SObjectDescription) -> str:
    obj = description.schema.object_name
    if name in description.unsupported:
        kind = description.unsupported[name]
        return f"{name} is a {kind} field, which trueup cannot sync"
    names = [*description.schema.fields, *description.unsupported]
    by_lower = {n.lower(): n for n in names}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    hint = f" (did you mean {by_lower[close[0]]}?)" if close else ""
    return f"{obj} has no field {name}{hint}"
