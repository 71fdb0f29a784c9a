"""GraphQL types of rules evaluated: a preview's answers, and saved segments
with their revisions, snapshots, sizes, splits and analytics.

None of them depends on ``RuleInput`` (a saved rule comes back as JSON), so
they are built once, here; ``build_schema`` only adds the root fields that
take a rule. A saved segment's fields compile its rule once per request
(``context.compiled_segment``), however many of them a query selects.
"""

import datetime as dt
import enum
from typing import Annotated

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from segmentql.server import analytics, membership, segments, snapshots
from segmentql.server.compiler import CompiledRule
from segmentql.server.cursors import change_cursor, change_position
from segmentql.server.database import Database
from segmentql.server.errors import BadArgument
from segmentql.server.live import Cause

from .arguments import AsOf, described, in_range, sent
from .context import compiled_segment, request_context
from .insight import (
    SegmentAnalytics,
    SegmentSplit,
    SizePoint,
    SizeSource,
    Snapshot,
    SplitVariantInput,
    split_segment,
)
from .pages import (
    After,
    First,
    after_contact,
    contact_connection,
    members_page,
    page_size,
    segment_cursor,
    wants_stats,
)
from .scalars import SplitSeed
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


# The causes server/live.py logs, each described by its value there.
ChangeCause = strawberry.enum(  # type: ignore[call-overload]  # an Enum made by the functional API
    enum.Enum("ChangeCause", {c.name: strawberry.enum_value(c.name, description=c.value) for c in Cause}),
    description="Why a contact entered or left a segment.")


@strawberry.enum(description="Whether a contact entered or left a segment.")
class ChangeKind(enum.Enum):
    ENTERED = strawberry.enum_value("ENTERED", description="The contact became a member.")
    LEFT = strawberry.enum_value("LEFT", description="The contact stopped being a member.")


@strawberry.type(description="How current a saved segment's stored members are. Every write re-evaluates the "
                             "contacts it touches, so the members follow the data; time moves them too, and "
                             "the service evaluates every segment again when the UTC day changes.")
class SegmentMembership:
    as_of: dt.datetime | None = strawberry.field(description=(
        "The instant the whole membership was last evaluated as of: the segment's creation or rule change, "
        "the day's refresh, or `segmentql refresh-segments --as-of`. Writes since then evaluated the "
        "contacts they touched as of their own time. Null until a first full evaluation."))
    updated_at: dt.datetime | None = strawberry.field(description=(
        "When a member last entered or left, or the membership was last evaluated in full."))


@strawberry.type(description="One change of a saved segment's members, from its log.")
class SegmentChange:
    segment_id: strawberry.ID = strawberry.field(description="The segment.")
    contact_id: strawberry.ID = strawberry.field(description="The contact that entered or left.")
    change: ChangeKind = strawberry.field(description="Entered or left.")
    at: dt.datetime = strawberry.field(description="When: the write's time, or the instant a refresh was as of.")
    cause: ChangeCause = strawberry.field(description="What made the membership change.")  # type: ignore[valid-type]

    @classmethod
    def of(cls, doc: dict) -> "SegmentChange":
        return cls(segment_id=strawberry.ID(doc["segment_id"]), contact_id=strawberry.ID(doc["contact_id"]),
                   change=ChangeKind[doc["change"]], at=doc["at"], cause=ChangeCause[doc["cause"]])


@strawberry.type(description="A change of a saved segment's members, sent as it is logged (`segmentChanges`).")
class SegmentChangeEvent(SegmentChange):
    cursor: str = strawberry.field(description=(
        "Its position in the log, which also identifies it: subscribe again with `after` set to the last "
        "cursor you handled to get every later change, none missed and none twice."))

    @classmethod
    def of(cls, doc: dict) -> "SegmentChangeEvent":
        change = SegmentChange.of(doc)
        return cls(cursor=change_cursor(doc["seq"]), **vars(change))


# The changes a page of a segment's log holds when neither `first` nor `last` is given (SPEC section 9).
CHANGES_PAGE = 100


