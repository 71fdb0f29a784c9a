"""Reading live memberships: a saved segment's stored members and its change log.

``server/live.py`` keeps them current; this module only reads them, for
``Segment.count``/``contacts``/``changes`` without ``asOf`` and for exports.
"""

from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

from .compiler import PAGE_PROJECTION, PAGE_PROJECTION_WITHOUT_STATS
from .database import Database
from .segments import Page


def stored_size(segment: Mapping) -> int | None:
    """How many members the segment has stored, or None when its members
    were never evaluated in full (a segment saved by an earlier version, or
    whose rule no longer compiles): then readers evaluate its rule."""
    membership = segment.get("membership") or {}
    return membership.get("size", 0) if "asOf" in membership else None


async def member_page(db: Database, workspace_id: str, segment_id: str, first: int, after_id: str | None,
                      with_stats: bool = True) -> Page:
    """The ``first`` stored members after the contact id ``after_id``, in id order."""
    ids = await db.member_ids(workspace_id, segment_id, after_id, first + 1)
    shown = ids[:first]
    projection = PAGE_PROJECTION if with_stats else PAGE_PROJECTION_WITHOUT_STATS
    docs = await db.contacts_by_id(workspace_id, shown, projection)
    return Page([docs[i] for i in shown if i in docs], len(ids) > first)


async def contacts_of(db: Database, workspace_id: str, id_batches: AsyncIterator[list[str]],
                      projection: Mapping) -> AsyncGenerator[dict, None]:
    """The contacts of each batch of ids (sorted), in id order, a batch read at a
    time: however many there are, memory holds one batch. An id whose contact
    is gone (a snapshot's member deleted since) is skipped."""
    async for ids in id_batches:
        docs = await db.contacts_by_id(workspace_id, ids, projection)
        for contact_id in ids:
            if contact_id in docs:
                yield docs[contact_id]


@dataclass(frozen=True)
class ChangePage:
    changes: list[dict]  # {seq, segment_id, contact_id, number, change, at, cause}
    has_next: bool
    has_previous: bool


async def changes(db: Database, workspace_id: str, segment_ids: Sequence[str] | None, size: int, after_seq: int = 0,
                  before_seq: int | None = None, newest: bool = False) -> ChangePage:
    """The ``size`` oldest settled changes after position ``after_seq`` (and
    before ``before_seq``), or with ``newest`` the ``size`` newest of them,
    in log order (of these segments, or of the whole workspace): a page never
    skips a change still being stored (``Database._settle``), so its last
    cursor can be followed later without missing one.

    Which side has more is looked up (one item more is read); the other side
    has some when the page starts from a cursor there, as the Relay cursor
    connections specification allows."""
    found = await db.changes_page(workspace_id, segment_ids, after_seq, size + 1, await db.settled_seq(workspace_id),
                                  before_seq, newest)
    more = len(found) > size
    if newest:
        return ChangePage(found[1:] if more else found, has_next=before_seq is not None, has_previous=more)
    return ChangePage(found[:size], has_next=more, has_previous=after_seq > 0)
