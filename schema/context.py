"""What every resolver can reach: the database, the condition registry, the
settings, the authenticated workspace and the scope of its key, (through
:func:`workspace_facts`) the facts compiling a rule needs, and rules compiled
for this request."""

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from graphql import OperationType
from strawberry.types import Info

from segmentql.plugins.registry import ConditionRegistry
from segmentql.server.apikeys import Scope
from segmentql.server.changefeed import ChangeFeed
from segmentql.server.compiler import CompiledRule, compile_rule_for
from segmentql.server.database import Database, Workspace
from segmentql.server.live import LiveSegments
from segmentql.server.settings import Settings


@dataclass
class RequestContext:
    db: Database
    live: LiveSegments
    feed: ChangeFeed
    registry: ConditionRegistry
    settings: Settings
    facts_with_key: Workspace  # as the API key's read found it; use workspace_facts()
    scope: Scope  # what the request's key may do (schema/scopes.py checks it before anything runs)
    # Saved segments' rules compiled in this request, by (segment id, updatedAt, asOf): compiled_segment().
    segments_compiled: dict[tuple[str, dt.datetime, dt.datetime | None], CompiledRule] = field(default_factory=dict)

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


async def compiled_rule(info: Info, rule: dict[str, Any], as_of: dt.datetime | None,
                        observe: bool = False) -> CompiledRule:
    """``rule`` compiled for this field (``compile_rule_for`` with its workspace facts)."""
    return compile_rule_for(request_context(info).registry, await workspace_facts(info), rule, as_of, observe)


async def compiled_segment(info: Info, segment: dict, as_of: dt.datetime | None) -> CompiledRule:
    """A saved segment's rule, compiled once per request and ``asOf`` whichever
    of its fields ask (count, contacts, split, analytics...): a query's facts
    hold for all its fields, and a version of a segment (its ``updatedAt``)
    has one rule. A mutation's fields may change the facts in between
    (:func:`workspace_facts`), so there each field compiles afresh."""
    if info.operation.operation is OperationType.MUTATION:
        return await compiled_rule(info, segment["rule"], as_of)
    ctx = request_context(info)
    facts = await workspace_facts(info)
    key = (segment["id"], segment["updatedAt"], as_of)
    if key not in ctx.segments_compiled:  # nothing awaited from here: fields resolving at once compile it once
        ctx.segments_compiled[key] = compile_rule_for(ctx.registry, facts, segment["rule"], as_of)
    return ctx.segments_compiled[key]
