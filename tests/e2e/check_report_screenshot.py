"""Regenerate docs/check-report.png: the HTML report of a check of the demo data, in Chromium.

    .venv/bin/python tests/e2e/check_report_screenshot.py [docs/check-report.png]

Generates the demo (20,000 properties, the SQLite stand-in for Salesforce) in a temporary folder
and runs the installed ``trueup`` on it as a user would: a check of the drifted CRM, apply, a
check that agrees, then hand edits in the CRM (flags switched off, records deleted) and the check
whose HTML report is captured, from the top down to the trend chart.
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
from datetime import date
from pathlib import Path

from browser import chromium, screenshot, unavailable
from e2e_cli import CRM_TABLE, Trueup

from trueup.demo_data import generate_demo

HAND_EDITS = (
    f'UPDATE "{CRM_TABLE}" SET "Fraud_Detection_Enabled__c" = 0 WHERE rowid IN '
    f'(SELECT rowid FROM "{CRM_TABLE}" WHERE "Fraud_Detection_Enabled__c" = 1 LIMIT 140)',
    f'UPDATE "{CRM_TABLE}" SET "Income_Verification_Start_Date__c" = NULL WHERE rowid IN '
    f'(SELECT rowid FROM "{CRM_TABLE}" WHERE "Income_Verification_Start_Date__c" IS NOT NULL '
    "ORDER BY rowid DESC LIMIT 60)",
    f'DELETE FROM "{CRM_TABLE}" WHERE rowid IN '
    f'(SELECT rowid FROM "{CRM_TABLE}" ORDER BY "Reverse_ETL_ID__c" LIMIT 45)',
)


def main(target: Path) -> None:
    """Write the screenshot to ``target``."""
    reason = unavailable()
    if reason:
        sys.exit(reason)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        generate_demo(work, properties=20_000, today=date(2025, 6, 1))
        trueup = Trueup(work)
        for args in (("check",), ("apply", "--yes"), ("check",)):
            ran = trueup(*args)
            print(f"trueup {' '.join(args)}: exit {ran.code}")
        con = sqlite3.connect(work / "crm.db")
        with con:
            for sql in HAND_EDITS:
                con.execute(sql)
        con.close()
        ran = trueup("check", "--format", "html", "--out", "report.html")
        print(ran.out.strip(), ran.err.strip())
        with chromium(width=1100, height=900) as driver:
            driver.get((work / "report.html").as_uri())
            bottom = driver.execute_script(
                "return document.getElementById('trend-section').getBoundingClientRect().bottom"
            )
            png = screenshot(driver, height=bottom + 16)
    target.write_bytes(png)
    print(f"wrote {target} ({len(png):,} bytes)")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/check-report.png"))
