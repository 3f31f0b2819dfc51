"""The sandbox's REST handlers: versions, describe, single records, limits, the token endpoint.

Queries live in queries.py, sObject Collections in composite.py, Bulk 2.0 ingest in ingest.py, all
built on the helpers here; app.py puts the gateway (faults, sessions, the daily limit) in front of
them. Every path under ``/services/data/vXX.X/`` is served with and without a trailing slash, for
any ``vNN.N`` version (wire spec §1).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from trueup.sandbox import values
from trueup.sandbox.auth import AuthError
from trueup.sandbox.errors import ApiError, not_found
from trueup.sandbox.objects import SField, SObject

if TYPE_CHECKING:
    from trueup.sandbox.app import SandboxState
    from trueup.sandbox.org import SaveResult

PREFIX = "/services/data/{version:apiver}"
VERSIONS = tuple(f"{n}.0" for n in range(41, 67))  # API 41.0 (Winter '18) .. 66.0 (Spring '26)
UPSERT_BODY_VERSION = 46.0  # upsert-update answers 200 with a body from this version on (§6)

Handler = Callable[[Request], Any]


class _ApiVersion(Convertor[str]):
    """``v59.0`` in a path; handlers get ``59.0``."""

    regex = r"v\d+\.\d+"

    def convert(self, value: str) -> str:
        return value[1:]

    def to_string(self, value: str) -> str:
        return f"v{value}"


register_url_convertor("apiver", _ApiVersion())


def state_of(request: Request) -> SandboxState:
    """The sandbox serving this request."""
    state: SandboxState = request.app.state.sandbox
    return state


def version_of(request: Request) -> str:
    """The API version of the request path (``59.0``)."""
    return str(request.path_params["version"])


def both(path: str, endpoint: Handler, methods: Sequence[str]) -> list[BaseRoute]:
    """Routes for ``PREFIX + path`` with and without a trailing slash."""
    full = PREFIX + path
    return [
        Route(full, endpoint, methods=list(methods)),
        Route(full + "/", endpoint, methods=list(methods)),
    ]


async def json_body(request: Request) -> Any:
    """The request's JSON body, or 400 JSON_PARSER_ERROR as Salesforce words it."""
    raw = await request.body()
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        message = f"{exc.msg} at [line:{exc.lineno}, column:{exc.colno}]"
        raise ApiError(400, "JSON_PARSER_ERROR", message) from None
    except UnicodeDecodeError:
        raise ApiError(400, "JSON_PARSER_ERROR", "Invalid UTF-8 in the request body") from None


async def record_body(request: Request) -> dict[str, Any]:
    """A JSON object of field values (``attributes`` dropped)."""
    body = await json_body(request)
    if not isinstance(body, dict):
        raise ApiError(
            400,
            "JSON_PARSER_ERROR",
            f"Cannot deserialize instance of sObject from {type(body).__name__} value",
        )
    return {k: v for k, v in body.items() if k != "attributes"}


def record_errors(result: SaveResult) -> JSONResponse:
    """A failed single-record write as a top-level error array (400)."""
    body = [
        {"message": e.message, "errorCode": e.status_code, "fields": list(e.fields)}
        for e in result.errors
    ]
    return JSONResponse(body, status_code=400)


def sobject_field(sobject: SObject, name: str) -> SField:
    """A field of ``sobject`` or 400 INVALID_FIELD."""
    found = sobject.field(name)
    if found is None:
        message = f"No such column '{name}' on sobject of type {sobject.name}"
        raise ApiError(400, "INVALID_FIELD", message, [name])
    return found


def record_url(version: str, sobject: str, record_id: Any) -> str:
    """The ``attributes.url`` of a record."""
    return f"/services/data/v{version}/sobjects/{sobject}/{record_id}"


def render(
    sobject: SObject, version: str, fields: Sequence[SField], row: dict[str, Any]
) -> dict[str, Any]:
    """A stored row as REST returns it: ``attributes`` then the fields, values by type."""
    out: dict[str, Any] = {
        "attributes": {
            "type": sobject.name,
            "url": record_url(version, sobject.name, row.get("Id")),
        }
    }
    for field in fields:
        out[field.name] = values.to_json(field, row.get(field.name))
    return out


