"""The HTTP application: starlette, with strawberry's GraphQL at ``/graphql``.

Every GraphQL request needs ``Authorization: Bearer KEY``; the key decides the
workspace, and a missing or wrong key is answered 401 before GraphQL runs. The
GraphiQL page itself (a browser's GET of ``/graphql``) holds no data and needs
no key; the queries it sends do.
"""

import contextlib
import logging

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from pymongo.errors import PyMongoError
from strawberry.asgi import GraphQL
from strawberry.extensions import (AddValidationRules, MaxAliasesLimiter, MaxTokensLimiter, ParserCache,
                                   QueryDepthLimiter, ValidationCache)

from segmentql.schema import build_schema
from segmentql.schema.context import RequestContext

from . import ingest
from .database import Database
from .graphiql import ASSETS_URL, asset, graphiql_page
from .registry import ConditionRegistry, load_registry
from .settings import Settings

log = logging.getLogger("segmentql")

# Parsed and validated documents kept, by query text: front ends send the same
# few documents again and again (their variables differ).
DOCUMENT_CACHE_SIZE = 128


def _refusal(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"errors": [{"message": message, "extensions": {"code": code}}]}, status_code=status,
                        headers=headers)


def _unauthorized(message: str) -> JSONResponse:
    return _refusal(401, "UNAUTHENTICATED", message, {"WWW-Authenticate": 'Bearer realm="segmentql"'})


class BodyTooLarge(Exception):
    pass


def _limited_receive(receive, limit: int):
    """``receive`` that refuses a body growing past ``limit`` bytes (chunked uploads too)."""
    seen = 0

    async def wrapped():
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge
        return message
    return wrapped


def _bearer(headers) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class SegmentqlGraphQL(GraphQL):
    """Strawberry's ASGI app with segmentql's request context."""

    def __init__(self, schema, state, **kwargs):
        super().__init__(schema, **kwargs)
        self.state = state

    async def get_context(self, request, response):
        return {"request": request, "response": response,
                "segmentql": RequestContext(db=self.state.db, registry=self.state.registry,
                                            settings=self.state.settings,
                                            workspace=request.scope["segmentql.workspace"])}


class Gate:
    """ASGI wrapper in front of GraphQL: the GraphiQL page for browsers; for
    everything else the transport rules (JSON POSTs only, so no HTML form can
    post cross-site; a bounded body) and the bearer key, resolved to a
    workspace, or a refusal before GraphQL runs."""

    def __init__(self, app, state):
        self.app, self.state = app, state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        if self._is_ide_page(request):
            return await graphiql_page()(scope, receive, send)
        refusal = self._transport_refusal(request)
        if refusal is None:
            refusal = await self._authenticate(request, scope)
        if refusal is not None:
            return await refusal(scope, receive, send)
        limit = self.state.settings.max_body_bytes
        started = False

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)
        try:
            return await self.app(scope, _limited_receive(receive, limit), tracking_send)
        except BodyTooLarge:
            if not started:
                await _refusal(413, "PAYLOAD_TOO_LARGE", f"the request body exceeds {limit} bytes")(
                    scope, receive, send)

    def _transport_refusal(self, request: Request) -> Response | None:
        if request.method == "POST":
            content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type != "application/json":
                return _refusal(415, "UNSUPPORTED_MEDIA_TYPE", "send GraphQL requests as application/json")
            length = request.headers.get("content-length")
            if length and length.isdigit() and int(length) > self.state.settings.max_body_bytes:
                return _refusal(413, "PAYLOAD_TOO_LARGE",
                                f"the request body exceeds {self.state.settings.max_body_bytes} bytes")
        return None

    async def _authenticate(self, request: Request, scope) -> Response | None:
        key = _bearer(request.headers)
        if key is None:
            return _unauthorized("send your API key as 'Authorization: Bearer KEY'")
        try:
            workspace = await self.state.db.workspace_for_key(key)
        except PyMongoError:
            log.warning("database unavailable while checking an API key")
            return _refusal(503, "DATABASE_UNAVAILABLE", "the database is unavailable right now; try again shortly")
        if workspace is None:
            return _unauthorized("the API key is not valid")
        scope["segmentql.workspace"] = workspace
        return None

    @staticmethod
    def _is_ide_page(request: Request) -> bool:
        # A browser navigating here (even with ?query=... to prefill the editor)
        # gets the page; GraphQL clients using GET ask for JSON and need a key.
        return request.method == "GET" and "text/html" in request.headers.get("accept", "")


class AppState:
    def __init__(self, settings: Settings, registry: ConditionRegistry):
        self.settings, self.registry = settings, registry
        self.db: Database | None = None


def create_app(settings: Settings, mongodb_uri: str, registry: ConditionRegistry | None = None) -> Starlette:
    """The ASGI app. ``registry`` defaults to the built-ins plus installed
    plugins as the settings allow; a plugin problem raises PluginError here,
    before anything is served."""
    if registry is None:
        registry = load_registry(allow=settings.plugin_allow, block=settings.plugin_block)
    state = AppState(settings, registry)
    # The limit rules are made once, so a document's validation result can be
    # cached: the cache key is (schema, document, rules), and a parsed document
    # is the same object for the same text while ParserCache holds it.
    limits = (*QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules,
              *MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules)
    schema = build_schema(registry, extensions=[  # factories: a fresh extension per request
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        lambda: AddValidationRules(list(limits)),
        lambda: ParserCache(maxsize=DOCUMENT_CACHE_SIZE),
        lambda: ValidationCache(maxsize=DOCUMENT_CACHE_SIZE)])
    graphql = Gate(SegmentqlGraphQL(schema, state, graphql_ide=None), state)

    async def health(_request: Request) -> Response:
        try:
            await state.db.ping()
        except Exception:  # noqa: BLE001 - health reports, never raises
            return JSONResponse({"status": "database unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        state.db = Database(mongodb_uri, settings.database, settings.max_time_ms)
        await state.db.ensure_indexes()
        await ingest.upgrade_rollups(state.db)
        try:
            yield
        finally:
            await state.db.close()

    app = Starlette(routes=[Route("/healthz", health), Route("/graphql", graphql, methods=["GET", "POST"]),
                            Route(ASSETS_URL + "/{name}", asset)], lifespan=lifespan)
    app.state.segmentql = state
    return app
