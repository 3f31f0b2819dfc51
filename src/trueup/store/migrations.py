"""Numbered schema migrations for the run store.

Each step is a ``Migration(version, description, apply)``; ``MIGRATIONS`` lists them in order and
``migrate`` applies the ones a store has not seen yet, recording each in ``schema_migrations``, all
in the caller's transaction. To change the schema, append one entry (e.g. ``Migration(2, "...",
_v2)`` whose function adds a column) and update ``tables.py`` to the new shape; never edit a
released step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    func,
    select,
)

from trueup.errors import StoreError
from trueup.store.tables import UTCDateTime, schema_migrations

# Serialises concurrent first opens of one PostgreSQL database (an arbitrary constant: "true").
_PG_MIGRATION_LOCK = 0x74727565


@dataclass(frozen=True)
class Migration:
    """One numbered step of the run store's schema."""

    version: int
    description: str
    apply: Callable[[Connection], None]


def _v1_runs_outcomes_before_images(conn: Connection) -> None:
    # The schema exactly as version 1 shipped it: self-contained, so later edits to tables.py
    # cannot change what this step creates.
    big_id = BigInteger().with_variant(Integer(), "sqlite")
    md = MetaData()
    Table(
        "runs",
        md,
        Column("id", big_id, primary_key=True),
        Column("command", Text, nullable=False),
        Column("status", Text, nullable=False),
        Column("started_at", UTCDateTime, nullable=False),
        Column("finished_at", UTCDateTime, nullable=True),
        Column("destination", Text, nullable=False),
        Column("config_fingerprint", Text, nullable=False),
        Column("plan_fingerprint", Text, nullable=False),
        Column("plan_counts", Text, nullable=False),
        Column("message", Text, nullable=True),
        sqlite_autoincrement=True,
    )
    Table(
        "outcomes",
        md,
        Column("id", big_id, primary_key=True),
        Column("run_id", big_id, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        Column("batch", Integer, nullable=False),
        Column("key", Text, nullable=False),
        Column("status", Text, nullable=False),
        Column("error_code", Text, nullable=True),
        Column("message", Text, nullable=True),
        Column("destination_id", Text, nullable=True),
        Index("ix_outcomes_run_id_status", "run_id", "status"),
        Index("ix_outcomes_run_id_key", "run_id", "key"),
    )
    Table(
        "before_images",
        md,
        Column("id", big_id, primary_key=True),
        Column("run_id", big_id, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        Column("batch", Integer, nullable=False),
        Column("key", Text, nullable=False),
        Column("field", Text, nullable=False),
        Column("before_json", Text, nullable=True),
        Column("after_json", Text, nullable=True),
        Index("ix_before_images_run_id_key", "run_id", "key"),
    )
    # checkfirst=False: a foreign table of the same name is an error, not something to adopt.
    md.create_all(conn, checkfirst=False)


def _v2_checks(conn: Connection) -> None:
    # One row per `trueup check`, so a report can show accuracy over time. Self-contained, as v1.
    big_id = BigInteger().with_variant(Integer(), "sqlite")
    md = MetaData()
    Table(
        "checks",
        md,
        Column("id", big_id, primary_key=True),
        Column("checked_at", UTCDateTime, nullable=False),
        Column("config_fingerprint", Text, nullable=False),
        Column("destination", Text, nullable=False),
        Column("accuracy", Float, nullable=False),
        Column("compared", BigInteger, nullable=False),
        Column("agreeing", BigInteger, nullable=False),
        Column("missing", BigInteger, nullable=False),
        Column("extra", BigInteger, nullable=False),
        Column("invalid", BigInteger, nullable=False),
        Column("field_agreement", Text, nullable=False),
        Column("passed", Boolean, nullable=False),
        Index("ix_checks_destination_id", "destination", "id"),
    )
    md.create_all(conn, checkfirst=False)


def _v3_run_safety(conn: Connection) -> None:
    # Runs learn who ran them (to tell a dead process from a live one), which guards were
    # allowed past, and which run they roll back; sync_locks holds one row per running sync.
    for column in (
        "ALTER TABLE runs ADD COLUMN host TEXT",
        "ALTER TABLE runs ADD COLUMN pid INTEGER",
        "ALTER TABLE runs ADD COLUMN guards TEXT",  # JSON list of guard verdicts
        "ALTER TABLE runs ADD COLUMN reverts_run BIGINT",
    ):
        conn.exec_driver_sql(column)
    md = MetaData()
    Table(
        "sync_locks",
        md,
        Column("sync", Text, primary_key=True),  # the destination's display name
        Column("run_id", BigInteger, nullable=True),
        Column("host", Text, nullable=False),
        Column("pid", Integer, nullable=False),
        Column("acquired_at", UTCDateTime, nullable=False),
        Column("heartbeat_at", UTCDateTime, nullable=False),
    )
    md.create_all(conn, checkfirst=False)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "runs, outcomes and before-images", _v1_runs_outcomes_before_images),
    Migration(2, "checks", _v2_checks),
    Migration(3, "run host, pid, guards, reverts_run; sync locks", _v3_run_safety),
)

LATEST_VERSION = MIGRATIONS[-1].version


def current_version(conn: Connection) -> int:
    """The highest migration a store has applied (0 for a store without a schema yet)."""
    found = conn.execute(select(func.max(schema_migrations.c.version))).scalar_one_or_none()
    return int(found or 0)


def migrate(conn: Connection, *, where: str) -> int:
    """Apply the migrations ``conn``'s store lacks, inside its open transaction; return the version.

    A store written by a newer trueup (a version this code does not know) raises StoreError.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
    schema_migrations.create(conn, checkfirst=True)
    version = current_version(conn)
    if version > LATEST_VERSION:
        raise StoreError(
            f"run store {where} has schema version {version}, but this trueup knows only up to "
            f"{LATEST_VERSION}: upgrade trueup to use it"
        )
    for step in MIGRATIONS:
        if step.version > version:
            step.apply(conn)
            conn.execute(
                schema_migrations.insert(),
                {"version": step.version, "applied_at": datetime.now(UTC)},
            )
            version = step.version
    return version
