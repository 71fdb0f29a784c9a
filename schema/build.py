"""The schema, built at start-up from the condition registry.

``RuleInput`` only exists once the plugins are known, so the root types are
defined inside :func:`build_schema`. Resolvers stay thin: they turn GraphQL
values into plain data, call ``segmentql.server``, and wrap what comes back.
"""

import datetime as dt
from typing import Annotated, Optional

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info
from strawberry.types.nodes import FragmentSpread, InlineFragment

from segmentql.server import ingest, segments
from segmentql.server.compiler import CONTACTS_COLLECTION, CompiledRule, extended_json
from segmentql.server.registry import ConditionRegistry

from .context import request_context
from .errors import ErrorCodes
from .inputs import CampaignInput, ContactInput, EventInput
from .rule_input import build_rule_input, to_document
from .types import BatchResult, ConditionType, Contact, ContactConnection, ContactEdge, CustomField, \
    CustomFieldType, MembershipExplanation, NodeCount, NodeMatch, ObservedValue, PageInfo, json_value

MAX_BATCH = 10_000


def _arg(description: str):
    return strawberry.argument(description=description)


First = Annotated[Optional[int], _arg("Page size, 0-1000 (default 20).")]
After = Annotated[Optional[str], _arg("Cursor of the last item of the previous page.")]
AsOf = Annotated[Optional[dt.datetime], _arg(
    "Evaluate as of this instant (default: now). Today is its UTC calendar day; stored events are not hidden.")]
Id = Annotated[strawberry.ID, _arg("The id.")]


def _batch(items: list, what: str) -> list:
    if len(items) > MAX_BATCH:
        raise segments.BadArgument(f"send at most {MAX_BATCH} {what} per call, got {len(items)}")
    return items


def _selects(selections, path: tuple[str, ...]) -> bool:
    """Whether the query selects ``path`` (field names) below these selections, through fragments too."""
    for selection in selections:
        if isinstance(selection, (FragmentSpread, InlineFragment)):
            if _selects(selection.selections, path):
                return True
        elif selection.name == path[0] and (len(path) == 1 or _selects(selection.selections, path[1:])):
            return True
    return False


async def _contact_page(info: Info, compiled: CompiledRule, first: Optional[int],
                        after: Optional[str]) -> ContactConnection:
    ctx = request_context(info)
    size = segments.page_size(first, ctx.settings.default_page_size, ctx.settings.max_page_size)
    with_stats = _selects(info.selected_fields[0].selections, ("edges", "node", "stats"))
    page = await segments.members(ctx.db, compiled, size, after, with_stats)
    edges = [ContactEdge(cursor=segments.encode_cursor("contact", doc["id"]), node=Contact.from_doc(doc))
             for doc in page.contacts]
    return ContactConnection(edges=edges, page_info=PageInfo(has_next_page=page.has_next,
                                                             end_cursor=edges[-1].cursor if edges else None))


