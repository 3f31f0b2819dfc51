"""REST sObject Collections upsert: up to 200 records a request, outcomes from Salesforce's answer.

``CollectionsWriter.upsert`` sends ``PATCH composite/sobjects/{Obj}/{ExtField}`` with
``allOrNone: false`` (wire spec §7.1), a few requests in flight, and returns one ``RecordOutcome``
per input record, in input order. CREATED versus UPDATED is Salesforce's ``created`` flag, never a
guess (DESIGN.md §1, item 2).

What it does when things go wrong (wire spec §9):

- the whole request fails transiently (``TransientDestinationError``: 429, 5xx, timeouts, dropped
  connections): the same request again, with exponential backoff and jitter, waiting at least the
  ``Retry-After`` the server asked for;
- some records fail with ``UNABLE_TO_LOCK_ROW``: only those again, after a backoff; still locked
  after ``attempts`` tries, they are FAILED with that code;
- the whole request fails with an automation error (a record-triggered flow or trigger hitting a
  governor limit fails every record of its 200-record chunk, §9.2): the request is bisected down
  to single records, and ``batch_size`` shrinks for the rest of the run to the largest size that
  went through (DESIGN.md §1, item 3). A single record that still fails is FAILED with that code;
- any other per-record error (validation rules, values too long, duplicates...) is the record's
  own: FAILED at once, never resent. No record that succeeded is ever sent again.

``FatalDestinationError``, ``AuthenticationError`` and ``ApiAllowanceExhausted`` for a request
propagate; ``before_request`` (the destination's API reserve check) runs before every request,
resends included, so splitting chunks cannot spend the reserve.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Protocol

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from trueup.destinations.base import Operation, OutcomeStatus, RecordOutcome
from trueup.errors import (
    ApiAllowanceExhausted,
    FatalDestinationError,
    TransientDestinationError,
)

MAX_BATCH_SIZE = 200  # records per collections request (§7.1; more is EXCEEDED_ID_LIMIT)
LOCK_ERROR = "UNABLE_TO_LOCK_ROW"
# Codes Salesforce gives every record of a trigger chunk when automation fails as a whole (§9.1).
AUTOMATION_CODES = frozenset(
    {"CANNOT_EXECUTE_FLOW_TRIGGER", "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY"}
)
# Uncatchable System.LimitException texts (§9.2); a per-record error mentioning one is chunk-wide.
GOVERNOR_LIMIT_MARKERS = (
    "System.LimitException",
    "Too many SOQL queries",
    "Too many query rows",
    "Too many DML statements",
    "Too many DML rows",
    "Apex CPU time limit exceeded",
    "Too many batch retries in the presence of Apex triggers",
)


class JsonResponse(Protocol):
    """What the writer reads of an HTTP answer (an ``httpx.Response`` is one)."""

    def json(self) -> Any:
        """The parsed body."""


class CollectionsClient(Protocol):
    """The part of ``SalesforceClient`` the writer uses: authenticated calls under the data root."""

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> JsonResponse:
        """Call ``path`` under ``/services/data/vNN.N/``; raise trueup's errors on failure."""


@dataclass(frozen=True)
class _Answer:
    """One record's entry in a collections response."""

    success: bool
    created: bool | None
    record_id: str | None
    codes: tuple[str, ...]
    messages: tuple[str, ...]
    fields: tuple[str, ...]

    @property
    def code(self) -> str | None:
        return self.codes[0] if self.codes else None

    @property
    def locked(self) -> bool:
        return not self.success and self.code == LOCK_ERROR

    @property
    def automation(self) -> bool:
        """Failed the way a whole trigger chunk fails: automation or a governor limit."""
        if self.success:
            return False
        if any(code in AUTOMATION_CODES for code in self.codes):
            return True
        return any(marker in m for m in self.messages for marker in GOVERNOR_LIMIT_MARKERS)


