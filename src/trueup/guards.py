"""Guards: checks every plan must pass before anything is written.

Evaluated on the plan (and, for source sanity, the previous run of the same sync) before apply
sends a record. A guard that trips blocks the run (``GuardBlocked``, exit 6) unless the run was
started with ``--allow NAME``; every verdict, allowed or not, is recorded in the run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from trueup.config import GuardsConfig
from trueup.diff import BEFORE, Action
from trueup.errors import GuardBlocked
from trueup.plan import Plan
from trueup.schema import FieldType
from trueup.store import RunStatus, RunStore, RunSummary


class GuardName(StrEnum):
    """The guards, by the name ``--allow`` takes."""

    FLIP = "flip"  # a checkbox flips the same way on too many existing records
    NULLS = "nulls"  # a field that has values would become null or its default on too many
    MAX_CHANGES = "max_changes"  # more changes than an absolute limit
    CHANGE_SHARE = "change_share"  # too large a share of the destination changed or deleted
    SOURCE_DROP = "source_drop"  # the model returned far fewer rows than the last run, or none


@dataclass(frozen=True)
class GuardVerdict:
    """One guard's judgement of a plan (for a field, when the guard is per field)."""

    guard: GuardName
    tripped: bool
    message: str  # one line a reviewer reads: what, how many, against which limit
    field: str | None = None
    count: int = 0  # records (or rows) concerned
    total: int = 0  # out of
    limit: str = ""  # the threshold, as configured (e.g. "10%")
    examples: tuple[str, ...] = dataclasses.field(default_factory=tuple)  # keys, a few
    allowed: bool = False  # tripped, but the run was started with --allow for it

    @property
    def blocks(self) -> bool:
        """Whether this verdict stops the run."""
        return self.tripped and not self.allowed

    def to_json(self) -> dict[str, Any]:
        """The verdict as stored in the run and printed by ``--json``."""
        return {
            "guard": self.guard.value,
            "field": self.field,
            "tripped": self.tripped,
            "allowed": self.allowed,
            "count": self.count,
            "total": self.total,
            "limit": self.limit,
            "message": self.message,
            "examples": list(self.examples),
        }


@dataclass(frozen=True)
class _Limits:
    flip_pct: float
    nulls_pct: float


def evaluate(
    plan: Plan,
    settings: GuardsConfig,
    *,
    previous_source_rows: int | None = None,
    allow: Collection[GuardName] = (),
) -> list[GuardVerdict]:
    """Every guard's verdict on ``plan``: one per guard, or one per field that trips it.

    ``previous_source_rows``: what the model returned for the last run of this sync (None when
    there was none). Guards in ``allow`` still judge, but their trips do not block.
    """
    if plan.reverts_run is not None:
        # A rollback writes back values the destination held before a run: the guards judge
        # what a model produces, and a rollback plan has no model (its "source" is the store).
        why = f"not judged: a rollback of run {plan.reverts_run} restores stored before-images"
        return [_passed(guard, why) for guard in GuardName]
    verdicts = [
        *_flip(plan, settings),
        *_nulls(plan, settings),
        _max_changes(plan, settings),
        _change_share(plan, settings),
        _source_drop(plan, settings, previous_source_rows),
    ]
    allowed = set(allow)
    return [dataclasses.replace(v, allowed=v.tripped and v.guard in allowed) for v in verdicts]


def enforce(verdicts: Sequence[GuardVerdict]) -> None:
    """GuardBlocked naming every blocking verdict (guard, field, records, examples)."""
    blocking = [v for v in verdicts if v.blocks]
    if not blocking:
        return
    lines = [f"{len(blocking)} guard(s) blocked the plan; nothing was written:"]
    for v in blocking:
        lines.append(f"  {v.guard.value}: {v.message}")
        if v.examples:
            lines.append(f"    e.g. {', '.join(v.examples)}")
    names = " ".join(f"--allow {n}" for n in dict.fromkeys(v.guard.value for v in blocking))
    lines.append(f"Review the plan ('trueup plan'); to apply it anyway: trueup apply {names}")
    raise GuardBlocked("\n".join(lines))


def previous_source_rows(runs: Sequence[RunSummary], destination: str) -> int | None:
    """Rows the model returned for the last finished apply of ``destination`` (newest first)."""
    for run in runs:
        if run.destination != destination or run.command not in ("apply", "demo"):
            continue
        if run.status not in (RunStatus.SUCCEEDED, RunStatus.STOPPED):
            continue
        counted = [
            n
            for name, n in run.counts.items()
            if name.startswith("plan.") and name[5:] not in _DESTINATION_ONLY
        ]
        if counted:
            return sum(counted)
    return None


