"""The run store seen from the CLI: runs listed, failed records named, the error-rate brake."""

from __future__ import annotations

import stat
from typing import Any

from e2e_cli import Demo, Trueup

# SQLite compares GLOB patterns case-sensitively; about one name in eight has "Lofts" in it.
NO_LOFTS = "\"Name\" NOT GLOB '*Lofts*'"


def test_apply_twice_records_one_run_and_shows_it(demo: Demo, trueup: Trueup) -> None:
    expected = demo.expected()
    first = trueup("apply", "--yes")
    assert first.code == 0, first.err
    assert first.table_counts()["created"] == expected["create"]
    # Right after a successful apply there is nothing left to do, and no run is started.
    second = trueup("apply", "--yes")
    assert second.code == 0, second.err
    assert {k: second.plan_counts()[k] for k in ("create", "update")} == {"create": 0, "update": 0}
    assert "Nothing to apply" in second.out

    listed = trueup("runs")
    assert listed.code == 0, listed.err
    (row,) = [line.split() for line in listed.out.splitlines() if line.split()[:1] == ["1"]]
    assert row[4:] == [  # id, month, day, time, then:
        "apply",
        "succeeded",
        str(expected["create"]),
        str(expected["update"]),
        "0",  # deleted
        "0",  # failed
        str(expected["invalid"]),
    ]

    shown = trueup("runs", "1")
    assert shown.code == 0, shown.err
    assert "Run 1: apply → sql:Product_Property__c, succeeded" in shown.out
    cells = [c.strip() for line in shown.out.splitlines() for c in line.split("│") if c.strip()]
    assert cells[cells.index("create") + 1] == f"{expected['create']:,}"
    assert cells[cells.index("created") + 1] == f"{expected['create']:,}"
    assert cells[cells.index("updated") + 1] == f"{expected['update']:,}"
    assert "Failed records" not in shown.out

    (run,) = trueup("runs", "--json").json()
    assert run["id"] == 1
    assert run["status"] == "succeeded"
    assert run["counts"]["created"] == expected["create"]
    assert run["finished_at"] is not None
    # The run store is private to its owner.
    assert stat.S_IMODE((demo.dir / ".trueup").stat().st_mode) == 0o700
    assert stat.S_IMODE((demo.dir / ".trueup" / "state.db").stat().st_mode) == 0o600


def test_runs_of_an_unknown_id_is_one_line(demo: Demo, trueup: Trueup) -> None:
    line = trueup("runs", "42").error_line(9)

    assert "42" in line


def test_a_run_with_refused_records_names_them(demo: Demo, trueup: Trueup) -> None:
    # The CRM now refuses names with "Lofts"; the rows it holds that have one are gone (creates).
    demo.recreate_crm(NO_LOFTS, keep_rows=NO_LOFTS)
    demo.edit_config(lambda c: c["guards"].update(max_error_rate=0.5))
    plan = trueup("plan", "--json").json()
    refused = {
        r["key"]
        for r in plan["records"]
        if r["action"] in ("create", "update") and "Lofts" in r["values"]["Name"]
    }
    assert 0 < len(refused) < plan["counts"]["create"]

    applied = trueup("apply", "--yes")

    assert applied.code == 0, applied.err
    assert f"failed with CHECK_VIOLATION: {len(refused)}" in applied.out
    assert applied.table_counts()["failed"] == len(refused)
    detail = trueup("runs", "1", "--json").json()
    assert detail["status"] == "succeeded"
    assert {f["key"] for f in detail["failures"]} == refused
    assert {f["error_code"] for f in detail["failures"]} == {"CHECK_VIOLATION"}
    assert detail["error_codes"] == {"CHECK_VIOLATION": len(refused)}
    shown = trueup("runs", "1")
    assert "Failed records" in shown.out
    assert f"failed with CHECK_VIOLATION: {len(refused)}" in shown.out
    failed_rows = [line for line in shown.out.splitlines() if "│ CHECK_VIOLATION │" in line]
    assert len(failed_rows) == min(len(refused), 50)  # the first 50 are listed
    assert {row.strip("│ ").split(" ")[0] for row in failed_rows} <= refused
    # Everything else landed: only the refused records are left to create.
    again = trueup("plan", "--json").json()
    assert {r["key"] for r in again["records"] if r["action"] == "create"} == refused
    assert again["counts"]["update"] == 0


def test_the_error_rate_brake_stops_apply(demo: Demo, trueup: Trueup) -> None:
    # An empty CRM that refuses every name: every planned create fails.
    demo.recreate_crm("\"Name\" GLOB '#*'")

    def guarded(config: dict[str, Any]) -> None:
        config["guards"] = {"max_error_rate": 0.05, "min_error_sample": 20, "min_accuracy": 100}
        config["destination"]["batch_size"] = 10

    demo.edit_config(guarded)
    planned = trueup("plan", "--json").json()["counts"]
    writes = planned["create"] + planned["update"]
    assert writes > 100

    stopped = trueup("apply", "--yes")

    line = stopped.error_line(7)
    message = "stopped: 20 of 20 records failed (100.0%), above guards.max_error_rate; " + (
        f"{writes - 20} records not sent"
    )
    assert line == f"error: {message}"
    assert "Run 1: stopped" in stopped.out
    assert message in stopped.out
    assert stopped.table_counts()["failed"] == 20
    assert demo.crm('SELECT count(*) FROM "Product_Property__c"') == [(0,)]
    detail = trueup("runs", "1", "--json").json()
    assert detail["status"] == "stopped"
    assert detail["message"] == message
    counts = detail["counts"]
    attempted = counts["created"] + counts["updated"] + counts["failed"]
    assert attempted == 20 < writes
    assert counts["skipped"] == writes - attempted + planned["invalid"]
    assert len(detail["failures"]) == 20
    assert {f["batch"] for f in detail["failures"]} == {1, 2}
    assert {f["error_code"] for f in detail["failures"]} == {"CHECK_VIOLATION"}
