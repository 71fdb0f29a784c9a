"""The HTTP application: starlette, with strawberry's GraphQL at ``/graphql``.

Every GraphQL request needs ``Authorization: Bearer KEY``; the key decides the
workspace, and a missing or wrong key is answered 401 before GraphQL runs. The
GraphiQL page itself (a browser's GET of ``/graphql``) holds no data and needs
no key; the queries it sends do. Subscriptions run over a WebSocket at
``/graphql`` (``graphql-transport-ws``), authenticated by the key in
``connection_init`` (:class:`KeyedTransportWS`).

No request can hold the service for long (README, "Limits"): a document's
validation is bounded (``schema/limits.py``), a request's cost is checked
before it runs (``schema/cost.py``), its database work keeps to one deadline
and to its workspace's lanes (``server/deadline.py``), and it is cancelled when its
client hangs up.
"""

import asyncio
import contextlib
import datetime as dt
import gc
import logging
import time
from functools import partial
from urllib.parse import urlencode

from cross_web import HTTPException
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.extensions import MaxTokensLimiter, ParserCache
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET

from segmentql.plugins.registry import ConditionRegistry, load_registry
from segmentql.schema import build_schema
from segmentql.schema.context import RequestContext
from segmentql.schema.cost import CostModel, QueryCost
from segmentql.schema.limits import BoundedValidation, DocumentCheck, DocumentLimits
from segmentql.schema.scopes import ScopeCheck
from segmentql.server import deadline, ingest, transport
from segmentql.server.apikeys import Access
from segmentql.server.changefeed import ChangeFeed
from segmentql.server.database import Database, check_plugin_storage
from segmentql.server.delivery import DeliverySettings, WebhookDispatcher
from segmentql.server.errors import BadRequest
from segmentql.server.live import LiveSegments
from segmentql.server.settings import Settings

from .auth import authenticate, refusal
from .builder import BUILDER_ROUTES
from .export_routes import EXPORT_ROUTES
from .graphiql import ASSETS_URL, asset, graphiql_page
from .observability import RequestIds, RequestMetrics, configure_logging, metrics_page
from .persisted import PersistedQueries
from .ratelimit import RateLimiter
from .subscriptions import KeyedTransportWS, OperationsByTransport, workspace_at_init

log = logging.getLogger("segmentql")

# Parsed and validated documents kept, by query text: front ends send the same
# few documents again and again (their variables differ).
DOCUMENT_CACHE_SIZE = 128
# What browsers on the origins of SEGMENTQL_CORS_ORIGINS may send, and read of the answers.
CORS_METHODS = ("GET", "POST", "OPTIONS")
CORS_HEADERS = ("Authorization", "Content-Type", "X-Request-ID")
CORS_EXPOSED = ("X-Request-ID", "Retry-After", "RateLimit", "RateLimit-Policy")
# GraphQL over HTTP: queries by GET or POST, mutations by POST.
ALLOWED_METHODS = "GET, POST"