# --- the guards ----------------------------------------------------------------------------------
_DESTINATION_ONLY = {Action.MISSING_IN_SOURCE.value, Action.DELETE.value}
EXAMPLES = 5


def _limits(settings: GuardsConfig, name: str) -> _Limits:
    own = settings.fields.get(name)
    return _Limits(
        flip_pct=own.flip_pct if own and own.flip_pct is not None else settings.flip_pct,
        nulls_pct=own.nulls_pct if own and own.nulls_pct is not None else settings.nulls_pct,
    )


def _share(count: int, total: int) -> float:
    return 100.0 * count / total if total else 0.0


def _keys(rows: pa.Table, mask: pa.ChunkedArray | pa.Array) -> tuple[str, ...]:
    keys = rows.filter(mask)["key"]
    first = pc.sort_indices(keys)[:EXAMPLES]
    return tuple(str(k) for k in keys.take(first).to_pylist())


def _count(mask: pa.ChunkedArray | pa.Array) -> int:
    return int(pc.sum(pc.cast(mask, pa.int64())).as_py() or 0)


def _flip(plan: Plan, settings: GuardsConfig) -> list[GuardVerdict]:
    """A checkbox flipping the same way on more than flip_pct of the existing records."""
    total = plan.destination_rows
    updates = plan.rows(Action.UPDATE)
    tripped, largest = [], (0.0, "", "")
    for name, kind in plan.field_types.items():
        if kind is not FieldType.BOOLEAN:
            continue
        limit = _limits(settings, name).flip_pct
        before = pc.fill_null(updates[BEFORE + name], False)
        after = pc.fill_null(updates[name], False)
        for direction, mask in (
            ("false → true", pc.and_(pc.invert(before), after)),
            ("true → false", pc.and_(before, pc.invert(after))),
        ):
            count = _count(mask)
            share = _share(count, total)
            largest = max(largest, (share, name, direction))
            if count >= settings.min_records and share > limit:
                tripped.append(
                    GuardVerdict(
                        GuardName.FLIP,
                        tripped=True,
                        field=name,
                        count=count,
                        total=total,
                        limit=f"{limit:g}%",
                        message=(
                            f"{name} would flip {direction} on {count:,} of {total:,} existing "
                            f"records ({share:.1f}%, limit {limit:g}%)"
                        ),
                        examples=_keys(updates, mask),
                    )
                )
    if tripped:
        return tripped
    share, name, direction = largest
    detail = f"largest: {name} {direction} on {share:.1f}%" if name else "no checkbox changes"
    return [_passed(GuardName.FLIP, f"{detail} (limit {settings.flip_pct:g}%)")]


def _nulls(plan: Plan, settings: GuardsConfig) -> list[GuardVerdict]:
    """A field that holds values in the destination becoming null (a checkbox: false) on more
    than nulls_pct of the destination's records; or new records left null (false) far more often
    than the destination's records are: the "every flag false" failure (DESIGN.md §1)."""
    updates, creates = plan.rows(Action.UPDATE), plan.rows(Action.CREATE)
    total = plan.destination_rows
    tripped = []
    for name, kind in plan.field_types.items():
        limit = _limits(settings, name).nulls_pct
        held = plan.destination_values.get(name, 0)
        if kind is FieldType.BOOLEAN:
            had, lost = pc.fill_null(updates[BEFORE + name], False), updates[name]
            lost = pc.invert(pc.fill_null(lost, False))
            empty_new = pc.invert(pc.fill_null(creates[name], False))
        else:
            had, lost = pc.is_valid(updates[BEFORE + name]), pc.is_null(updates[name])
            empty_new = pc.is_null(creates[name])
        mask = pc.and_(had, lost)
        count = _count(mask)
        if count >= settings.min_records and _share(count, total) > limit:
            tripped.append(
                GuardVerdict(
                    GuardName.NULLS,
                    tripped=True,
                    field=name,
                    count=count,
                    total=total,
                    limit=f"{limit:g}%",
                    message=(
                        f"{name} would lose its value (become {_empty(kind)}) on {count:,} of "
                        f"the destination's {total:,} records ({_share(count, total):.1f}%, "
                        f"limit {limit:g}%; {held:,} hold a value now)"
                    ),
                    examples=_keys(updates, mask),
                )
            )
        new_empty = _count(empty_new)
        if total == 0 or creates.num_rows < settings.min_records:
            continue
        expected = 100.0 - _share(held, total)  # share of the destination's records without one
        excess = _share(new_empty, creates.num_rows) - expected
        if new_empty >= settings.min_records and excess > limit:
            tripped.append(
                GuardVerdict(
                    GuardName.NULLS,
                    tripped=True,
                    field=name,
                    count=new_empty,
                    total=creates.num_rows,
                    limit=f"{limit:g}%",
                    message=(
                        f"{name} would be {_empty(kind)} on {new_empty:,} of {creates.num_rows:,} "
                        f"new records ({_share(new_empty, creates.num_rows):.1f}%), where "
                        f"{expected:.1f}% of the destination's {total:,} records are "
                        f"(limit {limit:g} points above)"
                    ),
                    examples=_keys(creates, empty_new),
                )
            )
    if tripped:
        return tripped
    return [_passed(GuardName.NULLS, f"no field loses values (limit {settings.nulls_pct:g}%)")]


