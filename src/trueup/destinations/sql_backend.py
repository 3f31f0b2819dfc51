"""What SqlDestination needs from one database engine, and the pure rules every engine shares.

An engine (SQLAlchemy for PostgreSQL and SQLite, the DuckDB API for DuckDB) reflects the table,
reads columns and writes rows. The rules for turning a batch into per-record answers live here,
once: within a batch the last occurrence of a key is the row that lands; the first occurrence of a
key the table did not hold is CREATED, every other occurrence UPDATED.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from trueup.destinations.base import Operation, OutcomeStatus
from trueup.errors import DestinationSchemaError
from trueup.schema import ARROW_TYPES, DestinationSchema, FieldType

CANONICAL_ARROW = ARROW_TYPES  # what every SQL backend returns from a snapshot

_INTEGER_NAMES = frozenset(
    {"TINYINT", "SMALLINT", "INTEGER", "INT", "BIGINT", "HUGEINT", "INT1", "INT2", "INT4", "INT8"}
    | {"UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"}
    | {"SERIAL", "BIGSERIAL", "SMALLSERIAL"}
)
_NUMBER_NAMES = frozenset({"DECIMAL", "NUMERIC", "REAL", "DOUBLE", "FLOAT", "FLOAT4", "FLOAT8"})
_NOT_NULL = re.compile(r"NOT NULL constraint failed: (\S+)")
_LENGTH = re.compile(r"^\s*(?:VAR)?CHAR(?:ACTER)?(?:\s+VARYING)?\s*\(\s*(\d+)\s*\)")


@dataclass(frozen=True)
class RecordFailure:
    """A record the database refused, with a short code and a one-line message."""

    code: str
    message: str
    fields: tuple[str, ...] = ()


Answer = OutcomeStatus | RecordFailure


class RecordRejected(Exception):
    """Raised inside a whole-batch write when one record is refused; the batch falls back."""

    def __init__(self, failure: RecordFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class TableEngine(ABC):
    """One table in one database engine, as SqlDestination uses it."""

    @abstractmethod
    def describe(self, key_field: str) -> DestinationSchema:
        """Reflect the table; DestinationSchemaError if it does not exist."""

    @abstractmethod
    def select(self, schema: DestinationSchema, fields: Sequence[str]) -> pa.Table:
        """Every row of the table, only ``fields``, in the engine's storage Arrow types."""

    @abstractmethod
    def write(
        self, records: pa.Table, key: str, operation: Operation, *, isolate: bool
    ) -> list[Answer]:
        """Write ``records``: with ``isolate`` each record alone, else all or none."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""


def key_text(value: object) -> str:
    """A key value as the text that outcomes and comparisons use."""
    return "" if value is None else str(value)


def last_occurrences(keys: Sequence[str]) -> list[int]:
    """Row indices of the last occurrence of each key, in order of first occurrence."""
    last: dict[str, int] = {}
    for index, key in enumerate(keys):
        last[key] = index
    return list(last.values())


def upsert_answers(keys: Sequence[str], existing: set[str]) -> list[Answer]:
    """CREATED for the first occurrence of a key not in ``existing``, UPDATED for the others."""
    seen = set(existing)
    answers: list[Answer] = []
    for key in keys:
        answers.append(OutcomeStatus.UPDATED if key in seen else OutcomeStatus.CREATED)
        seen.add(key)
    return answers


def update_answers(keys: Sequence[str], existing: set[str], key_field: str) -> list[Answer]:
    """UPDATED for keys the table holds, NOT_FOUND failures for the others."""
    return [
        OutcomeStatus.UPDATED
        if key in existing
        else RecordFailure("NOT_FOUND", f"no record with {key_field} = {key!r}")
        for key in keys
    ]


def insert_answers(keys: Sequence[str], existing: set[str], key_field: str) -> list[Answer]:
    """CREATED for the first occurrence of a key the table did not hold; DUPLICATE_VALUE else."""
    seen = set(existing)
    answers: list[Answer] = []
    for key in keys:
        if key in seen:
            answers.append(
                RecordFailure("DUPLICATE_VALUE", f"a record with {key_field} = {key!r} exists")
            )
        else:
            answers.append(OutcomeStatus.CREATED)
        seen.add(key)
    return answers


def delete_answers(keys: Sequence[str], existing: set[str], key_field: str) -> list[Answer]:
    """DELETED for keys the table held, NOT_FOUND failures for the others."""
    return [
        OutcomeStatus.DELETED
        if key in existing
        else RecordFailure("NOT_FOUND", f"no record with {key_field} = {key!r}")
        for key in keys
    ]


def answers_for(
    operation: Operation, keys: Sequence[str], existing: set[str], key_field: str
) -> list[Answer]:
    """Each record's answer once ``operation`` ran, given the keys the table held before."""
    if operation is Operation.UPDATE:
        return update_answers(keys, existing, key_field)
    if operation is Operation.INSERT:
        return insert_answers(keys, existing, key_field)
    if operation is Operation.DELETE:
        return delete_answers(keys, existing, key_field)
    return upsert_answers(keys, existing)


def field_type_from_name(declared: str) -> tuple[FieldType, int | None]:
    """Map a declared SQL type name (SQLite, DuckDB) to a FieldType and a text length."""
    upper = declared.strip().upper()
    base = re.split(r"[\s(]", upper, maxsplit=1)[0]
    if base in {"BOOLEAN", "BOOL", "LOGICAL"}:
        return FieldType.BOOLEAN, None
    if base == "DATE":
        return FieldType.DATE, None
    if base.startswith("TIMESTAMP") or base == "DATETIME":
        return FieldType.DATETIME, None
    if base in _INTEGER_NAMES:
        return FieldType.INTEGER, None
    if base in _NUMBER_NAMES or upper.startswith("DOUBLE PRECISION"):
        return FieldType.NUMBER, None
    match = _LENGTH.match(upper)
    return FieldType.TEXT, int(match.group(1)) if match else None


def snake_code(name: str) -> str:
    """``NotNullViolation`` → ``NOT_NULL_VIOLATION`` (driver exception names as error codes)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).upper()


def not_null_column(message: str) -> tuple[str, ...]:
    """The column a ``NOT NULL constraint failed: table.column`` message names (SQLite, DuckDB)."""
    match = _NOT_NULL.search(message)
    return (match.group(1).rsplit(".", 1)[-1].strip('"'),) if match else ()


def one_line(exc: BaseException | None, *, secret: str | None = None) -> str:
    """The first line of an exception's message, trimmed, with ``secret`` blanked out."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    if secret:
        text = text.replace(secret, "***")
    return text if len(text) <= 300 else text[:297] + "..."


def to_arrow(values: Sequence[object], arrow_type: pa.DataType, where: str) -> pa.Array:
    """Build one column; a stored value that does not fit the column's type is a schema error."""
    try:
        return pa.array(values, type=arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        raise DestinationSchemaError(
            f"{where} holds a value that is not {arrow_type}: {one_line(exc)}"
        ) from exc
