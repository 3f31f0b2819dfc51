"""run_check over real files: the mismatch rows carry both sides' values, as text, in order.

A CSV source with the sql model against a SQLite table: every field is its own product, missing
records list their non-null source fields, and a check that agrees has no rows.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import yaml

from trueup.check import MismatchKind, run_check
from trueup.config import load_config

SOURCE_CSV = """id,name,active,since,score
a,Alpha,true,2024-01-02,1.5
b,Bravo,false,2024-01-01,2
c,Charlie,true,,3
d,Delta,true,2024-03-04,
"""
DDL = (
    'CREATE TABLE "Thing" ("Ext" VARCHAR(20) PRIMARY KEY, "Name" VARCHAR(20), '
    '"Active" BOOLEAN NOT NULL, "Since" DATE, "Score" DOUBLE)'
)
ROWS = [
    ("a", "Alpha", 1, "2024-01-02", 1.5),  # agrees
    ("b", "Bravo <b>", 0, "2023-12-31", 2.0),  # name and date differ
    ("c", "Charlie", 0, None, 3.0),  # the flag differs
    ("z", "Zulu", 1, None, None),  # extra: key not in the source
]  # d is missing in the destination


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    (tmp_path / "things.csv").write_text(SOURCE_CSV)
    con = sqlite3.connect(tmp_path / "crm.db")
    with con:
        con.execute(DDL)
        con.executemany('INSERT INTO "Thing" VALUES (?, ?, ?, ?, ?)', ROWS)
    con.close()
    body = {
        "source": {"kind": "files", "tables": {"things": "things.csv"}},
        "model": {"kind": "sql", "table": "things"},
        "key": "id",
        "destination": {"kind": "sql", "url": "sqlite:///crm.db", "table": "Thing"},
        "mapping": {
            "id": "Ext",
            "name": "Name",
            "active": "Active",
            "since": "Since",
            "score": "Score",
        },
        "guards": {"min_accuracy": 20, "max_missing": 0},
    }
    path = tmp_path / "trueup.yml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def test_mismatch_rows_hold_both_values(config: Path) -> None:
    report = run_check(load_config(config))

    assert (report.compared, report.agreeing, report.matched) == (4, 1, 3)
    assert report.missing_in_destination == ("d",)
    assert report.extra_in_destination == ("z",)
    assert report.field_products == {f: f for f in ("Name", "Active", "Since", "Score")}
    assert report.product_mismatches == {"Name": 1, "Active": 1, "Since": 1, "Score": 0}
    assert report.field_mismatches == {"Name": 1, "Active": 1, "Since": 1, "Score": 0}
    both, missing = MismatchKind.MISMATCH.value, MismatchKind.MISSING_IN_DESTINATION.value
    assert report.mismatches.to_pylist() == [
        {
            "key": "b",
            "field": "Name",
            "product": "Name",
            "kind": both,
            "source_value": "Bravo",
            "destination_value": "Bravo <b>",
        },
        {
            "key": "b",
            "field": "Since",
            "product": "Since",
            "kind": both,
            "source_value": "2024-01-01",
            "destination_value": "2023-12-31",
        },
        {
            "key": "c",
            "field": "Active",
            "product": "Active",
            "kind": both,
            "source_value": "true",
            "destination_value": "false",
        },
        # a record missing in the destination: each of its non-null source fields
        *(
            {
                "key": "d",
                "field": field,
                "product": field,
                "kind": missing,
                "source_value": value,
                "destination_value": None,
            }
            for field, value in (("Name", "Delta"), ("Active", "true"), ("Since", "2024-03-04"))
        ),
    ]
    # min_accuracy 20 holds (25%); max_missing 0 does not (one record)
    assert [(t.name.value, t.passed) for t in report.thresholds] == [
        ("guards.min_accuracy", True),
        ("guards.max_missing", False),
    ]
    assert report.destination == "sql:Thing"
    assert report.config_fingerprint == load_config(config).config.fingerprint()


def test_an_agreeing_check_has_no_rows(config: Path) -> None:
    con = sqlite3.connect(config.parent / "crm.db")
    with con:
        con.execute('DELETE FROM "Thing"')
        con.executemany(
            'INSERT INTO "Thing" VALUES (?, ?, ?, ?, ?)',
            [
                ("a", "Alpha", 1, "2024-01-02", 1.5),
                ("b", "Bravo", 0, "2024-01-01", 2.0),
                ("c", "Charlie", 1, None, 3.0),
                ("d", "Delta", 1, "2024-03-04", None),
            ],
        )
    con.close()
    report = run_check(load_config(config))
    assert report.accuracy == 100.0 and report.passed
    assert report.mismatches.num_rows == 0
    assert set(report.product_mismatches.values()) == {0}
