"""Snapshots: a saved segment's member ids frozen at one moment (say, when a
campaign was sent), who entered and who left between two snapshots, and the
segment's size over time.

Members are stored as ids only: a snapshot answers "who was in it", even for
contacts deleted since. Every snapshot also records the segment's size, and
``segmentql record-sizes`` (for cron) records the size of every saved segment
without keeping members, so ``sizeHistory`` has a point per run.

A snapshot may hold millions of ids, so none is ever held whole: its ids are
written chunk by chunk as they are read, stored in id order, and read back a
chunk at a time. A page starts at the chunk holding its cursor; a diff walks
the two sorted id streams side by side (a merge), in a worker thread one
stretch of two chunks at a time, so memory stays at two chunks and the event
loop is never held for long.
"""

import asyncio
import bisect
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, aclosing
from dataclasses import dataclass

from segmentql.plugins.registry import ConditionRegistry

from .compiler import compile_rule_for, effective_as_of
from .database import Database, Workspace, now
from .errors import ConditionFailed, InvalidRule, NotFound
from .segments import check_label, count, get_segment, stream

SNAPSHOT, RECORDED = "SNAPSHOT", "RECORDED"


@dataclass(frozen=True)
class IdPage:
    ids: list[str]
    has_next: bool

    @classmethod
    def of(cls, found: list[str], first: int) -> "IdPage":
        """The page of ``first`` ids from up to ``first + 1`` found: an extra one means there is a next page."""
        return cls(found[:first], len(found) > first)


async def take_snapshot(db: Database, registry: ConditionRegistry, workspace: Workspace, segment_id: str,
                        label: str, as_of: dt.datetime | None) -> dict:
    """Freeze the segment's members now (evaluated at ``as_of``, default now)."""
    workspace_id = workspace.id
    segment = await get_segment(db, workspace_id, segment_id)
    label = check_label(label, "a snapshot label")
    compiled = compile_rule_for(registry, workspace, segment["rule"], as_of)
    doc = {"workspace_id": workspace_id, "id": str(uuid.uuid4()), "segment_id": segment_id, "label": label,
           "takenAt": now(), "asOf": compiled.as_of, "rule": segment["rule"],
           "segmentName": segment["name"]}
    async with aclosing(stream(db, compiled, compiled.ids_pipeline())) as members:
        doc = await db.insert_snapshot(doc, (member["id"] async for member in members))
    await db.record_size(workspace_id, segment_id, doc["takenAt"], doc["size"], SNAPSHOT)
    return doc


async def find_snapshot(db: Database, workspace_id: str, snapshot_id: str) -> dict | None:
    return await db.snapshot(workspace_id, snapshot_id)


async def get_snapshot(db: Database, workspace_id: str, snapshot_id: str) -> dict:
    doc = await find_snapshot(db, workspace_id, snapshot_id)
    if doc is None:
        raise NotFound(f"no snapshot with id {snapshot_id!r} in this workspace")
    return doc


async def snapshots_of(db: Database, workspace_id: str, segment_id: str) -> list[dict]:
    """The segment's snapshots, newest first."""
    return await db.snapshots_of(workspace_id, segment_id)


async def delete_snapshot(db: Database, workspace_id: str, snapshot_id: str) -> bool:
    """False when there was no such snapshot."""
    return await db.delete_snapshot(workspace_id, snapshot_id)


async def member_page(db: Database, workspace_id: str, snapshot_id: str, first: int, after_id: str | None) -> IdPage:
    """A page of a snapshot's member ids after the contact id ``after_id``,
    read from the chunk that holds it on."""
    found: list[str] = []
    async with aclosing(db.snapshot_chunks(workspace_id, snapshot_id, after_id)) as chunks:
        async for ids in chunks:
            start = bisect.bisect_right(ids, after_id) if after_id is not None else 0
            found += ids[start:start + first + 1 - len(found)]
            if len(found) > first:
                break
    return IdPage.of(found, first)


class _Reader:
    """A snapshot's ids after a cursor id, read chunk by chunk: the chunk
    being read and the position in it."""

    def __init__(self, chunks: AsyncIterator[list[str]], after_id: str | None):
        self.chunks, self.after_id = chunks, after_id
        self.ids: list[str] = []
        self.pos = 0

    async def more(self) -> bool:
        """Whether any id is left, reading the next chunk once this one is used up."""
        while self.pos == len(self.ids):
            ids = await anext(self.chunks, None)
            if ids is None:
                return False
            self.ids = ids
            self.pos = bisect.bisect_right(ids, self.after_id) if self.after_id is not None else 0
        return True


