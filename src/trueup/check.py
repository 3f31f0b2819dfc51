"""Check: read the source and the destination itself now and report how far they agree.

Accuracy is the share of valid source records whose every mapped field agrees with the destination
(a record missing from the destination disagrees). Invalid source records and destination records
whose key is not in the source are listed apart; they do not count against accuracy.

The report also carries what a reader needs to fix things: one row per mismatched record and field
with the source's and the destination's value (computed in DuckDB from the diff's records), and the
mismatches grouped by product (features model: a product's enabled, start date and updated date
fields; any other field stands for itself). ``judge`` holds a report to the thresholds in
``guards``; ``stored_check`` is what the run store keeps of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum

import duckdb
import pyarrow as pa

from trueup.config import Config, FeaturesModelConfig, GuardsConfig, LoadedConfig
from trueup.destinations import open_destination
from trueup.diff import BEFORE, Action
from trueup.models.features import output_schema
from trueup.pipeline import destination_name, diff_now, read_model
from trueup.progress import ProgressCallback, no_progress
from trueup.sqltext import quote_ident, quote_literal
from trueup.store.values import StoredCheck

MULTI_MEMBER_COLUMN = "is_multi_member"


class MismatchKind(StrEnum):
    """Why a (record, field) pair is in ``CheckReport.mismatches``."""

    MISMATCH = "mismatch"  # the record is on both sides; this field's values differ
    MISSING_IN_DESTINATION = "missing_in_destination"  # the record is not in the destination


#: ``CheckReport.mismatches``: values as text (dates ISO, booleans true/false, null as null).
MISMATCH_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("field", pa.string()),
        ("product", pa.string()),
        ("kind", pa.string()),
        ("source_value", pa.string()),
        ("destination_value", pa.string()),
    ]
)


class ThresholdName(StrEnum):
    """The settings a check is held to."""

    MIN_ACCURACY = "guards.min_accuracy"
    MAX_MISSING = "guards.max_missing"
    MAX_MISSING_PCT = "guards.max_missing_pct"


@dataclass(frozen=True)
class Threshold:
    """One limit a check is held to, the check's figure for it, and whether it held."""

    name: ThresholdName
    limit: float
    actual: float
    passed: bool

    def describe(self) -> str:
        """One line, e.g. ``accuracy 97.50% is below guards.min_accuracy (100%)``."""
        name, limit, actual = self.name.value, self.limit, self.actual
        if self.name is ThresholdName.MIN_ACCURACY:
            verdict = "is below" if not self.passed else "meets"
            return f"accuracy {actual:.2f}% {verdict} {name} ({limit:g}%)"
        verdict = "more than" if not self.passed else "within"
        if self.name is ThresholdName.MAX_MISSING:
            missing, allowed = f"{actual:,.0f} records", f"{limit:,.0f}"
        else:
            missing, allowed = f"{actual:.2f}% of records", f"{limit:g}%"
        return f"{missing} missing in the destination, {verdict} {name} ({allowed})"


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
    #: compared field → its product (features model) or the field itself
    field_products: Mapping[str, str] = field(default_factory=dict)
    #: product (or field) → records on both sides that differ in at least one of its fields
    product_mismatches: Mapping[str, int] = field(default_factory=dict)
    #: one row per mismatched record and field (``MISMATCH_SCHEMA``): records on both sides first,
    #: then records missing in the destination (their non-null source fields), each by key
    mismatches: pa.Table = field(default_factory=MISMATCH_SCHEMA.empty_table)
    thresholds: tuple[Threshold, ...] = ()
    destination: str = ""
    config_fingerprint: str = ""
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def accuracy(self) -> float:
        """Percent of valid source records that agree field for field (100 when there are none)."""
        return 100.0 * self.agreeing / self.compared if self.compared else 100.0

    @property
    def missing_pct(self) -> float:
        """Percent of valid source records missing in the destination."""
        return 100.0 * len(self.missing_in_destination) / self.compared if self.compared else 0.0

    @property
    def passed(self) -> bool:
        """Whether every threshold held."""
        return all(t.passed for t in self.thresholds)

    def failed_thresholds(self) -> tuple[Threshold, ...]:
        """The thresholds that did not hold."""
        return tuple(t for t in self.thresholds if not t.passed)

    def field_agreement(self) -> dict[str, float]:
        """Percent agreement per field over the records present on both sides."""
        return {
            f: 100.0 * (self.matched - n) / self.matched if self.matched else 100.0
            for f, n in self.field_mismatches.items()
        }


