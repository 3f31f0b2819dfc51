"""The installed ``trueup`` command as a user runs it, and the generated demo files it works on.

``Trueup`` runs the real executable in a subprocess (no TTY on stdin, ``COLUMNS=200`` so Rich does
not wrap, no inherited ``TRUEUP_*`` variables). ``Demo`` wraps a small generated source, drifted CRM
and trueup.yml, with helpers to edit the config and read or reshape the CRM table.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from trueup.demo_data import DemoFiles

TRUEUP = Path(sys.executable).parent / "trueup"
CRM_TABLE = "Product_Property__c"
PLAN_LABELS = {
    "create": "create",
    "update": "update",
    "unchanged": "unchanged",
    "missing in source": "missing_in_source",
    "invalid": "invalid",
}
_ROW = re.compile(r"^│ (?P<label>[a-z][a-z .]*?)\s+│\s+(?P<n>[\d,]+) │$", re.MULTILINE)


@dataclass(frozen=True)
class Ran:
    """One finished ``trueup`` invocation."""

    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def json(self) -> Any:
        """stdout parsed as JSON."""
        return json.loads(self.out)

    def table_counts(self) -> dict[str, int]:
        """Every two-column ``│ label │ number │`` row printed on stdout (last one wins)."""
        return {m["label"]: int(m["n"].replace(",", "")) for m in _ROW.finditer(self.out)}

    def plan_counts(self) -> dict[str, int]:
        """The plan's counts by action, read from the rendered plan table."""
        rows = self.table_counts()
        return {action: rows[label] for label, action in PLAN_LABELS.items()}

    def error_line(self, code: int) -> str:
        """Assert the run failed the way a user should see it; return its one stderr line."""
        assert self.code == code, f"exit {self.code}, expected {code}\n{self.err}\n{self.out}"
        assert "Traceback" not in self.err
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, f"expected one line on stderr, got:\n{self.err}"
        assert lines[0].startswith("error: ")
        return lines[0]


class Trueup:
    """Runs the installed ``trueup`` in a folder with a clean environment."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TRUEUP_")}
        self.env.update({"COLUMNS": "200", "NO_COLOR": "1"})

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Ran:
        done = subprocess.run(
            [str(TRUEUP), *args],
            capture_output=True,
            text=True,
            cwd=self.cwd,
            env=self.env | (env or {}),
            stdin=subprocess.DEVNULL,
            timeout=120,
        )
        return Ran(tuple(args), done.returncode, done.stdout, done.stderr)


@dataclass(frozen=True)
class Demo:
    """Generated demo files in a test's folder, and ways to change them."""

    files: DemoFiles

    @property
    def dir(self) -> Path:
        return self.files.directory

    def expected(self) -> dict[str, int]:
        """The plan counts the injected drift implies, keyed by action value."""
        return {action.value: n for action, n in self.files.expected.items()}

    def edit_config(
        self, change: Callable[[dict[str, Any]], None], name: str = "trueup.yml"
    ) -> Path:
        """Load trueup.yml, let ``change`` edit it, write it as ``name`` (default: in place)."""
        config = yaml.safe_load(self.files.config.read_text())
        change(config)
        path = self.dir / name
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def crm(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Run SQL on the CRM stand-in (crm.db) and commit; return the rows."""
        con = sqlite3.connect(self.files.destination)
        try:
            with con:
                return con.execute(sql, params).fetchall()
        finally:
            con.close()

    def crm_dump(self) -> list[str]:
        """Every row of the CRM table, as text, in key order: equal iff the table is unchanged."""
        con = sqlite3.connect(self.files.destination)
        try:
            return [line for line in con.iterdump() if CRM_TABLE in line]
        finally:
            con.close()

    def recreate_crm(self, extra_check: str, *, keep_rows: str | None = None) -> None:
        """Recreate the CRM table with one more CHECK; copy the rows matching ``keep_rows``."""
        con = sqlite3.connect(self.files.destination)
        try:
            with con:
                (ddl,) = con.execute(
                    "SELECT sql FROM sqlite_master WHERE name = ?", (CRM_TABLE,)
                ).fetchone()
                con.execute(f'ALTER TABLE "{CRM_TABLE}" RENAME TO old_crm')
                con.execute(ddl.rstrip().removesuffix(")") + f",\n    CHECK ({extra_check})\n)")
                if keep_rows is not None:
                    copy = f'INSERT INTO "{CRM_TABLE}" SELECT * FROM old_crm WHERE {keep_rows}'
                    con.execute(copy)
                con.execute("DROP TABLE old_crm")
        finally:
            con.close()
