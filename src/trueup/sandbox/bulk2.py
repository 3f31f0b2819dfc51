"""Bulk API 2.0 ingest: the job lifecycle, processing through the org, and the result files.

A job moves Open → UploadComplete → InProgress → JobComplete, Failed or Aborted (wire spec §8.4).
The upload is parsed when processing starts (``bulkcsv``), split into 10,000-record batches and
handed to the org as Bulk CSV text; the org reads values by field type and runs the 200-record
trigger chunks itself. Every uploaded row ends in exactly one of the successful, failed or
unprocessed files, in input order within each.

Instant mode (the default) processes a job as it is closed. Realistic mode keeps it queued for
``seconds_per_batch`` of the injected clock, then completes one batch per ``seconds_per_batch``,
processing lazily whenever the job is looked at, so clients have to poll.
"""

from __future__ import annotations

import builtins
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from trueup.sandbox import bulkcsv
from trueup.sandbox.bulkjob import TERMINAL, IngestJob, JobState, open_job
from trueup.sandbox.errors import ApiError, RecordError
from trueup.sandbox.ids import mint, to_18
from trueup.sandbox.objects import SObject

if TYPE_CHECKING:
    from trueup.sandbox.org import Org, SaveResult

BATCH_SIZE = 10_000
MAX_UPLOAD_BASE64 = 150 * 1024 * 1024  # §8.2 and §8.7: 150 MB after base64 conversion
ID_IN_FAILURES = 53.0  # failedResults carry sf__Id when known from this API version (§8.5)
SUCCESS_COLUMNS = ("sf__Id", "sf__Created")
FAILURE_COLUMNS = ("sf__Id", "sf__Error")


