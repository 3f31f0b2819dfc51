"""One object's records in memory: values in field order, deleted Ids, and lookup indexes.

A record is a list of values in the order of the object's fields (compact for 100,000 rows); the org
turns it into a ``{FieldName: value}`` dict at the edge. Every external-ID and unique field has an
index from its lookup key (text folded to lower case unless the field is caseSensitive) to the live
records holding it, so an upsert matches in constant time; other fields get one when first searched.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from trueup.sandbox.ids import mint
from trueup.sandbox.objects import SField, SObject
from trueup.sandbox.values import FieldValueError, from_json

SYSTEM_DATES = ("CreatedDate", "LastModifiedDate", "SystemModstamp")


def lookup_key(field: SField, value: Any) -> Any:
    """How ``value`` is matched on ``field``: in any case unless the field is caseSensitive."""
    if isinstance(value, str) and not field.case_sensitive:
        return value.lower()
    return value


def _default(field: SField) -> Any:
    if field.type == "boolean":
        return bool(field.default_value)  # a checkbox left out of an insert is its default, false
    if field.default_value is None:
        return None
    try:
        return from_json(field, field.default_value)
    except FieldValueError:
        return field.default_value


class Table:
    """The records of one object."""

    def __init__(self, sobject: SObject) -> None:
        self.sobject = sobject
        self.names: tuple[str, ...] = tuple(f.name for f in sobject.fields.values())
        self.pos: dict[str, int] = {name: i for i, name in enumerate(self.names)}
        self.records: dict[str, list[Any]] = {}  # Id -> values, in creation order
        self.deleted: set[str] = set()
        self.next_number = 1
        fields = list(sobject.fields.values())
        self.blank: list[Any] = [
            None if f.name == "Id" or not f.createable else _default(f) for f in fields
        ]
        if "IsDeleted" in self.pos:
            self.blank[self.pos["IsDeleted"]] = False
        # Non-nillable fields a request may set, other than checkboxes (never null anyway).
        self.not_null = frozenset(
            f.name
            for f in fields
            if not f.nillable and f.type != "boolean" and (f.createable or f.updateable)
        )
        self.required_on_insert = tuple(
            f.name for f in fields if f.name in self.not_null and f.createable
        )
        self.unique = tuple(f for f in fields if f.unique and f.name != "Id")
        self._indexes: dict[str, dict[Any, list[str]]] = {}
        for f in fields:
            if (f.external_id or f.unique) and f.name != "Id":
                self._indexes[f.name] = {}

    # -- reading --------------------------------------------------------------------------

    def as_dict(self, values: list[Any]) -> dict[str, Any]:
        """A stored record as ``{FieldName: value}``."""
        return dict(zip(self.names, values, strict=True))

    def live(self, record_id: str) -> list[Any] | None:
        """The values of a live (not deleted) record, or None."""
        if record_id in self.deleted:
            return None
        return self.records.get(record_id)

    def matches(self, field: SField, value: Any) -> list[str]:
        """Ids of live records whose ``field`` matches ``value`` (see ``lookup_key``)."""
        if field.name == "Id":
            return [value] if isinstance(value, str) and self.live(value) is not None else []
        return list(self._index(field.name).get(lookup_key(field, value), ()))

    def rows(self, *, include_deleted: bool = False) -> Iterator[dict[str, Any]]:
        """Every record as a dict, in creation order."""
        for record_id, values in self.records.items():
            if include_deleted or record_id not in self.deleted:
                yield self.as_dict(values)

    def count(self) -> int:
        """Live records."""
        return len(self.records) - len(self.deleted)

    # -- writing --------------------------------------------------------------------------

    def new_id(self) -> str:
        """The next Id of this object."""
        while True:
            record_id = mint(self.sobject.key_prefix, self.next_number)
            self.next_number += 1
            if record_id not in self.records:
                return record_id

    def put(self, record_id: str, values: list[Any], *, deleted: bool = False) -> None:
        """Store ``values`` as the record ``record_id`` (new or replacing, keeping its place)."""
        self._unindex(record_id)
        self.records[record_id] = values
        if deleted:
            self.deleted.add(record_id)
            return
        self.deleted.discard(record_id)
        for name, index in self._indexes.items():
            self._add_key(index, name, values, record_id)

    def drop(self, record_id: str) -> None:
        """Forget a record entirely (undoing its insert)."""
        self._unindex(record_id)
        self.records.pop(record_id, None)
        self.deleted.discard(record_id)

    # -- indexes --------------------------------------------------------------------------

    def _key(self, name: str, values: list[Any]) -> Any:
        field = self.sobject.fields[name]
        return lookup_key(field, values[self.pos[name]])

    def _add_key(self, index: dict[Any, list[str]], name: str, values: list[Any], rid: str) -> None:
        key = self._key(name, values)
        if key is not None:
            index.setdefault(key, []).append(rid)

    def _unindex(self, record_id: str) -> None:
        old = self.records.get(record_id)
        if old is None or record_id in self.deleted:
            return
        for name, index in self._indexes.items():
            key = self._key(name, old)
            holders = index.get(key)
            if holders is not None and record_id in holders:
                holders.remove(record_id)
                if not holders:
                    del index[key]

    def _index(self, name: str) -> dict[Any, list[str]]:
        index = self._indexes.get(name)
        if index is None:
            index = {}
            for record_id, values in self.records.items():
                if record_id not in self.deleted:
                    self._add_key(index, name, values, record_id)
            self._indexes[name] = index
        return index