class CollectionsWriter:
    """Upserts records of one object by an external ID through sObject Collections."""

    def __init__(
        self,
        client: CollectionsClient,
        sobject: str,
        external_field: str,
        *,
        batch_size: int = MAX_BATCH_SIZE,
        concurrency: int = 2,
        attempts: int = 5,
        initial_wait: float = 0.5,
        max_wait: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        before_request: Callable[[], None] | None = None,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be 1 to {MAX_BATCH_SIZE}, got {batch_size}")
        if concurrency < 1 or attempts < 1:
            raise ValueError("concurrency and attempts must be at least 1")
        self.client = client
        self.sobject = sobject
        self.external_field = external_field
        self.concurrency = concurrency
        self.attempts = attempts
        self.initial_wait = initial_wait
        self.max_wait = max_wait
        self._sleep = sleep
        self._before_request = before_request
        self._path = f"composite/sobjects/{sobject}/{external_field}"
        self._lock = threading.Lock()
        self._random = random.Random()
        self._batch_size = batch_size
        self._requests_sent = 0
        self._records_sent = 0

    @property
    def batch_size(self) -> int:
        """Records per request now; shrinks when automation fails whole chunks, never grows."""
        with self._lock:
            return self._batch_size

    @property
    def requests_sent(self) -> int:
        """Collections requests sent so far, retries included."""
        with self._lock:
            return self._requests_sent

    @property
    def records_sent(self) -> int:
        """Records sent so far, counted once per request that carried them."""
        with self._lock:
            return self._records_sent

    def upsert(self, records: Sequence[Mapping[str, Any]]) -> list[RecordOutcome]:
        """Create or update ``records`` (JSON-ready field values); one outcome each, in order."""
        return self.write(records, Operation.UPSERT)

    def write(
        self, records: Sequence[Mapping[str, Any]], operation: Operation
    ) -> list[RecordOutcome]:
        """``operation`` on ``records``; one outcome each, in order.

        Update and delete records carry their ``Id`` (delete sends only the Ids); every record
        carries the external ID field, which names it in its outcome.
        """
        if not records:
            return []
        run = _Run(records, self.external_field, operation)
        try:
            self._write_all(run)
        except ApiAllowanceExhausted as exc:
            # Requests in flight have finished (the pool waits for them): report what they saved.
            saved = run.partial()
            mid_write = exc.mid_write or any(o is not None for o in saved)
            raise ApiAllowanceExhausted(str(exc), mid_write=mid_write, partial=saved) from exc
        return run.results()

    def _write_all(self, run: _Run) -> None:
        records = run.records
        start = 0
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="trueup-collections") as pool:
            running: set[Future[None]] = set()
            try:
                while start < len(records) or running:
                    # Chunks are cut when sent, so a batch size shrunk by one chunk's failure
                    # applies to every chunk cut after it.
                    while start < len(records) and len(running) < self.concurrency:
                        chunk = list(range(start, min(start + self.batch_size, len(records))))
                        start += len(chunk)
                        running.add(pool.submit(self._write_chunk, run, chunk))
                    done, running = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        future.result()
            except BaseException:
                for future in running:
                    future.cancel()
                raise

    # -- one chunk ---------------------------------------------------------------------------

    def _write_chunk(self, run: _Run, chunk: list[int]) -> None:
        best = self._settle(run, chunk, top=True)
        if best is not None:  # the chunk was bisected: keep the largest size that went through
            self._shrink(max(best, 1))

    def _settle(self, run: _Run, items: list[int], *, top: bool = False) -> int | None:
        """Send ``items`` until each has an outcome.

        Returns None when no request failed as a whole chunk, else the largest request size
        that went through without such a failure (0 if none did).
        """
        pending = items
        lock_round = 0
        best: int | None = None
        largest = 0
        while pending:
            answers = self._send(run, pending)
            if len(pending) > 1 and _chunk_failed(answers):
                retry: list[int] = []
                for index, answer in zip(pending, answers, strict=True):
                    again = answer.locked and run.lock_retry(index, self.attempts)
                    if answer.automation or again:
                        retry.append(index)
                    else:
                        run.settle(index, answer)
                half = (len(retry) + 1) // 2
                if top and pending is items:
                    # The chunk as cut failed: shrink at once, so chunks cut meanwhile do not
                    # repeat the failure (a lock-retry subset failing says nothing of the size).
                    self._shrink(max(half, 1))
                for part in (retry[:half], retry[half:]):
                    if part:
                        sub = self._settle(run, part)
                        largest = max(largest, len(part) if sub is None else sub)
                best = largest
                break
            largest = max(largest, len(pending))
            locked: list[int] = []
            for index, answer in zip(pending, answers, strict=True):
                if answer.locked and run.lock_retry(index, self.attempts):
                    locked.append(index)
                else:
                    run.settle(index, answer)
            if locked:
                lock_round += 1
                self._sleep(self._backoff(lock_round))
            pending = locked
        return best

    def _send(self, run: _Run, items: list[int]) -> list[_Answer]:
        """One collections request for ``items``, resent while it fails transiently."""
        call = self._call(run, items)
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=self._wait_for,
            retry=retry_if_exception_type(TransientDestinationError),
            sleep=self._sleep,
            reraise=True,
        )
        payload = retrying(self._request, call, len(items))
        return _parse(payload, len(items), run.operation)

    def _call(self, run: _Run, items: list[int]) -> _Call:
        """The collections call for ``items`` (wire spec §7)."""
        if run.operation is Operation.DELETE:
            ids = ",".join(str(run.records[i]["Id"]) for i in items)
            params = {"ids": ids, "allOrNone": "false"}
            return _Call("DELETE", "composite/sobjects", None, params)
        body = {
            "allOrNone": False,
            "records": [{"attributes": {"type": self.sobject}, **run.records[i]} for i in items],
        }
        if run.operation is Operation.INSERT:
            return _Call("POST", "composite/sobjects", body)
        if run.operation is Operation.UPDATE:
            return _Call("PATCH", "composite/sobjects", body)
        return _Call("PATCH", self._path, body)

    def _request(self, call: _Call, count: int) -> Any:
        if self._before_request is not None:
            self._before_request()
        with self._lock:
            self._requests_sent += 1
            self._records_sent += count
        # The client reports a whole-request lock (a 400 UNABLE_TO_LOCK_ROW, §9.1) as transient.
        if call.params is None:
            return self.client.request(call.method, call.path, json=call.body).json()
        return self.client.request(call.method, call.path, params=call.params).json()

    # -- backoff and batch size --------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        """Exponential wait for the n-th retry (1-based), capped, plus up to initial_wait jitter."""
        exponential = min(self.initial_wait * 2.0 ** (attempt - 1), self.max_wait)
        with self._lock:
            jitter = self._random.uniform(0, self.initial_wait)
        return min(exponential + jitter, self.max_wait)

    def _wait_for(self, state: RetryCallState) -> float:
        wait_s = self._backoff(state.attempt_number)
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, TransientDestinationError) and exc.retry_after is not None:
            wait_s = max(wait_s, exc.retry_after)  # the server's word wins, even past max_wait
        return wait_s

    def _shrink(self, size: int) -> None:
        with self._lock:
            self._batch_size = min(self._batch_size, size)


