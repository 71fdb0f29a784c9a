"""The schema, built at start-up from the condition registry.

``RuleInput`` only exists once the plugins are known, so the root types are
defined inside :func:`build_schema`. Resolvers stay thin: they turn GraphQL
values into plain data, call ``segmentql.server``, and wrap what comes back.
"""

import datetime as dt
from typing import Annotated, Optional

import strawberry
from strawberry.scalars import JSON
from strawberry.schema.config import StrawberryConfig
from strawberry.types import Info

from segmentql.server import analytics, ingest, segments, snapshots
from segmentql.server.compiler import CONTACTS_COLLECTION, CompiledRule, extended_json
from segmentql.server.database import Database
from segmentql.server.registry import ConditionRegistry

from .context import request_context, workspace_facts
from .errors import ErrorCodes
from .inputs import CampaignInput, ContactInput, EventInput
from .insight import SCALARS, SegmentAnalytics, SegmentSplit, SizePoint, SizeSource, Snapshot, SnapshotDiff, SplitSeed, \
    SplitVariantInput, split_segment
from .pages import After, First, contact_connection, page_size, wants_stats
from .rule_input import build_rule_input, to_document
from .types import BatchResult, ConditionType, Contact, ContactConnection, CustomField, CustomFieldType, \
    MembershipExplanation, NodeCount, NodeMatch, ObservedValue, PageInfo, json_value

MAX_BATCH = 10_000


def _arg(description: str):
    return strawberry.argument(description=description)


AsOf = Annotated[Optional[dt.datetime], _arg(
    "Evaluate as of this instant (default: now). Today is its UTC calendar day; stored events are not hidden.")]
Id = Annotated[strawberry.ID, _arg("The id.")]


def _batch(items: list, what: str) -> list:
    if len(items) > MAX_BATCH:
        raise segments.BadArgument(f"send at most {MAX_BATCH} {what} per call, got {len(items)}")
    return items


