"""Field types and the destination's description of itself (`Destination.describe()`).

One vocabulary of types for every destination, so type-aware comparison lives in one place
(diff.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import pyarrow as pa

from trueup.errors import DestinationSchemaError


class FieldType(StrEnum):
    """The value types trueup compares and writes."""

    TEXT = "text"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    INTEGER = "integer"
    NUMBER = "number"


ARROW_TYPES: Mapping[FieldType, pa.DataType] = {
    FieldType.TEXT: pa.string(),
    FieldType.BOOLEAN: pa.bool_(),
    FieldType.DATE: pa.date32(),
    FieldType.DATETIME: pa.timestamp("us", tz="UTC"),
    FieldType.INTEGER: pa.int64(),
    FieldType.NUMBER: pa.float64(),
}
"""The canonical Arrow type of each field type: what snapshots, plans and writes carry."""

DUCKDB_TYPES: Mapping[FieldType, str] = {
    FieldType.TEXT: "VARCHAR",
    FieldType.BOOLEAN: "BOOLEAN",
    FieldType.DATE: "DATE",
    FieldType.DATETIME: "TIMESTAMPTZ",
    FieldType.INTEGER: "BIGINT",
    FieldType.NUMBER: "DOUBLE",
}
"""The DuckDB type of each field type (the diff compares values in these types)."""


@dataclass(frozen=True)
class FieldSpec:
    """One destination field as the destination describes it."""

    name: str
    type: FieldType
    nullable: bool = True
    length: int | None = None
    createable: bool = True
    updateable: bool = True
    external_id: bool = False
    unique: bool = False


@dataclass(frozen=True)
class DestinationSchema:
    """The fields a destination object (table, sObject, file set) holds."""

    object_name: str
    fields: Mapping[str, FieldSpec] = field(default_factory=dict)

    def field(self, name: str) -> FieldSpec:
        """Return the named field, or raise DestinationSchemaError naming what exists."""
        try:
            return self.fields[name]
        except KeyError:
            known = ", ".join(sorted(self.fields)) or "none"
            raise DestinationSchemaError(
                f"{self.object_name} has no field {name!r} (fields: {known})"
            ) from None
