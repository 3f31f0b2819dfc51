"""One Bulk API 2.0 ingest job: its settings from the create request, its state, its outcomes.

``open_job`` checks a create request the way Salesforce answers it (wire spec §8.1: 400 with
``INVALIDJOB``, ``FEATURENOTENABLED`` or ``API_ERROR``); ``IngestJob`` holds what processing
records and renders the job info JSON (§8.1, §8.4). The state machine that drives a job lives in
``bulk2``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from trueup.sandbox import bulkcsv
from trueup.sandbox.errors import ApiError
from trueup.sandbox.objects import SObject

if TYPE_CHECKING:
    from trueup.sandbox.org import Org

OPERATIONS = ("insert", "update", "upsert", "delete")
JOB_KEYS = frozenset(
    {
        "object",
        "operation",
        "externalIdFieldName",
        "contentType",
        "columnDelimiter",
        "lineEnding",
        "assignmentRuleId",
    }
)
HARD_DELETE = (
    "FeatureNotEnabled : hardDelete operation requires special user profile permission, "
    "please contact your system administrator"
)


class JobState(StrEnum):
    """The states of an ingest job (§8.4)."""

    OPEN = "Open"
    UPLOAD_COMPLETE = "UploadComplete"
    IN_PROGRESS = "InProgress"
    JOB_COMPLETE = "JobComplete"
    FAILED = "Failed"
    ABORTED = "Aborted"

    @property
    def word(self) -> str:
        """How INVALIDJOBSTATE messages name it: "Aborting already Completed Job not allowed"."""
        return _WORDS[self]


_WORDS = {
    JobState.OPEN: "Open",
    JobState.UPLOAD_COMPLETE: "Closed",
    JobState.IN_PROGRESS: "Closed",
    JobState.JOB_COMPLETE: "Completed",
    JobState.FAILED: "Failed",
    JobState.ABORTED: "Aborted",
}
TERMINAL = frozenset({JobState.JOB_COMPLETE, JobState.FAILED, JobState.ABORTED})


@dataclass
class IngestJob:
    """A job's settings, its upload and, once processed, each row's outcome."""

    id: str
    sobject: SObject
    operation: str
    external_id: str | None
    delimiter: str
    line_ending: str
    api_version: str
    created_by: str
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    modstamp: datetime = field(default_factory=lambda: datetime.now(UTC))
    state: JobState = JobState.OPEN
    data: bytes | None = None
    parsed: bool = False
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    attempted: int = 0  # rows[:attempted] have an outcome; the rest are unprocessed
    successes: list[tuple[int, str, bool]] = field(default_factory=list)  # row, Id, created
    failures: list[tuple[int, str, str]] = field(default_factory=list)  # row, Id, sf__Error
    error_message: str | None = None
    closed_at: float | None = None  # the injected clock's reading at UploadComplete
    processing_ms: float = 0.0

    def move(self, state: JobState) -> None:
        """Enter ``state``."""
        self.state = state
        self.modstamp = datetime.now(UTC)

    def fail(self, message: str) -> bool:
        """Fail the whole job with ``errorMessage``; False, for the caller to return."""
        self.error_message = message
        self.move(JobState.FAILED)
        return False

    def read(self) -> str | None:
        """Parse the upload into header and rows; the errorMessage if it cannot be read."""
        if self.data is None:
            return "InvalidBatch : Records not found"
        try:
            self.header, self.rows = bulkcsv.parse(
                self.data, delimiter=self.delimiter, line_ending=self.line_ending
            )
        except bulkcsv.CsvRejected as exc:
            return exc.message
        self.parsed = True
        return None

    def summary(self, *, content_url: bool) -> dict[str, Any]:
        """The job object returned by create, close and abort (``content_url``) or listed."""
        found: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.sobject.name,
            "createdById": self.created_by,
            "createdDate": _stamp(self.created),
            "systemModstamp": _stamp(self.modstamp),
            "state": str(self.state),
        }
        if self.external_id is not None:
            found["externalIdFieldName"] = self.external_id
        found.update(concurrencyMode="Parallel", contentType="CSV")
        found["apiVersion"] = float(self.api_version)  # a JSON number (§8.1)
        if content_url:  # no leading slash, as Salesforce writes it (§8.1)
            found["contentUrl"] = f"services/data/v{self.api_version}/jobs/ingest/{self.id}/batches"
        else:
            found["jobType"] = "V2Ingest"
        found.update(lineEnding=self.line_ending, columnDelimiter=self.delimiter)
        return found

    def info(self) -> dict[str, Any]:
        """``GET /jobs/ingest/{id}``: the summary plus counts, timings and any errorMessage."""
        found = self.summary(content_url=False)
        found.update(
            numberRecordsProcessed=self.attempted,  # failed rows count as processed (§8.4)
            numberRecordsFailed=len(self.failures),
            retries=0,
            totalProcessingTime=round(self.processing_ms),
            apiActiveProcessingTime=round(self.processing_ms),
            apexProcessingTime=0,
        )
        if self.error_message is not None:
            found["errorMessage"] = self.error_message
        return found


def open_job(
    org: Org, body: Mapping[str, Any], *, job_id: str, api_version: str, user_id: str
) -> IngestJob:
    """A new Open job from a create request, or the ApiError Salesforce would answer."""
    try:
        float(api_version)
    except ValueError:
        raise ApiError(400, "API_ERROR", f"Invalid API version: {api_version}") from None
    for key in body:
        if key not in JOB_KEYS:
            raise ApiError(400, "JSON_PARSER_ERROR", f'Unrecognized field "{key}"')
    operation = body.get("operation")
    if operation == "hardDelete":  # the sandbox user lacks "Bulk API Hard Delete"
        raise ApiError(400, "FEATURENOTENABLED", HARD_DELETE)
    _choice(body, "operation", OPERATIONS, None)
    name = body.get("object")
    try:
        sobject = org.sobject(name) if isinstance(name, str) and name else None
    except ApiError:
        sobject = None
    if sobject is None:
        raise ApiError(400, "INVALIDJOB", f"InvalidJob : Unable to find object: {name or ''}")
    external_id = _external_id(sobject, body) if operation == "upsert" else None
    _choice(body, "contentType", ("CSV",), "CSV")
    return IngestJob(
        id=job_id,
        sobject=sobject,
        operation=str(operation),
        external_id=external_id,
        delimiter=_choice(body, "columnDelimiter", tuple(bulkcsv.DELIMITERS), "COMMA"),
        line_ending=_choice(body, "lineEnding", tuple(bulkcsv.LINE_ENDINGS), "LF"),
        api_version=api_version,
        created_by=user_id,
    )


def _external_id(sobject: SObject, body: Mapping[str, Any]) -> str:
    name = body.get("externalIdFieldName")
    if name is None:
        raise ApiError(
            400,
            "INVALIDJOB",
            f"InvalidJob : External ID was blank for {sobject.name}. "
            "An External ID must be specified for upsert.",
        )
    found = sobject.field(name) if isinstance(name, str) else None
    if found is None or not (found.external_id or found.type == "id"):
        raise ApiError(
            400,
            "INVALIDJOB",
            f"InvalidJob : Field name provided, {name} does not match an External ID for "
            f"{sobject.name}",
        )
    return found.name


def _choice(body: Mapping[str, Any], key: str, allowed: Sequence[str], default: str | None) -> str:
    value = body.get(key, default)
    if value not in allowed:
        shown = "" if value is None else value
        raise ApiError(400, "API_ERROR", f"Invalid value: '{shown}' supplied for property: '{key}'")
    return str(value)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
