"""The demo's plan finds exactly the drift its data injected (features model, SQLite both sides)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from trueup.config import load_config
from trueup.demo_data import generate_demo
from trueup.diff import Action
from trueup.pipeline import make_plan


def test_plan_counts_are_the_injected_drift(tmp_path: Path) -> None:
    demo = generate_demo(tmp_path, properties=3000, today=date(2025, 6, 1))

    plan = make_plan(load_config(demo.config))

    assert dict(plan.counts) == dict(demo.expected)


def test_names_longer_than_the_field_are_invalid(tmp_path: Path) -> None:
    demo = generate_demo(tmp_path, properties=3000, today=date(2025, 6, 1))

    plan = make_plan(load_config(demo.config))

    assert plan.counts[Action.INVALID] == demo.invalid
    assert plan.counts[Action.CREATE] == demo.expected[Action.CREATE]