def _walk(x: list[str], i: int, y: list[str], j: int, room: int) -> tuple[int, int, list[str], int]:
    """Merge step over the sorted ids ``x[i:]`` and ``y[j:]``: walk both
    until either is used up or ``room`` ids found only in ``x``. Returns the
    new ``i`` and ``j``, the ids only in ``x`` and how many ids both hold.
    CPU work on up to two chunks: run it off the event loop."""
    only_x: list[str] = []
    both = 0
    while i < len(x) and j < len(y) and len(only_x) < room:
        if x[i] < y[j]:
            only_x.append(x[i])
            i += 1
        elif y[j] < x[i]:
            j += 1
        else:
            both += 1
            i += 1
            j += 1
    return i, j, only_x, both


class SnapshotDiff:
    """Who is in ``after`` but not in ``before`` (entered) and the reverse
    (left), in id order. Nothing is kept: each page is read by a merge that
    starts at its cursor and stops once the page is full, and the counts by
    one merge over both snapshots, made at most once per diff (the counts
    follow from how many ids both hold and the snapshots' sizes)."""

    def __init__(self, db: Database, workspace_id: str, before: dict, after: dict):
        self.db, self.workspace_id, self.before, self.after = db, workspace_id, before, after
        self._stayed: asyncio.Future[int] | None = None

    async def stayed(self) -> int:
        if self._stayed is None:
            self._stayed = asyncio.ensure_future(self._count_stayed())
        return await self._stayed

    async def entered_count(self) -> int:
        return self.after["size"] - await self.stayed()

    async def left_count(self) -> int:
        return self.before["size"] - await self.stayed()

    async def entered(self, first: int, after_id: str | None) -> IdPage:
        return await self._only_in(self.after["id"], self.before["id"], first, after_id)

    async def left(self, first: int, after_id: str | None) -> IdPage:
        return await self._only_in(self.before["id"], self.after["id"], first, after_id)

    async def _readers(self, stack: AsyncExitStack, after_id: str | None, *snapshot_ids: str) -> list[_Reader]:
        """Readers of these snapshots after ``after_id``, closed with ``stack``."""
        readers = []
        for snapshot_id in snapshot_ids:
            chunks = self.db.snapshot_chunks(self.workspace_id, snapshot_id, after_id)
            readers.append(_Reader(await stack.enter_async_context(aclosing(chunks)), after_id))
        return readers

    async def _only_in(self, x_id: str, y_id: str, first: int, after_id: str | None) -> IdPage:
        """A page of the ids of snapshot ``x_id`` that snapshot ``y_id`` lacks, after ``after_id``."""
        found: list[str] = []
        async with AsyncExitStack() as stack:
            x, y = await self._readers(stack, after_id, x_id, y_id)
            while len(found) <= first and await x.more():
                room = first + 1 - len(found)
                if await y.more():
                    x.pos, y.pos, only_x, _ = await asyncio.to_thread(_walk, x.ids, x.pos, y.ids, y.pos, room)
                else:  # y has nothing left: the rest of x is in x only
                    only_x = x.ids[x.pos:x.pos + room]
                    x.pos += len(only_x)
                found += only_x
        return IdPage.of(found, first)

    async def _count_stayed(self) -> int:
        stayed = 0
        async with AsyncExitStack() as stack:
            x, y = await self._readers(stack, None, self.before["id"], self.after["id"])
            while await x.more() and await y.more():
                x.pos, y.pos, _, both = await asyncio.to_thread(_walk, x.ids, x.pos, y.ids, y.pos, len(x.ids))
                stayed += both
        return stayed


async def diff(db: Database, workspace_id: str, before_id: str, after_id: str) -> SnapshotDiff:
    before = await get_snapshot(db, workspace_id, before_id)
    after = await get_snapshot(db, workspace_id, after_id)
    return SnapshotDiff(db, workspace_id, before, after)


async def record_sizes(db: Database, registry: ConditionRegistry, workspace_id: str | None = None
                       ) -> list[tuple[dict, int | str]]:
    """Record the current size of every saved segment (of one workspace, or
    all): (segment, size) for each, or (segment, reason) for a segment whose
    rule no longer compiles (say, its plugin was uninstalled) or whose
    condition's query the database refuses, which is skipped."""
    recorded: list[tuple[dict, int | str]] = []
    workspaces: dict[str, Workspace] = {}
    for segment in await db.all_segments(workspace_id):
        if segment["workspace_id"] not in workspaces:
            workspaces[segment["workspace_id"]] = await db.workspace(segment["workspace_id"])
        try:
            compiled = compile_rule_for(registry, workspaces[segment["workspace_id"]], segment["rule"], None)
            size = await count(db, compiled)
        except (InvalidRule, ConditionFailed) as exc:
            recorded.append((segment, str(exc)))
            continue
        await db.record_size(segment["workspace_id"], segment["id"], now(), size, RECORDED)
        recorded.append((segment, size))
    return recorded


async def size_history(db: Database, workspace_id: str, segment_id: str, since: dt.datetime | None,
                       last: int) -> list[dict]:
    """The newest ``last`` sizes recorded at or after ``since``, oldest first."""
    return await db.sizes(workspace_id, segment_id, since and effective_as_of(since), last)
