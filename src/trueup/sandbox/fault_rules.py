"""The rules of a fault plan as typed values, and ``parse_plan``, which validates the plan's form.

faults.py documents the plan format and runs the rules; this module only turns parsed YAML/JSON
into frozen rules, raising ValueError with a one-line message that names the bad key
(``http[1].status: expected ...``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from typing import Any

TOKEN_PATH = "/services/oauth2"
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
OPERATIONS = ("insert", "update", "upsert", "delete")
LIMIT_MESSAGES = {"soql": "Too many SOQL queries: 101", "cpu": "Apex CPU time limit exceeded"}
DEFAULT_BODIES: dict[int, tuple[str, str]] = {  # status -> (errorCode, message); spec §3.3, §9.1
    401: ("INVALID_SESSION_ID", "Session expired or invalid"),
    403: ("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
    404: ("NOT_FOUND", "The requested resource does not exist"),
    429: ("REQUEST_LIMIT_EXCEEDED", "ConcurrentRequests (Concurrent API Requests) Limit exceeded."),
    500: ("UNKNOWN_EXCEPTION", "An unexpected error occurred. Please try again."),
    503: ("SERVER_UNAVAILABLE", "The server is temporarily unavailable. Please try again later."),
}

_TOP_KEYS = {"seed", "http", "tokens", "records"}
_HTTP_KEYS = {"match", "status", "body", "retry_after", "delay", "drop", "expire_session"}
_RECORD_KEYS = {
    "lock": {"keys", "times", "rate"},
    "flow_chunk_limit": {"max_records", "flow", "limit"},
    "validation": {"when", "message", "fields"},
}
_TESTS = ("equals", "matches", "is_null")


@dataclass(frozen=True)
class HttpFault:
    """What to do to one API request instead of (or before) handling it normally."""

    status: int | None = None  # answer with this status instead of handling
    body: Any = None  # JSON body of that answer; None sends no body
    retry_after: int | None = None  # Retry-After header, seconds
    delay: float = 0.0  # sleep this long first
    drop: bool = False  # close the connection without answering
    expire_session: bool = False  # revoke every token first, so this call gets 401


@dataclass(frozen=True)
class Trigger:
    """When a rule fires: every matching call, the ``nth`` ones (1-based) or at a ``rate``."""

    rate: float | None = None
    nth: frozenset[int] = frozenset()

    def describe(self) -> str:
        """How the trigger reads in ``fault plan`` listings."""
        if self.nth:
            return "on matching call(s) " + ", ".join(map(str, sorted(self.nth)))
        return "on every matching call" if self.rate is None else f"at rate {self.rate:g}"


@dataclass(frozen=True)
class HttpRule:
    """A request pattern and the fault it injects."""

    methods: frozenset[str]  # empty: any method
    path: str  # fnmatch glob
    text: str  # the pattern as written
    trigger: Trigger
    fault: HttpFault

    def matches(self, method: str, path: str) -> bool:
        """Whether a request is this rule's; the token endpoint only when the glob names it."""
        if path.startswith(TOKEN_PATH) and not self.path.startswith(TOKEN_PATH):
            return False
        return (not self.methods or method in self.methods) and fnmatchcase(path, self.path)

    def describe(self) -> str:
        """One line for the CLI."""
        f = self.fault
        effects = [
            str(f.status) if f.status is not None else "",
            f"Retry-After {f.retry_after}" if f.retry_after is not None else "",
            f"delay {f.delay:g}s" if f.delay else "",
            "drop connection" if f.drop else "",
            "expire sessions" if f.expire_session else "",
        ]
        return (
            f"http: {self.text} -> {', '.join(e for e in effects if e)} {self.trigger.describe()}"
        )


@dataclass(frozen=True)
class RecordRule:
    """One automation or locking behaviour on an object's trigger chunks."""

    type: str  # lock, flow_chunk_limit or validation
    sobject: str
    operations: frozenset[str]
    field: str = ""  # lock: key field; validation: tested field
    values: frozenset[str] | None = None  # lock: key values that fail (None: any record)
    times: int | None = None  # lock: failed attempts per key value, then it saves
    rate: float | None = None  # lock: chance each record attempt fails
    max_records: int = 0  # flow_chunk_limit: largest chunk that passes
    flow: str = ""  # flow_chunk_limit: the flow's name in the message
    limit: str = "soql"  # flow_chunk_limit: which governor limit (LIMIT_MESSAGES)
    test: str = ""  # validation: equals, matches or is_null
    expected: Any = None
    message: str = ""  # validation: the rule's error text
    fields: tuple[str, ...] = ()  # validation: fields[] of the error

    def describe(self) -> str:
        """One line for the CLI."""
        head = f"records: {self.type} on {self.sobject}"
        if self.type == "flow_chunk_limit":
            why = LIMIT_MESSAGES[self.limit]
            return f"{head}: chunks over {self.max_records} records fail whole ({why})"
        if self.type == "validation":
            return f"{head}: {self.field} {self.test} {self.expected!r} -> {self.message!r}"
        parts = [head]
        if self.values is not None:
            parts.append(f"where {self.field} in [{', '.join(sorted(self.values))}]")
        if self.times is not None:
            parts.append(f"first {self.times} attempt(s) per record")
        if self.rate is not None:
            parts.append(f"at rate {self.rate:g}")
        return ", ".join(parts)


