"""API keys in GraphQL: their type, and the root fields that manage them
(``ApiKeyQueries`` and ``ApiKeyMutations``, which the root types of ``build``
extend; ADMIN keys only, ``scopes``). The service is
``segmentql.server.apikeys``."""

import datetime as dt
import enum
from typing import Annotated

import strawberry
from strawberry.types import Info

from segmentql.server import apikeys

from .arguments import Id, described
from .context import request_context


@strawberry.enum(description="What an API key may do; each scope allows everything the ones before it allow.")
class ApiKeyScope(enum.Enum):
    READ = strawberry.enum_value("READ", description="Queries (exports included) and subscriptions.")
    WRITE = strawberry.enum_value("WRITE", description="Also every mutation of data, segments and snapshots.")
    ADMIN = strawberry.enum_value("ADMIN", description="Also the workspace's API keys and webhooks.")


@strawberry.type(description="A key of the workspace (README, \"Keys\"); its secret is never shown again.")
class ApiKey:
    doc: strawberry.Private[dict]

    @strawberry.field(description="Its id (to revoke it).")
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.doc["id"])

    @strawberry.field(description="What it is for.")
    def name(self) -> str:
        return self.doc["name"]

    @strawberry.field(description=(
        "The first characters of its secret, to recognise it; null for a key made before keys had names "
        "(named `legacy`)."))
    def prefix(self) -> str | None:
        return self.doc["prefix"]

    @strawberry.field(description="What it may do.")
    def scope(self) -> ApiKeyScope:
        return ApiKeyScope[self.doc["scope"]]

    @strawberry.field(description="When it was made.")
    def created_at(self) -> dt.datetime:
        return self.doc["createdAt"]

    @strawberry.field(description="When it was last used (noted at most once a minute); null: never.")
    def last_used_at(self) -> dt.datetime | None:
        return self.doc["lastUsedAt"]

    @strawberry.field(description="When it stops working (it is refused from then on); null: never.")
    def expires_at(self) -> dt.datetime | None:
        return self.doc["expiresAt"]


@strawberry.type(description="A new key with its secret, shown this once: store it safely.")
class ApiKeyWithSecret:
    api_key: ApiKey = strawberry.field(description="The key.")
    secret: str = strawberry.field(description="Send it as `Authorization: Bearer <secret>`. Not shown again.")


@strawberry.type
class ApiKeyQueries:
    @strawberry.field(description=(
        "The workspace's keys, oldest first, without their secrets: every key not revoked, expired ones included "
        "(until revoked). ADMIN keys only."))
    async def api_keys(self, info: Info) -> list[ApiKey]:
        ctx = request_context(info)
        return [ApiKey(doc=d) for d in await apikeys.list_keys(ctx.db, ctx.workspace_id)]


@strawberry.type
class ApiKeyMutations:
    @strawberry.mutation(description=(
        f"Make a key (a workspace has at most {apikeys.MAX_KEYS} valid ones). Its secret is shown once. "
        "ADMIN keys only."))
    async def create_api_key(self, info: Info,
                             name: Annotated[str, described(f"What it is for (1 to {apikeys.MAX_NAME} characters).")],
                             scope: Annotated[ApiKeyScope, described("What it may do.")],
                             expires_at: Annotated[dt.datetime | None, described(
                                 "When it stops working (in the future); null: never.")] = None
                             ) -> ApiKeyWithSecret:
        ctx = request_context(info)
        doc, secret = await apikeys.create_key(ctx.db, ctx.workspace_id, name, apikeys.Scope[scope.name], expires_at)
        return ApiKeyWithSecret(api_key=ApiKey(doc=doc), secret=secret)

    @strawberry.mutation(description=(
        "Revoke a key: it is refused (401) from the next request on, the key sending this one included. False "
        "when the workspace has no such key, or it was revoked already. ADMIN keys only."))
    async def revoke_api_key(self, info: Info, id: Id) -> bool:
        ctx = request_context(info)
        return await apikeys.revoke_key(ctx.db, ctx.workspace_id, str(id))
