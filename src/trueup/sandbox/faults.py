"""Scripted, deterministic faults: HTTP failures, session expiry and automation that fails records.

A fault plan is a YAML or JSON file (full guide: docs/sandbox-faults.md)::

    seed: 7                      # decides every `rate`; same seed + same calls = same faults
    http:                        # per API request, first rule that fires wins
      - {match: "POST|PATCH /services/data/*/composite/*", status: 503, rate: 0.1}
      - {match: "*", status: 429, retry_after: 2, nth: [5, 9]}
      - {match: "GET /services/data/*/query*", delay: 1.5, rate: 0.2}
      - {match: "*", drop: true, nth: [12]}
    tokens: {expire_after_calls: 50}   # every 50th API call finds all sessions expired (401)
    records:                     # per 200-record trigger chunk, first failing rule wins per record
      - {type: lock, object: Product_Property__c,
         keys: {field: Reverse_ETL_ID__c, values: [a, b]}, times: 1}
      - {type: lock, object: Product_Property__c, rate: 0.02}
      - {type: flow_chunk_limit, object: Product_Property__c, max_records: 50}
      - {type: validation, object: Product_Property__c,
         when: {field: Name, equals: "Bad Name"}, message: "Name is not allowed"}

``match`` is ``"*"`` or ``"METHOD[|METHOD...] /path/glob"`` (fnmatch; ``*`` crosses ``/``). The
token endpoint (``/services/oauth2/...``) is only touched by rules whose glob starts with that path
and is no API call for ``expire_after_calls``; the ``/__sandbox/...`` routes are neither.
An HTTP rule fires on every matching call, on its ``nth`` matching calls (1-based, counted per rule)
or at a ``rate`` (0..1). Effects: ``status`` (with ``body``, by default a Salesforce error array for
common statuses, ``null`` for none, and ``retry_after``), ``delay`` seconds, ``drop`` the
connection, ``expire_session``. Record rules take ``object``, optional ``operations`` (insert,
update, upsert, delete; validation defaults to all but delete) and per type:

- ``lock``: ``keys`` (``field``, ``values``), ``times`` (failed attempts per key value before it
  saves), ``rate``: UNABLE_TO_LOCK_ROW.
- ``flow_chunk_limit``: ``max_records``, ``flow`` (name), ``limit`` (soql or cpu): a larger chunk
  fails whole, every record CANNOT_EXECUTE_FLOW_TRIGGER with a System.LimitException message.
- ``validation``: ``when`` (``field`` plus one of ``equals``, ``matches`` (full-match regex),
  ``is_null``), ``message``, ``fields`` (default ``[field]``): FIELD_CUSTOM_VALIDATION_EXCEPTION.

Unknown keys or wrong types raise a one-line ValueError naming the key.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from trueup.sandbox.errors import RecordError
from trueup.sandbox.fault_rules import (
    LIMIT_MESSAGES,
    TOKEN_PATH,
    HttpFault,
    PlanSpec,
    RecordRule,
    parse_plan,
)

__all__ = ["LOCK_MESSAGE", "FaultPlan", "HttpFault"]

CONTROL_PATH = "/__sandbox"  # the sandbox's own inspection routes: never faulted, never counted
LOCK_MESSAGE = "unable to obtain exclusive access to this record or 200 records"  # spec §9.1


def _uniform(seed: int, salt: str, n: int) -> float:
    """A reproducible draw in [0, 1) for the n-th event of one rule: no shared RNG stream."""
    digest = hashlib.blake2b(f"{seed}:{salt}:{n}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _value(record: Mapping[str, Any], field: str) -> Any:
    """A field's value, matching the name case-insensitively as Salesforce does."""
    if field in record:
        return record[field]
    lowered = field.lower()
    return next((v for k, v in record.items() if k.lower() == lowered), None)


