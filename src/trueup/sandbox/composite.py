"""sObject Collections routes: create, update, upsert by external ID and delete, ≤200 records.

Results come back in request order, one per record (``SaveResult.to_json``; ``created`` only for
upserts), with HTTP 200 even when records failed (wire spec §7). Create and update may mix object
types: consecutive records of one type form one DML call. With ``allOrNone`` a failed call marks
the records of the calls after it rolled back without running them; calls before it have already
committed (a real org would undo them too; see docs/sandbox.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from trueup.sandbox.errors import ApiError, not_found
from trueup.sandbox.org import ROLLED_BACK, SaveResult
from trueup.sandbox.rest import both, json_body, state_of

MAX_RECORDS = 200
_LIMIT_MESSAGE = "record limit reached. cannot submit more than 200 records into this call"

Write = Callable[[str, list[dict[str, Any]], bool], list[SaveResult]]


def _too_many() -> ApiError:
    return ApiError(400, "EXCEEDED_ID_LIMIT", _LIMIT_MESSAGE)


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ApiError(400, "JSON_PARSER_ERROR", f"Cannot deserialize {name} from {value!r}")


def _parse(body: Any) -> tuple[bool, list[dict[str, Any]]]:
    """``allOrNone`` and the records of a collections body, or a 400."""
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        message = "Expected a JSON object with a 'records' array"
        raise ApiError(400, "JSON_PARSER_ERROR", message)
    records = body["records"]
    if len(records) > MAX_RECORDS:
        raise _too_many()
    if not all(isinstance(r, dict) for r in records):
        raise ApiError(400, "JSON_PARSER_ERROR", "Each record must be a JSON object")
    return _flag(body.get("allOrNone", False), "allOrNone"), records


def _type_of(record: dict[str, Any], default: str | None) -> str:
    attributes = record.get("attributes")
    kind = attributes.get("type") if isinstance(attributes, dict) else None
    if isinstance(kind, str) and kind:
        return kind
    if default is not None:
        return default
    raise ApiError(400, "INVALID_TYPE", "Must send a concrete entity type.")


def _runs(records: Sequence[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Consecutive records of one type, attributes dropped."""
    runs: list[tuple[str, list[dict[str, Any]]]] = []
    for record in records:
        kind = _type_of(record, None)
        fields = {k: v for k, v in record.items() if k != "attributes"}
        if runs and runs[-1][0].lower() == kind.lower():
            runs[-1][1].append(fields)
        else:
            runs.append((kind, [fields]))
    return runs


def _results(
    runs: list[tuple[str, list[dict[str, Any]]]], write: Write, *, all_or_none: bool
) -> list[SaveResult]:
    results: list[SaveResult] = []
    failed = False
    for kind, chunk in runs:
        if failed and all_or_none:
            results += [SaveResult(None, False, (ROLLED_BACK,)) for _ in chunk]
            continue
        part = write(kind, chunk, all_or_none)
        failed = failed or not all(r.success for r in part)
        results += part
    return results


def _answer(results: list[SaveResult], *, with_created: bool = False) -> Response:
    return JSONResponse([r.to_json(with_created=with_created) for r in results])


async def collection(request: Request) -> Response:
    """``POST`` (create), ``PATCH`` (update), ``DELETE ?ids=`` on ``/composite/sobjects``."""
    org = state_of(request).org
    if request.method == "DELETE":
        ids = [i for i in request.query_params.get("ids", "").split(",") if i]
        if len(ids) > MAX_RECORDS:
            raise _too_many()
        all_or_none = _flag(request.query_params.get("allOrNone", "false"), "allOrNone")
        return _answer(org.delete(ids, all_or_none=all_or_none))
    all_or_none, records = _parse(await json_body(request))
    runs = _runs(records)
    if request.method == "POST":

        def write(kind: str, chunk: list[dict[str, Any]], aon: bool) -> list[SaveResult]:
            return org.insert(kind, chunk, all_or_none=aon)
    else:

        def write(kind: str, chunk: list[dict[str, Any]], aon: bool) -> list[SaveResult]:
            return org.update(kind, chunk, all_or_none=aon)

    return _answer(_results(runs, write, all_or_none=all_or_none))


async def collection_upsert(request: Request) -> Response:
    """``PATCH /composite/sobjects/{Obj}/{ExtField}``: upsert up to 200 records of one type."""
    org = state_of(request).org
    sobject = org.sobject(request.path_params["sobject"])
    field = sobject.field(str(request.path_params["field"]))
    # Only external IDs and Id key an upsert, as for single records and Bulk jobs.
    if field is None or not (field.external_id or field.name == "Id"):
        raise not_found()
    all_or_none, records = _parse(await json_body(request))
    for record in records:
        if _type_of(record, sobject.name).lower() != sobject.name.lower():
            message = f"All records must be of type {sobject.name} (the type in the URL)"
            raise ApiError(400, "INVALID_TYPE", message)
    chunk = [{k: v for k, v in r.items() if k != "attributes"} for r in records]
    results = org.upsert(sobject.name, field.name, chunk, all_or_none=all_or_none)
    return _answer(results, with_created=True)


def routes() -> list[BaseRoute]:
    """The collections routes."""
    return [
        *both("/composite/sobjects", collection, ["POST", "PATCH", "DELETE"]),
        *both("/composite/sobjects/{sobject}/{field}", collection_upsert, ["PATCH"]),
    ]