# --- versions, resources, describe ------------------------------------------------------------


def _release(version: str) -> str:
    """Salesforce's release name: 59.0 is Winter '24, then Spring, Summer, Winter..."""
    step = int(float(version)) - 59
    return f"{('Winter', 'Spring', 'Summer')[step % 3]} '{24 + step // 3}"


async def versions(request: Request) -> Response:
    """``GET /services/data/``: the API versions (no session needed)."""
    return JSONResponse(
        [{"label": _release(v), "url": f"/services/data/v{v}", "version": v} for v in VERSIONS]
    )


async def resources(request: Request) -> Response:
    """``GET /services/data/vXX.X/``: the resources of one version."""
    base = f"/services/data/v{version_of(request)}"
    names = ("sobjects", "query", "queryAll", "limits", "composite", "jobs")
    return JSONResponse({name: f"{base}/{name}" for name in names})


async def sobjects(request: Request) -> Response:
    """``GET /sobjects/``: the global describe (``sf.describe()``)."""
    org = state_of(request).org
    listed = [obj.summary(version_of(request)) for obj in org.objects.values()]
    return JSONResponse({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": listed})


async def describe(request: Request) -> Response:
    """``GET /sobjects/{Obj}/describe``; 304 for ``If-Modified-Since`` after the sandbox started."""
    state = state_of(request)
    sobject = state.org.sobject(request.path_params["sobject"])
    since = request.headers.get("if-modified-since")
    if since:
        try:
            unchanged = parsedate_to_datetime(since) >= state.started.replace(microsecond=0)
        except (TypeError, ValueError):
            unchanged = False
        if unchanged:
            return Response(status_code=304)
    return JSONResponse(sobject.describe(version_of(request)))


# --- single records ---------------------------------------------------------------------------


async def sobject_root(request: Request) -> Response:
    """``GET /sobjects/{Obj}/`` (basic info) and ``POST`` (create one record: 201)."""
    state = state_of(request)
    sobject = state.org.sobject(request.path_params["sobject"])
    if request.method != "POST":
        summary = sobject.summary(version_of(request))
        return JSONResponse({"objectDescribe": summary, "recentItems": []})
    body = await record_body(request)
    [result] = state.org.insert(sobject.name, [body])
    if not result.success:
        return record_errors(result)
    return JSONResponse(result.to_json(with_created=False), status_code=201)


def _selected(request: Request, sobject: SObject) -> list[SField]:
    wanted = request.query_params.get("fields")
    if not wanted:
        return list(sobject.fields.values())
    return [sobject_field(sobject, name.strip()) for name in wanted.split(",") if name.strip()]


async def record(request: Request) -> Response:
    """``GET/PATCH/DELETE /sobjects/{Obj}/{Id}``: read (200), update (204), delete (204)."""
    state = state_of(request)
    sobject = state.org.sobject(request.path_params["sobject"])
    record_id = str(request.path_params["record_id"])
    row = state.org.get(sobject.name, record_id)
    if row is None:
        raise not_found()
    if request.method == "GET":
        return JSONResponse(render(sobject, version_of(request), _selected(request, sobject), row))
    if request.method == "DELETE":
        [result] = state.org.delete([record_id])
    else:
        body = await record_body(request)
        body = {k: v for k, v in body.items() if k.lower() != "id"}
        [result] = state.org.update(sobject.name, [{**body, "Id": row["Id"]}])
    if not result.success:
        return record_errors(result)
    return Response(status_code=204)


async def by_external_id(request: Request) -> Response:
    """``GET/PATCH /sobjects/{Obj}/{ExtField}/{value}``: read or upsert by external ID (§6)."""
    state = state_of(request)
    version = version_of(request)
    sobject = state.org.sobject(request.path_params["sobject"])
    field = sobject.field(request.path_params["field"])
    if field is None or not (field.external_id or field.name == "Id"):
        raise not_found()
    value = str(request.path_params["value"])
    matches = (
        [r for r in [state.org.get(sobject.name, value)] if r is not None]
        if field.name == "Id"
        else state.org.find(sobject.name, field.name, value)
    )
    if len(matches) > 1:  # 300 Multiple Choices lists the matching records
        urls = [record_url(version, sobject.name, m["Id"]) for m in matches]
        return JSONResponse(urls, status_code=300)
    if request.method == "GET":
        if not matches:
            raise not_found()
        return JSONResponse(render(sobject, version, _selected(request, sobject), matches[0]))
    body = await record_body(request)
    if any(k.lower() == "id" for k in body) and field.name != "Id":
        message = (
            "Unable to create/update fields: Id. Please check the security settings of this "
            "field and verify that it is read/write for your profile or permission set."
        )
        raise ApiError(400, "INVALID_FIELD_FOR_INSERT_UPDATE", message, ["Id"])
    sent = next((v for k, v in body.items() if k.lower() == field.name.lower()), value)
    if str(sent) != value:
        message = f"The external ID field {field.name} in the request body does not match the URL"
        raise ApiError(400, "INVALID_FIELD", message, [field.name])
    body = {k: v for k, v in body.items() if k.lower() != field.name.lower()}
    update_only = request.query_params.get("updateOnly", "").lower() == "true"
    if not matches and (update_only or field.name == "Id"):
        raise not_found()
    if field.name == "Id":
        [result] = state.org.update(sobject.name, [{**body, "Id": matches[0]["Id"]}])
    else:
        [result] = state.org.upsert(sobject.name, field.name, [{**body, field.name: value}])
    if not result.success:
        return record_errors(result)
    if float(version) < UPSERT_BODY_VERSION and not result.created:
        return Response(status_code=204)
    return JSONResponse(
        result.to_json(with_created=True), status_code=201 if result.created else 200
    )


# --- limits and the token endpoint ------------------------------------------------------------


async def limits(request: Request) -> Response:
    """``GET /limits/``: the daily API allocation and a few other limits (§9.3)."""
    state = state_of(request)
    records = sum(state.org.count(name) for name in state.org.objects)
    storage_used = records * 2 // 1024  # Salesforce counts most records as 2 KB
    return JSONResponse(
        {
            "DailyApiRequests": {"Max": state.api_limit, "Remaining": state.api_remaining()},
            "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
            "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
            "DailyBulkV2QueryFileStorageMB": {"Max": 976562, "Remaining": 976562},
            "DataStorageMB": {"Max": 1024, "Remaining": max(1024 - storage_used, 0)},
            "FileStorageMB": {"Max": 1024, "Remaining": 1024},
        }
    )


async def token(request: Request) -> Response:
    """``POST /services/oauth2/token``: the OAuth flows of auth.py (form body)."""
    state = state_of(request)
    raw = (await request.body()).decode("utf-8", "replace")
    form = dict(parse_qsl(request.url.query, keep_blank_values=True))
    form.update(parse_qsl(raw, keep_blank_values=True))
    instance_url = str(request.base_url).rstrip("/")
    try:
        body = state.auth.issue(
            form, instance_url=instance_url, authorization=request.headers.get("authorization")
        )
    except AuthError as exc:
        return JSONResponse(exc.body(), status_code=exc.status)
    return JSONResponse(body)


def routes() -> list[BaseRoute]:
    """Every REST route of the sandbox (collections and Bulk ingest included)."""
    from trueup.sandbox import composite, ingest, queries

    return [
        Route("/services/oauth2/token", token, methods=["POST"]),
        Route("/services/data", versions, methods=["GET"]),
        Route("/services/data/", versions, methods=["GET"]),
        *both("", resources, ["GET"]),
        *both("/limits", limits, ["GET"]),
        *both("/sobjects", sobjects, ["GET"]),
        *both("/sobjects/{sobject}/describe", describe, ["GET"]),
        *both("/sobjects/{sobject}", sobject_root, ["GET", "POST"]),
        *both("/sobjects/{sobject}/{record_id}", record, ["GET", "PATCH", "DELETE"]),
        *both("/sobjects/{sobject}/{field}/{value}", by_external_id, ["GET", "PATCH"]),
        *queries.routes(),
        *composite.routes(),
        *ingest.routes(),
    ]
