"""Who is asking: the bearer key of an HTTP request, resolved to its
workspace and scope (``server/apikeys.py``), and the JSON refusals every HTTP
route answers with (shaped like GraphQL's errors:
``{"errors": [{"message", "extensions": {"code"}}]}``).
GraphQL (``app.Gate``) and the member exports (``export_routes``) both
authenticate here, so a key means the same on every route."""

import logging

from pymongo.errors import PyMongoError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from segmentql.server.apikeys import Access, access_for
from segmentql.server.database import Database

log = logging.getLogger("segmentql")


def refusal(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"errors": [{"message": message, "extensions": {"code": code}}]}, status_code=status,
                        headers=headers)


def unauthorized(message: str) -> JSONResponse:
    return refusal(401, "UNAUTHENTICATED", message, {"WWW-Authenticate": 'Bearer realm="segmentql"'})


def bearer(authorization: object) -> str | None:
    """The key of an ``Authorization`` value (``Bearer KEY``: a header, or what
    a WebSocket's ``connection_init`` sent, which may be anything), or None."""
    if not isinstance(authorization, str):
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def authenticate(db: Database, request: Request) -> Access | Response:
    """The access of the request's bearer key (any scope), or the response
    refusing the request (401: missing, unknown, revoked or expired; 503
    while the database cannot tell)."""
    found = await authenticate_key(db, request.headers.get("authorization"))
    if isinstance(found, Access):
        return found
    if found == UNAVAILABLE:
        return refusal(503, "DATABASE_UNAVAILABLE", found)
    return unauthorized(found)


UNAVAILABLE = "the database is unavailable right now; try again shortly"


async def authenticate_key(db: Database, authorization: object) -> Access | str:
    """The access of an ``Authorization`` value (``Bearer KEY``), or why
    there is none (UNAVAILABLE while the database cannot tell). HTTP requests
    send it as a header, subscriptions in ``connection_init``'s payload."""
    key = bearer(authorization)
    if key is None:
        return "send your API key as 'Authorization: Bearer KEY'"
    try:
        access = await access_for(db, key)
    except PyMongoError:
        log.warning("database unavailable while checking an API key")
        return UNAVAILABLE
    if access is None:
        return "the API key is not valid"
    return access
