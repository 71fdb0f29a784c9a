"""Who is asking: the bearer key of an HTTP request, resolved to its
workspace, and the JSON refusals every HTTP route answers with (shaped like
GraphQL's errors: ``{"errors": [{"message", "extensions": {"code"}}]}``).
GraphQL (``app.Gate``) and the member exports (``export_routes``) both
authenticate here, so a key means the same on every route."""

import logging

from pymongo.errors import PyMongoError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from segmentql.server.database import Database, Workspace

log = logging.getLogger("segmentql")


def refusal(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"errors": [{"message": message, "extensions": {"code": code}}]}, status_code=status,
                        headers=headers)


def unauthorized(message: str) -> JSONResponse:
    return refusal(401, "UNAUTHENTICATED", message, {"WWW-Authenticate": 'Bearer realm="segmentql"'})


def bearer(headers) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def authenticate(db: Database, request: Request) -> Workspace | Response:
    """The workspace of the request's bearer key, or the response refusing
    the request (401; 503 while the database cannot tell)."""
    key = bearer(request.headers)
    if key is None:
        return unauthorized("send your API key as 'Authorization: Bearer KEY'")
    try:
        workspace = await db.workspace_for_key(key)
    except PyMongoError:
        log.warning("database unavailable while checking an API key")
        return refusal(503, "DATABASE_UNAVAILABLE", "the database is unavailable right now; try again shortly")
    if workspace is None:
        return unauthorized("the API key is not valid")
    return workspace
