"""Bulk API 2.0 writes (upsert, insert, update): one ingest job a call, outcomes from result files.

``BulkWriter.upsert`` creates an ingest job (``POST jobs/ingest``, wire spec §8.1), uploads one
CSV (§8.2), closes the job (``UploadComplete``, §8.3), polls its info until a terminal state
(§8.4), then reads ``successfulResults``, ``failedResults`` and, when rows are missing from those,
``unprocessedrecords`` (§8.5). Every input record gets one outcome, in input order, matched to the
result rows by its external ID value (result order is not guaranteed to follow the upload):

- a successful row is CREATED or UPDATED as its ``sf__Created`` says (never a guess);
- a failed row is FAILED with the code before the first ``:`` of ``sf__Error``, the message and
  the field list of the tail (``CODE:message:Field1,Field2 --``);
- an unprocessed row, or a record in no result file at all (a job that ended Failed or Aborted),
  is FAILED with code ``UNPROCESSED`` and the job's state and error message. FAILED, not SKIPPED:
  the record was sent and Salesforce did not apply it, so it must count in the run's failures,
  its error codes and the error-rate brake; SKIPPED is what trueup itself chose not to send.

The CSV (§8.6): the external ID column first, then every other field in first-seen order; booleans
``true``/``false``, dates ``YYYY-MM-DD``, dateTimes ``YYYY-MM-DDTHH:MM:SS.sssZ``, numbers in plain
notation. A None (and an empty text, which Salesforce stores as null) is written ``#N/A`` so the
field is cleared: an empty cell would leave the old value in place. A field a record does not
mention is an empty cell: left as it is.

Resending: each call is retried alone on transient failures (``with_retries``). Before the job is
closed nothing has been processed, so a failure that outlasts the retries aborts the job and
propagates as transient (the caller may resend the whole batch). After closing, Salesforce runs
the job whatever happens to us: a failure to read its outcome is a FatalDestinationError naming
the job, never a resend. A job still running after ``max_wait`` seconds is aborted; what it saved
is reported from the result files and the rest is UNPROCESSED. A spent daily API allocation
(ApiAllowanceExhausted) is never retried either; after closing, its message names the job.

Sessions: ``SalesforceClient.request`` logs in again once on a 401 for every path, the Bulk ones
included (simple-salesforce's Bulk 2.0 calls never do, wire spec §11.4).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

import httpx

from trueup.destinations.base import Operation, OutcomeStatus, RecordOutcome
from trueup.destinations.salesforce.client import _error_codes, _json, with_retries
from trueup.errors import (
    ApiAllowanceExhausted,
    DestinationError,
    FatalDestinationError,
    TransientDestinationError,
)

JOB_RECORDS = 10_000  # records per job the destination sends (one internal Bulk batch, §8.4)
MAX_UPLOAD_BYTES = 100 * 1024 * 1024  # §8.2: 150 MB after base64, so ~100 MB of CSV
NULL_CELL = "#N/A"
UNPROCESSED = "UNPROCESSED"
_FIELD_LIST = re.compile(r"^[A-Za-z0-9_.]+(,[A-Za-z0-9_.]+)*$")


class JobState(StrEnum):
    """The states of an ingest job (§8.4)."""

    OPEN = "Open"
    UPLOAD_COMPLETE = "UploadComplete"
    IN_PROGRESS = "InProgress"
    JOB_COMPLETE = "JobComplete"
    FAILED = "Failed"
    ABORTED = "Aborted"


TERMINAL = frozenset({JobState.JOB_COMPLETE, JobState.FAILED, JobState.ABORTED})


class BulkClient(Protocol):
    """The part of ``SalesforceClient`` the writer uses: authenticated calls under the data root."""

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Call ``path`` under ``/services/data/vNN.N/``; raise trueup's errors on failure."""


@dataclass
class _Results:
    """The result rows of one job, by external ID cell folded to lower case (Salesforce matches
    external IDs without regard to case, and one job holds each at most once)."""

    successes: dict[str, dict[str, str]] = field(default_factory=dict)
    failures: dict[str, dict[str, str]] = field(default_factory=dict)
    unprocessed: set[str] = field(default_factory=set)


