"""Operations other than upsert, through the installed ``trueup`` against the Salesforce sandbox:
update-only never creates, insert-only never overwrites, and records missing in the source are
deleted only when the config says so. Both write paths; deletes always travel by REST.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_cli import Trueup

from trueup.demo_data import (
    CLIENT_ID_VAR,
    CLIENT_SECRET_VAR,
    DemoFiles,
    SandboxTarget,
    generate_demo,
)
from trueup.diff import Action
from trueup.products import PRODUCT_FIELDS, SALESFORCE_OBJECT
from trueup.sandbox.server import Sandbox

TODAY = date(2025, 6, 1)
KEY = PRODUCT_FIELDS["key"]


@pytest.fixture()
def org(tmp_path: Path) -> Iterator[tuple[Sandbox, DemoFiles, dict[str, str]]]:
    """The demo's drifted org on a sandbox; trueup.yml in the test's folder; login variables."""
    with Sandbox(ca_out=tmp_path / "ca.pem") as sandbox:
        files = generate_demo(
            tmp_path, properties=400, today=TODAY, salesforce=SandboxTarget(sandbox.url, "ca.pem")
        )
        saved = sandbox.state.org.insert(SALESFORCE_OBJECT, files.crm_records)
        assert all(r.success for r in saved)
        login = {CLIENT_ID_VAR: sandbox.client_id, CLIENT_SECRET_VAR: sandbox.client_secret}
        yield sandbox, files, login


def configure(files: DemoFiles, **settings: Any) -> None:
    config = yaml.safe_load(files.config.read_text())
    write_path = settings.pop("write_path", None)
    if write_path:
        config["destination"]["write_path"] = write_path
    config.update(settings)
    files.config.write_text(yaml.safe_dump(config, sort_keys=False))


def org_records(sandbox: Sandbox) -> dict[str, dict[str, Any]]:
    return {r[KEY]: r for r in sandbox.state.org.rows(SALESFORCE_OBJECT)}


def planned(trueup: Trueup, login: dict[str, str]) -> dict[str, Any]:
    ran = trueup("plan", "--json", env=login)
    assert ran.code == 0, ran.err
    plan: dict[str, Any] = ran.json()
    return plan


def keys_of(plan: dict[str, Any], action: str) -> set[str]:
    return {r["key"] for r in plan["records"] if r["action"] == action}


@pytest.mark.parametrize("write_path", ["rest", "bulk"])
def test_update_only_reports_missing_records_and_never_creates_them(
    org: tuple[Sandbox, DemoFiles, dict[str, str]], trueup: Trueup, write_path: str
) -> None:
    sandbox, files, login = org
    configure(files, operation="update", write_path=write_path)
    before = org_records(sandbox)

    plan = planned(trueup, login)
    missing = keys_of(plan, "missing_in_destination")
    updates = keys_of(plan, "update")
    assert plan["operation"] == "update"
    assert plan["counts"]["create"] == 0
    assert len(missing) == files.expected[Action.CREATE] > 0
    assert len(updates) == files.expected[Action.UPDATE] > 0
    shown = trueup("plan", env=login)
    assert "missing in destination" in shown.out and "(update only)" in shown.out

    applied = trueup("apply", "--yes", "--json", env=login)
    assert applied.code == 0, applied.err
    result = applied.json()
    assert result["write_path"] == write_path
    assert result["counts"]["created"] == 0
    assert result["counts"]["updated"] == len(updates)
    after = org_records(sandbox)
    assert set(after) == set(before)  # nothing created
    assert not missing & set(after)
    again = planned(trueup, login)
    assert again["counts"]["update"] == 0
    assert keys_of(again, "missing_in_destination") == missing


@pytest.mark.parametrize("write_path", ["rest", "bulk"])
def test_insert_only_creates_new_records_and_leaves_existing_ones_alone(
    org: tuple[Sandbox, DemoFiles, dict[str, str]], trueup: Trueup, write_path: str
) -> None:
    sandbox, files, login = org
    configure(files, operation="insert", write_path=write_path)
    before = org_records(sandbox)

    plan = planned(trueup, login)
    creates, held = keys_of(plan, "create"), keys_of(plan, "exists_in_destination")
    assert plan["counts"]["update"] == 0
    assert len(creates) == files.expected[Action.CREATE] > 0
    assert len(held) == files.expected[Action.UPDATE] > 0

    applied = trueup("apply", "--yes", "--json", env=login)
    assert applied.code == 0, applied.err
    result = applied.json()
    assert result["counts"]["created"] == len(creates)
    assert result["counts"]["updated"] == 0
    after = org_records(sandbox)
    assert set(after) == set(before) | creates
    for key in held:  # drifted, and still drifted: insert never overwrites
        assert after[key] == before[key]
    assert keys_of(planned(trueup, login), "exists_in_destination") == held


def test_records_missing_in_source_are_left_alone_unless_the_config_deletes_them(
    org: tuple[Sandbox, DemoFiles, dict[str, str]], trueup: Trueup
) -> None:
    sandbox, files, login = org
    orphans = keys_of(planned(trueup, login), "missing_in_source")
    assert len(orphans) == files.expected[Action.MISSING_IN_SOURCE] > 0
    assert trueup("apply", "--yes", env=login).code == 0
    assert orphans <= set(org_records(sandbox))  # upsert alone deletes nothing

    configure(files, delete_missing=True, write_path="bulk")
    plan = planned(trueup, login)
    assert keys_of(plan, "delete") == orphans
    assert plan["counts"]["missing_in_source"] == 0
    doomed = next(r for r in plan["records"] if r["action"] == "delete")
    assert doomed["values"]["Name"]  # what the record holds now, for review

    applied = trueup("apply", "--yes", "--json", env=login)
    assert applied.code == 0, applied.err
    result = applied.json()
    assert result["counts"]["deleted"] == len(orphans)
    assert not orphans & set(org_records(sandbox))
    # every field of a deleted record is kept as its before-image (for rollback)
    detail = trueup("runs", str(result["run"]), "--json", env=login)
    assert detail.code == 0, detail.err
    again = planned(trueup, login)
    assert again["counts"]["delete"] == 0 and again["counts"]["missing_in_source"] == 0


def test_a_destination_that_cannot_do_the_operation_is_a_config_error(
    tmp_path: Path, trueup: Trueup
) -> None:
    files = generate_demo(tmp_path, properties=100, today=TODAY)
    config = yaml.safe_load(files.config.read_text())
    config["destination"] = {"kind": "csv", "directory": "out", "fields": {KEY: "text"}}
    config["mapping"] = {k: v for k, v in config["mapping"].items() if v == KEY}
    config["operation"] = "update"
    files.config.write_text(yaml.safe_dump(config, sort_keys=False))
    (tmp_path / "out").mkdir()

    ran = trueup("plan")
    line = ran.error_line(2)
    assert "operation" in line and "cannot update" in line