async def _contact_page(info: Info, compiled: CompiledRule, first: Optional[int],
                        after: Optional[str]) -> ContactConnection:
    page = await segments.members(request_context(info).db, compiled, page_size(info, first), after,
                                  wants_stats(info))
    return contact_connection(page)


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

        @strawberry.field(description="Earlier rules of this segment, oldest first (one per rule change; the "
                                       f"newest {Database.SEGMENT_REVISIONS_KEPT} are kept).")
        async def revisions(self, info: Info) -> list[SegmentRevision]:
            ctx = request_context(info)
            return [SegmentRevision(name=r["name"], rule=r["rule"], saved_at=r["savedAt"])
                    for r in await ctx.db.segment_revisions(ctx.workspace_id, self.doc["id"])]

        async def _compiled(self, info: Info, as_of: Optional[dt.datetime]) -> CompiledRule:
            ctx = request_context(info)
            return await segments.compile_for(ctx.db, ctx.registry, await workspace_facts(info), self.doc["rule"], as_of)

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

        @strawberry.field(description="Snapshots of this segment's members, newest first.")
        async def snapshots(self, info: Info) -> list[Snapshot]:
            ctx = request_context(info)
            return [Snapshot(doc=d) for d in await ctx.db.snapshots_of(ctx.workspace_id, self.doc["id"])]

        @strawberry.field(description="The segment's recorded sizes, oldest first: one per snapshot and one per "
                                       "`segmentql record-sizes` run.")
        async def size_history(self, info: Info,
                               since: Annotated[Optional[dt.datetime], _arg("Only sizes recorded at or after this.")
                                                ] = None,
                               last: Annotated[int, _arg("At most this many of the newest sizes (1-1000).")] = 100
                               ) -> list[SizePoint]:
            ctx = request_context(info)
            points = await snapshots.size_history(ctx.db, ctx.workspace_id, self.doc["id"], since, last,
                                                  ctx.settings.max_page_size)
            return [SizePoint(at=p["at"], size=p["size"], source=SizeSource[p["source"]]) for p in points]

        @strawberry.field(description="An A/B split of the members: each in exactly one variant, by a stable hash "
                                       "of (segment id, seed, contact id).")
        async def split(self, info: Info,
                        variants: Annotated[list[SplitVariantInput], _arg("The variants and their weights.")],
                        seed: Annotated[SplitSeed, _arg("Any string or integer; keep it to keep the split.")],
                        as_of: AsOf = None) -> SegmentSplit:
            return split_segment(await self._compiled(info, as_of), self.doc["id"], variants, seed)

        @strawberry.field(description="How the members engaged on the last `withinDays` days: opens, clicks, "
                                       "conversions and their rates, from the engagement rollups.")
        async def analytics(self, info: Info,
                            within_days: Annotated[int, _arg("The window in UTC days up to `asOf`'s day "
                                                             "(1-3660).")] = 30,
                            as_of: AsOf = None) -> SegmentAnalytics:
            result = await analytics.analytics(request_context(info).db, await self._compiled(info, as_of),
                                               segments.effective_as_of(as_of), within_days)
            return SegmentAnalytics(result=result, within_days=within_days)

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
        return await segments.compile_for(ctx.db, ctx.registry, await workspace_facts(info), to_document(rule), as_of)

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
            compiled = await segments.compile_for(ctx.db, ctx.registry, await workspace_facts(info), document, as_of,
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
            size = page_size(info, first)
            docs, more = await segments.list_segments(ctx.db, ctx.workspace_id, size, after)
            edges = [SegmentEdge(cursor=segments.segment_cursor(d), node=Segment(doc=d)) for d in docs]
            return SegmentConnection(edges=edges, page_info=PageInfo(
                has_next_page=more, end_cursor=edges[-1].cursor if edges else None))

        @strawberry.field(description="A snapshot by id; null when there is none in this workspace.")
        async def snapshot(self, info: Info, id: Id) -> Optional[Snapshot]:
            ctx = request_context(info)
            doc = await ctx.db.snapshot(ctx.workspace_id, str(id))
            return Snapshot(doc=doc) if doc else None

        @strawberry.field(description="Who entered and who left between snapshot `a` and snapshot `b` (of the "
                                       "same segment, or of two segments).")
        async def snapshot_diff(self, info: Info,
                                a: Annotated[strawberry.ID, _arg("The earlier snapshot.")],
                                b: Annotated[strawberry.ID, _arg("The later snapshot.")]) -> SnapshotDiff:
            ctx = request_context(info)
            return SnapshotDiff(result=await snapshots.diff(ctx.db, ctx.workspace_id, str(a), str(b)))

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
                                      type: Annotated[CustomFieldType, _arg("The field's type.")],
                                      indexed: Annotated[bool, _arg(
                                          "Index the field, so selective rules on it read only the contacts "
                                          "that match (declare an existing field again with `indexed: true` to "
                                          "add one). Each index slows every contact write a little: index the "
                                          "fields segments filter on.")] = False
                                      ) -> CustomField:
            ctx = request_context(info)
            created = await ingest.define_custom_field(ctx.db, ctx.workspace_id, key, type.name, indexed)
            return CustomField(key=key, type=type, created=created)

        @strawberry.mutation(description="Create or update contacts by id.")
        async def upsert_contacts(self, info: Info, contacts: Annotated[list[ContactInput], _arg("The contacts.")]) -> BatchResult:
            ctx = request_context(info)
            items = [to_document(c, keep_null=True) for c in _batch(contacts, "contacts")]
            result = await ingest.upsert_contacts(ctx.db, ctx.workspace_id, items)
            return BatchResult.from_result(result)

        @strawberry.mutation(description="Create or update campaigns by id.")
        async def upsert_campaigns(self, info: Info, campaigns: Annotated[list[CampaignInput], _arg("The campaigns.")]) -> BatchResult:
            ctx = request_context(info)
            items = [to_document(c, keep_null=True) for c in _batch(campaigns, "campaigns")]
            return BatchResult.from_result(await ingest.upsert_campaigns(ctx.db, ctx.workspace_id, items))

        @strawberry.mutation(description="Record events; an event id already recorded changes nothing.")
        async def record_events(self, info: Info, events: Annotated[list[EventInput], _arg("The events.")]) -> BatchResult:
            ctx = request_context(info)
            items = [to_document(e, keep_null=True) for e in _batch(events, "events")]
            result = await ingest.record_events(ctx.db, ctx.workspace_id, items)
            return BatchResult.from_result(result)

        @strawberry.mutation(description="Delete contacts and all their events.")
        async def delete_contacts(self, info: Info, ids: Annotated[list[strawberry.ID], _arg("Ids of the contacts to delete.")]) -> BatchResult:
            ctx = request_context(info)
            result = await ingest.delete_contacts(ctx.db, ctx.workspace_id, [str(i) for i in _batch(ids, "ids")])
            return BatchResult.from_result(result)

        @strawberry.mutation(description="Save a rule as a named segment.")
        async def create_segment(self, info: Info, name: Annotated[str, _arg("Its name.")],
                                 rule: Annotated[RuleInput, _arg("Its rule.")]) -> Segment:
            ctx = request_context(info)
            return Segment(doc=await segments.create_segment(ctx.db, ctx.registry, await workspace_facts(info), name,
                                                             to_document(rule)))

        @strawberry.mutation(description="Rename a segment and/or replace its rule (the old rule is kept as a "
                                          "revision).")
        async def update_segment(self, info: Info, id: Id,
                name: Annotated[Optional[str], _arg("A new name.")] = None,
                rule: Annotated[Optional[RuleInput], _arg("A new rule.")] = None
        ) -> Segment:
            ctx = request_context(info)
            doc = await segments.update_segment(ctx.db, ctx.registry, await workspace_facts(info), str(id), name,
                                                to_document(rule) if rule is not None else None)
            return Segment(doc=doc)

        @strawberry.mutation(description="Freeze a saved segment's current members (e.g. at send time).")
        async def snapshot_segment(self, info: Info, id: Id,
                                   label: Annotated[str, _arg("A label, e.g. `Black Friday send`.")],
                                   as_of: AsOf = None) -> Snapshot:
            ctx = request_context(info)
            return Snapshot(doc=await snapshots.take_snapshot(ctx.db, ctx.registry, await workspace_facts(info), str(id),
                                                              label, as_of))

        @strawberry.mutation(description="Delete a snapshot; false when there was none with that id.")
        async def delete_snapshot(self, info: Info, id: Id) -> bool:
            ctx = request_context(info)
            return await ctx.db.delete_snapshot(ctx.workspace_id, str(id))

        @strawberry.mutation(description="Delete a saved segment with its snapshots and size history; false when "
                                          "there was none with that id.")
        async def delete_segment(self, info: Info, id: Id) -> bool:
            ctx = request_context(info)
            return await segments.delete_segment(ctx.db, ctx.workspace_id, str(id))

    return strawberry.Schema(query=Query, mutation=Mutation, extensions=[ErrorCodes, *(extensions or [])],
                             config=StrawberryConfig(scalar_map=SCALARS))
