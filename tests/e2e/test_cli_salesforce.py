"""The acceptance run against Salesforce: the installed ``trueup`` syncs the demo's drifted org on
a sandbox that fails the way real orgs fail, and accounts for every record.

The sandbox runs in the test's process (real HTTPS on 127.0.0.1, its CA in the project folder); the
``trueup`` commands run as subprocesses against its URL, logging in with client credentials from
the environment. Its fault plan: 10% of API calls answered 503, some records locked twice before
they save, a record-triggered flow that fails every trigger chunk over 50 records (so 200-record
requests must be bisected), a validation rule that always rejects three records, and sessions that
expire every few calls. Which records change is known beforehand from the same demo data with a
SQLite CRM (same seed, same day: the same records).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_cli import Trueup

from trueup.config import load_config
from trueup.demo_data import (
    CLIENT_ID_VAR,
    CLIENT_SECRET_VAR,
    DemoFiles,
    SandboxTarget,
    generate_demo,
)
from trueup.diff import Action
from trueup.pipeline import make_plan
from trueup.products import PRODUCT_FIELDS, SALESFORCE_OBJECT
from trueup.sandbox.errors import RecordError
from trueup.sandbox.faults import FaultPlan
from trueup.sandbox.server import Sandbox

TODAY = date(2025, 6, 1)
PROPERTIES = 1200
KEY = PRODUCT_FIELDS["key"]
REJECTED = "FIELD_CUSTOM_VALIDATION_EXCEPTION"
WRITE_PATHS = ["rest", "bulk"]


class Tally:
    """The org's record rules (the fault plan), counting the failures they hand out by code."""

    def __init__(self, rules: FaultPlan) -> None:
        self.rules = rules
        self.codes: Counter[str] = Counter()

    def before_save(
        self, sobject: str, operation: str, chunk: Sequence[Mapping[str, Any]]
    ) -> Sequence[RecordError | None]:
        verdicts = self.rules.before_save(sobject, operation, chunk)
        self.codes.update(v.status_code for v in verdicts if v is not None)
        return verdicts


def fault_plan(locked: list[str], rejected: list[str]) -> FaultPlan:
    only_syncs = {"object": SALESFORCE_OBJECT, "operations": ["upsert"]}  # not the seeding insert
    return FaultPlan.from_dict(
        {
            "seed": 11,
            "http": [{"match": "*", "status": 503, "rate": 0.1}],
            "tokens": {"expire_after_calls": 9},
            "records": [
                {"type": "lock", "keys": {"field": KEY, "values": locked}, "times": 2} | only_syncs,
                {"type": "flow_chunk_limit", "max_records": 50} | only_syncs,
                {
                    "type": "validation",
                    "when": {"field": KEY, "matches": "|".join(re.escape(k) for k in rejected)},
                    "message": "This property is on hold: do not sync it",
                }
                | only_syncs,
            ],
        }
    )


@pytest.fixture(scope="module")
def changes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """The keys the demo's plan creates and updates, from the same data with a SQLite CRM."""
    files = generate_demo(tmp_path_factory.mktemp("sql-crm"), properties=PROPERTIES, today=TODAY)
    plan = make_plan(load_config(files.config))
    return {
        action.value: sorted(plan.rows(action)["key"].to_pylist())
        for action in (Action.CREATE, Action.UPDATE)
    }


@pytest.fixture()
def org(
    tmp_path: Path, changes: dict[str, list[str]]
) -> Iterator[tuple[Sandbox, Tally, DemoFiles]]:
    """A sandbox holding the drifted org, with the fault plan; trueup.yml in the test's folder."""
    creates, updates = changes["create"], changes["update"]
    rejected = [creates[0], creates[-1], updates[len(updates) // 2]]
    locked = [creates[5], creates[6], updates[3], updates[-4]]
    sandbox = Sandbox(faults=fault_plan(locked, rejected), ca_out=tmp_path / "ca.pem")
    tally = Tally(sandbox.state.faults)
    sandbox.state.org.rules = tally
    with sandbox:
        files = generate_demo(
            tmp_path,
            properties=PROPERTIES,
            today=TODAY,
            salesforce=SandboxTarget(sandbox.url, "ca.pem"),
        )
        saved = sandbox.state.org.insert(SALESFORCE_OBJECT, files.crm_records)
        assert all(r.success for r in saved)
        assert files.expected[Action.CREATE] == len(creates)
        assert files.expected[Action.UPDATE] == len(updates)
        yield sandbox, tally, files


def set_write_path(files: DemoFiles, write_path: str) -> None:
    config = yaml.safe_load(files.config.read_text())
    config["destination"]["write_path"] = write_path
    files.config.write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.mark.parametrize("write_path", WRITE_PATHS)
def test_a_faulty_org_ends_equal_to_the_source_but_for_the_rejected_records(
    org: tuple[Sandbox, Tally, DemoFiles],
    changes: dict[str, list[str]],
    trueup: Trueup,
    write_path: str,
) -> None:
    sandbox, tally, files = org
    set_write_path(files, write_path)
    login = {CLIENT_ID_VAR: sandbox.client_id, CLIENT_SECRET_VAR: sandbox.client_secret}
    changed = set(changes["create"]) | set(changes["update"])
    rejected_create = {changes["create"][0], changes["create"][-1]}
    rejected_update = {changes["update"][len(changes["update"]) // 2]}

    applied = trueup("apply", "--yes", "--json", env=login)

    # The sync completes, and every changed record is accounted for by Salesforce's answer.
    assert applied.code == 0, applied.err + applied.out
    result = applied.json()
    counts = result["counts"]
    assert counts["created"] + counts["updated"] + counts["failed"] == len(changed)
    assert counts["failed"] == 3
    assert counts["created"] == len(changes["create"]) - 2
    assert counts["updated"] == len(changes["update"]) - 1
    assert result["error_codes"] == {REJECTED: 3}
    # The faults did happen: 503s, expired sessions, locks, whole trigger chunks failing.
    statuses = Counter(r.status for r in sandbox.state.requests)
    assert statuses[503] > 0 and statuses[401] > 0
    assert tally.codes["UNABLE_TO_LOCK_ROW"] >= 8  # four records, twice each
    assert tally.codes["CANNOT_EXECUTE_FLOW_TRIGGER"] > 0

    # The rejected records are listed with their error code.
    detail = trueup("runs", str(result["run"]), "--json", "-c", "trueup.yml", env=login).json()
    failures = {f["key"]: f["error_code"] for f in detail["failures"]}
    assert failures == dict.fromkeys(rejected_create | rejected_update, REJECTED)

    # The org now equals the source except exactly those records.
    checked = trueup("check", "--json", env=login)
    assert checked.code == 8, checked.err  # accuracy below 100%: three records are not synced
    report = checked.json()
    assert set(report["missing_in_destination"]) == rejected_create
    assert report["compared"] - report["agreeing"] == len(rejected_create | rejected_update)
    assert len(report["extra_in_destination"]) == files.drift["orphan"]

    # A second run plans only the rejected records.
    again = trueup("plan", "--json", env=login)
    assert again.code == 0, again.err
    planned = again.json()
    assert planned["counts"]["create"] == 2 and planned["counts"]["update"] == 1
    writes = {
        r["key"]: r["action"] for r in planned["records"] if r["action"] in ("create", "update")
    }
    assert writes == dict.fromkeys(rejected_create, "create") | dict.fromkeys(
        rejected_update, "update"
    )
