"""Bulk API 2.0 ingest routes (wire spec §8) over bulk2.IngestJobs.

Create a job (200, job info), upload its CSV once (``PUT .../batches``, 201 with no body), close or
abort it (``PATCH``), poll it, delete it (204), and read the three result files as ``text/csv``.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from trueup.sandbox.auth import USER_ID
from trueup.sandbox.errors import ApiError
from trueup.sandbox.rest import both, json_body, state_of, version_of


async def jobs(request: Request) -> Response:
    """``POST /jobs/ingest`` creates a job; ``GET`` lists them."""
    ingest = state_of(request).jobs
    if request.method == "GET":
        return JSONResponse(ingest.list())
    body = await json_body(request)
    if not isinstance(body, dict):
        raise ApiError(400, "JSON_PARSER_ERROR", "Expected a JSON object describing the job")
    return JSONResponse(ingest.create(body, api_version=version_of(request), user_id=USER_ID))


async def job(request: Request) -> Response:
    """``GET`` (info), ``PATCH`` (``{"state": "UploadComplete" | "Aborted"}``), ``DELETE``."""
    ingest = state_of(request).jobs
    job_id = str(request.path_params["job_id"])
    if request.method == "GET":
        return JSONResponse(ingest.info(job_id))
    if request.method == "DELETE":
        ingest.delete(job_id)
        return Response(status_code=204)
    body = await json_body(request)
    state = body.get("state") if isinstance(body, dict) else None
    if not isinstance(state, str):
        raise ApiError(400, "JSON_PARSER_ERROR", "Expected a JSON object with a 'state'")
    # Closing a job runs it at once unless bulk timing is realistic: keep the server responsive.
    return JSONResponse(await run_in_threadpool(ingest.set_state, job_id, state))


async def batches(request: Request) -> Response:
    """``PUT /jobs/ingest/{id}/batches``: the job's CSV; 201 Created with no body."""
    ingest = state_of(request).jobs
    ingest.upload(str(request.path_params["job_id"]), await request.body())
    return Response(status_code=201)


async def results(request: Request) -> Response:
    """``successfulResults``, ``failedResults`` and ``unprocessedrecords`` as CSV."""
    ingest = state_of(request).jobs
    job_id = str(request.path_params["job_id"])
    # Salesforce documents ``unprocessedrecords``; simple-salesforce sends ``unprocessedRecords``.
    kind = str(request.path_params["kind"]).lower()
    if kind == "successfulresults":
        text = ingest.successful_results(job_id)
    elif kind == "failedresults":
        text = ingest.failed_results(job_id)
    elif kind == "unprocessedrecords":
        text = ingest.unprocessed_records(job_id)
    else:
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
    return Response(text, media_type="text/csv")


def routes() -> list[BaseRoute]:
    """The Bulk 2.0 ingest routes."""
    return [
        *both("/jobs/ingest", jobs, ["GET", "POST"]),
        *both("/jobs/ingest/{job_id}", job, ["GET", "PATCH", "DELETE"]),
        *both("/jobs/ingest/{job_id}/batches", batches, ["PUT"]),
        *both("/jobs/ingest/{job_id}/{kind}", results, ["GET"]),
    ]