class Refused(Exception):
    """A request refused while GraphQL reads it; :class:`Gate` answers with the
    refusal (unless a response was begun)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.response = refusal(status, code, message, headers)

    @classmethod
    def of(cls, bad: BadRequest) -> "Refused":
        return cls(bad.status, bad.code, str(bad), bad.headers)


def _limited_receive(receive, limit: int):
    """``receive`` that refuses a body growing past ``limit`` bytes (chunked uploads too)."""
    seen = 0

    async def wrapped():
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise Refused(413, "PAYLOAD_TOO_LARGE", f"the request body exceeds {limit} bytes")
        return message
    return wrapped


async def _cancelled_on_hang_up(app, scope, receive, send) -> bool:
    """Run ``app`` for one request and cancel it if its client disconnects
    before the response is complete: the work (database commands included)
    stops instead of going on for nobody. Returns whether it was cancelled so.

    Once the app has read the body (a GET has none to read), the only message
    ``receive`` can bring is the disconnect, so it is watched from then on (as
    starlette's streaming responses do)."""
    body_read, responded, hung_up = asyncio.Event(), False, False
    if scope["method"] == "GET":
        body_read.set()

    async def app_receive():
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            body_read.set()
        return message

    async def app_send(message):
        nonlocal responded
        responded = responded or (message["type"] == "http.response.body" and not message.get("more_body", False))
        await send(message)

    work = asyncio.ensure_future(app(scope, app_receive, app_send))

    async def watch():
        nonlocal hung_up
        await body_read.wait()
        while (await receive())["type"] != "http.disconnect":
            pass
        if not responded:
            hung_up = True
            work.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        await work
    except asyncio.CancelledError:
        if not hung_up:
            raise
    finally:
        watcher.cancel()
        work.cancel()
    return hung_up


class SegmentqlGraphQL(GraphQL):
    """Strawberry's ASGI app with segmentql's request context."""

    graphql_transport_ws_handler_class = KeyedTransportWS

    def __init__(self, schema, state, **kwargs):
        # A socket is authenticated by the key its connection_init carries,
        # never by a browser's cookies, so a page of another origin can do no
        # more with it than with a POST: front ends on their own origins may
        # subscribe. A connection runs at most 10 subscriptions; a connection
        # not initialised within 10 s is closed.
        super().__init__(schema, subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,), allowed_origins=["*"],
                         max_subscriptions_per_connection=10,
                         connection_init_wait_timeout=dt.timedelta(seconds=10), **kwargs)
        self.state = state

    async def get_context(self, request, response):
        context = {"request": request, "response": response}
        if not isinstance(request, WebSocket):  # a socket's workspace is known at connection_init
            context["segmentql"] = self._request_context(request.scope["segmentql.access"])
        return context

    async def on_ws_connect(self, context):
        context["segmentql"] = self._request_context(await workspace_at_init(self.state.db, context))
        return await super().on_ws_connect(context)

    async def run(self, request, context=UNSET, root_value=UNSET):
        """Strawberry's run, with its own refusals (``HTTPException``) answered
        as JSON errors with a code, where its ASGI app answers ``text/plain``.
        The gate refuses first whatever strawberry would (``transport``), so
        none is expected; should strawberry refuse something new, it is still JSON."""
        try:
            return await super().run(request, context, root_value)
        except HTTPException as refused:
            code = {405: "METHOD_NOT_ALLOWED", 404: "NOT_FOUND"}.get(refused.status_code, "BAD_REQUEST")
            headers = {"Allow": ALLOWED_METHODS} if refused.status_code == 405 else None
            return refusal(refused.status_code, code, refused.reason, headers)

    def _request_context(self, access: Access) -> RequestContext:
        return RequestContext(db=self.state.db, live=self.state.live, feed=self.state.feed,
                              registry=self.state.registry, settings=self.state.settings,
                              facts_with_key=access.workspace, scope=access.scope)


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
        refusal = self._transportrefusal(request)
        if refusal is None:
            refusal = await self._authenticate(request, scope)
        if refusal is None:
            refusal, send = self.state.limiter.gate(scope, send)
        if refusal is not None:
            return await refusal(scope, receive, send)
        started = False

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)
        try:
            await self._run(scope, self._checked_receive(scope, receive), tracking_send)
        except Refused as refused:
            if not started:
                await refused.response(scope, receive, send)
        except ClientDisconnect:
            pass  # gone while sending the body: nobody to answer

    async def _run(self, scope, receive, send) -> None:
        """GraphQL for one authenticated request, within its budget, cancelled if its client hangs up."""
        workspace = scope["segmentql.access"].workspace.id
        with (self.state.lanes.of(workspace) as lanes,
              deadline.request_budget(self.state.settings.request_timeout_ms, lanes) as budget):
            if await _cancelled_on_hang_up(self.app, scope, receive, send):
                log.warning("client of workspace %s hung up: its request was cancelled after %.1f s and %d "
                            "database commands", workspace, time.monotonic() - budget.started, budget.commands)

    def _transportrefusal(self, request: Request) -> Response | None:
        """The refusal of a request whose method or headers strawberry cannot
        serve. What it carries (a GET's query string, a POST's body) is checked
        once its key is known (:meth:`_checked_receive`): a persisted query is
        found by its workspace."""
        if request.method not in ("GET", "POST"):
            return refusal(405, "METHOD_NOT_ALLOWED", "send GraphQL requests with GET (queries only) or POST",
                           {"Allow": ALLOWED_METHODS})
        if request.method == "POST":
            content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type != "application/json":
                return refusal(415, "UNSUPPORTED_MEDIA_TYPE", "send GraphQL requests as application/json")
            length = request.headers.get("content-length")
            if length and length.isdigit() and int(length) > self.state.settings.max_body_bytes:
                return refusal(413, "PAYLOAD_TOO_LARGE",
                                f"the request body exceeds {self.state.settings.max_body_bytes} bytes")
        return None

    def _checked_receive(self, scope, receive):
        """``receive`` for GraphQL, once the request's envelope (``transport``)
        is checked and a persisted query's document put in as its ``query``
        (``persisted``), or the request refused (:class:`Refused`). A GET's
        query string is checked at once (and rewritten for a persisted query);
        a POST's body is read whole, checked, and given in one message before
        strawberry reads it. A body past the size limit is refused (413)."""
        limited = _limited_receive(receive, self.state.settings.max_body_bytes)
        document = partial(self.state.persisted.query, scope["segmentql.access"].workspace.id)
        if scope["method"] != "POST":
            params = Request(scope).query_params
            try:
                checked = transport.check_query_params(params, self._parse(), document)
            except BadRequest as bad:
                raise Refused.of(bad) from None
            if checked.get("query") != params.get("query"):
                scope["query_string"] = urlencode(checked).encode()
            return limited
        body_given = False

        async def checked_body():
            nonlocal body_given
            if body_given:
                return await limited()  # after the body, only the disconnect
            chunks = []
            while True:
                message = await limited()
                if message["type"] != "http.request":
                    return message
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            try:
                body = transport.check_body(b"".join(chunks), self._parse(), document)
            except BadRequest as bad:
                raise Refused.of(bad) from None
            body_given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return checked_body

    def _parse(self) -> transport.Parse:
        return transport.cached_parser(DOCUMENT_CACHE_SIZE, self.state.settings.max_tokens)

    async def _authenticate(self, request: Request, scope) -> Response | None:
        found = await authenticate(self.state.db, request)
        if isinstance(found, Response):
            return found
        scope["segmentql.access"] = found
        return None

    @staticmethod
    def _is_ide_page(request: Request) -> bool:
        # A browser navigating here (even with ?query=... to prefill the editor)
        # gets the page; GraphQL clients using GET ask for JSON and need a key.
        return request.method == "GET" and "text/html" in request.headers.get("accept", "")