def build_schema(registry: ConditionRegistry, extensions: list | None = None) -> strawberry.Schema:
    """The schema for these conditions; ``extensions`` are added after the error-code one
    (the app passes the request limits from its settings)."""
    RuleInput = build_rule_input(registry)

    @strawberry.type(description="The members of a rule evaluated now (or at `asOf`).")
    class SegmentPreview:
        compiled: strawberry.Private[CompiledRule]

        @strawberry.field(description="How many contacts match.")
        async def count(self, info: Info) -> int:
            return await segments.count(request_context(info).db, self.compiled)

        @strawberry.field(description="The matching contacts, ordered by contact id.")
        async def contacts(self, info: Info,
                           first: First = 20,
                           after: After = None
                           ) -> ContactConnection:
            return await _contact_page(info, self.compiled, first, after)

        @strawberry.field(description="How many contacts each node of the rule matches on its own (root first), "
                                       "computed in one pass: shows which condition shrinks the audience.")
        async def breakdown(self, info: Info) -> list[NodeCount]:
            counts = await segments.breakdown(request_context(info).db, self.compiled)
            return [NodeCount(path=node.path, kind=node.kind, count=count) for node, count in counts]

    @strawberry.type(description="An earlier version of a segment, kept when its rule changed.")
    class SegmentRevision:
        name: str = strawberry.field(description="The segment's name at the time.")
        rule: JSON = strawberry.field(description="The rule it had, in the shape of `RuleInput`.")
        saved_at: dt.datetime = strawberry.field(description="When this version was saved (replaced later).")

    @strawberry.type(description="A saved segment: a named rule.")
    class Segment:
        doc: strawberry.Private[dict]

        @strawberry.field(description="The segment's id.")
        def id(self) -> strawberry.ID:
            return strawberry.ID(self.doc["id"])

        @strawberry.field(description="The segment's name.")
        def name(self) -> str:
            return self.doc["name"]

        @strawberry.field(description="The rule, in the shape of `RuleInput` (load it back into an editor).")
        def rule(self) -> JSON:
            return self.doc["rule"]

        @strawberry.field(description="When it was created.")
        def created_at(self) -> dt.datetime:
            return self.doc["createdAt"]

        @strawberry.field(description="When it was last changed.")
        def updated_at(self) -> dt.datetime:
            return self.doc["updatedAt"]

        @strawberry.field(description="Earlier rules of this segment, oldest first (one per rule change).")
        def revisions(self) -> list[SegmentRevision]:
            return [SegmentRevision(name=r["name"], rule=r["rule"], saved_at=r["savedAt"])
                    for r in self.doc.get("revisions") or []]

        async def _compiled(self, info: Info, as_of: Optional[dt.datetime]) -> CompiledRule:
            ctx = request_context(info)
            return await segments.compile_for(ctx.db, ctx.registry, ctx.workspace_id, self.doc["rule"], as_of)

        @strawberry.field(description="How many contacts are in the segment now (or at `asOf`).")
        async def count(self, info: Info, as_of: AsOf = None) -> int:
            return await segments.count(request_context(info).db, await self._compiled(info, as_of))

        @strawberry.field(description="The segment's contacts, ordered by contact id.")
        async def contacts(self, info: Info,
                           first: First = 20,
                           after: After = None,
                           as_of: AsOf = None
                           ) -> ContactConnection:
            return await _contact_page(info, await self._compiled(info, as_of), first, after)

    @strawberry.type(description="One saved segment in a page, with its cursor.")
    class SegmentEdge:
        cursor: str = strawberry.field(description="Opaque position of this segment.")
        node: Segment = strawberry.field(description="The segment.")

    @strawberry.type(description="A page of saved segments, newest first (Relay connection).")
    class SegmentConnection:
        edges: list[SegmentEdge] = strawberry.field(description="The segments of this page.")
        page_info: PageInfo = strawberry.field(description="Where this page is.")

    async def preview(info: Info, rule, as_of) -> CompiledRule:
        ctx = request_context(info)
        return await segments.compile_for(ctx.db, ctx.registry, ctx.workspace_id, to_document(rule), as_of)

    @strawberry.type(description="Read segments, contacts and the rule language.")
    class Query:
        @strawberry.field(description="Evaluate a rule without saving it: its count and members.")
        async def segment_preview(self, info: Info,
                                  rule: Annotated[RuleInput, _arg("The rule to evaluate.")],
                                  as_of: AsOf = None
                                  ) -> SegmentPreview:
            return SegmentPreview(compiled=await preview(info, rule, as_of))

        @strawberry.field(description="The exact pipeline a rule runs as: "
                                       "{collection, pipeline} in MongoDB relaxed Extended JSON.")
        async def explain_segment(self, info: Info,
                                  rule: Annotated[RuleInput, _arg("The rule to explain.")],
                                  as_of: AsOf = None
                                  ) -> JSON:
            compiled = await preview(info, rule, as_of)
            return {"collection": CONTACTS_COLLECTION, "pipeline": extended_json(compiled.count_pipeline())}

        @strawberry.field(description="Why a contact is or is not in a segment: every node of the rule with "
                                       "whether the contact matches it, decided by the same queries as membership. "
                                       "Give exactly one of `rule` and `segmentId`.")
        async def explain_membership(self, info: Info,
                                     contact_id: Annotated[strawberry.ID, _arg("The contact to explain.")],
                                     rule: Annotated[Optional[RuleInput], _arg("A rule to explain.")] = None,
                                     segment_id: Annotated[Optional[strawberry.ID],
                                                           _arg("A saved segment to explain.")] = None,
                                     as_of: AsOf = None) -> MembershipExplanation:
            ctx = request_context(info)
            if (rule is None) == (segment_id is None):
                raise segments.BadArgument("give exactly one of `rule` and `segmentId`")
            document = (to_document(rule) if rule is not None
                        else (await segments.get_segment(ctx.db, ctx.workspace_id, str(segment_id)))["rule"])
            compiled = await segments.compile_for(ctx.db, ctx.registry, ctx.workspace_id, document, as_of,
                                                  observe=True)
            matches = await segments.membership(ctx.db, compiled, str(contact_id))
            return MembershipExplanation(contact_id=contact_id, member=matches[0].matched, nodes=[
                NodeMatch(path=m.node.path, kind=m.node.kind, matched=m.matched,
                          values=[ObservedValue(label=o.label, value=json_value(v), needed=o.needed)
                                  for o, v in m.values])
                for m in matches])

        @strawberry.field(description="A saved segment by id; null when there is none in this workspace.")
        async def segment(self, info: Info, id: Id) -> Optional[Segment]:
            ctx = request_context(info)
            doc = await ctx.db.segment(ctx.workspace_id, str(id))
            return Segment(doc=doc) if doc else None

        @strawberry.field(description="Saved segments, newest first.")
        async def segments(self, info: Info,
                           first: First = 20,
                           after: After = None
                           ) -> SegmentConnection:
            ctx = request_context(info)
            size = segments.page_size(first, ctx.settings.default_page_size, ctx.settings.max_page_size)
            docs, more = await segments.list_segments(ctx.db, ctx.workspace_id, size, after)
            edges = [SegmentEdge(cursor=segments.segment_cursor(d), node=Segment(doc=d)) for d in docs]
            return SegmentConnection(edges=edges, page_info=PageInfo(
                has_next_page=more, end_cursor=edges[-1].cursor if edges else None))

        @strawberry.field(description="A contact by id, with its engagement; null when there is none.")
        async def contact(self, info: Info, id: Id) -> Optional[Contact]:
            ctx = request_context(info)
            doc = await ctx.db.contact(ctx.workspace_id, str(id))
            return Contact.from_doc(doc) if doc else None

        @strawberry.field(description="The conditions `RuleInput` offers and the plugins providing them.")
        def condition_types(self, info: Info) -> list[ConditionType]:
            return [ConditionType(
                field=field, input_type=entry.condition.input_type.__strawberry_definition__.name,
                plugin=entry.plugin, distribution=entry.distribution, version=entry.version,
                description=entry.condition.description)
                for field, entry in request_context(info).registry.conditions.items()]

    @strawberry.type(description="Change data and saved segments.")
    class Mutation:
        @strawberry.mutation(description="Declare a custom field before importing values for it.")
        async def define_custom_field(self, info: Info,
                                      key: Annotated[str, _arg("Field key, matching ^[a-z][a-z0-9_]{0,63}$.")],
                                      type: Annotated[CustomFieldType, _arg("The field's type.")]
                                      ) -> CustomField:
            ctx = request_context(info)
            created = await ingest.define_custom_field(ctx.db, ctx.workspace_id, key, type.name)
            return CustomField(key=key, type=type, created=created)

        @strawberry.mutation(description="Create or update contacts by id.")
        async def upsert_contacts(self, info: Info, contacts: Annotated[list[ContactInput], _arg("The contacts.")]) -> BatchResult:
            ctx = request_context(info)
            items = [to_document(c, keep_null=True) for c in _batch(contacts, "contacts")]
            return BatchResult.from_result(await ingest.upsert_contacts(ctx.db, ctx.workspace_id, items))

        @strawberry.mutation(description="Create or update campaigns by id.")
        async def upsert_campaigns(self, info: Info, campaigns: Annotated[list[CampaignInput], _arg("The campaigns.")]) -> BatchResult:
            ctx = request_context(info)
            items = [to_document(c, keep_null=True) for c in _batch(campaigns, "campaigns")]
            return BatchResult.from_result(await ingest.upsert_campaigns(ctx.db, ctx.workspace_id, items))

        @strawberry.mutation(description="Record events; an event id already recorded changes nothing.")
        async def record_events(self, info: Info, events: Annotated[list[EventInput], _arg("The events.")]) -> BatchResult:
            ctx = request_context(info)
            items = [to_document(e, keep_null=True) for e in _batch(events, "events")]
            return BatchResult.from_result(await ingest.record_events(ctx.db, ctx.workspace_id, items))

        @strawberry.mutation(description="Delete contacts and all their events.")
        async def delete_contacts(self, info: Info, ids: Annotated[list[strawberry.ID], _arg("Ids of the contacts to delete.")]) -> BatchResult:
            ctx = request_context(info)
            result = await ingest.delete_contacts(ctx.db, ctx.workspace_id, [str(i) for i in _batch(ids, "ids")])
            return BatchResult.from_result(result)

        @strawberry.mutation(description="Save a rule as a named segment.")
        async def create_segment(self, info: Info, name: Annotated[str, _arg("Its name.")],
                                 rule: Annotated[RuleInput, _arg("Its rule.")]) -> Segment:
            ctx = request_context(info)
            return Segment(doc=await segments.create_segment(ctx.db, ctx.registry, ctx.workspace_id, name,
                                                             to_document(rule)))

        @strawberry.mutation(description="Rename a segment and/or replace its rule (the old rule is kept as a "
                                          "revision).")
        async def update_segment(self, info: Info, id: Id,
                name: Annotated[Optional[str], _arg("A new name.")] = None,
                rule: Annotated[Optional[RuleInput], _arg("A new rule.")] = None
        ) -> Segment:
            ctx = request_context(info)
            doc = await segments.update_segment(ctx.db, ctx.registry, ctx.workspace_id, str(id), name,
                                                to_document(rule) if rule is not None else None)
            return Segment(doc=doc)

        @strawberry.mutation(description="Delete a saved segment; false when there was none with that id.")
        async def delete_segment(self, info: Info, id: Id) -> bool:
            ctx = request_context(info)
            return await segments.delete_segment(ctx.db, ctx.workspace_id, str(id))

    return strawberry.Schema(query=Query, mutation=Mutation, extensions=[ErrorCodes, *(extensions or [])])
