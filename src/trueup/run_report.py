"""The run report: one apply summed up in compact Markdown, and its delivery to a chat webhook.

``render_markdown`` is pure: the apply's result, the plan it carried out, the guard verdicts, the
check after apply (optional) and a few stored failures become a short Markdown text for Slack,
Teams, Mattermost or any Markdown viewer (docs/run-report.md shows one). Every value that comes
from data (keys, messages, field and error names) is escaped, so a record cannot format the
report, hide part of it or mention a chat channel.

``post_report`` sends the text to ``notify.webhook_url`` (one retry on a timeout, a lost
connection, 429 or 5xx) and answers with a ``WebhookDelivery``: a failed post is a value for the
caller to warn about, never an exception, and names the webhook by its scheme and host only.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import httpx

from trueup.apply import ApplyResult, StopReason
from trueup.check import CheckReport
from trueup.config import NotifyConfig
from trueup.destinations.base import OutcomeStatus
from trueup.diff import Action
from trueup.guards import GuardVerdict
from trueup.plan import Plan
from trueup.store import RunStatus
from trueup.store.values import StoredOutcome

FIELDS_SHOWN = 10  # fields under "changes per field"
CODES_SHOWN = 10  # error codes under "failures"
EXAMPLES_PER_CODE = 3  # failed records shown per error code
VERDICTS_SHOWN = 20
TEXT_LIMIT = 200  # characters of one message or key; longer ones are cut

_ICON = {
    RunStatus.SUCCEEDED: "✅",
    RunStatus.STOPPED: "⚠️",
    RunStatus.FAILED: "❌",
    RunStatus.RUNNING: "⏳",
}
_STOPPED_BY = {
    StopReason.ERROR_RATE: "Stopped by the error-rate brake",
    StopReason.API_RESERVE: "Stopped at the API reserve",
}
# Plan actions that are reported but never sent, with how the report names them.
_NOT_SENT = (
    (Action.MISSING_IN_SOURCE, "missing in source (left alone)"),
    (Action.MISSING_IN_DESTINATION, "missing in destination (not created)"),
    (Action.EXISTS_IN_DESTINATION, "exists in destination (not overwritten)"),
)


def render_markdown(
    result: ApplyResult | None,
    plan: Plan,
    verdicts: Sequence[GuardVerdict],
    check: CheckReport | None = None,
    *,
    failures: Sequence[StoredOutcome] = (),
    duration: timedelta | None = None,
) -> str:
    """The run report as Markdown; ``result`` None: no run (nothing to apply, or blocked).

    ``failures`` are the run's FAILED outcomes (``RunStore.get_run``), for examples per code.
    """
    lines = _headline(result, plan, verdicts, duration)
    lines += _outcomes(result, plan)
    lines += _field_changes(plan)
    if result is not None:
        lines += _failures(result, failures)
    lines += _guards(verdicts)
    if check is not None:
        lines += _check(check)
    if result is not None and result.message:
        label = _STOPPED_BY.get(result.stop_reason, "Stopped") if result.stop_reason else "Note"
        message = result.message.removeprefix("stopped: ")
        lines += ["", f"**{label}:** {escape(message, limit=500)}"]
    if result is not None:
        lines += ["", f"Details: `trueup runs {result.run_id}`"]
    return "\n".join(lines) + "\n"


def has_problems(
    result: ApplyResult | None,
    verdicts: Sequence[GuardVerdict],
    check: CheckReport | None = None,
) -> bool:
    """Whether the report is worth posting under ``notify.when: problems``: the run did not
    succeed, a record failed, a guard tripped, or the check after apply missed a threshold."""
    if result is not None and (
        result.status is not RunStatus.SUCCEEDED or result.counts.get(OutcomeStatus.FAILED, 0)
    ):
        return True
    return any(v.tripped for v in verdicts) or (check is not None and not check.passed)


# --- sections ------------------------------------------------------------------------------------
def _headline(
    result: ApplyResult | None,
    plan: Plan,
    verdicts: Sequence[GuardVerdict],
    duration: timedelta | None,
) -> list[str]:
    facts = [code(plan.destination), plan.operation.value]
    if result is None:
        blocked = any(v.blocks for v in verdicts)
        title = (
            "⛔ trueup apply: blocked by guards" if blocked else "✅ trueup apply: nothing to apply"
        )
    else:
        title = f"{_ICON[result.status]} trueup apply: run {result.run_id} {result.status.value}"
        n = result.counts.get
        done = [
            f"{n(OutcomeStatus.CREATED, 0):,} created",
            f"{n(OutcomeStatus.UPDATED, 0):,} updated",
        ]
        if n(OutcomeStatus.DELETED, 0):
            done.append(f"{n(OutcomeStatus.DELETED, 0):,} deleted")
        done.append(f"{n(OutcomeStatus.FAILED, 0):,} failed")
        if duration is not None:
            facts.append(_duration(duration))
        facts.append("**" + ", ".join(done) + "**")
    return [f"### {title}", "", " · ".join(facts)]


def _outcomes(result: ApplyResult | None, plan: Plan) -> list[str]:
    rows: list[tuple[str, str]] = []
    if result is not None:
        counts = result.counts
        rows += [
            ("created", f"{counts.get(OutcomeStatus.CREATED, 0):,}"),
            ("updated", f"{counts.get(OutcomeStatus.UPDATED, 0):,}"),
        ]
        if counts.get(OutcomeStatus.DELETED, 0) or plan.counts.get(Action.DELETE, 0):
            rows.append(("deleted", f"{counts.get(OutcomeStatus.DELETED, 0):,}"))
        rows += [
            ("failed", f"{counts.get(OutcomeStatus.FAILED, 0):,}"),
            ("skipped (not sent; includes invalid)", f"{counts.get(OutcomeStatus.SKIPPED, 0):,}"),
        ]
    rows += [
        ("unchanged", f"{plan.counts.get(Action.UNCHANGED, 0):,}"),
        ("invalid in source", f"{plan.counts.get(Action.INVALID, 0):,}"),
    ]
    rows += [(label, f"{plan.counts[a]:,}") for a, label in _NOT_SENT if plan.counts.get(a, 0)]
    if result is not None:
        rows.append(("error rate", f"{result.error_rate:.2%}"))
    return ["", *_table(("outcome", "records"), rows)]


def _field_changes(plan: Plan) -> list[str]:
    changed = sorted(
        ((f, n) for f, n in plan.field_changes.items() if n), key=lambda item: (-item[1], item[0])
    )
    if not changed:
        return []
    shown = changed[:FIELDS_SHOWN]
    more = f"; top {len(shown)} of {len(changed)} fields" if len(changed) > len(shown) else ""
    rows = [(code(f), f"{n:,}") for f, n in shown]
    return [
        "",
        f"**Changes per field** (records written with a new value{more})",
        "",
        *_table(("field", "records"), rows),
    ]


def _failures(result: ApplyResult, failures: Sequence[StoredOutcome]) -> list[str]:
    if not result.error_codes:
        return []
    examples: dict[str, list[StoredOutcome]] = {}
    for failure in failures:
        examples.setdefault(failure.error_code or "UNKNOWN", []).append(failure)
    codes = sorted(result.error_codes.items(), key=lambda item: (-item[1], item[0]))
    total = sum(n for _, n in codes)
    lines = ["", f"**Failures by error code** ({total:,} records)", ""]
    for name, n in codes[:CODES_SHOWN]:
        lines.append(f"- {code(name)}: {n:,}")
        listed = examples.get(name, [])[:EXAMPLES_PER_CODE]
        for failure in listed:
            lines.append(f"  - {code(failure.key)}: {escape(failure.message or '(no message)')}")
        if n > len(listed) and listed:
            lines.append(f"  - … {n - len(listed):,} more")
    if len(codes) > CODES_SHOWN:
        rest = sum(n for _, n in codes[CODES_SHOWN:])
        lines.append(f"- … {len(codes) - CODES_SHOWN} more codes ({rest:,} records)")
    return lines


def _guards(verdicts: Sequence[GuardVerdict]) -> list[str]:
    if not verdicts:
        return []
    tripped = [v for v in verdicts if v.tripped]
    passed = sorted({v.guard.value for v in verdicts} - {v.guard.value for v in tripped})
    lines = ["", "**Guards**", ""]
    for verdict in tripped[:VERDICTS_SHOWN]:
        what = code(verdict.guard.value)
        if verdict.field:
            what += f" on {code(verdict.field)}"
        how = "blocked the run" if verdict.blocks else "tripped, allowed with --allow"
        icon = "⛔" if verdict.blocks else "⚠️"
        line = f"- {icon} {what} {how}: {escape(verdict.message, limit=300)}"
        if verdict.examples:
            line += " (e.g. " + ", ".join(code(k) for k in verdict.examples[:3]) + ")"
        lines.append(line)
    if len(tripped) > VERDICTS_SHOWN:
        lines.append(f"- … {len(tripped) - VERDICTS_SHOWN} more tripped")
    if passed:
        lines.append("- ✅ passed: " + ", ".join(code(g) for g in passed))
    return lines


def _check(check: CheckReport) -> list[str]:
    verdict = "thresholds passed" if check.passed else "**thresholds failed**"
    lines = [
        "",
        f"**Check after apply:** accuracy {check.accuracy:.2f}% "
        f"({check.agreeing:,} of {check.compared:,} records agree) · "
        f"{len(check.missing_in_destination):,} missing in destination · "
        f"{len(check.extra_in_destination):,} extra in destination · "
        f"{len(check.invalid):,} invalid in source · {verdict}",
    ]
    lines += [f"- {escape(t.describe())}" for t in check.failed_thresholds()]
    below = sorted(
        ((f, pct) for f, pct in check.field_agreement().items() if pct < 100.0),
        key=lambda item: (item[1], item[0]),
    )
    if below:
        shown = ", ".join(f"{code(f)} {pct:.2f}%" for f, pct in below[:5])
        more = f" and {len(below) - 5} more" if len(below) > 5 else ""
        lines.append(f"- fields below 100% agreement: {shown}{more}")
    return lines


# --- Markdown ------------------------------------------------------------------------------------
_BACKSLASHED = re.compile(r"([\\`*\[\]|~])")
_UNDERSCORES = re.compile(r"_+")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_CODE_UNSAFE = re.compile(r"[`<>&|]")


def escape(value: object, *, limit: int = TEXT_LIMIT) -> str:
    """``value`` as inline Markdown text that renders as itself, on one line, cut at ``limit``.

    ``& < >`` become entities (CommonMark and Slack both read them back, and Slack then sees no
    ``<!channel>``); ``\\ ` * [ ] | ~`` are backslashed; ``_`` is, unless inside a word (where it
    cannot start emphasis), so field names stay legible in chat clients.
    """
    text = _one_line(value, limit)
    text = _BACKSLASHED.sub(r"\\\1", text)
    text = _UNDERSCORES.sub(lambda m: _underscores(m, text), text)
    return "".join(_ENTITIES.get(ch, ch) for ch in text)


def code(value: object, *, limit: int = 100) -> str:
    """``value`` as an inline code span, or as escaped text when a code span could not hold it
    verbatim in every viewer (backticks, ``< > &``, a table's ``|``)."""
    text = _one_line(value, limit)
    if not text.strip() or _CODE_UNSAFE.search(text):
        return escape(value, limit=limit)
    return f"`{text}`"


def _one_line(value: object, limit: int) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _underscores(match: re.Match[str], text: str) -> str:
    start, end = match.span()
    inside_word = (
        start > 0 and end < len(text) and text[start - 1].isalnum() and text[end].isalnum()
    )
    return match.group() if inside_word else "\\_" * len(match.group())


def _table(header: tuple[str, str], rows: Sequence[tuple[str, str]]) -> list[str]:
    """A two-column table, the second right-aligned, padded so it also reads as plain text."""
    left = max(len(header[0]), *(len(r[0]) for r in rows))
    right = max(len(header[1]), *(len(r[1]) for r in rows))
    lines = [
        f"| {header[0]:<{left}} | {header[1]:>{right}} |",
        f"| :{'-' * (left - 1)} | {'-' * (right - 1)}: |",
    ]
    lines += [f"| {a:<{left}} | {b:>{right}} |" for a, b in rows]
    return lines


def _duration(span: timedelta) -> str:
    seconds = span.total_seconds()
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


# --- the webhook ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class WebhookDelivery:
    """How posting the report went; ``detail`` names the webhook by scheme and host only."""

    delivered: bool
    attempts: int
    detail: str


def webhook_origin(url: str) -> str:
    """The scheme and host of a webhook URL: all of it that may be printed."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    host = f"[{host}]" if ":" in host else host  # IPv6
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def post_report(
    text: str,
    notify: NotifyConfig,
    *,
    retry_wait: float = 1.0,
    transport: httpx.BaseTransport | None = None,
) -> WebhookDelivery:
    """POST the report to ``notify.webhook_url``: ``{"text": report}`` as JSON (format slack) or
    the Markdown itself as text/markdown; retried once on a timeout, a transport error, 429 or
    5xx. Redirects are not followed (the report goes to the configured host or nowhere)."""
    if notify.webhook_url is None:
        raise ValueError("notify.webhook_url is not set")
    url = notify.webhook_url.get_secret_value()
    origin = webhook_origin(url)
    if notify.format == "slack":
        body, kind = json.dumps({"text": text}, ensure_ascii=False), "application/json"
    else:
        body, kind = text, "text/markdown; charset=utf-8"
    detail = ""
    with httpx.Client(timeout=notify.timeout, transport=transport) as client:
        for attempt in (1, 2):
            if attempt == 2:
                time.sleep(retry_wait)
            try:
                response = client.post(url, content=body.encode(), headers={"Content-Type": kind})
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                detail = f"{type(exc).__name__}: {_scrub(str(exc), url, origin)}"
                continue
            if response.is_success:
                return WebhookDelivery(True, attempt, f"posted to {origin}")
            answer = _scrub(" ".join(response.text.split())[:200], url, origin)
            detail = f"HTTP {response.status_code}" + (f" {answer}" if answer else "")
            if response.status_code != 429 and response.status_code < 500:
                return WebhookDelivery(False, attempt, f"{origin} answered {detail}")
        return WebhookDelivery(False, 2, f"{origin}: {detail} (2 attempts)")


def _scrub(text: str, url: str, origin: str) -> str:
    """``text`` without the webhook's path or query (an error may quote the URL)."""
    secret = url[len(origin) :] if url.startswith(origin) else url
    return text.replace(url, origin).replace(secret, "…") if secret.strip("/") else text
