"""An export to a folder of CSV batch files: what apply writes is exactly what was planned."""

from __future__ import annotations

import csv
from typing import Any

from e2e_cli import Demo, Trueup


def _csv_destination(config: dict[str, Any]) -> None:
    config["destination"] = {"kind": "csv", "directory": "out", "batch_size": 50}


def test_apply_writes_the_planned_creates_as_csv_batches(demo: Demo, trueup: Trueup) -> None:
    demo.edit_config(_csv_destination)
    plan = trueup("plan", "--json").json()
    creates = {r["key"]: r["values"] for r in plan["records"] if r["action"] == "create"}
    assert plan["counts"]["create"] == len(creates) > 50
    assert plan["counts"]["update"] == 0

    applied = trueup("apply", "--yes")

    assert applied.code == 0, applied.err
    assert applied.table_counts()["created"] == len(creates)
    files = sorted((demo.dir / "out").iterdir())
    assert [f.name for f in files] == [
        f"batch-{n:06d}.csv" for n in range(1, -(-len(creates) // 50) + 1)
    ]
    written: dict[str, dict[str, str]] = {}
    for path in files:
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert 0 < len(rows) <= 50
        for row in rows:
            key = row.pop(plan["key_field"])
            assert key not in written
            written[key] = row
    assert written.keys() == creates.keys()
    for key, values in creates.items():
        assert written[key] == {f: _cell(v) for f, v in values.items()}

    again = trueup("plan", "--json").json()
    assert again["counts"]["create"] == again["counts"]["update"] == 0
    assert again["counts"]["unchanged"] == len(creates)


def _cell(value: Any) -> str:
    """A plan value as the CSV destination writes it (null is an empty cell)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
