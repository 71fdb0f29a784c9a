"""What every resolver can reach: the database, the condition registry, the
settings, the authenticated workspace and (through :func:`workspace_facts`)
the facts compiling a rule needs."""

from dataclasses import dataclass

from graphql import OperationType
from strawberry.types import Info

from segmentql.server.database import Database, Workspace
from segmentql.server.registry import ConditionRegistry
from segmentql.server.settings import Settings


@dataclass
class RequestContext:
    db: Database
    registry: ConditionRegistry
    settings: Settings
    facts_with_key: Workspace  # as the API key's read found it; use workspace_facts()

    @property
    def workspace_id(self) -> str:
        return self.facts_with_key.id


def request_context(info: Info) -> RequestContext:
    return info.context["segmentql"]


async def workspace_facts(info: Info) -> Workspace:
    """The workspace's facts (declared custom fields, newest event day) for
    compiling a rule in this field.

    A query writes nothing, so the facts read with its API key hold for all
    its fields. A mutation's fields run one after another and may change them
    (declare a field, record a later event), so there every field reads them
    afresh. This is the only way resolvers get facts, so none can forget to
    reload them after a write."""
    ctx = request_context(info)
    if info.operation.operation is OperationType.MUTATION:
        return await ctx.db.workspace(ctx.workspace_id)
    return ctx.facts_with_key
