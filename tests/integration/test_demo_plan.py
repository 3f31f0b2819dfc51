"""The demo's plan finds exactly the drift its data injected (features model, SQLite source), with
the CRM as a SQLite table and as the org of a sandbox served over HTTPS."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from trueup.config import load_config
from trueup.demo_data import (
    CLIENT_ID_VAR,
    CLIENT_SECRET_VAR,
    SandboxTarget,
    generate_demo,
)
from trueup.diff import Action
from trueup.pipeline import make_plan
from trueup.plan import Plan
from trueup.products import SALESFORCE_OBJECT
from trueup.sandbox.server import Sandbox

TODAY = date(2025, 6, 1)


def test_plan_counts_are_the_injected_drift(tmp_path: Path) -> None:
    demo = generate_demo(tmp_path, properties=3000, today=TODAY)

    plan = make_plan(load_config(demo.config))

    assert {a: n for a, n in plan.counts.items() if n} == {
        a: n for a, n in demo.expected.items() if n
    }


def test_names_longer_than_the_field_are_invalid(tmp_path: Path) -> None:
    demo = generate_demo(tmp_path, properties=3000, today=TODAY)

    plan = make_plan(load_config(demo.config))

    assert plan.counts[Action.INVALID] == demo.invalid
    assert plan.counts[Action.CREATE] == demo.expected[Action.CREATE]


def test_the_sandbox_org_plans_the_same_drift(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sql_plan = make_plan(
        load_config(generate_demo(tmp_path / "sql", properties=3000, today=TODAY).config)
    )
    with Sandbox(ca_out=tmp_path / "org" / "ca.pem") as sandbox:
        target = SandboxTarget(sandbox.url, "ca.pem")
        demo = generate_demo(tmp_path / "org", properties=3000, today=TODAY, salesforce=target)
        saved = sandbox.state.org.insert(SALESFORCE_OBJECT, demo.crm_records)
        assert all(r.success for r in saved)
        monkeypatch.setenv(CLIENT_ID_VAR, sandbox.client_id)
        monkeypatch.setenv(CLIENT_SECRET_VAR, sandbox.client_secret)

        plan = make_plan(load_config(demo.config))

    assert {a: n for a, n in plan.counts.items() if n} == {
        a: n for a, n in demo.expected.items() if n
    }
    assert plan.destination == f"salesforce:{SALESFORCE_OBJECT}"
    # Field by field the same changes as against the SQLite CRM: nothing spurious from the wire.
    for action in (Action.CREATE, Action.UPDATE, Action.MISSING_IN_SOURCE, Action.INVALID):
        assert sorted(plan.rows(action)["key"].to_pylist()) == sorted(
            sql_plan.rows(action)["key"].to_pylist()
        ), action

    def changes(p: Plan) -> list[tuple[str, list[str]]]:
        rows = p.rows(Action.UPDATE).select(["key", "changed"]).to_pylist()
        return sorted((r["key"], sorted(r["changed"])) for r in rows)

    assert changes(plan) == changes(sql_plan)
