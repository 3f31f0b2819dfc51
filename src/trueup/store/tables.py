"""The run store's tables as the latest migration leaves them (what queries are written against).

``migrations.py`` creates and alters these tables; this module only describes their current shape,
and a test checks that the two agree on every database trueup supports.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# SQLite only auto-numbers an INTEGER PRIMARY KEY, so ids are plain INTEGER there (64-bit anyway).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that goes in and comes out timezone-aware UTC, whatever the database keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes; store every instant in UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("run store timestamps must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        """SQLite hands back naive UTC, PostgreSQL the session's zone: both become UTC."""
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData()

schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_at", UTCDateTime, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("command", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("destination", Text, nullable=False),
    Column("config_fingerprint", Text, nullable=False),
    Column("plan_fingerprint", Text, nullable=False),
    Column("plan_counts", Text, nullable=False),  # JSON object {"plan.create": n, ...}
    Column("message", Text, nullable=True),
    Column("host", Text, nullable=True),  # who ran it: a RUNNING run of a dead pid was killed
    Column("pid", Integer, nullable=True),
    Column("guards", Text, nullable=True),  # JSON list of guard verdicts (allowed ones marked)
    Column("reverts_run", BigId, nullable=True),  # a rollback: the run it reverts
    sqlite_autoincrement=True,  # run ids are never reused: `trueup rollback RUN` names them
)

sync_locks = Table(
    "sync_locks",
    metadata,
    Column("sync", Text, primary_key=True),  # the destination's display name
    Column("run_id", BigInteger, nullable=True),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("acquired_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
)

outcomes = Table(
    "outcomes",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("run_id", BigId, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("batch", Integer, nullable=False),
    Column("key", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("error_code", Text, nullable=True),
    Column("message", Text, nullable=True),
    Column("destination_id", Text, nullable=True),
    Index("ix_outcomes_run_id_status", "run_id", "status"),
    Index("ix_outcomes_run_id_key", "run_id", "key"),
)

before_images = Table(
    "before_images",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("run_id", BigId, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("batch", Integer, nullable=False),
    Column("key", Text, nullable=False),
    Column("field", Text, nullable=False),
    Column("before_json", Text, nullable=True),
    Column("after_json", Text, nullable=True),
    Index("ix_before_images_run_id_key", "run_id", "key"),
)

checks = Table(
    "checks",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("checked_at", UTCDateTime, nullable=False),
    Column("config_fingerprint", Text, nullable=False),
    Column("destination", Text, nullable=False),
    Column("accuracy", Float, nullable=False),  # percent
    Column("compared", BigInteger, nullable=False),
    Column("agreeing", BigInteger, nullable=False),
    Column("missing", BigInteger, nullable=False),  # in the destination
    Column("extra", BigInteger, nullable=False),  # in the destination, key not in the source
    Column("invalid", BigInteger, nullable=False),
    Column("field_agreement", Text, nullable=False),  # JSON object {field: percent}
    Column("passed", Boolean, nullable=False),  # every threshold of the check held
    Index("ix_checks_destination_id", "destination", "id"),
)