@dataclass(frozen=True)
class _Call:
    """One collections request: method, path under the data root, JSON body, query string."""

    method: str
    path: str
    body: dict[str, Any] | None
    params: dict[str, str] | None = None


class _Run:
    """The records of one ``upsert`` call and what became of each (indexes are input positions)."""

    def __init__(
        self, records: Sequence[Mapping[str, Any]], external_field: str, operation: Operation
    ) -> None:
        self.records = records
        self.operation = operation
        self.keys = [_key_text(r.get(external_field)) for r in records]
        self._outcomes: list[RecordOutcome | None] = [None] * len(records)
        self._locks = [0] * len(records)
        # Each index belongs to one chunk, handled by one thread: no lock is needed here.

    def lock_retry(self, index: int, attempts: int) -> bool:
        """Count a lock failure; True while the record has tries left."""
        self._locks[index] += 1
        return self._locks[index] < attempts

    def settle(self, index: int, answer: _Answer) -> None:
        self._outcomes[index] = _outcome(self.keys[index], answer, self.operation)

    def partial(self) -> list[RecordOutcome | None]:
        """Each record's outcome so far (None: no answer yet), in input order."""
        return list(self._outcomes)

    def results(self) -> list[RecordOutcome]:
        missing = [self.keys[i] for i, o in enumerate(self._outcomes) if o is None]
        if missing:  # a bug, not a Salesforce answer: never report a record that was not written
            raise RuntimeError(f"no outcome for {len(missing)} record(s), e.g. {missing[0]!r}")
        return [o for o in self._outcomes if o is not None]


def _chunk_failed(answers: Sequence[_Answer]) -> bool:
    """Nothing saved and automation failed: the chunk failed as a whole, not record by record."""
    return not any(a.success for a in answers) and any(a.automation for a in answers)


def _parse(payload: Any, count: int, operation: Operation) -> list[_Answer]:
    if not isinstance(payload, list) or len(payload) != count:
        got = f"{len(payload)} results" if isinstance(payload, list) else type(payload).__name__
        raise FatalDestinationError(
            f"sObject Collections answered {got} for {count} records; expected one result each"
        )
    return [_answer(entry, operation) for entry in payload]


def _answer(entry: Any, operation: Operation) -> _Answer:
    if not isinstance(entry, dict) or not isinstance(entry.get("success"), bool):
        raise FatalDestinationError(f"sObject Collections result without 'success': {entry!r}")
    errors = [e for e in entry.get("errors") or [] if isinstance(e, dict)]
    created = entry.get("created")
    if operation is not Operation.UPSERT:  # no ``created`` flag: the call says what it did
        created = operation is Operation.INSERT
    if entry["success"] and not isinstance(created, bool):
        # Created versus updated must be Salesforce's answer (DESIGN.md §1, item 2).
        raise FatalDestinationError(f"upsert result without a 'created' flag: {entry!r}")
    fields = dict.fromkeys(str(f) for e in errors for f in e.get("fields") or [])
    return _Answer(
        success=entry["success"],
        created=created if isinstance(created, bool) else None,
        record_id=entry.get("id"),
        codes=tuple(str(e.get("statusCode") or "UNKNOWN_ERROR") for e in errors),
        messages=tuple(str(e.get("message") or "") for e in errors),
        fields=tuple(fields),
    )


def _outcome(key: str, answer: _Answer, operation: Operation) -> RecordOutcome:
    if answer.success:
        status = OutcomeStatus.CREATED if answer.created else OutcomeStatus.UPDATED
        if operation is Operation.DELETE:
            status = OutcomeStatus.DELETED
        return RecordOutcome(key, status, destination_id=answer.record_id)
    return RecordOutcome(
        key,
        OutcomeStatus.FAILED,
        error_code=answer.code or "UNKNOWN_ERROR",
        message="; ".join(m for m in answer.messages if m) or "Salesforce gave no reason",
        fields=answer.fields,
        destination_id=answer.record_id,
    )


def _key_text(value: Any) -> str:
    return "" if value is None else str(value)
