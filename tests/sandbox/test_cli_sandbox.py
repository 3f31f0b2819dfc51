"""``trueup sandbox`` as a user runs it: start it, read what it prints, curl it, stop it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TRUEUP = Path(sys.executable).parent / "trueup"
V = "/services/data/v59.0"

# .ci/run installs curl when missing, so in CI (CI=true) a missing curl fails instead of skipping
pytestmark = pytest.mark.skipif(
    shutil.which("curl") is None and os.environ.get("CI", "").lower() not in {"1", "true", "yes"},
    reason="needs curl",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture()
def running(tmp_path: Path) -> Iterator[tuple[dict[str, str], list[str]]]:
    """A ``trueup sandbox`` subprocess; yields the printed values and the printed lines."""
    ca_out = tmp_path / "ca.pem"
    command = [str(TRUEUP), "sandbox", "--port", str(free_port()), "--page-size", "2"]
    process = subprocess.Popen(
        [*command, "--ca-out", str(ca_out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("Serving until Ctrl-C"):
                break
        else:
            raise AssertionError(f"sandbox did not start: {lines} {process.stderr}")
        values = {}
        for line in lines:
            key, sep, value = line.strip().partition(": ")
            if sep and not line.startswith(" " * 4):
                values[key] = value.strip()
        yield values, lines
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "sandbox stopped" in out


def curl(*args: str) -> object:
    done = subprocess.run(
        ["curl", "--silent", "--show-error", "--fail-with-body", *args],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    return json.loads(done.stdout)


def test_cli_prints_credentials_and_serves_curl(
    running: tuple[dict[str, str], list[str]], tmp_path: Path
) -> None:
    values, lines = running
    url, token, ca = values["instance URL"], values["access token"], values["CA certificate"]
    assert url.startswith("https://127.0.0.1:")
    assert Path(ca) == tmp_path / "ca.pem" and Path(ca).read_text().startswith("-----BEGIN")
    assert values["client id"] and values["client secret"]
    assert any(line.strip().startswith(f"curl --cacert {ca} ") for line in lines)

    auth = ["--cacert", ca, "-H", f"Authorization: Bearer {token}"]
    limits = curl(*auth, f"{url}{V}/limits/")
    assert isinstance(limits, dict) and limits["DailyApiRequests"]["Max"] == 15000

    records = [{"attributes": {"type": "Property__c"}, "Name": name} for name in "abc"]
    created = curl(
        *auth,
        "-H",
        "Content-Type: application/json",
        "--data",
        json.dumps({"records": records}),
        f"{url}{V}/composite/sobjects",
    )
    assert isinstance(created, list) and [r["success"] for r in created] == [True] * 3
    query = "q=SELECT Name FROM Property__c ORDER BY Name"
    page = curl(*auth, "-G", "--data-urlencode", query, f"{url}{V}/query/")
    assert isinstance(page, dict) and page["totalSize"] == 3 and page["done"] is False
    rest = curl(*auth, f"{url}{page['nextRecordsUrl']}")
    assert isinstance(rest, dict) and rest["done"] is True
    assert [r["Name"] for r in page["records"] + rest["records"]] == ["a", "b", "c"]


def test_cli_bad_fault_plan_is_one_line_and_exit_2(tmp_path: Path) -> None:
    plan = tmp_path / "faults.yml"
    plan.write_text("http:\n  - {match: '*', status: 503, colour: blue}\n", encoding="utf-8")
    done = subprocess.run(
        [str(TRUEUP), "sandbox", "--port", "0", "--faults", str(plan)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: fault plan") and "colour" in line