class FaultPlan:
    """A seeded script of faults; also the org's RecordRules (``before_save``)."""

    def __init__(self, spec: PlanSpec | None = None) -> None:
        self.spec = spec or PlanSpec()
        self.targets_token_endpoint = any(r.path.startswith(TOKEN_PATH) for r in self.spec.http)
        self._lock = threading.Lock()
        self._calls = 0
        self._http_counts = [0] * len(self.spec.http)
        self._record_counts = [0] * len(self.spec.records)
        self._attempts: dict[tuple[int, str], int] = {}
        self._chunks = 0

    @classmethod
    def load(cls, path: Path) -> FaultPlan:
        """Read a plan from a .yml, .yaml or .json file; ValueError with a one-line message."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
            if path.suffix.lower() in (".yml", ".yaml"):
                data = yaml.safe_load(text)
            elif path.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                raise ValueError("expected a .yml, .yaml or .json file")
            return cls(parse_plan({} if data is None else data))
        except OSError as exc:
            raise ValueError(f"fault plan {path}: cannot read it ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or "syntax error"
            raise ValueError(f"fault plan {path}: invalid YAML{where}: {problem}") from None
        except json.JSONDecodeError as exc:
            message = f"invalid JSON at line {exc.lineno}: {exc.msg}"
            raise ValueError(f"fault plan {path}: {message}") from None
        except ValueError as exc:
            raise ValueError(f"fault plan {path}: {exc}") from None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultPlan:
        """Build a plan from its parsed YAML/JSON form."""
        try:
            return cls(parse_plan(data))
        except ValueError as exc:
            raise ValueError(f"fault plan: {exc}") from None

    @classmethod
    def none(cls) -> FaultPlan:
        """A plan with no faults."""
        return cls()

    @property
    def seed(self) -> int:
        """The seed every ``rate`` draws from."""
        return self.spec.seed

    def on_request(self, method: str, path: str) -> HttpFault | None:
        """The fault for the next API request, if any; call once per request in arrival order."""
        if path.startswith(CONTROL_PATH):
            return None
        method = method.upper()
        chosen: HttpFault | None = None
        expire = False
        with self._lock:
            if not path.startswith(TOKEN_PATH):
                self._calls += 1
                every = self.spec.expire_after_calls
                expire = every is not None and self._calls % every == 0
            for index, rule in enumerate(self.spec.http):
                if not rule.matches(method, path):
                    continue
                self._http_counts[index] += 1
                count = self._http_counts[index]
                if chosen is not None:
                    continue
                if rule.trigger.nth:
                    fires = count in rule.trigger.nth
                else:
                    rate = rule.trigger.rate
                    fires = rate is None or _uniform(self.seed, f"http{index}", count) < rate
                if fires:
                    chosen = rule.fault
        if expire:
            chosen = replace(chosen or HttpFault(), expire_session=True)
        return chosen

    def before_save(
        self, sobject: str, operation: str, chunk: Sequence[Mapping[str, Any]]
    ) -> Sequence[RecordError | None]:
        """Fail records of one trigger chunk as the plan's automation and locks would."""
        results: list[RecordError | None] = [None] * len(chunk)
        name, op = sobject.lower(), operation.lower()
        rules = [
            (index, rule)
            for index, rule in enumerate(self.spec.records)
            if rule.sobject.lower() == name and op in rule.operations
        ]
        with self._lock:
            for _, rule in rules:
                if rule.type == "flow_chunk_limit" and len(chunk) > rule.max_records:
                    self._chunks += 1
                    error = RecordError("CANNOT_EXECUTE_FLOW_TRIGGER", self._flow_message(rule))
                    return [error] * len(chunk)
            for position, record in enumerate(chunk):
                for index, rule in rules:
                    results[position] = self._record_error(index, rule, record)
                    if results[position] is not None:
                        break
        return results

    def describe(self) -> list[str]:
        """One line per rule, for the CLI to print."""
        lines = [rule.describe() for rule in self.spec.http]
        if self.spec.expire_after_calls is not None:
            every = self.spec.expire_after_calls
            lines.append(f"tokens: all sessions expire every {every} API calls")
        return lines + [rule.describe() for rule in self.spec.records]

    def _record_error(
        self, index: int, rule: RecordRule, record: Mapping[str, Any]
    ) -> RecordError | None:
        if rule.type == "validation":
            if _violates(rule, _value(record, rule.field)):
                return RecordError("FIELD_CUSTOM_VALIDATION_EXCEPTION", rule.message, rule.fields)
            return None
        if rule.type != "lock":
            return None
        if rule.values is not None:
            value = _value(record, rule.field)
            if value is None or str(value) not in rule.values:
                return None
            if rule.times is not None:
                key = (index, str(value))
                self._attempts[key] = self._attempts.get(key, 0) + 1
                if self._attempts[key] > rule.times:
                    return None
        if rule.rate is not None:
            self._record_counts[index] += 1
            if _uniform(self.seed, f"records{index}", self._record_counts[index]) >= rule.rate:
                return None
        return RecordError("UNABLE_TO_LOCK_ROW", LOCK_MESSAGE)

    def _flow_message(self, rule: RecordRule) -> str:
        """Salesforce's flow-failure text (spec §9.1, §9.2) with a reproducible Error ID."""
        a, b, c = (
            int(_uniform(self.seed, f"error-id-{part}", self._chunks) * size) + size // 9
            for part, size in (("a", 9 * 10**8), ("b", 9 * 10**5), ("c", 9 * 10**8))
        )
        error_id = f"{a}-{b} (-{c})"  # the shape Salesforce prints, e.g. 123456789-123456 (-98765)
        return (
            f"We can't save this record because the “{rule.flow}” process failed. Give your "
            f"Salesforce admin these details. System.LimitException: {LIMIT_MESSAGES[rule.limit]} "
            f"Error ID: {error_id}"
        )


def _violates(rule: RecordRule, value: Any) -> bool:
    """Whether a validation rule's condition holds for a record's value."""
    if rule.test == "is_null":
        return (value is None or value == "") is bool(rule.expected)
    if value is None:
        return False
    if rule.test == "matches":
        return re.fullmatch(str(rule.expected), str(value)) is not None
    return bool(value == rule.expected) or str(value) == str(rule.expected)
