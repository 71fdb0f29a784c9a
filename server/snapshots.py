"""Snapshots: a saved segment's member ids frozen at one moment (say, when a
campaign was sent), who entered and who left between two snapshots, and the
segment's size over time.

Members are stored as ids only: a snapshot answers "who was in it", even for
contacts deleted since. Every snapshot also records the segment's size, and
``segmentql record-sizes`` (for cron) records the size of every saved segment
without keeping members, so ``sizeHistory`` has a point per run.
"""

import bisect
import datetime as dt
import uuid
from dataclasses import dataclass

from .compiler import CompiledRule, ConditionFailed, InvalidRule
from .database import Database, Workspace, now
from .registry import ConditionRegistry
from .segments import BadArgument, NotFound, check_label, compile_for, count, decode_cursor, effective_as_of, \
    get_segment

SNAPSHOT, RECORDED = "SNAPSHOT", "RECORDED"


@dataclass(frozen=True)
class IdPage:
    ids: list[str]
    has_next: bool


def id_page(ids: list[str], first: int, after: str | None) -> IdPage:
    """A page of ``ids`` (sorted) after the contact cursor ``after``."""
    start = bisect.bisect_right(ids, decode_cursor("contact", after)) if after else 0
    return IdPage(ids[start:start + first], start + first < len(ids))


async def member_ids(db: Database, compiled: CompiledRule) -> list[str]:
    return [doc["id"] for doc in await db.aggregate_contacts(compiled.ids_pipeline())]


async def take_snapshot(db: Database, registry: ConditionRegistry, workspace: Workspace, segment_id: str,
                        label: str, as_of: dt.datetime | None) -> dict:
    """Freeze the segment's members now (evaluated at ``as_of``, default now)."""
    workspace_id = workspace.id
    segment = await get_segment(db, workspace_id, segment_id)
    label = check_label(label, "a snapshot label")
    compiled = await compile_for(db, registry, workspace, segment["rule"], as_of)
    ids = await member_ids(db, compiled)
    taken = now()
    doc = {"workspace_id": workspace_id, "id": str(uuid.uuid4()), "segment_id": segment_id, "label": label,
           "takenAt": taken, "asOf": effective_as_of(as_of), "size": len(ids), "rule": segment["rule"],
           "segmentName": segment["name"]}
    await db.insert_snapshot(doc, ids)
    await db.record_size(workspace_id, segment_id, taken, len(ids), SNAPSHOT)
    return doc


async def get_snapshot(db: Database, workspace_id: str, snapshot_id: str) -> dict:
    doc = await db.snapshot(workspace_id, snapshot_id)
    if doc is None:
        raise NotFound(f"no snapshot with id {snapshot_id!r} in this workspace")
    return doc


@dataclass(frozen=True)
class SnapshotDiff:
    """Who is in ``after`` but not ``before`` (entered) and the reverse (left), ids sorted."""

    before: dict
    after: dict
    entered: list[str]
    left: list[str]
    stayed: int


async def diff(db: Database, workspace_id: str, before_id: str, after_id: str) -> SnapshotDiff:
    before = await get_snapshot(db, workspace_id, before_id)
    after = await get_snapshot(db, workspace_id, after_id)
    old = set(await db.snapshot_member_ids(workspace_id, before_id))
    new = set(await db.snapshot_member_ids(workspace_id, after_id))
    return SnapshotDiff(before, after, sorted(new - old), sorted(old - new), len(old & new))


async def record_sizes(db: Database, registry: ConditionRegistry, workspace_id: str | None = None
                       ) -> list[tuple[dict, int | str]]:
    """Record the current size of every saved segment (of one workspace, or
    all): (segment, size) for each, or (segment, reason) for a segment whose
    rule no longer compiles (say, its plugin was uninstalled), which is skipped."""
    recorded: list[tuple[dict, int | str]] = []
    workspaces: dict[str, Workspace] = {}
    for segment in await db.all_segments(workspace_id):
        if segment["workspace_id"] not in workspaces:
            workspaces[segment["workspace_id"]] = await db.workspace(segment["workspace_id"])
        try:
            compiled = await compile_for(db, registry, workspaces[segment["workspace_id"]], segment["rule"], None)
        except (InvalidRule, ConditionFailed) as exc:
            recorded.append((segment, str(exc)))
            continue
        size = await count(db, compiled)
        await db.record_size(segment["workspace_id"], segment["id"], now(), size, RECORDED)
        recorded.append((segment, size))
    return recorded


async def size_history(db: Database, workspace_id: str, segment_id: str, since: dt.datetime | None,
                       last: int, maximum: int) -> list[dict]:
    if not 1 <= last <= maximum:
        raise BadArgument(f"`last` must be between 1 and {maximum}, got {last}")
    return await db.sizes(workspace_id, segment_id, since and effective_as_of(since), last)
