"""Getting started: ``trueup init`` writes a config that loads, ``trueup demo`` runs end to end."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from e2e_cli import Trueup

from trueup.demo_data import destination_ddl

UNREACHABLE = {
    "TRUEUP_SOURCE_URL": "postgresql://reader:init-pw@127.0.0.1:1/product",
    "TRUEUP_DESTINATION_URL": "sqlite:///crm.db",
}


def _crm_table(folder: Path) -> None:
    """An empty SQLite Product_Property__c with Salesforce's fields, for the template to find."""
    con = sqlite3.connect(folder / "crm.db")
    try:
        con.execute(destination_ddl())
    finally:
        con.close()


def test_init_writes_a_config_that_loads(tmp_path: Path, trueup: Trueup) -> None:
    _crm_table(tmp_path)
    ran = trueup("init")

    assert ran.code == 0, ran.err
    assert "Wrote trueup.yml" in ran.out
    assert "TRUEUP_SOURCE_URL" in ran.out
    assert (tmp_path / "trueup.yml").is_file()
    # Without the variables the config names what is missing ...
    unset = trueup("plan").error_line(2)
    assert "TRUEUP_SOURCE_URL" in unset
    assert "source.url" in unset
    # ... with them it loads, its mapping fits the table, and plan fails connecting to the source.
    line = trueup("plan", env=UNREACHABLE).error_line(3)
    assert "cannot connect to PostgreSQL" in line
    assert "init-pw" not in line


def test_init_refuses_to_overwrite_without_force(tmp_path: Path, trueup: Trueup) -> None:
    config = tmp_path / "trueup.yml"
    config.write_text("# my own config\n")

    line = trueup("init").error_line(5)

    assert "--force" in line
    assert config.read_text() == "# my own config\n"
    elsewhere = trueup("init", "other.yml")
    assert elsewhere.code == 0, elsewhere.err
    assert "kind: features" in (tmp_path / "other.yml").read_text()
    forced = trueup("init", "--force")
    assert forced.code == 0, forced.err
    assert "kind: features" in config.read_text()


def test_demo_runs_end_to_end(tmp_path: Path, trueup: Trueup) -> None:
    ran = trueup("demo", "--dir", "D", "--properties", "2000")

    assert ran.code == 0, ran.err
    drift = {
        m[1]: int(m[2].replace(",", ""))
        for m in re.finditer(r"^  ([a-z ]+): ([\d,]+)$", ran.out, re.MULTILINE)
    }
    creates, updates = drift["missing"], drift["wrong flag"] + drift["all false"]
    assert creates > 0 and updates > 0
    counts = ran.table_counts()  # the plan's rows, then the apply outcome's
    assert counts["create"] == creates
    assert counts["update"] == updates
    assert counts["missing in source"] == drift["orphan"]
    assert counts["created"] == creates
    assert counts["updated"] == updates
    assert counts["failed"] == 0
    assert f"Salesforce answered {creates:,} created and {updates:,} updated" in ran.out
    assert "Accuracy: 100.00%" in ran.out
    assert "Creates 0, updates 0: the org agrees." in ran.out
    # The repair of the drifted org passes every guard, and the check is a page too.
    assert "Guards" in ran.out and "✗" not in ran.out
    page = (tmp_path / "D" / "check-report.html").read_text()
    assert "<svg" in page and "Fraud_Detection_Enabled__c" in page
    # The invalid records and the org's records missing in the source are still listed.
    assert counts["invalid"] == 4
    assert "Invalid in source (not compared): 4" in ran.out
    assert f"Extra in destination (key not in source): {drift['orphan']}" in ran.out
    # The config logs in with credentials from the environment; the file holds no secret.
    config = (tmp_path / "D" / "trueup.yml").read_text()
    assert "kind: salesforce" in config
    assert "client_secret: ${TRUEUP_SANDBOX_CLIENT_SECRET}" in config
    assert (tmp_path / "D" / "ca.pem").is_file() and (tmp_path / "D" / "org.db").is_file()
    assert "trueup sandbox --data" in ran.out
    # The demo's folder is a working project: its runs are there to look at (the login variables
    # must be set for the config to load, though the sandbox is gone).
    login = {"TRUEUP_SANDBOX_CLIENT_ID": "x", "TRUEUP_SANDBOX_CLIENT_SECRET": "x"}
    (run,) = trueup("runs", "--json", "-c", "D/trueup.yml", env=login).json()
    assert run["command"] == "demo"
    assert run["counts"]["created"] == creates
    assert run["destination"] == "salesforce:Product_Property__c"


def test_demo_refuses_a_folder_it_did_not_make(tmp_path: Path, trueup: Trueup) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")

    line = trueup("demo", "--dir", "mine", "--properties", "100").error_line(5)

    assert "not a trueup demo folder" in line
    assert (mine / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