def run_check(loaded: LoadedConfig, *, progress: ProgressCallback = no_progress) -> CheckReport:
    """Read the model and the destination now, compare them and judge the result by ``guards``."""
    config = loaded.config
    checked_at = datetime.now(UTC)
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
    products = field_products(config)
    by_field, by_product, mismatches = _mismatch_detail(records, result.fields, products)
    report = CheckReport(
        compared=counts[Action.CREATE] + counts[Action.UPDATE] + counts[Action.UNCHANGED],
        agreeing=counts[Action.UNCHANGED],
        matched=counts[Action.UPDATE] + counts[Action.UNCHANGED],
        field_mismatches=by_field,
        missing_in_destination=keys(Action.CREATE),
        extra_in_destination=keys(Action.MISSING_IN_SOURCE),
        invalid=tuple(
            zip(invalid_rows["key"].to_pylist(), invalid_rows["reason"].to_pylist(), strict=True)
        ),
        multi_member_groups=multi,
        multi_member_agreeing=multi_ok,
        field_products=products,
        product_mismatches=by_product,
        mismatches=mismatches,
        destination=destination_name(config),
        config_fingerprint=config.fingerprint(),
        checked_at=checked_at,
    )
    return replace(report, thresholds=judge(report, config.guards))


def judge(report: CheckReport, guards: GuardsConfig) -> tuple[Threshold, ...]:
    """The report against ``min_accuracy`` and, when set, ``max_missing`` / ``max_missing_pct``."""
    found = [
        Threshold(
            ThresholdName.MIN_ACCURACY,
            guards.min_accuracy,
            report.accuracy,
            report.accuracy >= guards.min_accuracy,
        )
    ]
    missing = len(report.missing_in_destination)
    if guards.max_missing is not None:
        held = missing <= guards.max_missing
        found.append(Threshold(ThresholdName.MAX_MISSING, guards.max_missing, missing, held))
    if guards.max_missing_pct is not None:
        pct = report.missing_pct
        found.append(
            Threshold(
                ThresholdName.MAX_MISSING_PCT,
                guards.max_missing_pct,
                pct,
                pct <= guards.max_missing_pct,
            )
        )
    return tuple(found)


def stored_check(report: CheckReport) -> StoredCheck:
    """What the run store keeps of a check (for the trend over past checks)."""
    return StoredCheck(
        checked_at=report.checked_at,
        config_fingerprint=report.config_fingerprint,
        destination=report.destination,
        accuracy=report.accuracy,
        compared=report.compared,
        agreeing=report.agreeing,
        missing=len(report.missing_in_destination),
        extra=len(report.extra_in_destination),
        invalid=len(report.invalid),
        passed=report.passed,
        field_agreement=report.field_agreement(),
    )


def field_products(config: Config) -> dict[str, str]:
    """Each compared destination field → its product (features model), otherwise the field.

    A field belongs to a product when the model column mapped to it is one of the columns the
    features model produces for that product (``{code}_enabled``, ``_start_date``,
    ``_updated_date``).
    """
    product_of: dict[str, str] = {}
    if isinstance(config.model, FeaturesModelConfig):
        leading = len(output_schema([]).names)
        for code in config.model.products:
            for column in output_schema([code]).names[leading:]:
                product_of[column] = code
    return {
        name: product_of.get(column, name)
        for column, name in config.mapping.items()
        if name != config.key_field
    }


def _mismatch_detail(
    records: pa.Table, fields: tuple[str, ...], product_of: Mapping[str, str]
) -> tuple[dict[str, int], dict[str, int], pa.Table]:
    """Mismatches per field and per product (records on both sides), and the long table."""
    products = list(dict.fromkeys(product_of[f] for f in fields))
    if not fields:
        return {}, {}, MISMATCH_SCHEMA.empty_table()
    q = quote_ident

    def value_of(prefix: str) -> str:
        whens = " ".join(
            f"WHEN {quote_literal(f)} THEN CAST(u.{q(prefix + f)} AS VARCHAR)" for f in fields
        )
        return f"CASE u.__field {whens} END"

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'").fetchall()
        con.register("r", records)
        con.register(
            "g",
            pa.table(
                {
                    "__field": list(fields),
                    "__product": [product_of[f] for f in fields],
                    "__position": list(range(len(fields))),
                }
            ),
        )
        con.execute(
            f"""
            CREATE TEMP TABLE m AS
            SELECT u.key AS key, u.action AS action, u.__field AS field, g.__product AS product,
                   g.__position AS ordinal,
                   {value_of("")} AS source_value, {value_of(BEFORE)} AS destination_value
            FROM (SELECT *, unnest(changed) AS __field FROM r
                  WHERE action IN ('create', 'update')) AS u
            JOIN g ON g.__field = u.__field
            """
        ).fetchall()
        by_field = dict(
            con.execute(
                "SELECT field, count(*) FROM m WHERE action = 'update' GROUP BY field"
            ).fetchall()
        )
        by_product = dict(
            con.execute(
                "SELECT product, count(DISTINCT key) FROM m WHERE action = 'update' "
                "GROUP BY product"
            ).fetchall()
        )
        long = con.sql(
            f"""
            SELECT key, field, product,
                   CASE action WHEN 'update' THEN {quote_literal(MismatchKind.MISMATCH.value)}
                        ELSE {quote_literal(MismatchKind.MISSING_IN_DESTINATION.value)} END AS kind,
                   source_value, destination_value
            FROM m ORDER BY action = 'create', key, ordinal
            """
        ).to_arrow_table()
    finally:
        con.close()
    return (
        {f: int(by_field.get(f, 0)) for f in fields},
        {p: int(by_product.get(p, 0)) for p in products},
        long.cast(MISMATCH_SCHEMA),
    )


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