async def _responds(db: Database) -> bool:
    """Whether the database answers a ping (``/healthz`` reports, never raises)."""
    try:
        await db.ping()
    except Exception:  # noqa: BLE001 - any failure is "unavailable"
        return False
    return True


class AppState:
    def __init__(self, settings: Settings, registry: ConditionRegistry):
        self.settings, self.registry = settings, registry
        self.db: Database | None = None
        self.live: LiveSegments | None = None
        self.feed: ChangeFeed | None = None
        self.lanes = deadline.Lanes(settings.workspace_lanes)
        self.limiter = RateLimiter(settings.rate_limit)
        self.persisted = PersistedQueries()


def create_app(settings: Settings, mongodb_uri: str, registry: ConditionRegistry | None = None) -> Starlette:
    """The ASGI app. ``registry`` defaults to the built-ins plus installed
    plugins as the settings allow; a plugin problem raises PluginError here,
    before anything is served."""
    configure_logging(settings.log_format)
    if registry is None:
        registry = load_registry(allow=settings.plugin_allow, block=settings.plugin_block)
    check_plugin_storage(registry.storage)  # before anything is served, like the registry's own checks
    state = AppState(settings, registry)
    # One check for the app's lifetime, so its cache of validated documents
    # serves every request.
    check = DocumentCheck(DocumentLimits(max_depth=settings.max_query_depth, max_aliases=settings.max_aliases,
                                         max_fields=settings.max_tokens), DOCUMENT_CACHE_SIZE)
    costs = CostModel(budget=settings.max_query_cost, max_page_size=settings.max_page_size,
                      default_page_size=settings.default_page_size)
    schema = build_schema(registry, extensions=[  # factories: a fresh extension per request
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        lambda: ParserCache(maxsize=DOCUMENT_CACHE_SIZE),
        lambda: BoundedValidation(check),
        ScopeCheck,
        lambda: QueryCost(costs),
        OperationsByTransport,
        RequestMetrics])
    graphql = Gate(SegmentqlGraphQL(schema, state, graphql_ide=None), state)

    async def health(_request: Request) -> Response:
        if state.db is not None and await _responds(state.db):
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "database unavailable"}, status_code=503)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        state.db = Database(mongodb_uri, settings.database, settings.max_time_ms, registry.storage)
        await state.db.ensure_indexes()
        await ingest.upgrade_rollups(state.db)
        await state.db.settle_logs_of_earlier_versions()
        state.live = LiveSegments(state.db, registry, settings.write_lease_seconds)
        state.feed = ChangeFeed(state.db)
        dispatcher = WebhookDispatcher(state.db, DeliverySettings(
            timeout_seconds=settings.webhook_timeout_seconds,
            first_retry=dt.timedelta(milliseconds=settings.webhook_first_retry_ms),
            retry_for=dt.timedelta(seconds=settings.webhook_retry_for_seconds),
            allow_private=settings.webhook_allow_private, claim_seconds=settings.write_lease_seconds))
        state.live.listeners += [state.feed.nudge, dispatcher.nudge]
        # Memberships follow time: refreshed now if they date from an earlier
        # day, then at each new UTC day, while the service answers requests;
        # webhooks are delivered meanwhile.
        background = [asyncio.create_task(state.live.keep_current()), asyncio.create_task(dispatcher.run())]
        # Everything made so far (modules, the schema, plugins) lives as long
        # as the service: kept out of the cyclic collector's full passes, which
        # otherwise scan it all and hold every request for tens of ms.
        gc.freeze()
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await state.db.close()

    app = Starlette(routes=[Route("/healthz", health), Route("/graphql", graphql),
                            WebSocketRoute("/graphql", graphql),
                            Route(ASSETS_URL + "/{name}", asset), *EXPORT_ROUTES, *BUILDER_ROUTES,
                            *([Route("/metrics", metrics_page)] if settings.metrics else [])],
                    middleware=[Middleware(RequestIds), Middleware(
                        CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=CORS_METHODS,
                        allow_headers=CORS_HEADERS, expose_headers=CORS_EXPOSED)],
                    lifespan=lifespan)
    app.state.segmentql = state
    return app
