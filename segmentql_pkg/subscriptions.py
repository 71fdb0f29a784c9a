"""The GraphQL WebSocket (``graphql-transport-ws`` at ``/graphql``): who is
connecting, and what may run over it.

A browser cannot set headers on a WebSocket, so the key comes in
``connection_init``'s payload (``{"Authorization": "Bearer KEY"}``), as
graphql-ws clients send ``connectionParams``. Nothing runs before it is
checked; a bad key closes the socket with 4401."""

from graphql import GraphQLError
from starlette.websockets import WebSocket
from strawberry.extensions import SchemaExtension
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.types.graphql import OperationType

from segmentql.server.apikeys import Access
from segmentql.server.database import Database

from .auth import UNAVAILABLE, authenticate_key


class KeyRefused(Exception):
    """``connection_init`` brought no valid key: the socket is closed with ``code``."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code, self.reason = code, reason


class KeyedTransportWS(BaseGraphQLTransportWSHandler):
    """``graphql-transport-ws`` whose ``connection_init`` must carry the key
    (``{"Authorization": "Bearer KEY"}``): a bad one closes the socket with
    4401 (strawberry's own refusal is 4403), an unreachable database with 1011."""

    async def handle_connection_init(self, message) -> None:
        try:
            await super().handle_connection_init(message)
        except KeyRefused as refused:
            await self.websocket.close(code=refused.code, reason=refused.reason)


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
