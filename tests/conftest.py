"""Shared fixtures: a real PostgreSQL server (one private schema per test) and HTTPS sandboxes.

def test_x(sandbox):                      # defaults: empty org, no faults
    ...
def test_y(sandbox_factory):
    sb = sandbox_factory(page_size=3, faults={"http": [...]})   # FaultPlan dict, path or plan
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

PG_URL = os.environ.get("TRUEUP_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The test PostgreSQL URL; skips locally when the server is down, fails in CI."""
    import psycopg

    try:
        with psycopg.connect(PG_URL.replace("postgresql+psycopg", "postgresql"), connect_timeout=5):
            pass
    except psycopg.OperationalError as exc:
        if _in_ci():
            pytest.fail(f"PostgreSQL is required in CI and is unreachable at {PG_URL}: {exc}")
        pytest.skip(f"PostgreSQL unreachable at {PG_URL}: {exc}")
    return PG_URL


@pytest.fixture()
def pg_schema(pg_url: str) -> Iterator[str]:
    """A fresh schema in the test database, dropped afterwards; tests create their tables in it."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')


@pytest.fixture()
def sandbox_factory() -> Iterator[Callable[..., Any]]:
    """Start sandboxes with ``Sandbox`` options (``faults`` may be a dict); all stop after."""
    from trueup.sandbox.faults import FaultPlan
    from trueup.sandbox.server import Sandbox

    started: list[Sandbox] = []

    def start(**options: Any) -> Sandbox:
        faults = options.get("faults")
        if isinstance(faults, dict):
            options["faults"] = FaultPlan.from_dict(faults)
        elif isinstance(faults, str):
            options["faults"] = Path(faults)
        sandbox = Sandbox(**options).start()
        started.append(sandbox)
        return sandbox

    yield start
    for sandbox in started:
        sandbox.stop()


@pytest.fixture()
def sandbox(sandbox_factory: Callable[..., Any]) -> Any:
    """A fresh sandbox over HTTPS on 127.0.0.1 with an empty org and no faults."""
    return sandbox_factory()
