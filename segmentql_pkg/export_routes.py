"""Member exports over HTTP: ``GET /v1/segments/{id}/members.ndjson`` (or
``.csv``) and ``GET /v1/snapshots/{id}/members.<format>``, for the workspace
of the bearer key, checked as for GraphQL (``auth.authenticate``).
``server/export.py`` does the work; this module turns a request into it, and
its refusals into JSON errors shaped like GraphQL's.

Everything an export can refuse is checked before the response starts: the
format, the key, ``fields``, the segment or snapshot, and the first piece of
text is made (the first database reads) before the status is sent, so a
database that is down, or a rule it refuses, gets a JSON error too. A failure
after that cuts the response short (its chunked body never ends), so no
client takes a partial export for a whole one.

An export has no request deadline (``server/deadline.py``): its length grows
with the segment and with how fast its client reads. Each of its database
commands is short (a batch of ids, their contacts by key), and a rule
evaluated instead of stored members keeps SEGMENTQL_MAX_TIME_MS per command.
"""

import logging

from pymongo.errors import PyMongoError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from segmentql.schema.errors import DRIVER_ERRORS, INTERNAL_ERROR
from segmentql.server import export
from segmentql.server.errors import SegmentqlError

from .auth import authenticate, refusal

log = logging.getLogger("segmentql")

SEGMENT, SNAPSHOT = "segment", "snapshot"
# Refusals by code; any other (a rule that no longer compiles, or whose query
# the database refuses) is 422.
STATUS = {"NOT_FOUND": 404, "BAD_USER_INPUT": 400}
DRIVER_STATUS = {"TIMEOUT": 504, "DATABASE_UNAVAILABLE": 503}


async def segment_members(request: Request) -> Response:
    return await _export(request, SEGMENT)


async def snapshot_members(request: Request) -> Response:
    return await _export(request, SNAPSHOT)


async def _export(request: Request, kind: str) -> Response:
    suffix = request.path_params["format"]
    fmt = export.FORMATS.get(suffix)
    if fmt is None:
        return refusal(404, "NOT_FOUND", f"no export format {suffix!r}; use {' or '.join(export.FORMATS)}")
    state = request.app.state.segmentql
    access = await authenticate(state.db, request)  # any scope may read: READ is the lowest
    if isinstance(access, Response):
        return access
    workspace = access.workspace
    limited = state.limiter.admit(request.headers)  # the key's rate (segmentql_pkg/ratelimit.py)
    if isinstance(limited, Response):
        return limited
    given = request.query_params.getlist("fields")
    try:
        fields = export.parse_fields(",".join(given) if given else None, workspace)
        if kind == SEGMENT:
            members = await export.of_segment(state.db, state.registry, workspace, request.path_params["id"])
        else:
            members = await export.of_snapshot(state.db, workspace.id, request.path_params["id"])
        pieces = export.chunks(state.db, workspace.id, members, fields, fmt)
        first, _ = await anext(pieces)
    except SegmentqlError as exc:
        return refusal(STATUS.get(exc.code, 422), exc.code, str(exc))
    except PyMongoError as exc:
        return _driverrefusal(exc)

    async def text():
        yield first
        async for piece, _ in pieces:
            yield piece

    return StreamingResponse(text(), media_type=fmt.media_type, headers={
        **limited, "Content-Disposition": f'attachment; filename="{members.name}.{suffix}"'})


def _driverrefusal(error: PyMongoError) -> Response:
    """The database's failure, told as GraphQL tells it (``schema/errors.py``)."""
    for kind, code, message in DRIVER_ERRORS:
        if isinstance(error, kind):
            return refusal(DRIVER_STATUS[code], code, message)
    log.error("member export failed", exc_info=error)
    return refusal(500, "INTERNAL_ERROR", INTERNAL_ERROR)


EXPORT_ROUTES = [
    Route("/v1/segments/{id}/members.{format}", segment_members, methods=["GET"]),
    Route("/v1/snapshots/{id}/members.{format}", snapshot_members, methods=["GET"]),
]
