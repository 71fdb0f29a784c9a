"""GraphQL types of rules evaluated: a preview's answers, and saved segments
with their revisions, snapshots, sizes, splits and analytics.

None of them depends on ``RuleInput`` (a saved rule comes back as JSON), so
they are built once, here; ``build_schema`` only adds the root fields that
take a rule. A saved segment's fields compile its rule once per request
(``context.compiled_segment``), however many of them a query selects.
"""

import datetime as dt
from typing import Annotated

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from segmentql.server import analytics, segments, snapshots
from segmentql.server.compiler import CompiledRule
from segmentql.server.database import Database

from .arguments import AsOf, described, in_range
from .context import compiled_segment, request_context
from .insight import (
    SegmentAnalytics,
    SegmentSplit,
    SizePoint,
    SizeSource,
    Snapshot,
    SplitSeed,
    SplitVariantInput,
    split_segment,
)
from .pages import After, First, members_page, segment_cursor
from .types import ContactConnection, NodeCount, PageInfo


@strawberry.type(description="The members of a rule evaluated now (or at `asOf`).")
class SegmentPreview:
    compiled: strawberry.Private[CompiledRule]

    @strawberry.field(description="How many contacts match.")
    async def count(self, info: Info) -> int:
        return await segments.count(request_context(info).db, self.compiled)

    @strawberry.field(description="The matching contacts, ordered by contact id.")
    async def contacts(self, info: Info, first: First = 20, after: After = None) -> ContactConnection:
        return await members_page(info, self.compiled, first, after)

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
                for r in await segments.revisions(ctx.db, ctx.workspace_id, self.doc["id"])]

    @strawberry.field(description="How many contacts are in the segment now (or at `asOf`).")
    async def count(self, info: Info, as_of: AsOf = None) -> int:
        return await segments.count(request_context(info).db, await compiled_segment(info, self.doc, as_of))

    @strawberry.field(description="The segment's contacts, ordered by contact id.")
    async def contacts(self, info: Info, first: First = 20, after: After = None, as_of: AsOf = None
                       ) -> ContactConnection:
        return await members_page(info, await compiled_segment(info, self.doc, as_of), first, after)

    @strawberry.field(description="Snapshots of this segment's members, newest first.")
    async def snapshots(self, info: Info) -> list[Snapshot]:
        ctx = request_context(info)
        return [Snapshot(doc=d) for d in await snapshots.snapshots_of(ctx.db, ctx.workspace_id, self.doc["id"])]

    @strawberry.field(description="The segment's recorded sizes, oldest first: one per snapshot and one per "
                                   "`segmentql record-sizes` run.")
    async def size_history(self, info: Info,
                           since: Annotated[dt.datetime | None, described("Only sizes recorded at or after this.")
                                            ] = None,
                           last: Annotated[int, described("At most this many of the newest sizes (1-1000).")] = 100
                           ) -> list[SizePoint]:
        ctx = request_context(info)
        points = await snapshots.size_history(ctx.db, ctx.workspace_id, self.doc["id"], since,
                                              in_range("last", last, 1, ctx.settings.max_page_size))
        return [SizePoint(at=p["at"], size=p["size"], source=SizeSource[p["source"]]) for p in points]

    @strawberry.field(description="An A/B split of the members: each in exactly one variant, by a stable hash "
                                   "of (segment id, seed, contact id).")
    async def split(self, info: Info,
                    variants: Annotated[list[SplitVariantInput], described("The variants and their weights.")],
                    seed: Annotated[SplitSeed, described("Any string or integer; keep it to keep the split.")],
                    as_of: AsOf = None) -> SegmentSplit:
        return split_segment(await compiled_segment(info, self.doc, as_of), self.doc["id"], variants, seed)

    @strawberry.field(description="How the members engaged on the last `withinDays` days: opens, clicks, "
                                   "conversions and their rates, from the engagement rollups.")
    async def analytics(self, info: Info,
                        within_days: Annotated[int, described("The window in UTC days up to `asOf`'s day "
                                                              "(1-3660).")] = 30,
                        as_of: AsOf = None) -> SegmentAnalytics:
        in_range("withinDays", within_days, 1, analytics.MAX_WINDOW_DAYS)
        result = await analytics.analytics(request_context(info).db, await compiled_segment(info, self.doc, as_of),
                                           within_days)
        return SegmentAnalytics(result=result, within_days=within_days)


@strawberry.type(description="One saved segment in a page, with its cursor.")
class SegmentEdge:
    cursor: str = strawberry.field(description="Opaque position of this segment.")
    node: Segment = strawberry.field(description="The segment.")


@strawberry.type(description="A page of saved segments, newest first (Relay connection).")
class SegmentConnection:
    edges: list[SegmentEdge] = strawberry.field(description="The segments of this page.")
    page_info: PageInfo = strawberry.field(description="Where this page is.")

    @classmethod
    def of(cls, docs: list[dict], has_next: bool) -> "SegmentConnection":
        edges = [SegmentEdge(cursor=segment_cursor(d), node=Segment(doc=d)) for d in docs]
        return cls(edges=edges, page_info=PageInfo(has_next_page=has_next,
                                                   end_cursor=edges[-1].cursor if edges else None))