@strawberry.type(description="A logged change with its cursor.")
class SegmentChangeEdge:
    cursor: str = strawberry.field(description="Its position in the log: resume after it with `after`.")
    node: SegmentChange = strawberry.field(description="The change.")


@strawberry.type(description="A page of a segment's change log, oldest first (Relay connection).")
class SegmentChangeConnection:
    edges: list[SegmentChangeEdge] = strawberry.field(description="The changes of this page, in log order.")
    page_info: PageInfo = strawberry.field(description="Where this page is.")

    @classmethod
    def of(cls, page: membership.ChangePage) -> "SegmentChangeConnection":
        edges = [SegmentChangeEdge(cursor=change_cursor(c["seq"]), node=SegmentChange.of(c)) for c in page.changes]
        return cls(edges=edges, page_info=PageInfo.between(edges, page.has_previous, page.has_next))


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

    @strawberry.field(description="How many contacts are in the segment: its stored members (see `membership`), "
                                   "or with `asOf` its rule evaluated at that instant.")
    async def count(self, info: Info, as_of: AsOf = None) -> int:
        stored = membership.stored_size(self.doc)
        if as_of is None and stored is not None:
            return stored
        return await segments.count(request_context(info).db, await compiled_segment(info, self.doc, as_of))

    @strawberry.field(description="The segment's contacts, ordered by contact id: its stored members, or with "
                                   "`asOf` its rule evaluated at that instant.")
    async def contacts(self, info: Info, first: First = 20, after: After = None, as_of: AsOf = None
                       ) -> ContactConnection:
        if as_of is None and membership.stored_size(self.doc) is not None:
            ctx = request_context(info)
            page = await membership.member_page(ctx.db, ctx.workspace_id, self.doc["id"], page_size(info, first),
                                                after_contact(after), wants_stats(info))
            return contact_connection(page, after)
        return await members_page(info, await compiled_segment(info, self.doc, as_of), first, after)

    @strawberry.field(description="How current the stored members are.")
    def membership(self) -> SegmentMembership:
        stored = self.doc.get("membership") or {}
        return SegmentMembership(as_of=stored.get("asOf"), updated_at=stored.get("updatedAt"))

    @strawberry.field(description=(
        "The log of the segment's membership changes, oldest first: replaying it from the start gives its "
        "members. Page forward from the oldest with `first` and `after` (resume from a cursor), or backward from "
        f"the newest with `last` and `before`; without either size, the oldest {CHANGES_PAGE}. A page lists its "
        "changes oldest first either way."))
    async def changes(self, info: Info,
                      first: Annotated[int, described(
                          "Page size, 0-1000: the oldest changes (after `after`). Not with `last`.")] = CHANGES_PAGE,
                      after: After = None,
                      last: Annotated[int | None, described(
                          "Page size, 0-1000: the newest changes (before `before`), listed oldest first. Not "
                          "with `first`.")] = None,
                      before: Annotated[str | None, described(
                          "Cursor of the first item of the next page (its `pageInfo.startCursor`): only changes "
                          "logged before it.")] = None) -> SegmentChangeConnection:
        # `first` has the default SPEC section 9 gives it, so whether a client sent it is read from the document.
        if last is not None and sent(info, "first"):
            raise BadArgument("give `first` (the oldest changes) or `last` (the newest), not both")
        ctx = request_context(info)
        size = (page_size(info, first) if last is None
                else in_range("last", last, 0, ctx.settings.max_page_size))
        before_seq = change_position(before, "before") if before else None
        page = await membership.changes(ctx.db, ctx.workspace_id, [self.doc["id"]], size, change_position(after),
                                        before_seq, newest=last is not None)
        return SegmentChangeConnection.of(page)

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
    def of(cls, docs: list[dict], has_next: bool, after: str | None) -> "SegmentConnection":
        edges = [SegmentEdge(cursor=segment_cursor(d), node=Segment(doc=d)) for d in docs]
        return cls(edges=edges, page_info=PageInfo.of(edges, has_next, after))
