"""GraphQL types of segment insight: snapshots and their diffs, size history,
A/B splits and engagement analytics. Resolvers call
``segmentql.server.snapshots`` / ``splits`` / ``analytics``."""

import asyncio
import datetime as dt
import enum

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from segmentql.server import analytics, snapshots, splits
from segmentql.server.compiler import CompiledRule

from .context import request_context
from .pages import After, First, after_contact, contact_connection, id_connection, page_size, wants_stats, wants_total
from .types import ContactConnection, ContactIdConnection


@strawberry.type(description="A saved segment's members frozen at one moment (e.g. when a campaign was sent).")
class Snapshot:
    doc: strawberry.Private[dict]

    @strawberry.field(description="The snapshot's id.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.doc["id"])

    @strawberry.field(description="Its label, e.g. `Black Friday send`.")
    def label(self) -> str:
        return self.doc["label"]

    @strawberry.field(description="The segment it froze.")
    def segment_id(self) -> strawberry.ID:
        return strawberry.ID(self.doc["segment_id"])

    @strawberry.field(description="The segment's name at the time.")
    def segment_name(self) -> str:
        return self.doc["segmentName"]

    @strawberry.field(description="The segment's rule at the time, in the shape of `RuleInput`.")
    def rule(self) -> JSON:
        return self.doc["rule"]

    @strawberry.field(description="When it was taken.")
    def taken_at(self) -> dt.datetime:
        return self.doc["takenAt"]

    @strawberry.field(description="The instant the rule was evaluated at (the `asOf` given, else `takenAt`).")
    def as_of(self) -> dt.datetime:
        return self.doc["asOf"]

    @strawberry.field(description="How many contacts it holds.")
    def size(self) -> int:
        return self.doc["size"]

    @strawberry.field(description="Ids of the contacts it holds, in id order (including contacts deleted since).")
    async def member_ids(self, info: Info, first: First = 100, after: After = None) -> ContactIdConnection:
        ctx = request_context(info)
        page = await snapshots.member_page(ctx.db, ctx.workspace_id, self.doc["id"], page_size(info, first),
                                           after_contact(after))
        return id_connection(page, self.doc["size"], after)


@strawberry.type(description="Who entered and who left a segment between two snapshots.")
class SnapshotDiff:
    result: strawberry.Private[snapshots.SnapshotDiff]

    @strawberry.field(description="The earlier snapshot (`a`).")
    def a(self) -> Snapshot:
        return Snapshot(doc=self.result.before)

    @strawberry.field(description="The later snapshot (`b`).")
    def b(self) -> Snapshot:
        return Snapshot(doc=self.result.after)

    # A diff's totals cost a pass over both snapshots, so they are counted only
    # when ``totalCount`` is selected (an unselected 0 is never shown).

    @strawberry.field(description="Contacts in `b` but not in `a`, in id order.")
    async def entered(self, info: Info, first: First = 100, after: After = None) -> ContactIdConnection:
        page = await self.result.entered(page_size(info, first), after_contact(after))
        return id_connection(page, await self.result.entered_count() if wants_total(info) else 0, after)

    @strawberry.field(description="Contacts in `a` but not in `b`, in id order.")
    async def left(self, info: Info, first: First = 100, after: After = None) -> ContactIdConnection:
        page = await self.result.left(page_size(info, first), after_contact(after))
        return id_connection(page, await self.result.left_count() if wants_total(info) else 0, after)

    @strawberry.field(description="How many contacts are in both.")
    async def stayed_count(self) -> int:
        return await self.result.stayed()


@strawberry.enum(description="How a size was recorded.")
class SizeSource(enum.Enum):
    SNAPSHOT = strawberry.enum_value("SNAPSHOT", description="by `snapshotSegment`")
    RECORDED = strawberry.enum_value("RECORDED", description="by `segmentql record-sizes` (e.g. a daily cron job)")


@strawberry.type(description="The size of a segment at one moment.")
class SizePoint:
    at: dt.datetime = strawberry.field(description="When the size was measured.")
    size: int = strawberry.field(description="How many contacts the segment had.")
    source: SizeSource = strawberry.field(description="What recorded it.")


@strawberry.input(description="One variant of an A/B split.")
class SplitVariantInput:
    name: str = strawberry.field(description="The variant's name, unique in the split, e.g. `A`.")
    weight: float = strawberry.field(description="Its relative share (above 0), e.g. 50 and 50, or 0.9 and 0.1.")


class _Split:
    """One split of one request: the variants' counts are computed once, and
    only when a variant's ``count`` is asked for (paging needs no counts)."""

    def __init__(self, compiled: CompiledRule, splitter: splits.Splitter):
        self.compiled, self.splitter = compiled, splitter
        self._counts: asyncio.Future | None = None

    async def counts(self, info: Info) -> list[int]:
        if self._counts is None:
            self._counts = asyncio.ensure_future(
                splits.variant_counts(request_context(info).db, self.compiled, self.splitter))
        return await self._counts


@strawberry.type(description="One variant of a split and the members assigned to it.")
class SplitVariant:
    split: strawberry.Private[_Split]
    index: strawberry.Private[int]
    name: str = strawberry.field(description="The variant's name.")
    weight: float = strawberry.field(description="Its weight as given.")
    share: float = strawberry.field(description="Its weight divided by the sum of the weights.")

    @strawberry.field(description="How many members it has.")
    async def count(self, info: Info) -> int:
        return (await self.split.counts(info))[self.index]

    @strawberry.field(description="Its members, in id order.")
    async def contacts(self, info: Info, first: First = 20, after: After = None) -> ContactConnection:
        split = self.split
        page = await splits.variant_members(request_context(info).db, split.compiled, split.splitter, self.index,
                                            page_size(info, first), after_contact(after), wants_stats(info))
        return contact_connection(page, after)


@strawberry.type(description="A segment's members split into variants by a stable hash of (segment id, seed, "
                              "contact id): the same inputs always give the same assignment, and contacts "
                              "joining or leaving the segment move nobody else.")
class SegmentSplit:
    seed: str = strawberry.field(description="The seed the split was made with.")
    variants: list[SplitVariant] = strawberry.field(description="The variants, in the order given.")


def split_segment(compiled: CompiledRule, segment_id: str, variants: list[SplitVariantInput], seed: str
                  ) -> SegmentSplit:
    given = [splits.Variant(v.name, v.weight) for v in variants]
    split = _Split(compiled, splits.Splitter(segment_id, seed, given))
    total = sum(v.weight for v in given)
    return SegmentSplit(seed=seed, variants=[
        SplitVariant(split=split, index=i, name=v.name, weight=v.weight, share=v.weight / total)
        for i, v in enumerate(given)])


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@strawberry.type(description="How a segment's members engaged on the last N days, from the engagement rollups. "
                              "Rates are shares of contacts (null when there are none to divide by).")
class SegmentAnalytics:
    result: strawberry.Private[analytics.Analytics]
    within_days: int = strawberry.field(description="The window's length in UTC days.")

    @strawberry.field(name="from", description="The window's first UTC day.")
    def from_(self) -> dt.date:
        return self.result.first_day

    @strawberry.field(description="The window's last UTC day (the day of `asOf`).")
    def to(self) -> dt.date:
        return self.result.last_day

    @strawberry.field(description="Contacts in the segment (now, or at `asOf`).")
    def members(self) -> int:
        return self.result.members

    @strawberry.field(description="Emails received in the window: campaigns sent in it that members received.")
    def received(self) -> int:
        return self.result.received

    @strawberry.field(description="OPEN events of members in the window.")
    def opens(self) -> int:
        return self.result.opens

    @strawberry.field(description="CLICK events of members in the window.")
    def clicks(self) -> int:
        return self.result.clicks

    @strawberry.field(description="CONVERSION events of members in the window.")
    def conversions(self) -> int:
        return self.result.conversions

    @strawberry.field(description="Members with at least one open in the window.")
    def openers(self) -> int:
        return self.result.openers

    @strawberry.field(description="Members with at least one click in the window.")
    def clickers(self) -> int:
        return self.result.clickers

    @strawberry.field(description="Members with at least one conversion in the window.")
    def converters(self) -> int:
        return self.result.converters

    @strawberry.field(description="openers / members.")
    def open_rate(self) -> float | None:
        return _rate(self.result.openers, self.result.members)

    @strawberry.field(description="clickers / members.")
    def click_rate(self) -> float | None:
        return _rate(self.result.clickers, self.result.members)

    @strawberry.field(description="clickers / openers.")
    def click_to_open_rate(self) -> float | None:
        return _rate(self.result.clickers, self.result.openers)

    @strawberry.field(description="converters / members.")
    def conversion_rate(self) -> float | None:
        return _rate(self.result.converters, self.result.members)
