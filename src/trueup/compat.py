"""Which model column types can feed which destination field types: the pre-flight type check.

The diff turns every model value into its field's type (``normalize`` in diff.py). Some Arrow
types can never become some field types: no boolean is a date, no date a number. A mapping that
pairs them is a configuration error, found before the plan reads the destination from the model's
column types (known before its first row) and the ``DestinationSchema`` every destination's
``describe()`` returns, so the check is the same for every destination.

    field type         model column types it takes
    text               any
    boolean            boolean; integer, floating, decimal (1 and 0); string
    date, datetime     date, timestamp; string
    integer, number    integer, floating, decimal, boolean; string

A type is taken when the diff converts at least some of its values (3.0 to an integer, 1 to a
boolean); a value that does not convert makes its record invalid, with the reason, and the rest of
the column still syncs. So strings feed any field: the diff parses them. A column of type null (no
values at all) feeds any field; a dictionary-encoded column counts as its value type.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Mapping
from enum import StrEnum
from typing import Protocol, runtime_checkable

import pyarrow as pa

from trueup.destinations.base import Destination
from trueup.errors import ConfigError
from trueup.schema import DestinationSchema, FieldSpec, FieldType


class ColumnKind(StrEnum):
    """The kinds of Arrow type the table above tells apart."""

    BOOLEAN = "boolean"
    INTEGER = "integer"
    FLOATING = "floating"
    DECIMAL = "decimal"
    DATE = "date"
    TIMESTAMP = "timestamp"
    STRING = "string"
    NULL = "null"
    OTHER = "other"  # time, duration, binary, list, struct, ...: text only


_NUMBERS = frozenset({ColumnKind.INTEGER, ColumnKind.FLOATING, ColumnKind.DECIMAL})
_MOMENTS = frozenset({ColumnKind.DATE, ColumnKind.TIMESTAMP})

ACCEPTED: Mapping[FieldType, frozenset[ColumnKind]] = {
    FieldType.TEXT: frozenset(ColumnKind),
    FieldType.BOOLEAN: _NUMBERS | {ColumnKind.BOOLEAN, ColumnKind.STRING, ColumnKind.NULL},
    FieldType.DATE: _MOMENTS | {ColumnKind.STRING, ColumnKind.NULL},
    FieldType.DATETIME: _MOMENTS | {ColumnKind.STRING, ColumnKind.NULL},
    FieldType.INTEGER: _NUMBERS | {ColumnKind.BOOLEAN, ColumnKind.STRING, ColumnKind.NULL},
    FieldType.NUMBER: _NUMBERS | {ColumnKind.BOOLEAN, ColumnKind.STRING, ColumnKind.NULL},
}
"""The kinds of model column each field type takes (the table in the module docstring)."""

_TAKES: Mapping[FieldType, str] = {
    FieldType.TEXT: "any value",
    FieldType.BOOLEAN: "a boolean, a number (1 or 0) or text",
    FieldType.DATE: "a date, a timestamp or text",
    FieldType.DATETIME: "a date, a timestamp or text",
    FieldType.INTEGER: "a number, a boolean or text",
    FieldType.NUMBER: "a number, a boolean or text",
}


def column_kind(arrow_type: pa.DataType) -> ColumnKind:
    """The kind of an Arrow type, for the table of ``ACCEPTED``."""
    if pa.types.is_dictionary(arrow_type):
        return column_kind(arrow_type.value_type)
    checks = (
        (pa.types.is_boolean, ColumnKind.BOOLEAN),
        (pa.types.is_integer, ColumnKind.INTEGER),
        (pa.types.is_floating, ColumnKind.FLOATING),
        (pa.types.is_decimal, ColumnKind.DECIMAL),
        (pa.types.is_date, ColumnKind.DATE),
        (pa.types.is_timestamp, ColumnKind.TIMESTAMP),
        (pa.types.is_string, ColumnKind.STRING),
        (pa.types.is_large_string, ColumnKind.STRING),
        (pa.types.is_string_view, ColumnKind.STRING),
        (pa.types.is_null, ColumnKind.NULL),
    )
    return next((kind for check, kind in checks if check(arrow_type)), ColumnKind.OTHER)


def accepts(field_type: FieldType, column_type: pa.DataType) -> bool:
    """Whether a model column of ``column_type`` can feed a field of ``field_type``."""
    return column_kind(column_type) in ACCEPTED[field_type]


def type_problem(spec: FieldSpec, column: pa.Field) -> str | None:
    """Why model column ``column`` cannot feed the field ``spec``, or None when it can."""
    if accepts(spec.type, column.type):
        return None
    kind = spec.type.value
    article = "an" if kind[0] in "aeiou" else "a"
    # the Arrow type without its unit or zone: "date32[day]" would read as markup in a terminal
    shown = str(column.type).split("[", 1)[0]
    return (
        f"{spec.name} is {article} {kind} field but model column {column.name} is {shown} "
        f"({kind} fields take {_TAKES[spec.type]})"
    )


def mapped_columns(mapping: Mapping[str, str], model: pa.Schema) -> dict[str, pa.Field]:
    """The model column feeding each mapped destination field, by field name.

    Columns the model does not produce are left out (the diff reports them).
    """
    columns: dict[str, pa.Field] = {}
    for column, field in mapping.items():
        index = model.get_field_index(column)  # -1: absent, or named twice
        if index >= 0:
            columns[field] = model.field(index)
    return columns


def type_problems(schema: DestinationSchema, columns: Mapping[str, pa.Field]) -> list[str]:
    """One line per field of ``schema`` that its model column (``columns``, by field) cannot
    feed; fields the schema does not have are left to the caller."""
    problems = []
    for name, column in columns.items():
        spec = schema.fields.get(name)
        problem = type_problem(spec, column) if spec is not None else None
        if problem is not None:
            problems.append(problem)
    return problems


def did_you_mean(name: str, names: Iterable[str]) -> str:
    """`` (did you mean X?)`` for the name closest to ``name`` regardless of case, or ''."""
    by_lower = {n.lower(): n for n in names}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return f" (did you mean {by_lower[close[0]]}?)" if close else ""


def mapping_error(object_name: str, problems: Collection[str], *, file: str | None) -> ConfigError:
    """The one pre-flight error (path ``mapping``) listing every problem, one per line."""
    listed = "".join(f"\n  - {p}" for p in problems)
    return ConfigError(
        f"{len(problems)} problem(s) with the fields of {object_name}:{listed}",
        file=file,
        path="mapping",
    )


@runtime_checkable
class ChecksModelColumns(Protocol):
    """A destination whose own pre-flight (run by ``describe``) also checks the model's columns,
    so its problems and the type problems are listed in one error."""

    def expect_model_columns(self, columns: Mapping[str, pa.Field]) -> None:
        """Before ``describe``: the model column feeding each mapped field, by field name."""


def checked_describe(
    destination: Destination,
    mapping: Mapping[str, str],
    model: pa.Schema,
    *,
    file: str | None = None,
) -> DestinationSchema:
    """``destination.describe()``, once the model's column types passed the pre-flight.

    Raises one ConfigError (path ``mapping``) listing every column whose type cannot feed its
    field, with the destination's own pre-flight problems when it has one, and otherwise with the
    mapped fields the destination does not have. Reads no records.
    """
    columns = mapped_columns(mapping, model)
    if isinstance(destination, ChecksModelColumns):
        destination.expect_model_columns(columns)
    schema = destination.describe()
    problems = type_problems(schema, columns)
    if problems:
        unknown = [
            f"{schema.object_name} has no field {name}{did_you_mean(name, schema.fields)}"
            for name in dict.fromkeys(mapping.values())
            if name not in schema.fields
        ]
        raise mapping_error(schema.object_name, [*unknown, *problems], file=file)
    return schema