class BulkWriter:
    """Upserts records of one object by an external ID through Bulk API 2.0 ingest jobs."""

    def __init__(
        self,
        client: BulkClient,
        sobject: str,
        external_field: str,
        *,
        poll_interval: float = 1.0,
        max_wait: float = 3600.0,
        attempts: int = 5,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if poll_interval <= 0 or max_wait < 0 or attempts < 1:
            raise ValueError("poll_interval must be > 0, max_wait >= 0 and attempts >= 1")
        self.client = client
        self.sobject = sobject
        self.external_field = external_field
        self.poll_interval = poll_interval
        self.max_wait = max_wait
        self.attempts = attempts
        self._sleep = sleep
        self._clock = clock
        self.job_ids: list[str] = []  # every job this writer created, oldest first

    def upsert(self, records: Sequence[Mapping[str, Any]]) -> list[RecordOutcome]:
        """Create or update ``records`` in one job; one outcome each, in input order.

        External ID values must be present and unique (without regard to case) in one call.
        """
        return self.write(records, Operation.UPSERT)

    def write(
        self, records: Sequence[Mapping[str, Any]], operation: Operation
    ) -> list[RecordOutcome]:
        """``operation`` (upsert, insert, or update by ``Id``) on ``records`` in one job.

        Every record carries its external ID value, which matches it to its result row.
        """
        if operation is Operation.DELETE:
            raise ValueError("trueup deletes through REST collections, not Bulk")
        if not records:
            return []
        cells = [csv_cell(r.get(self.external_field)) for r in records]
        _check_keys(cells, self.external_field)
        body = write_csv(records, self.external_field)
        if len(body) > MAX_UPLOAD_BYTES:
            raise FatalDestinationError(
                f"Bulk upload of {len(records):,} records is {len(body):,} bytes, over the "
                f"{MAX_UPLOAD_BYTES:,} bytes one job takes; send fewer records per write"
            )
        job_id = self._open(operation)
        try:
            self._upload(job_id, body)
            self._close(job_id)
        except BaseException:
            self._abort_quietly(job_id)  # nothing was processed: the batch may be resent
            raise
        try:
            info = self._wait(job_id)
            results = self._results(job_id, info, len(records))
        except ApiAllowanceExhausted as exc:
            raise ApiAllowanceExhausted(
                f"{exc}; Bulk job {job_id} was closed, so Salesforce processes it, but its "
                "outcome could not be read: see it under Setup → Bulk Data Load Jobs",
                mid_write=True,
            ) from exc
        except DestinationError as exc:
            # Never transient from here on: resending would write the records a second time.
            kind = type(exc) if isinstance(exc, FatalDestinationError) else FatalDestinationError
            raise kind(
                f"Bulk job {job_id} was closed, so Salesforce processes it, but its outcome "
                f"could not be read ({exc}); see it under Setup → Bulk Data Load Jobs",
                body=exc.body,
            ) from exc
        keys = [_key_text(r.get(self.external_field)) for r in records]
        return [_outcome(key, cell, results, info) for key, cell in zip(keys, cells, strict=True)]

    # -- the job's steps -----------------------------------------------------------------------

    def _open(self, operation: Operation) -> str:
        spec = {
            "object": self.sobject,
            "operation": operation.value,
            "contentType": "CSV",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        }
        if operation is Operation.UPSERT:
            spec["externalIdFieldName"] = self.external_field
        info = self._retried(lambda: _json(self.client.request("POST", "jobs/ingest", json=spec)))
        job_id = info.get("id") if isinstance(info, dict) else None
        if not isinstance(job_id, str) or not job_id:
            raise FatalDestinationError(f"Bulk job creation answered without an id: {info!r}")
        self.job_ids.append(job_id)
        return job_id

    def _upload(self, job_id: str, body: bytes) -> None:
        headers = {"Content-Type": "text/csv"}
        path = f"jobs/ingest/{job_id}/batches"
        # An upload whose answer was lost may have landed: a second PUT is then refused as
        # "multiple contents" (BULK_API_ERROR), which means the first one counted.
        self._retried(
            lambda: self.client.request("PUT", path, content=body, headers=headers),
            done_if={"BULK_API_ERROR"},
        )

    def _close(self, job_id: str) -> None:
        state = {"state": JobState.UPLOAD_COMPLETE.value}
        path = f"jobs/ingest/{job_id}"
        # A close whose answer was lost: the retry finds the job already closed.
        self._retried(
            lambda: self.client.request("PATCH", path, json=state), done_if={"INVALIDJOBSTATE"}
        )

    def _abort_quietly(self, job_id: str) -> None:
        # An Open job that is never closed is never processed, and lapses.
        with contextlib.suppress(DestinationError, ApiAllowanceExhausted):
            self._abort(job_id)

    def _abort(self, job_id: str) -> None:
        state = {"state": JobState.ABORTED.value}
        path = f"jobs/ingest/{job_id}"
        self._retried(
            lambda: self.client.request("PATCH", path, json=state), done_if={"INVALIDJOBSTATE"}
        )

    def _info(self, job_id: str) -> dict[str, Any]:
        info = self._retried(lambda: _json(self.client.request("GET", f"jobs/ingest/{job_id}")))
        if not isinstance(info, dict):
            raise FatalDestinationError(f"Bulk job {job_id}: job info is not an object: {info!r}")
        return info

    def _wait(self, job_id: str) -> dict[str, Any]:
        """Poll until the job is terminal; past ``max_wait``, abort it and return its info."""
        deadline = self._clock() + self.max_wait
        delay = min(0.1, self.poll_interval)  # small jobs finish fast; back off to the interval
        while True:
            info = self._info(job_id)
            if info.get("state") in TERMINAL:
                return info
            left = deadline - self._clock()
            if left <= 0:
                self._abort(job_id)
                info = self._info(job_id)
                if info.get("state") == JobState.ABORTED:
                    info["errorMessage"] = (
                        f"trueup aborted the job: still {_state(info)} after {self.max_wait:g} s "
                        "(max_wait)"
                    )
                return info
            self._sleep(min(delay, left))
            delay = min(delay * 2, self.poll_interval)

    def _results(self, job_id: str, info: Mapping[str, Any], count: int) -> _Results:
        results = _Results()
        header, rows = self._result_file(job_id, "successfulResults")
        column = _column(header, self.external_field)
        for row in rows:
            results.successes.setdefault(row.get(column, "").casefold(), row)
        header, rows = self._result_file(job_id, "failedResults")
        column = _column(header, self.external_field)
        for row in rows:
            results.failures.setdefault(row.get(column, "").casefold(), row)
        answered = len(results.successes) + len(results.failures)
        if info.get("state") != JobState.JOB_COMPLETE or answered < count:
            header, rows = self._result_file(job_id, "unprocessedrecords")
            column = _column(header, self.external_field)
            results.unprocessed.update(row.get(column, "").casefold() for row in rows)
        return results

    def _result_file(self, job_id: str, kind: str) -> tuple[list[str], list[dict[str, str]]]:
        response = self._retried(
            lambda: self.client.request(
                "GET", f"jobs/ingest/{job_id}/{kind}", headers={"Accept": "text/csv"}
            )
        )
        return read_csv(response.content.decode("utf-8-sig", errors="replace"))

    def _retried(self, call: Callable[[], Any], *, done_if: set[str] | None = None) -> Any:
        """``call``, retried on transient failures; a refusal with a code in ``done_if`` after a
        transient failure means an earlier attempt went through (returns None)."""
        failed_before = False

        def attempt() -> Any:
            nonlocal failed_before
            try:
                return call()
            except TransientDestinationError:
                failed_before = True
                raise
            except FatalDestinationError as exc:
                if failed_before and done_if and done_if & set(_error_codes(exc.body)):
                    return None
                raise

        return with_retries(attempt, attempts=self.attempts, sleep=self._sleep)


# -- CSV -----------------------------------------------------------------------------------------


def csv_cell(value: Any) -> str:
    """A value as a Bulk CSV cell (§8.6): None and '' clear the field (``#N/A``)."""
    if value is None or value == "":
        return NULL_CELL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        utc = aware.astimezone(dt.UTC)
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        if not math.isfinite(value):
            return NULL_CELL
        text = repr(value)
        return format(Decimal(text), "f") if "e" in text or "E" in text else text
    return str(value)


def write_csv(records: Sequence[Mapping[str, Any]], external_field: str) -> bytes:
    """The upload: a header of field names (the external ID first) and one row per record."""
    names = list(dict.fromkeys([external_field, *(n for r in records for n in r)]))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(names)
    for record in records:
        # A field the record does not mention stays an empty cell: left unchanged (§8.6).
        writer.writerow([csv_cell(record[n]) if n in record else "" for n in names])
    return buffer.getvalue().encode("utf-8")


def read_csv(text: str) -> tuple[list[str], list[dict[str, str]]]:
    """A result file's header and rows (an empty file has neither)."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, [])
    rows = [dict(zip(header, row, strict=False)) for row in reader if row]
    return header, rows


# -- outcomes ------------------------------------------------------------------------------------


def parse_error(text: str) -> tuple[str, str, tuple[str, ...]]:
    """``sf__Error`` as (code, message, fields): ``CODE:message:Field1,Field2 --`` (§8.5)."""
    code, _, rest = text.strip().partition(":")
    rest = rest.strip()
    tailed = rest.endswith("--")  # the field list is only read where the tail marks it
    if tailed:
        rest = rest[:-2].rstrip()
    message = rest
    fields: tuple[str, ...] = ()
    head, sep, tail = rest.rpartition(":")
    if tailed and sep and (tail == "" or _FIELD_LIST.match(tail)):
        message = head.strip()
        fields = tuple(f for f in tail.split(",") if f)
    return code.strip() or "UNKNOWN_ERROR", message or "Salesforce gave no reason", fields


def _outcome(key: str, cell: str, results: _Results, info: Mapping[str, Any]) -> RecordOutcome:
    folded = cell.casefold()
    row = results.successes.get(folded)
    if row is not None:
        created = row.get("sf__Created", "").strip().lower() == "true"
        status = OutcomeStatus.CREATED if created else OutcomeStatus.UPDATED
        return RecordOutcome(key, status, destination_id=row.get("sf__Id") or None)
    row = results.failures.get(folded)
    if row is not None:
        code, message, fields = parse_error(row.get("sf__Error", ""))
        return RecordOutcome(
            key, OutcomeStatus.FAILED, code, message, fields, row.get("sf__Id") or None
        )
    reason = str(info.get("errorMessage") or "").strip()
    listed = folded in results.unprocessed
    message = (
        f"not processed: Bulk job {info.get('id', '?')} ended {_state(info)}"
        + (f" ({reason})" if reason else "")
        + ("" if listed else "; the record is in none of its result files")
    )
    return RecordOutcome(key, OutcomeStatus.FAILED, UNPROCESSED, message)


def _check_keys(cells: Sequence[str], external_field: str) -> None:
    seen: set[str] = set()
    for cell in cells:
        if cell == NULL_CELL:
            raise ValueError(f"a record has no {external_field}: Bulk upsert needs one each")
        folded = cell.casefold()
        if folded in seen:
            raise ValueError(f"{external_field} {cell!r} appears twice in one Bulk job")
        seen.add(folded)


def _column(header: Sequence[str], name: str) -> str:
    lowered = name.lower()
    return next((column for column in header if column.lower() == lowered), name)


def _state(info: Mapping[str, Any]) -> str:
    return str(info.get("state") or "in an unknown state")


def _key_text(value: Any) -> str:
    return "" if value is None else str(value)