class IngestJobs:
    """The org's Bulk API 2.0 ingest jobs, safe to call from several threads."""

    def __init__(
        self,
        org: Org,
        *,
        realistic: bool = False,
        seconds_per_batch: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._org = org
        self._realistic = realistic
        self._period = seconds_per_batch
        self._clock = clock
        self._jobs: dict[str, IngestJob] = {}
        self._minted = 0
        self._lock = threading.RLock()

    def create(self, body: Mapping[str, Any], *, api_version: str, user_id: str) -> dict[str, Any]:
        """Open a job (``POST /jobs/ingest``) and return its job object, state Open."""
        with self._lock:
            job_id = mint("750", self._minted + 1)
            job = open_job(self._org, body, job_id=job_id, api_version=api_version, user_id=user_id)
            self._minted += 1
            self._jobs[job.id] = job
            return job.summary(content_url=True)

    def upload(self, job_id: str, data: bytes) -> None:
        """Take the job's CSV (``PUT .../batches``, 201): once per job, while it is Open."""
        with self._lock:
            job = self._get(job_id)
            if job.state is not JobState.OPEN:
                message = f"Uploading data to {job.state.word} Job not allowed"
                raise ApiError(400, "INVALIDJOBSTATE", message)
            if job.data is not None:  # Salesforce's wording, misspelling included
                raise ApiError(
                    400,
                    "BULK_API_ERROR",
                    f"Found multipe contents for job: <{job.id[:15]}>, please 'Close' / 'Abort' "
                    "/ 'Delete' the current Job then create a new Job and make sure you only do "
                    "'PUT' once on a given Job.",
                )
            if 4 * math.ceil(len(data) / 3) > MAX_UPLOAD_BASE64:
                message = "ClientInputError : the upload exceeds 150 MB after base64 conversion"
                raise ApiError(400, "CLIENTINPUTERROR", message)
            job.data = bytes(data)

    def set_state(self, job_id: str, state: str) -> dict[str, Any]:
        """Close (``UploadComplete``) or abort (``Aborted``) a job; its job object as set."""
        with self._lock:
            job = self._get(job_id)
            if state == JobState.UPLOAD_COMPLETE:
                if job.state is not JobState.OPEN:
                    message = f"Closing already {job.state.word} Job not allowed"
                    raise ApiError(400, "INVALIDJOBSTATE", message)
                job.move(JobState.UPLOAD_COMPLETE)
                job.closed_at = self._clock()
                reply = job.summary(content_url=True)
                if not self._realistic:
                    self._run(job, math.inf)
                return reply
            if state == JobState.ABORTED:
                if job.state in TERMINAL:
                    message = f"Aborting already {job.state.word} Job not allowed"
                    raise ApiError(400, "INVALIDJOBSTATE", message)
                job.move(JobState.ABORTED)
                return job.summary(content_url=True)
            if state in set(JobState):
                message = f"Changing a job's state to {state} not allowed"
                raise ApiError(400, "INVALIDJOBSTATE", message)
            message = f"Invalid value: '{state}' supplied for property: 'state'"
            raise ApiError(400, "API_ERROR", message)

    def info(self, job_id: str) -> dict[str, Any]:
        """Job info with counts and timings (``GET /jobs/ingest/{id}``)."""
        with self._lock:
            return self._get(job_id).info()

    def list(self) -> dict[str, Any]:
        """All jobs, oldest first (``GET /jobs/ingest``)."""
        with self._lock:
            for job in self._jobs.values():
                self._advance(job)
            records = [job.summary(content_url=False) for job in self._jobs.values()]
            return {"done": True, "records": records, "nextRecordsUrl": None}

    def delete(self, job_id: str) -> None:
        """Remove a job that is neither Open nor InProgress (``DELETE /jobs/ingest/{id}``)."""
        with self._lock:
            job = self._get(job_id)
            if job.state in (JobState.OPEN, JobState.IN_PROGRESS):
                message = f"Deleting a job in state {job.state} not allowed"
                raise ApiError(400, "INVALIDJOBSTATE", message)
            del self._jobs[job.id]

    def successful_results(self, job_id: str) -> str:
        """``"sf__Id","sf__Created",`` + the original columns: one row per saved record."""
        with self._lock:
            job = self._get(job_id)
            rows = (
                ((record_id, "true" if created else "false"), job.rows[at])
                for at, record_id, created in job.successes
            )
            return _render(job, SUCCESS_COLUMNS, rows)

    def failed_results(self, job_id: str) -> str:
        """``"sf__Id","sf__Error",`` + the original columns: one row per rejected record."""
        with self._lock:
            job = self._get(job_id)
            rows = (((record_id, error), job.rows[at]) for at, record_id, error in job.failures)
            return _render(job, FAILURE_COLUMNS, rows)

    def unprocessed_records(self, job_id: str) -> str:
        """The original header and the rows never attempted (aborted or failed jobs)."""
        with self._lock:
            job = self._get(job_id)
            if not job.parsed and job.data is not None and job.read() is not None:
                return job.data.decode("utf-8", errors="replace")  # unreadable: give it back
            return _render(job, (), (((), row) for row in job.rows[job.attempted :]))

    def _get(self, job_id: str) -> IngestJob:
        job = self._jobs.get(to_18(job_id) if len(job_id) == 15 else job_id)
        if job is None:
            raise ApiError(404, "NOT_FOUND", f"Job {job_id} does not exist")
        self._advance(job)
        return job

    def _advance(self, job: IngestJob) -> None:
        """In realistic mode, do the work the clock says is due by now."""
        if not self._realistic or job.closed_at is None or job.state in TERMINAL:
            return
        if self._period <= 0:
            self._run(job, math.inf)
            return
        ticks = math.floor((self._clock() - job.closed_at) / self._period)
        if ticks >= 1:  # queued for one period, then one batch per period
            self._run(job, ticks - 1)

    def _run(self, job: IngestJob, batches_due: float) -> None:
        """Process until ``batches_due`` batches are done or the job ends."""
        if job.state is JobState.UPLOAD_COMPLETE:
            problem = job.read() or self._check_header(job)
            if problem is not None:
                job.fail(problem)
                return
            job.move(JobState.IN_PROGRESS)
        while job.state is JobState.IN_PROGRESS and job.attempted < len(job.rows):
            if math.ceil(job.attempted / BATCH_SIZE) >= batches_due:
                return
            self._process_batch(job)
        if job.state is JobState.IN_PROGRESS:
            job.move(JobState.JOB_COMPLETE)

    def _check_header(self, job: IngestJob) -> str | None:
        seen: set[str] = set()
        for column in job.header:
            if column.lower() in seen:
                return f"InvalidBatch : Duplicate field name : {column}"
            seen.add(column.lower())
            if not self._known_column(job.sobject, column):
                return f"InvalidBatch : Field name not found : {column}"
        return None

    def _known_column(self, sobject: SObject, column: str) -> bool:
        """A field of ``sobject``, or ``Relationship.ExternalId`` through one of its lookups."""
        if "." not in column:
            return sobject.field(column) is not None
        relationship, _, target = column.partition(".")
        for lookup in sobject.fields.values():
            if lookup.type != "reference" or not lookup.reference_to:
                continue
            name = lookup.name
            path = name[:-3] + "__r" if name.endswith("__c") else name.removesuffix("Id")
            if path.lower() == relationship.lower():
                try:
                    parent = self._org.sobject(lookup.reference_to[0])
                except ApiError:
                    return False
                found = parent.field(target)
                return found is not None and (found.external_id or found.type == "id")
        return False

    def _process_batch(self, job: IngestJob) -> None:
        start = job.attempted
        chunk = job.rows[start : start + BATCH_SIZE]
        began = time.perf_counter()
        try:
            results = self._save(job, chunk)
        except ApiError as exc:  # the org refused the batch as a whole
            job.fail(f"InvalidBatch : {exc.message}")
            return
        finally:
            job.processing_ms += (time.perf_counter() - began) * 1000
        if len(results) != len(chunk):
            raise RuntimeError(f"the org returned {len(results)} results for {len(chunk)} rows")
        id_at = _column(job.header, "Id")
        if job.operation not in ("update", "delete") or float(job.api_version) < ID_IN_FAILURES:
            id_at = None  # a failed row's own Id is echoed only where the row names it
        for at, result in enumerate(results, start=start):
            if result.success:
                created = job.operation == "insert" or bool(result.created)
                job.successes.append((at, result.id or "", created))
            else:
                record_id = result.id or ("" if id_at is None else job.rows[at][id_at])
                job.failures.append((at, record_id, error_text(result.errors)))
        job.attempted = start + len(chunk)
        job.move(JobState.IN_PROGRESS)  # stamps systemModstamp

    def _save(self, job: IngestJob, chunk: Sequence[Sequence[str]]) -> builtins.list[SaveResult]:
        org, name = self._org, job.sobject.name
        if job.operation == "delete":
            at = _column(job.header, "Id")
            return org.delete([row[at] if at is not None else "" for row in chunk])
        records = [dict(zip(job.header, row, strict=True)) for row in chunk]
        if job.operation == "insert":
            return org.insert(name, records, source="csv")
        if job.operation == "update":
            return org.update(name, records, source="csv")
        assert job.external_id is not None
        return org.upsert(name, job.external_id, records, source="csv")


def error_text(errors: Sequence[RecordError]) -> str:
    """The ``sf__Error`` cell: ``CODE:message:Field1,Field2 --`` or ``CODE:message:--`` (§8.5)."""
    parts = []
    for error in errors or (RecordError("UNKNOWN_EXCEPTION", "unknown error"),):
        tail = f"{','.join(error.fields)} --" if error.fields else "--"
        parts.append(f"{error.status_code}:{error.message}:{tail}")
    return " ".join(parts)


def _render(
    job: IngestJob, marked: Sequence[str], rows: Iterable[tuple[Sequence[str], Sequence[str]]]
) -> str:
    if not job.parsed:  # nothing was read, so there are no columns to echo
        return ""
    return bulkcsv.render(
        marked, job.header, rows, delimiter=job.delimiter, line_ending=job.line_ending
    )


def _column(header: Sequence[str], name: str) -> int | None:
    lowered = [column.lower() for column in header]
    return lowered.index(name.lower()) if name.lower() in lowered else None
