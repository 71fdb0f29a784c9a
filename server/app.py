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
from strawberry.asgi import GraphQL

from segmentql.schema import build_schema
from segmentql.schema.context import RequestContext

from .database import Database
from .graphiql import ASSETS_URL, asset, graphiql_page
from .registry import ConditionRegistry, load_registry
from .settings import Settings

log = logging.getLogger("segmentql")


def _unauthorized(message: str) -> JSONResponse:
    return JSONResponse({"errors": [{"message": message, "extensions": {"code": "UNAUTHENTICATED"}}]},
                        status_code=401, headers={"WWW-Authenticate": 'Bearer realm="segmentql"'})


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
                                            workspace_id=request.scope["segmentql.workspace_id"])}


class Authenticated:
    """ASGI wrapper: resolves the bearer key to a workspace, or answers 401."""

    def __init__(self, app, state):
        self.app, self.state = app, state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        if self._is_ide_page(request):
            return await graphiql_page()(scope, receive, send)
        key = _bearer(request.headers)
        if key is None:
            return await _unauthorized("send your API key as 'Authorization: Bearer KEY'")(scope, receive, send)
        workspace = await self.state.db.workspace_for_key(key)
        if workspace is None:
            return await _unauthorized("the API key is not valid")(scope, receive, send)
        scope["segmentql.workspace_id"] = workspace["_id"]
        return await self.app(scope, receive, send)

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
    schema = build_schema(registry)
    graphql = Authenticated(SegmentqlGraphQL(schema, state, graphql_ide=None), state)

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
        try:
            yield
        finally:
            await state.db.close()

    app = Starlette(routes=[Route("/healthz", health), Route("/graphql", graphql, methods=["GET", "POST"]),
                            Route(ASSETS_URL + "/{name}", asset)], lifespan=lifespan)
    app.state.segmentql = state
    return app


def schema_sdl(registry: ConditionRegistry) -> str:
    return build_schema(registry).as_str()