@dataclass(frozen=True)
class PlanSpec:
    """A validated fault plan: the seed and its rules."""

    seed: int = 0
    http: tuple[HttpRule, ...] = ()
    expire_after_calls: int | None = None
    records: tuple[RecordRule, ...] = ()


def parse_plan(data: Any) -> PlanSpec:
    """Validate a parsed plan; ValueError names the first bad key."""
    plan = _mapping(data, "plan", _TOP_KEYS)
    seed = _int(plan.get("seed", 0), "seed", minimum=None)
    http = tuple(_http_rule(r, f"http[{i}]") for i, r in enumerate(_list(plan, "http")))
    expire = None
    if "tokens" in plan:
        tokens = _mapping(plan["tokens"], "tokens", {"expire_after_calls"})
        if "expire_after_calls" in tokens:
            expire = _int(tokens["expire_after_calls"], "tokens.expire_after_calls", minimum=1)
    records = tuple(_record_rule(r, f"records[{i}]") for i, r in enumerate(_list(plan, "records")))
    return PlanSpec(seed=seed, http=http, expire_after_calls=expire, records=records)


def _http_rule(data: Any, where: str) -> HttpRule:
    rule = _mapping(data, where, _HTTP_KEYS | {"rate", "nth"}, required=("match",))
    methods, path, text = _pattern(rule["match"], f"{where}.match")
    status = None
    if "status" in rule:
        status = _int(rule["status"], f"{where}.status", minimum=100)
        if status > 599:
            raise ValueError(f"{where}.status: expected an HTTP status 100-599, got {status}")
    for key in ("body", "retry_after"):
        if key in rule and status is None:
            raise ValueError(f"{where}.{key}: needs a status")
    body: Any = None
    if "body" in rule:
        body = rule["body"]
    elif status in DEFAULT_BODIES:
        code, message = DEFAULT_BODIES[status]
        body = [{"message": message, "errorCode": code}]
    retry = rule.get("retry_after")
    fault = HttpFault(
        status=status,
        body=body,
        retry_after=None if retry is None else _int(retry, f"{where}.retry_after", minimum=0),
        delay=_number(rule.get("delay", 0), f"{where}.delay"),
        drop=_bool(rule.get("drop", False), f"{where}.drop"),
        expire_session=_bool(rule.get("expire_session", False), f"{where}.expire_session"),
    )
    if fault.drop and status is not None:
        raise ValueError(f"{where}.drop: a dropped connection cannot also answer a status")
    if status is None and not (fault.delay or fault.drop or fault.expire_session):
        raise ValueError(f"{where}: needs an effect (status, delay, drop or expire_session)")
    return HttpRule(methods, path, text, _trigger(rule, where), fault)


def _record_rule(data: Any, where: str) -> RecordRule:
    head = _mapping(data, where, None, required=("type", "object"))
    kind = _str(head["type"], f"{where}.type")
    if kind not in _RECORD_KEYS:
        raise ValueError(f"{where}.type: expected one of {', '.join(_RECORD_KEYS)}, got {kind!r}")
    rule = _mapping(data, where, {"type", "object", "operations"} | _RECORD_KEYS[kind])
    sobject = _str(rule["object"], f"{where}.object")
    # Validation rules do not run on delete.
    ops = frozenset(OPERATIONS[:3] if kind == "validation" else OPERATIONS)
    if "operations" in rule:
        names = _list(rule, "operations", f"{where}.operations")
        ops = frozenset(_str(o, f"{where}.operations").lower() for o in names)
        if bad := sorted(ops - set(OPERATIONS)):
            raise ValueError(f"{where}.operations: unknown operation {bad[0]!r}")
    base = RecordRule(kind, sobject, ops)
    if kind == "flow_chunk_limit":
        return _flow_rule(rule, where, base)
    if kind == "validation":
        return _validation_rule(rule, where, base)
    return _lock_rule(rule, where, base)


