"""Salesforce describe → DestinationSchema, and the pre-flight check of a mapping against it.

Type mapping (describe ``type`` → FieldType): text-like types (string, textarea, picklist,
multipicklist, combobox, email, phone, url, id, reference, encryptedstring, time) → TEXT with their
``length``; boolean → BOOLEAN, never null (checkboxes store false); date → DATE; datetime →
DATETIME; double, currency, percent → NUMBER; int, long → INTEGER. Compound and binary fields
(address, location, base64, ...) cannot be synced and are listed as unsupported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from trueup.compat import did_you_mean, mapping_error, type_problem
from trueup.destinations.base import Operation
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


def preflight(
    description: SObjectDescription | DestinationSchema,
    mapping_fields: Sequence[str],
    key_field: str,
    *,
    operation: Operation,
    columns: Mapping[str, pa.Field] | None = None,
    file: str | None = None,
) -> None:
    """Check a mapping against the object; raise ONE ConfigError (path ``mapping``) listing every
    problem: unknown fields (with a suggestion), a key that is not an External ID, fields the
    operation may not set, and model columns whose type cannot become the field's (compat.py).

    ``columns`` maps destination field name → the model column feeding it, when known.
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
            column=(columns or {}).get(name),
        )
    if problems:
        raise mapping_error(schema.object_name, problems, file=file)


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
    column: pa.Field | None = None,
) -> list[str]:
    """Why ``operation`` cannot set field ``name``: unknown (with a suggestion), not createable or
    not updateable, or fed by a model ``column`` whose type cannot become the field's."""
    if isinstance(description, DestinationSchema):
        description = SObjectDescription(description)
    spec = description.schema.fields.get(name)
    if spec is None:
        return [_unknown(name, description)]
    problems: list[str] = []
    if operation in (Operation.UPSERT, Operation.INSERT) and not spec.createable:
        problems.append(f"{name} is not createable (an {operation.value} creates records)")
    if operation in (Operation.UPSERT, Operation.UPDATE) and not spec.updateable:
        problems.append(f"{name} is not updateable (an {operation.value} updates records)")
    wrong_type = type_problem(spec, column) if column is not None else None
    if wrong_type is not None:
        problems.append(wrong_type)
    return problems


def _unknown(name: str, description: SObjectDescription) -> str:
    obj = description.schema.object_name
    if name in description.unsupported:
        kind = description.unsupported[name]
        return f"{name} is a {kind} field, which trueup cannot sync"
    names = [*description.schema.fields, *description.unsupported]
    return f"{obj} has no field {name}{did_you_mean(name, names)}"
