"""SOQL over REST (wire spec §5): ``/query`` and ``/queryAll`` with ``?q=``, and their next pages.

A result is kept as a cursor (``SandboxState.add_cursor``) and served a page at a time:
``nextRecordsUrl`` is a path, ``/services/data/vXX.X/query/{locator}-{offset}``, as
simple-salesforce prefixes it with ``https://{instance}``. The page size is the sandbox's (any size
for tests), lowered by a ``Sforce-Query-Options: batchSize=N`` header within 200..2000.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from trueup.sandbox import soql
from trueup.sandbox.errors import ApiError
from trueup.sandbox.rest import Handler, both, render, sobject_field, state_of, version_of

if TYPE_CHECKING:
    from trueup.sandbox.app import SandboxState

MIN_BATCH, MAX_BATCH = 200, 2000  # Sforce-Query-Options batchSize bounds (§5.2)


def _page_size(request: Request, state: SandboxState) -> int:
    size = state.page_size
    options = request.headers.get("sforce-query-options", "")
    found = re.search(r"batchSize\s*=\s*(\d+)", options, re.IGNORECASE)
    if found:
        size = min(size, max(MIN_BATCH, min(MAX_BATCH, int(found.group(1)))))
    return max(size, 1)


def _page(
    state: SandboxState, version: str, kind: str, locator: str, offset: int
) -> dict[str, Any]:
    cursor = state.cursors[locator]
    sobject = state.org.sobject(cursor.sobject)
    fields = [sobject_field(sobject, name) for name in cursor.fields]
    rows = cursor.rows[offset : offset + cursor.page_size]
    end = offset + len(rows)
    body: dict[str, Any] = {"totalSize": len(cursor.rows), "done": end >= len(cursor.rows)}
    if body["done"]:
        state.cursors.pop(locator, None)
    else:
        body["nextRecordsUrl"] = f"/services/data/v{version}/{kind}/{locator}-{end}"
    body["records"] = [render(sobject, version, fields, row) for row in rows]
    return body


def _query(kind: str) -> Handler:
    include_deleted = kind == "queryAll"

    async def handler(request: Request) -> Response:
        state = state_of(request)
        text = request.query_params.get("q")
        if not text:
            raise ApiError(400, "MALFORMED_QUERY", "A query string has to be specified")
        query = soql.parse(text, state.org.objects)
        rows = state.org.rows(query.sobject, include_deleted=include_deleted)
        if query.count_only:
            count = len(soql.run(query, rows))
            return JSONResponse({"totalSize": count, "done": True, "records": []})
        # The Id rides along for attributes.url even when it is not selected.
        wanted = query if "Id" in query.fields else replace(query, fields=(*query.fields, "Id"))
        found = soql.run(wanted, rows)
        locator = state.add_cursor(query.sobject, query.fields, found, _page_size(request, state))
        return JSONResponse(_page(state, version_of(request), kind, locator, 0))

    return handler


def _query_more(kind: str) -> Handler:
    async def handler(request: Request) -> Response:
        state = state_of(request)
        locator, _, offset = str(request.path_params["locator"]).rpartition("-")
        if locator not in state.cursors or not offset.isdigit():
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return JSONResponse(_page(state, version_of(request), kind, locator, int(offset)))

    return handler


def routes() -> list[BaseRoute]:
    """The query routes."""
    return [
        *both("/query", _query("query"), ["GET"]),
        *both("/queryAll", _query("queryAll"), ["GET"]),
        *both("/query/{locator}", _query_more("query"), ["GET"]),
        *both("/queryAll/{locator}", _query_more("queryAll"), ["GET"]),
    ]
