"""The sync's operation: which of the diff's changes a run may write.

The diff classifies every key the same way whatever the sync may do; the operation then decides,
in one vectorised relabelling of the diff's records (no per-row Python):

- ``upsert`` (default): creates and updates are written;
- ``update``: creates become ``missing_in_destination``: reported, never created;
- ``insert``: updates become ``exists_in_destination``: reported, never overwritten;
- ``delete_missing: true`` (any operation): ``missing_in_source`` becomes ``delete``.
"""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum

import pyarrow as pa
import pyarrow.compute as pc

from trueup.destinations.base import Capabilities, Operation
from trueup.diff import Action, Diff
from trueup.errors import ConfigError


class SyncOperation(StrEnum):
    """What a sync may do to the destination's records (config ``operation``)."""

    UPSERT = "upsert"
    UPDATE = "update"
    INSERT = "insert"

    @property
    def write(self) -> Operation:
        """The destination operation its creates and updates are written with."""
        return Operation(self.value)


_HELD = {
    SyncOperation.UPDATE: (Action.CREATE, Action.MISSING_IN_DESTINATION),
    SyncOperation.INSERT: (Action.UPDATE, Action.EXISTS_IN_DESTINATION),
}


def restrict(result: Diff, operation: SyncOperation, *, delete_missing: bool) -> Diff:
    """The diff with the actions ``operation`` (and ``delete_missing``) allow; counts redone."""
    relabel: list[tuple[Action, Action]] = []
    if operation in _HELD:
        relabel.append(_HELD[operation])
    if delete_missing:
        relabel.append((Action.MISSING_IN_SOURCE, Action.DELETE))
    if not relabel:
        return result
    action = result.records["action"]
    for old, new in relabel:
        action = pc.if_else(pc.equal(action, old.value), new.value, action)
    index = result.records.schema.get_field_index("action")
    records = result.records.set_column(index, "action", action)
    counts = dict(result.counts)
    for old, new in relabel:
        counts[new] = counts.get(new, 0) + counts.get(old, 0)
        counts[old] = 0
    changes = _field_changes(result, records)
    return replace(result, records=records, counts=counts, field_changes=changes)


def _field_changes(result: Diff, records: pa.Table) -> dict[str, int]:
    """Changes per field over the records still written (creates and updates)."""
    writes = pc.is_in(records["action"], pa.array([Action.CREATE.value, Action.UPDATE.value]))
    names = pc.list_flatten(records.filter(writes)["changed"])
    counted = pc.value_counts(names).to_pylist() if len(names) else []
    found = {str(item["values"]): int(item["counts"]) for item in counted}
    return {f: found.get(f, 0) for f in result.fields}


def check_supported(
    operation: SyncOperation,
    *,
    delete_missing: bool,
    capabilities: Capabilities,
    shown: str,
    file: str | None = None,
) -> None:
    """ConfigError when the destination cannot do what the config asks of it."""
    wanted = [("operation", operation.write)]
    if delete_missing:
        wanted.append(("delete_missing", Operation.DELETE))
    for setting, op in wanted:
        if op not in capabilities.operations:
            can = ", ".join(sorted(o.value for o in capabilities.operations))
            raise ConfigError(
                f"{shown} cannot {op.value} records (it can: {can})", file=file, path=setting
            )
