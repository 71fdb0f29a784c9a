"""The GraphQL WebSocket (``graphql-transport-ws`` at ``/graphql``): who is
connecting, and what may run over it.

A browser cannot set headers on a WebSocket, so the key comes in
``connection_init``'s payload (``{"Authorization": "Bearer KEY"}``), as
graphql-ws clients send ``connectionParams``. Nothing runs before it is
checked; a bad key closes the socket with 4401."""

import asyncio

from graphql import GraphQLError
from starlette.websockets import WebSocket
from strawberry.extensions import SchemaExtension
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.types.graphql import OperationType

from segmentql.server.apikeys import Access
from segmentql.server.database import Database
from segmentql.server.errors import RateLimited

from .auth import UNAVAILABLE, authenticate_key, bearer

# How often an open socket's key is looked up again (revoked or expired: closed).
KEY_CHECK_SECONDS = 30.0


class KeyRefused(Exception):
    """``connection_init`` brought no valid key: the socket is closed with ``code``."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code, self.reason = code, reason


class KeyedTransportWS(BaseGraphQLTransportWSHandler):
    """``graphql-transport-ws`` whose ``connection_init`` must carry the key
    (``{"Authorization": "Bearer KEY"}``): a bad one closes the socket with
    4401 (strawberry's own refusal is 4403), an unreachable database with 1011.

    The key stays checked while the socket is open: every ``subscribe`` looks
    it up again and takes a token of its rate limit (as an HTTP request
    does), and every KEY_CHECK_SECONDS it is looked up again, so a revoked or
    expired key's socket is closed (4401) within that time."""

    _key_watch: asyncio.Task | None = None

    @property
    def _state(self):
        """The app's state: the view is ``app.SegmentqlGraphQL``."""
        return self.view.state  # type: ignore[attr-defined]

    @property
    def _authorization(self) -> object:
        return self.context["connection_params"].get("Authorization")  # type: ignore[index]  # a dict: app.get_context

    async def handle_connection_init(self, message) -> None:
        payload = message.get("payload")
        if not self._admitted(payload.get("Authorization") if isinstance(payload, dict) else None):
            await self.websocket.close(code=4429, reason="this API key sends too many requests; retry shortly")
            return
        try:
            await super().handle_connection_init(message)
        except KeyRefused as refused:
            await self.websocket.close(code=refused.code, reason=refused.reason)
            return
        if self.connection_acknowledged:
            self._key_watch = asyncio.create_task(self._watch_key())

    async def handle_subscribe(self, message) -> None:
        if self.connection_acknowledged:
            if not await self._key_valid():
                return
            if not self._admitted(self._authorization):
                await self.send_message({"id": message["id"], "type": "error", "payload": [{
                    "message": "this API key sends too many requests; retry shortly",
                    "extensions": {"code": RateLimited.code}}]})
                return
        await super().handle_subscribe(message)

    async def shutdown(self) -> None:
        if self._key_watch is not None:
            self._key_watch.cancel()
        await super().shutdown()

    def _admitted(self, authorization: object) -> bool:
        """Whether the key (if any is sent) may make one more request now."""
        limiter = self._state.limiter
        key = bearer(authorization)
        return key is None or not limiter.enabled or limiter.take(key).allowed

    async def _key_valid(self) -> bool:
        """Whether the socket's key is still valid; closes the socket (4401) when not."""
        found = await authenticate_key(self._state.db, self._authorization)
        if isinstance(found, str) and found != UNAVAILABLE:
            await self.websocket.close(code=4401, reason="the API key was revoked or has expired")
            return False
        return True

    async def _watch_key(self) -> None:
        """Looks the key up again every KEY_CHECK_SECONDS (connection_init has just looked it up)."""
        while True:
            await asyncio.sleep(KEY_CHECK_SECONDS)
            if not await self._key_valid():
                return


class OperationsByTransport(SchemaExtension):
    """Queries and mutations are POSTed: only there do they run within a
    request's budget (deadline, lanes, hang-up). Subscriptions run over a
    WebSocket. Checked as validation starts (after :class:`BoundedValidation`
    checked the document), so the refusal is a validation error."""

    def on_validate(self):
        context = self.execution_context
        if not context.pre_execution_errors:
            over_socket = isinstance(context.context.get("request"), WebSocket)
            if over_socket != (context.operation_type is OperationType.SUBSCRIPTION):
                context.pre_execution_errors = [GraphQLError(
                    "only subscriptions run over WebSocket; POST queries and mutations to /graphql" if over_socket
                    else "subscriptions run over WebSocket (graphql-transport-ws) at /graphql",
                    extensions={"code": "BAD_REQUEST"})]
        yield


async def workspace_at_init(db: Database, context: dict) -> Access:
    """The access (workspace and scope) of the key ``connection_init`` brought
    (:class:`KeyRefused` without one). Every scope may subscribe."""
    found = await authenticate_key(db, context["connection_params"].get("Authorization"))
    if isinstance(found, str):
        raise KeyRefused(1011 if found == UNAVAILABLE else 4401, found)
    return found
