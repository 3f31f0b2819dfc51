"""Store URL → SQLAlchemy engine: SQLite files made owner-only, PostgreSQL through psycopg 3.

SQLite runs with SQLAlchemy in charge of BEGIN (the sqlite3 driver's legacy mode would autocommit
DDL, so a migration could half-apply), foreign keys on, and write transactions started IMMEDIATE so
two writers wait for each other instead of failing on a lock upgrade.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from trueup.config import redact_url
from trueup.errors import StoreError

WRITE_OPTION = "trueup_write"  # execution option: this connection's next transaction will write

_POSTGRES_DRIVERS = {"postgresql", "postgres", "postgresql+psycopg"}
_SQLITE_DRIVERS = {"sqlite", "sqlite+pysqlite"}


@dataclass(frozen=True)
class StoreEngine:
    """An engine for the store plus a display name safe to print (no password)."""

    engine: Engine
    display: str
    secret: str | None  # the password, so error texts that echo it can be scrubbed


def create_store_engine(url: str, *, base_dir: Path) -> StoreEngine:
    """An engine for ``url``; a relative SQLite path resolves against ``base_dir``."""
    try:
        parsed = make_url(url.strip())
    except ArgumentError as exc:
        raise StoreError(f"invalid run store URL {redact_url(url)!r}: {exc}") from None
    driver = parsed.drivername
    if driver in _SQLITE_DRIVERS:
        return _sqlite_engine(parsed, base_dir=base_dir)
    if driver in _POSTGRES_DRIVERS:
        parsed = parsed.set(drivername="postgresql+psycopg")
        connect_args: dict[str, Any] = {}
        if "connect_timeout" not in parsed.query:
            connect_args["connect_timeout"] = 10
        engine = _create(parsed, connect_args=connect_args)
        return StoreEngine(engine, parsed.render_as_string(hide_password=True), parsed.password)
    raise StoreError(
        f"unsupported run store URL {redact_url(url)!r}: use sqlite:///path/to/file.db "
        "or postgresql://user@host/db"
    )


def one_line(exc: BaseException, *, secret: str | None = None) -> str:
    """The first line of a driver error (never the SQL or its parameters), password scrubbed."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    text = lines[0].strip() if lines else type(orig).__name__
    return text.replace(secret, "***") if secret else text


def _create(url: URL, **kwargs: Any) -> Engine:
    try:
        return create_engine(url, **kwargs)
    except (SQLAlchemyError, ImportError) as exc:
        shown = url.render_as_string(hide_password=True)
        raise StoreError(f"cannot open run store {shown}: {one_line(exc)}") from exc


def _sqlite_engine(url: URL, *, base_dir: Path) -> StoreEngine:
    database = url.database or ""
    if database in {"", ":memory:"}:
        engine = _create(url, poolclass=StaticPool)  # one connection, or each would see a new db
        _take_over_transactions(engine)
        return StoreEngine(engine, "sqlite:// (in memory)", None)
    path = Path(database).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    _create_private_file(path)
    url = url.set(database=str(path))
    engine = _create(url)
    _take_over_transactions(engine)
    return StoreEngine(engine, f"sqlite:///{path}", None)


def _create_private_file(path: Path) -> None:
    """Create missing folders (0700) and the database file (0600) before SQLite can create them."""
    try:
        missing: list[Path] = []
        folder = path.parent
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        for created in reversed(missing):
            created.mkdir(mode=0o700, exist_ok=True)
            os.chmod(created, 0o700)  # mkdir's mode passes through the umask
        if not path.exists():
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return  # another process created it first
            os.close(fd)
            os.chmod(path, 0o600)
    except OSError as exc:
        raise StoreError(f"cannot create run store {path}: {exc.strerror or exc}") from exc


def _take_over_transactions(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver stops emitting BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
