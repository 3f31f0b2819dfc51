"""Check: read the source and the destination itself now and report how far they agree.

Accuracy is the share of valid source records whose every mapped field agrees with the destination
(a record missing from the destination disagrees). Invalid source records and destination records
whose key is not in the source are listed apart; they do not count against accuracy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from trueup.config import FeaturesModelConfig, LoadedConfig
from trueup.destinations import open_destination
from trueup.diff import Action
from trueup.pipeline import diff_now, read_model
from trueup.progress import ProgressCallback, no_progress
from trueup.sqltext import quote_ident

MULTI_MEMBER_COLUMN = "is_multi_member"


@dataclass(frozen=True)
class CheckReport:
    """Agreement between source and destination, read now."""

    compared: int  # valid source records
    agreeing: int
    matched: int  # valid source records present in the destination
    field_mismatches: Mapping[str, int]
    missing_in_destination: tuple[str, ...]
    extra_in_destination: tuple[str, ...]
    invalid: tuple[tuple[str | None, str], ...]
    multi_member_groups: int | None = None
    multi_member_agreeing: int | None = None

    @property
    def accuracy(self) -> float:
        """Percent of valid source records that agree field for field (100 when there are none)."""
        return 100.0 * self.agreeing / self.compared if self.compared else 100.0

    def field_agreement(self) -> dict[str, float]:
        """Percent agreement per field over the records present on both sides."""
        return {
            f: 100.0 * (self.matched - n) / self.matched if self.matched else 100.0
            for f, n in self.field_mismatches.items()
        }


def run_check(loaded: LoadedConfig, *, progress: ProgressCallback = no_progress) -> CheckReport:
    """Read the model and the destination now and compare them."""
    model = read_model(loaded, progress)
    with open_destination(loaded) as destination:
        result, _ = diff_now(loaded, destination, model, progress)
    counts = result.counts
    records = result.records

    def keys(action: Action) -> tuple[str, ...]:
        column = records.filter(pa.compute.equal(records["action"], action.value))["key"]
        return tuple(column.to_pylist())

    invalid_rows = records.filter(pa.compute.equal(records["action"], Action.INVALID.value))
    multi, multi_ok = _multi_member(loaded, model, records)
    return CheckReport(
        compared=counts[Action.CREATE] + counts[Action.UPDATE] + counts[Action.UNCHANGED],
        agreeing=counts[Action.UNCHANGED],
        matched=counts[Action.UPDATE] + counts[Action.UNCHANGED],
        field_mismatches=_update_mismatches(records, result.fields),
        missing_in_destination=keys(Action.CREATE),
        extra_in_destination=keys(Action.MISSING_IN_SOURCE),
        invalid=tuple(
            zip(invalid_rows["key"].to_pylist(), invalid_rows["reason"].to_pylist(), strict=True)
        ),
        multi_member_groups=multi,
        multi_member_agreeing=multi_ok,
    )


def _update_mismatches(records: pa.Table, fields: tuple[str, ...]) -> dict[str, int]:
    con = duckdb.connect()
    try:
        con.register("r", records)
        found = dict(
            con.execute(
                "SELECT f, count(*) FROM (SELECT unnest(changed) AS f FROM r "
                "WHERE action = 'update') GROUP BY f"
            ).fetchall()
        )
    finally:
        con.close()
    return {f: int(found.get(f, 0)) for f in fields}


def _multi_member(
    loaded: LoadedConfig, model: pa.Table, records: pa.Table
) -> tuple[int | None, int | None]:
    """Groups of several source records, and how many of them agree (features model only)."""
    config = loaded.config
    if not isinstance(config.model, FeaturesModelConfig) or MULTI_MEMBER_COLUMN not in (
        model.schema.names
    ):
        return None, None
    key_column = config.key
    con = duckdb.connect()
    try:
        con.register("m", model)
        con.register("r", records)
        row = con.execute(
            f"""
            SELECT count(*),
                   count(*) FILTER (WHERE NOT EXISTS (
                       SELECT 1 FROM r WHERE r.key = CAST(m.k AS VARCHAR)
                                         AND r.action IN ('create', 'update', 'invalid')))
            FROM (SELECT {quote_ident(key_column)} AS k FROM m
                  WHERE {MULTI_MEMBER_COLUMN}) AS m
            """
        ).fetchone()
    finally:
        con.close()
    return (int(row[0]), int(row[1])) if row else (None, None)