def _flow_rule(rule: Mapping[str, Any], where: str, base: RecordRule) -> RecordRule:
    _mapping(rule, where, None, required=("max_records",))
    limit = _str(rule.get("limit", "soql"), f"{where}.limit")
    if limit not in LIMIT_MESSAGES:
        raise ValueError(f"{where}.limit: expected soql or cpu, got {limit!r}")
    return replace(
        base,
        max_records=_int(rule["max_records"], f"{where}.max_records", minimum=1),
        flow=_str(rule.get("flow", f"{base.sobject} Automation"), f"{where}.flow"),
        limit=limit,
    )


def _validation_rule(rule: Mapping[str, Any], where: str, base: RecordRule) -> RecordRule:
    _mapping(rule, where, None, required=("when", "message"))
    when = _mapping(rule["when"], f"{where}.when", {"field", *_TESTS}, required=("field",))
    field = _str(when["field"], f"{where}.when.field")
    tests = [t for t in _TESTS if t in when]
    if len(tests) != 1:
        raise ValueError(f"{where}.when: needs exactly one of equals, matches, is_null")
    test, expected = tests[0], when[tests[0]]
    if test == "is_null":
        expected = _bool(expected, f"{where}.when.is_null")
    elif test == "matches":
        try:
            re.compile(_str(expected, f"{where}.when.matches"))
        except re.error as exc:
            raise ValueError(f"{where}.when.matches: invalid regex ({exc})") from None
    fields: tuple[str, ...] = (field,)
    if "fields" in rule:
        names = _list(rule, "fields", f"{where}.fields")
        fields = tuple(_str(f, f"{where}.fields") for f in names)
    message = _str(rule["message"], f"{where}.message")
    return replace(base, field=field, test=test, expected=expected, message=message, fields=fields)


def _lock_rule(rule: Mapping[str, Any], where: str, base: RecordRule) -> RecordRule:
    rate = _trigger(rule, where).rate
    values, field, times = None, "", None
    if "keys" in rule:
        keys = _mapping(rule["keys"], f"{where}.keys", {"field", "values"}, ("field", "values"))
        field = _str(keys["field"], f"{where}.keys.field")
        values = frozenset(str(v) for v in _list(keys, "values", f"{where}.keys.values"))
    if "times" in rule:
        if values is None:
            raise ValueError(f"{where}.times: needs keys (which records to fail)")
        times = _int(rule["times"], f"{where}.times", minimum=1)
    if values is None and rate is None:
        raise ValueError(f"{where}: a lock rule needs keys or a rate")
    return replace(base, field=field, values=values, times=times, rate=rate)


def _trigger(rule: Mapping[str, Any], where: str) -> Trigger:
    if "rate" in rule and "nth" in rule:
        raise ValueError(f"{where}: give rate or nth, not both")
    if "nth" in rule:
        raw = rule["nth"] if isinstance(rule["nth"], list) else [rule["nth"]]
        return Trigger(nth=frozenset(_int(n, f"{where}.nth", minimum=1) for n in raw))
    if "rate" in rule:
        rate = _number(rule["rate"], f"{where}.rate")
        if rate > 1:
            raise ValueError(f"{where}.rate: expected a number from 0 to 1, got {rate:g}")
        return Trigger(rate=rate)
    return Trigger()


def _pattern(value: Any, where: str) -> tuple[frozenset[str], str, str]:
    text = _str(value, where).strip()
    if text == "*":
        return frozenset(), "*", text
    first, _, rest = text.partition(" ")
    methods_text, path = ("*", first) if first.startswith("/") else (first, rest.strip())
    if not path.startswith("/") and path != "*":
        raise ValueError(f"{where}: expected '*' or 'METHOD[|METHOD] /path/glob', got {text!r}")
    methods = frozenset(m.strip().upper() for m in methods_text.split("|"))
    if "*" in methods:
        return frozenset(), path, text
    if bad := sorted(methods - METHODS):
        raise ValueError(f"{where}: unknown HTTP method {bad[0]!r} in {text!r}")
    return methods, path, text


def _mapping(
    data: Any, where: str, allowed: set[str] | None, required: tuple[str, ...] = ()
) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    if allowed is not None:
        unknown = sorted(str(k) for k in data if k not in allowed)
        if unknown:
            expected = ", ".join(sorted(allowed))
            raise ValueError(f"{where}: unknown key {unknown[0]!r} (expected one of: {expected})")
    for key in required:
        if key not in data:
            raise ValueError(f"{where}: missing key {key!r}")
    return data


def _list(data: Mapping[str, Any], key: str, where: str | None = None) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise ValueError(f"{where or key}: expected a list, got {type(value).__name__}")
    return value


def _int(value: Any, where: str, *, minimum: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{where}: expected an integer >= {minimum}, got {value}")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{where}: expected a number >= 0, got {value!r}")
    return float(value)


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{where}: expected true or false, got {value!r}")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: expected a non-empty string, got {value!r}")
    return value
