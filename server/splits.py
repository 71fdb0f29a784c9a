"""A/B splits: every member of a segment in exactly one variant, by a stable
hash of (segment id, seed, contact id).

The hash makes an assignment a pure function of those three values and the
weights: the same inputs always give the same variants, and a contact added
to (or removed from) the segment moves nobody else. SHA-256 spreads ids
uniformly, so each variant receives its share of members within binomial
tolerance. Nothing is stored; a split is recomputed on demand in one pass
over the members' ids.

A segment can have millions of members, and hashing them is CPU work that
would stall every other request if it ran on the event loop. So ids are read
from a cursor and handed, ``ID_BATCH`` at a time, to a worker thread that
hashes them: memory stays at one batch, and the loop only moves ids along.
"""

import asyncio
import bisect
import hashlib
import math
import sys
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass

from .compiler import PAGE_PROJECTION, PAGE_PROJECTION_WITHOUT_STATS, CompiledRule
from .database import Database
from .errors import BadArgument
from .segments import Page, stream

MAX_VARIANTS = 100
# Ids hashed in one worker-thread call: a few milliseconds of work.
ID_BATCH = 2000


@dataclass(frozen=True)
class Variant:
    name: str
    weight: float


def check_variants(variants: Sequence[Variant], seed: str) -> None:
    if not 1 <= len(variants) <= MAX_VARIANTS:
        raise BadArgument(f"a split needs 1 to {MAX_VARIANTS} variants, got {len(variants)}")
    names = [v.name for v in variants]
    if any(not n.strip() or len(n) > 200 for n in names):
        raise BadArgument("variant names must be 1 to 200 characters and not blank")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise BadArgument(f"variant names must differ; repeated: {', '.join(map(repr, duplicates))}")
    for v in variants:
        if not (math.isfinite(v.weight) and v.weight > 0):
            raise BadArgument(f"variant {v.name!r} needs a weight above 0, got {v.weight}")
    # Each variant's share is its weight over the sum: a sum past the largest
    # float (two weights of 1e308) would make every share 0 (or NaN).
    if not math.isfinite(sum(v.weight for v in variants)):
        raise BadArgument(f"the weights must add up to at most {sys.float_info.max:.6g}; they are relative, "
                          f"e.g. 1 and 3 for a quarter and three quarters")
    if len(seed) > 200:
        raise BadArgument("`seed` may be at most 200 characters")


def position(segment_id: str, seed: str, contact_id: str) -> float:
    """The contact's point in [0, 1) for this segment and seed."""
    digest = hashlib.sha256("\x1f".join((segment_id, seed, contact_id)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class Splitter:
    """Maps contact ids to variant indexes: variant i owns the slice of [0, 1)
    proportional to its weight, in the order the variants were given."""

    def __init__(self, segment_id: str, seed: str, variants: Sequence[Variant]):
        check_variants(variants, seed)
        self.segment_id, self.seed = segment_id, seed
        total = sum(v.weight for v in variants)
        bounds, running = [], 0.0
        for v in variants:
            running += v.weight
            bounds.append(running / total)
        bounds[-1] = 1.0  # no contact falls past the last slice through rounding
        self.bounds = bounds

    def variant_of(self, contact_id: str) -> int:
        return bisect.bisect_right(self.bounds, position(self.segment_id, self.seed, contact_id))

    def tally(self, contact_ids: Sequence[str]) -> list[int]:
        """How many of ``contact_ids`` each variant gets (CPU work: run it off the loop)."""
        counts = [0] * len(self.bounds)
        for contact_id in contact_ids:
            counts[self.variant_of(contact_id)] += 1
        return counts

    def members_of(self, variant: int, contact_ids: Sequence[str]) -> list[str]:
        """Those of ``contact_ids`` in ``variant``, in their order (CPU work: run it off the loop)."""
        return [c for c in contact_ids if self.variant_of(c) == variant]


async def id_batches(db: Database, compiled: CompiledRule, pipeline: list[dict]) -> AsyncGenerator[list[str], None]:
    """The ``id`` of each document of ``pipeline`` (one of ``compiled``'s), in lists of ``ID_BATCH``."""
    batch: list[str] = []
    async with aclosing(stream(db, compiled, pipeline)) as docs:
        async for doc in docs:
            batch.append(doc["id"])
            if len(batch) == ID_BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


async def variant_counts(db: Database, compiled: CompiledRule, splitter: Splitter) -> list[int]:
    """Members per variant, from the members' ids read unsorted (order does not change a count)."""
    counts = [0] * len(splitter.bounds)
    pipeline = compiled.members_then({"$project": {"_id": 0, "id": 1}})
    async with aclosing(id_batches(db, compiled, pipeline)) as batches:
        async for batch in batches:
            for i, n in enumerate(await asyncio.to_thread(splitter.tally, batch)):
                counts[i] += n
    return counts


async def variant_members(db: Database, compiled: CompiledRule, splitter: Splitter, variant: int, first: int,
                          after_id: str | None, with_stats: bool) -> Page:
    """A page of one variant's members in id order, after the contact id ``after_id``.

    The members' ids (not their documents) are read in id order from the
    cursor on, those of other variants skipped, until ``first + 1`` of the
    variant are found; then only the ``first`` found are read whole. Memory
    stays at one batch of ids plus the page however small the variant's
    weight: filling a page of a variant of weight 0.001 may read through the
    whole segment, but never holds it."""
    later = [] if after_id is None else [{"$match": {"id": {"$gt": after_id}}}]
    pipeline = compiled.members_then(*later, {"$project": {"_id": 0, "id": 1}}, {"$sort": {"id": 1}})
    found: list[str] = []
    async with aclosing(id_batches(db, compiled, pipeline)) as batches:
        async for batch in batches:
            found += await asyncio.to_thread(splitter.members_of, variant, batch)
            if len(found) > first:
                break
    page = found[:first]
    projection = PAGE_PROJECTION if with_stats else PAGE_PROJECTION_WITHOUT_STATS
    docs = await db.contacts_by_id(compiled.workspace_id, page, projection)
    # A contact deleted between the two reads is left out rather than shown empty.
    return Page([docs[c] for c in page if c in docs], len(found) > first)
