"""Sandbox fixtures: a fresh HTTPS sandbox per test on an ephemeral port, or one built to order.

def test_x(sandbox):                      # defaults: empty org, no faults
    ...
def test_y(sandbox_factory):
    sb = sandbox_factory(page_size=3, faults={"http": [...]})   # FaultPlan dict, path or plan
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from trueup.sandbox.faults import FaultPlan
from trueup.sandbox.server import Sandbox

SandboxFactory = Callable[..., Sandbox]


@pytest.fixture()
def sandbox_factory() -> Iterator[SandboxFactory]:
    """Start sandboxes with ``Sandbox`` options (``faults`` may be a dict); all stop after."""
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
def sandbox(sandbox_factory: SandboxFactory) -> Sandbox:
    """A fresh sandbox over HTTPS on 127.0.0.1 with an empty org and no faults."""
    return sandbox_factory()
