"""The doctor against a Salesforce org (the sandbox over HTTPS): it logs in, reads the object's
describe, and reports each pre-flight problem as a failed field check, the rest still passing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from trueup.config import load_config
from trueup.demo_data import CLIENT_ID_VAR, CLIENT_SECRET_VAR, SandboxTarget, generate_demo
from trueup.doctor import Check, run_doctor
from trueup.products import PRODUCT_FIELDS, SALESFORCE_OBJECT
from trueup.sandbox.server import Sandbox


@pytest.fixture()
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The demo's trueup.yml for Product_Property__c in a running sandbox org."""
    with Sandbox(ca_out=tmp_path / "ca.pem") as sandbox:
        monkeypatch.setenv(CLIENT_ID_VAR, sandbox.client_id)
        monkeypatch.setenv(CLIENT_SECRET_VAR, sandbox.client_secret)
        files = generate_demo(
            tmp_path,
            properties=200,
            today=date(2025, 6, 1),
            salesforce=SandboxTarget(sandbox.url, "ca.pem"),
        )
        yield files.config


def edit(path: Path, change: Any) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def test_a_good_salesforce_config_passes(config: Path) -> None:
    checks = by_name(run_doctor(load_config(config)))

    assert [c for c in checks.values() if not c.passed] == []
    assert "logged in" in checks["destination connection"].detail
    assert checks[f"destination object {SALESFORCE_OBJECT}"].passed
    assert checks["field Name"].detail == "text(80), from member_name"
    assert checks["key Reverse_ETL_ID__c"].detail == "External ID, unique"


def test_a_field_the_upsert_cannot_set_fails_its_check(config: Path) -> None:
    edit(config, lambda c: c["mapping"].update(is_multi_member="IsDeleted"))

    checks = run_doctor(load_config(config))

    failed = {c.name: c.detail for c in checks if not c.passed}
    assert list(failed) == ["field IsDeleted"]
    assert "IsDeleted is not createable" in failed["field IsDeleted"]
    assert "IsDeleted is not updateable" in failed["field IsDeleted"]
    assert all(c.ran for c in checks)
    assert by_name(checks)["field Name"].passed


def test_a_key_that_is_not_an_external_id_fails_the_key_check(config: Path) -> None:
    def swap(c: dict[str, Any]) -> None:  # the key into Name, the member's name into the key field
        c["mapping"]["key"] = "Name"
        c["mapping"]["member_name"] = PRODUCT_FIELDS["key"]

    edit(config, swap)

    checks = by_name(run_doctor(load_config(config)))

    key = checks["key Name"]
    assert not key.passed
    assert "not an External ID field" in key.detail
    assert "Reverse_ETL_ID__c" in key.detail  # the External ID fields it could use


def test_an_unknown_object_is_reported_and_its_fields_not_run(config: Path) -> None:
    edit(config, lambda c: c["destination"].update(object="Product_Propety__c"))

    checks = by_name(run_doctor(load_config(config)))

    assert checks["destination connection"].passed
    found = checks["destination object Product_Propety__c"]
    assert not found.passed
    assert "no object Product_Propety__c" in found.detail
    assert not checks["field Name"].ran
    assert checks["run store"].passed
