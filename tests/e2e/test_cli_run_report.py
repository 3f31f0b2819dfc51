"""The run report as a user gets it: ``apply --report FILE`` and the post to a chat webhook.

The webhook is a real HTTP server on 127.0.0.1 that records every request and answers with the
statuses a test queues (then 200). Its URL carries a secret in its path, as Slack's do: it must
never appear in trueup's output, in the report or in the run store.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from e2e_cli import Demo, Ran, Trueup

SECRET = "T0000/B0000/s3cr3tW3bh00k"


@dataclass(frozen=True)
class Received:
    """One request the webhook got."""

    method: str
    path: str
    content_type: str
    body: bytes


@dataclass
class Webhook:
    """A local chat webhook: what it received and the statuses it will answer with next."""

    origin: str
    received: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{self.origin}/services/{SECRET}"


@pytest.fixture()
def webhook() -> Iterator[Webhook]:
    """A webhook served on 127.0.0.1 in a thread for the test's duration."""
    hook = Webhook(origin="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            hook.received.append(
                Received("POST", self.path, self.headers.get("Content-Type", ""), body)
            )
            status = hook.statuses.pop(0) if hook.statuses else 200
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok" if status == 200 else b"server_error")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook.origin = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def notify_config(demo: Demo, **settings: Any) -> None:
    def change(config: dict[str, Any]) -> None:
        config["notify"] = {"webhook_url": "${TRUEUP_WEBHOOK_URL}"} | settings

    demo.edit_config(change)


def assert_secret_kept(demo: Demo, *runs: Ran) -> None:
    for ran in runs:
        assert SECRET not in ran.out + ran.err
        assert "/services/" not in ran.out + ran.err
    for path in demo.dir.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_apply_writes_the_report_and_posts_it_to_the_webhook(
    demo: Demo, trueup: Trueup, webhook: Webhook
) -> None:
    expected = demo.expected()
    notify_config(demo, check_after_apply=True)

    applied = trueup(
        "apply", "--yes", "--report", "report.md", env={"TRUEUP_WEBHOOK_URL": webhook.url}
    )

    assert applied.code == 0, applied.err
    assert "Wrote the run report to report.md" in applied.out
    assert "warning" not in applied.err
    report = (demo.dir / "report.md").read_text(encoding="utf-8")
    assert report.startswith("### ✅ trueup apply: run 1 succeeded\n")
    assert f"**{expected['create']:,} created, {expected['update']:,} updated, 0 failed**" in report
    assert "| invalid in source " in report
    assert "**Check after apply:** accuracy 100.00%" in report
    assert "thresholds passed" in report
    (posted,) = webhook.received
    assert posted.path == f"/services/{SECRET}"
    assert posted.content_type == "application/json"
    assert json.loads(posted.body) == {"text": report}
    assert_secret_kept(demo, applied)
    # The check after apply is kept like any other check.
    with closing(sqlite3.connect(demo.dir / ".trueup" / "state.db")) as con:
        assert con.execute("SELECT accuracy FROM checks").fetchall() == [(100.0,)]


def test_a_failing_webhook_is_a_warning_and_the_apply_still_exits_0(
    demo: Demo, trueup: Trueup, webhook: Webhook
) -> None:
    notify_config(demo, format="markdown")
    webhook.statuses = [500, 502]

    applied = trueup("apply", "--yes", env={"TRUEUP_WEBHOOK_URL": webhook.url})

    assert applied.code == 0, applied.err
    assert len(webhook.received) == 2  # one retry
    assert all(r.content_type == "text/markdown; charset=utf-8" for r in webhook.received)
    assert webhook.received[0].body.decode().startswith("### ✅ trueup apply: run 1 succeeded")
    assert "warning: the run report was not posted:" in applied.err
    assert f"{webhook.origin}: HTTP 502" in applied.err
    assert_secret_kept(demo, applied)


def test_a_stopped_run_is_reported_and_keeps_its_exit_code(
    demo: Demo, trueup: Trueup, webhook: Webhook
) -> None:
    demo.recreate_crm("\"Name\" GLOB '#*'")  # an empty CRM that refuses every name

    def guarded(config: dict[str, Any]) -> None:
        config["guards"] = {"max_error_rate": 0.05, "min_error_sample": 20}
        config["destination"]["batch_size"] = 10
        config["notify"] = {"webhook_url": "${TRUEUP_WEBHOOK_URL}", "when": "problems"}

    demo.edit_config(guarded)

    stopped = trueup("apply", "--yes", env={"TRUEUP_WEBHOOK_URL": webhook.url})

    stopped.error_line(7)  # the brake's exit code and one line: no warning
    (posted,) = webhook.received
    text = json.loads(posted.body)["text"]
    assert text.startswith("### ⚠️ trueup apply: run 1 stopped")
    assert "**Failures by error code**" in text
    assert "- `CHECK_VIOLATION`: " in text
    assert "**Stopped by the error-rate brake:**" in text
    assert_secret_kept(demo, stopped)


def test_when_problems_a_clean_run_and_nothing_to_apply_are_not_posted(
    demo: Demo, trueup: Trueup, webhook: Webhook
) -> None:
    notify_config(demo, when="problems")
    env = {"TRUEUP_WEBHOOK_URL": webhook.url}

    assert trueup("apply", "--yes", env=env).code == 0
    again = trueup("apply", "--yes", "--report", "again.md", env=env)

    assert again.code == 0, again.err
    assert webhook.received == []
    # Nothing to apply: no run and no post, but the file says so.
    report = (demo.dir / "again.md").read_text(encoding="utf-8")
    assert report.startswith("### ✅ trueup apply: nothing to apply\n")


def test_a_blocked_plan_is_posted(demo: Demo, trueup: Trueup, webhook: Webhook) -> None:
    def limited(config: dict[str, Any]) -> None:
        config.setdefault("guards", {})["max_changes"] = 1
        config["notify"] = {"webhook_url": "${TRUEUP_WEBHOOK_URL}"}

    demo.edit_config(limited)

    blocked = trueup("apply", "--yes", env={"TRUEUP_WEBHOOK_URL": webhook.url})

    assert blocked.code == 6, blocked.err
    (posted,) = webhook.received
    text = json.loads(posted.body)["text"]
    assert text.startswith("### ⛔ trueup apply: blocked by guards")
    assert "- ⛔ `max_changes` blocked the run: " in text


def test_a_webhook_url_written_in_the_file_is_refused(demo: Demo, trueup: Trueup) -> None:
    def literal(config: dict[str, Any]) -> None:
        config["notify"] = {"webhook_url": f"https://hooks.example.com/services/{SECRET}"}

    demo.edit_config(literal)

    line = trueup("plan").error_line(2)

    assert "notify.webhook_url: must come from the environment" in line
    assert SECRET not in line


def test_report_into_a_missing_folder_is_refused_before_anything_runs(
    demo: Demo, trueup: Trueup
) -> None:
    before = demo.crm_dump()

    ran = trueup("apply", "--yes", "--report", "no/such/report.md")

    assert ran.code == 2
    assert "no such folder" in ran.err
    assert demo.crm_dump() == before
