"""The schema, built at start-up from the condition registry.

``RuleInput`` only exists once the plugins are known, so the root types
(whose fields take a rule) are assembled in :func:`build_schema`; every other
type is defined once in its own module (``segment``, ``insight``, ``types``).
Resolvers stay thin: they turn GraphQL values into plain data, call the
services of ``segmentql.server``, and wrap what comes back.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated

import strawberry
from strawberry.scalars import JSON
from strawberry.schema.config import StrawberryConfig
from strawberry.types import Info
from strawberry.types.base import get_object_definition

from segmentql.plugins.registry import ConditionRegistry
from segmentql.server import ingest, mongosh, segments, snapshots, writes
from segmentql.server.compiler import CONTACTS_COLLECTION, extended_json
from segmentql.server.contacts import find_contact
from segmentql.server.errors import BadArgument
from segmentql.server.live import LiveSegments

from .apikeys import ApiKeyMutations, ApiKeyQueries
from .arguments import AsOf, Id, described
from .context import compiled_rule, request_context, workspace_facts
from .errors import ErrorCodes
from .inputs import CampaignInput, ContactInput, EventInput
from .insight import Snapshot, SnapshotDiff
from .pages import After, First, after_segment, page_size
from .plugin_types import checked_schema
from .rule_input import SentVariables, build_rule_input, sent_value, to_document
from .scalars import SCALARS
from .segment import Segment, SegmentConnection, SegmentPreview
from .subscription import Subscription
from .types import (
    BatchResult,
    ConditionType,
    Contact,
    CustomField,
    CustomFieldType,
    ExplainFormat,
    MembershipExplanation,
)
from .webhooks import WebhookMutations, WebhookQueries

MAX_BATCH = 10_000


async def _stored(info: Info, values: list, what: str,
                  store: Callable[[LiveSegments, str, list], Awaitable[ingest.IngestResult]]) -> BatchResult:
    """A batch of data inputs (at most MAX_BATCH ``what``) as documents, given to an ingest ``store``."""
    if len(values) > MAX_BATCH:
        raise BadArgument(f"send at most {MAX_BATCH} {what} per call, got {len(values)}")
    ctx = request_context(info)
    items = [to_document(v, keep_null=True) for v in values]
    return BatchResult.from_result(await store(ctx.live, ctx.workspace_id, items))


def build_schema(registry: ConditionRegistry, extensions: list | None = None) -> strawberry.Schema:
    """The schema for these conditions; ``extensions`` are added after the error-code one
    (the app passes the request limits from its settings). A plugin that breaks it
    raises PluginError with one line naming the plugin (see ``plugin_types``)."""
    return checked_schema(registry, lambda plugins: _schema(plugins, extensions))


def _schema(registry: ConditionRegistry, extensions: list | None) -> strawberry.Schema:
    # Made from the plugins at run time, so mypy cannot take it as a type: the
    # annotations naming it (which strawberry reads at run time) say
    # ``type: ignore[valid-type]``.
    RuleInput = build_rule_input(registry)

    @strawberry.type(description="Read segments, contacts and the rule language.")
    class Query(WebhookQueries, ApiKeyQueries):
        @strawberry.field(description="Evaluate a rule without saving it: its count and members.")
        async def segment_preview(self, info: Info,
                                  rule: Annotated[RuleInput, described("The rule to evaluate.")],  # type: ignore[valid-type]
                                  as_of: AsOf = None
                                  ) -> SegmentPreview:
            return SegmentPreview(compiled=await compiled_rule(info, to_document(rule), as_of))

        @strawberry.field(description="The exact pipeline a rule runs as (its count): `{collection, pipeline}` in "
                                       "MongoDB relaxed Extended JSON, or with `format: MONGOSH` a string of "
                                       "mongosh code.")
        async def explain_segment(self, info: Info,
                                  rule: Annotated[RuleInput, described("The rule to explain.")],  # type: ignore[valid-type]
                                  as_of: AsOf = None,
                                  format: Annotated[ExplainFormat, described("How to write the pipeline.")
                                                    ] = ExplainFormat.EXTENDED_JSON
                                  ) -> JSON:
            pipeline = (await compiled_rule(info, to_document(rule), as_of)).count_pipeline()
            if format is ExplainFormat.MONGOSH:
                return JSON(mongosh.aggregate(CONTACTS_COLLECTION, pipeline))
            return JSON({"collection": CONTACTS_COLLECTION, "pipeline": extended_json(pipeline)})

        @strawberry.field(description="Why a contact is or is not in a segment: every node of the rule with "
                                       "whether the contact matches it, decided by the same queries as membership. "
                                       "Give exactly one of `rule` and `segmentId`.")
        async def explain_membership(self, info: Info,
                                     contact_id: Annotated[strawberry.ID, described("The contact to explain.")],
                                     rule: Annotated[RuleInput | None,  # type: ignore[valid-type]
                                                     described("A rule to explain.")] = None,
                                     segment_id: Annotated[strawberry.ID | None,
                                                           described("A saved segment to explain.")] = None,
                                     as_of: AsOf = None) -> MembershipExplanation:
            ctx = request_context(info)
            if (rule is None) == (segment_id is None):
                raise BadArgument("give exactly one of `rule` and `segmentId`")
            document = (to_document(rule) if rule is not None
                        else (await segments.get_segment(ctx.db, ctx.workspace_id, str(segment_id)))["rule"])
            compiled = await compiled_rule(info, document, as_of, observe=True)
            return MembershipExplanation.of(contact_id, await segments.membership(ctx.db, compiled, str(contact_id)))

        @strawberry.field(description="A saved segment by id; null when there is none in this workspace.")
        async def segment(self, info: Info, id: Id) -> Segment | None:
            ctx = request_context(info)
            doc = await segments.find_segment(ctx.db, ctx.workspace_id, str(id))
            return Segment(doc=doc) if doc else None

        @strawberry.field(description="Saved segments, newest first.")
        async def segments(self, info: Info,
                           first: First = 20,
                           after: After = None
                           ) -> SegmentConnection:
            ctx = request_context(info)
            docs, more = await segments.list_segments(ctx.db, ctx.workspace_id, page_size(info, first),
                                                      after_segment(after))
            return SegmentConnection.of(docs, more, after)

        @strawberry.field(description="A snapshot by id; null when there is none in this workspace.")
        async def snapshot(self, info: Info, id: Id) -> Snapshot | None:
            ctx = request_context(info)
            doc = await snapshots.find_snapshot(ctx.db, ctx.workspace_id, str(id))
            return Snapshot(doc=doc) if doc else None

        @strawberry.field(description="Who entered and who left between snapshot `a` and snapshot `b` (of the "
                                       "same segment, or of two segments).")
        async def snapshot_diff(self, info: Info,
                                a: Annotated[strawberry.ID, described("The earlier snapshot.")],
                                b: Annotated[strawberry.ID, described("The later snapshot.")]) -> SnapshotDiff:
            ctx = request_context(info)
            return SnapshotDiff(result=await snapshots.diff(ctx.db, ctx.workspace_id, str(a), str(b)))

        @strawberry.field(description="A contact by id, with its engagement; null when there is none.")
        async def contact(self, info: Info, id: Id) -> Contact | None:
            ctx = request_context(info)
            doc = await find_contact(ctx.db, ctx.workspace_id, str(id))
            return Contact.from_doc(doc) if doc else None

        @strawberry.field(description="The conditions `RuleInput` offers and the plugins providing them.")
        def condition_types(self, info: Info) -> list[ConditionType]:
            return [ConditionType(
                field=field, input_type=get_object_definition(entry.condition.input_type, strict=True).name,
                plugin=entry.plugin, distribution=entry.distribution, version=entry.version,
                description=entry.condition.description)
                for field, entry in request_context(info).registry.conditions.items()]

    @strawberry.type(description="Change data, saved segments, webhooks and API keys.")
    class Mutation(WebhookMutations, ApiKeyMutations):
        @strawberry.mutation(description="Declare a custom field before importing values for it.")
        async def define_custom_field(self, info: Info,
                                      key: Annotated[str, described("Field key, matching ^[a-z][a-z0-9_]{0,63}$.")],
                                      type: Annotated[CustomFieldType, described("The field's type.")],
                                      indexed: Annotated[bool, described(
                                          "Index the field, so selective rules on it read only the contacts "
                                          "that match (declare an existing field again with `indexed: true` to "
                                          "add one). Each index slows every contact write a little: index the "
                                          "fields segments filter on.")] = False
                                      ) -> CustomField:
            ctx = request_context(info)
            created = await writes.define_custom_field(ctx.live, ctx.workspace_id, key, type.name, indexed)
            return CustomField(key=key, type=type, created=created)

        @strawberry.mutation(description="Create or update contacts by id.")
        async def upsert_contacts(self, info: Info,
                                  contacts: Annotated[list[ContactInput], described("The contacts.")]) -> BatchResult:
            return await _stored(info, contacts, "contacts", writes.upsert_contacts)

        @strawberry.mutation(description="Create or update campaigns by id.")
        async def upsert_campaigns(self, info: Info,
                                   campaigns: Annotated[list[CampaignInput], described("The campaigns.")]
                                   ) -> BatchResult:
            return await _stored(info, campaigns, "campaigns", writes.upsert_campaigns)

        @strawberry.mutation(description="Record events; an event id already recorded changes nothing.")
        async def record_events(self, info: Info,
                                events: Annotated[list[EventInput], described("The events.")]) -> BatchResult:
            return await _stored(info, events, "events", writes.record_events)

        @strawberry.mutation(description="Delete contacts and all their events.")
        async def delete_contacts(self, info: Info,
                                  ids: Annotated[list[strawberry.ID], described("Ids of the contacts to delete.")]
                                  ) -> BatchResult:
            return await _stored(info, ids, "ids", writes.delete_contacts)

        @strawberry.mutation(description="Save a rule as a named segment.")
        async def create_segment(self, info: Info, name: Annotated[str, described("Its name.")],
                                 rule: Annotated[RuleInput, described("Its rule.")]  # type: ignore[valid-type]
                                 ) -> Segment:
            ctx = request_context(info)
            # As sent, not ``rule`` coerced: what ``Segment.rule`` gives back (schema/rule_input.py).
            return Segment(doc=await writes.create_segment(ctx.live, ctx.registry, await workspace_facts(info), name,
                                                           sent_value(info, "rule")))

        @strawberry.mutation(description="Rename a segment and/or replace its rule (the old rule is kept as a "
                                          "revision).")
        async def update_segment(self, info: Info, id: Id,
                                 name: Annotated[str | None, described("A new name.")] = None,
                                 rule: Annotated[RuleInput | None,  # type: ignore[valid-type]
                                                 described("A new rule.")] = None
                                 ) -> Segment:
            ctx = request_context(info)
            return Segment(doc=await writes.update_segment(ctx.live, ctx.registry, await workspace_facts(info),
                                                           str(id), name,
                                                           sent_value(info, "rule") if rule is not None else None))

        @strawberry.mutation(description="Freeze a saved segment's current members (e.g. at send time).")
        async def snapshot_segment(self, info: Info, id: Id,
                                   label: Annotated[str, described("A label, e.g. `Black Friday send`.")],
                                   as_of: AsOf = None) -> Snapshot:
            ctx = request_context(info)
            return Snapshot(doc=await snapshots.take_snapshot(ctx.db, ctx.registry, await workspace_facts(info),
                                                              str(id), label, as_of))

        @strawberry.mutation(description="Delete a snapshot; false when there was none with that id.")
        async def delete_snapshot(self, info: Info, id: Id) -> bool:
            ctx = request_context(info)
            return await snapshots.delete_snapshot(ctx.db, ctx.workspace_id, str(id))

        @strawberry.mutation(description="Delete a saved segment with its snapshots and size history; false when "
                                          "there was none with that id.")
        async def delete_segment(self, info: Info, id: Id) -> bool:
            ctx = request_context(info)
            return await writes.delete_segment(ctx.live, ctx.workspace_id, str(id))

    return strawberry.Schema(query=Query, mutation=Mutation, subscription=Subscription,
                             extensions=[ErrorCodes, SentVariables, *(extensions or [])],
                             config=StrawberryConfig(scalar_map=SCALARS))