def _empty(kind: FieldType) -> str:
    return "false" if kind is FieldType.BOOLEAN else "null"


def _max_changes(plan: Plan, settings: GuardsConfig) -> GuardVerdict:
    limit, count = settings.max_changes, plan.write_count
    if limit is None:
        return _passed(GuardName.MAX_CHANGES, f"{count:,} changes (no limit set)")
    if count <= limit:
        return _passed(GuardName.MAX_CHANGES, f"{count:,} changes (limit {limit:,})")
    rows = plan.rows(Action.CREATE, Action.UPDATE, Action.DELETE)
    return GuardVerdict(
        GuardName.MAX_CHANGES,
        tripped=True,
        count=count,
        total=limit,
        limit=f"{limit:,}",
        message=f"{count:,} records would change, more than guards.max_changes ({limit:,})",
        examples=_keys(rows, pc.is_valid(rows["key"])),
    )


def _change_share(plan: Plan, settings: GuardsConfig) -> GuardVerdict:
    total, limit = plan.destination_rows, settings.max_change_pct
    updated, deleted = plan.counts.get(Action.UPDATE, 0), plan.counts.get(Action.DELETE, 0)
    count = updated + deleted
    share = _share(count, total)
    if count < settings.min_records or share <= limit:
        return _passed(
            GuardName.CHANGE_SHARE,
            f"{share:.1f}% of the destination's records updated or deleted (limit {limit:g}%)",
        )
    rows = plan.rows(Action.UPDATE, Action.DELETE)
    return GuardVerdict(
        GuardName.CHANGE_SHARE,
        tripped=True,
        count=count,
        total=total,
        limit=f"{limit:g}%",
        message=(
            f"{updated:,} updates and {deleted:,} deletes would change {share:.1f}% of the "
            f"destination's {total:,} records (limit {limit:g}%)"
        ),
        examples=_keys(rows, pc.is_valid(rows["key"])),
    )


def _source_drop(plan: Plan, settings: GuardsConfig, previous: int | None) -> GuardVerdict:
    rows, limit = plan.source_rows, settings.source_drop_pct
    if rows == 0 and (previous or plan.destination_rows):
        before = f"{previous:,} last run" if previous else f"{plan.destination_rows:,} held"
        return GuardVerdict(
            GuardName.SOURCE_DROP,
            tripped=True,
            count=0,
            total=previous or plan.destination_rows,
            limit=f"{limit:g}%",
            message=f"the model returned no rows ({before}): a broken query or an empty source?",
        )
    if not previous:
        return _passed(GuardName.SOURCE_DROP, f"{rows:,} source rows (no earlier run to compare)")
    drop = 100.0 - _share(rows, previous)
    if drop <= limit:
        return _passed(
            GuardName.SOURCE_DROP,
            f"{rows:,} source rows, {previous:,} last run (limit: {limit:g}% fewer)",
        )
    return GuardVerdict(
        GuardName.SOURCE_DROP,
        tripped=True,
        count=rows,
        total=previous,
        limit=f"{limit:g}%",
        message=(
            f"the model returned {rows:,} rows, {drop:.1f}% fewer than the {previous:,} of the "
            f"last run (limit {limit:g}%)"
        ),
    )


def _passed(guard: GuardName, message: str) -> GuardVerdict:
    return GuardVerdict(guard, tripped=False, message=message)


def judge(
    plan: Plan, settings: GuardsConfig, store: RunStore, *, allow: Collection[GuardName] = ()
) -> list[GuardVerdict]:
    """``evaluate`` with the source rows of this sync's last run, read from the run store."""
    previous = previous_source_rows(store.list_runs(limit=200), plan.destination)
    return evaluate(plan, settings, previous_source_rows=previous, allow=allow)
