"""A/B splits: every member of a segment in exactly one variant, by a stable
hash of (segment id, seed, contact id).

The hash makes an assignment a pure function of those three values and the
weights: the same inputs always give the same variants, and a contact added
to (or removed from) the segment moves nobody else. SHA-256 spreads ids
uniformly, so each variant receives its share of members within binomial
tolerance. Nothing is stored; a split is recomputed on demand in one pass
over the members' ids.
"""

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

from .compiler import CompiledRule
from .database import Database
from .segments import BadArgument, Page, decode_cursor

MAX_VARIANTS = 100


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
        point = position(self.segment_id, self.seed, contact_id)
        return next(i for i, bound in enumerate(self.bounds) if point < bound)


async def variant_counts(db: Database, compiled: CompiledRule, splitter: Splitter) -> list[int]:
    counts = [0] * len(splitter.bounds)
    for doc in await db.aggregate_contacts(compiled.ids_pipeline()):
        counts[splitter.variant_of(doc["id"])] += 1
    return counts


async def variant_members(db: Database, compiled: CompiledRule, splitter: Splitter, variant: int, first: int,
                          after: str | None, with_stats: bool) -> Page:
    """A page of one variant's members in id order: members are read in id
    order and those of other variants skipped, stopping after ``first + 1``."""
    after_id = decode_cursor("contact", after) if after else None
    found: list[dict] = []
    if first == 0:
        return Page([], False)
    async for doc in db.stream_contacts(compiled.page_pipeline(after_id, None, with_stats)):
        if splitter.variant_of(doc["id"]) == variant:
            found.append(doc)
            if len(found) > first:
                break
    return Page(found[:first], len(found) > first)
