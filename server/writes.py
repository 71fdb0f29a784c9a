"""Every write of the API, as one write of :class:`~.live.LiveSegments`:
stored as its workspace's only writer, then its touched contacts evaluated
against the saved segments.

The GraphQL mutations call these; each names beforehand what it may touch
(the journal's scope, so a write cut short is completed) and the cause its
membership changes are logged with.
"""

from collections.abc import Awaitable, Sequence

from segmentql.plugins.registry import ConditionRegistry

from . import ingest, segments
from .database import Workspace
from .live import Cause, LiveSegments, Scope


def _ids(items: Sequence, key: str) -> tuple[str, ...]:
    """The ids ``items`` name under ``key`` (those that are usable strings)."""
    found = (item.get(key) if isinstance(item, dict) else item for item in items)
    return tuple(dict.fromkeys(i for i in found if isinstance(i, str) and ingest.is_unicode(i)))


async def _touching(stored: Awaitable[ingest.IngestResult]) -> tuple[ingest.IngestResult, list[str]]:
    result = await stored
    return result, result.touched


async def upsert_contacts(live: LiveSegments, workspace_id: str, items: list) -> ingest.IngestResult:
    return await live.write(workspace_id, Scope(contacts=_ids(items, "id")), Cause.CONTACT,
                            lambda: _touching(ingest.upsert_contacts(live.db, workspace_id, items)))


async def record_events(live: LiveSegments, workspace_id: str, items: list) -> ingest.IngestResult:
    return await live.write(workspace_id, Scope(contacts=_ids(items, "contactId")), Cause.EVENT,
                            lambda: _touching(ingest.record_events(live.db, workspace_id, items)))


async def delete_contacts(live: LiveSegments, workspace_id: str, ids: list) -> ingest.IngestResult:
    return await live.write(workspace_id, Scope(contacts=_ids(ids, "")), Cause.DELETE,
                            lambda: _touching(ingest.delete_contacts(live.db, workspace_id, ids)))


async def upsert_campaigns(live: LiveSegments, workspace_id: str, items: list) -> ingest.IngestResult:
    return await live.write(workspace_id, Scope(campaigns=_ids(items, "id")), Cause.CAMPAIGN,
                            lambda: _touching(ingest.upsert_campaigns(live.db, workspace_id, items)))


async def define_custom_field(live: LiveSegments, workspace_id: str, key: str, field_type: str,
                              indexed: bool) -> bool:
    """Declare a custom field; a new one may change how saved rules compile, so every segment is evaluated."""
    async def work() -> tuple[bool, list[str] | None]:
        created = await ingest.define_custom_field(live.db, workspace_id, key, field_type, indexed)
        return created, None if created else []
    return await live.write(workspace_id, Scope(), Cause.CONTACT, work)


async def create_segment(live: LiveSegments, registry: ConditionRegistry, workspace: Workspace, name: str,
                         rule: dict) -> dict:
    """Save a segment and evaluate it in full: its members are logged as ENTERED (cause RULE)."""
    segment_id = segments.new_segment_id()

    async def work() -> tuple[dict, None]:
        return await segments.create_segment(live.db, registry, workspace, name, rule, segment_id), None
    await live.write(workspace.id, Scope(segments=(segment_id,)), Cause.RULE, work)
    return await segments.get_segment(live.db, workspace.id, segment_id)


async def update_segment(live: LiveSegments, registry: ConditionRegistry, workspace: Workspace, segment_id: str,
                         name: str | None, rule: dict | None) -> dict:
    """Rename a segment and/or replace its rule; a new rule is evaluated in
    full and the difference logged (cause RULE)."""
    async def work() -> tuple[dict, list[str] | None]:
        before = await segments.get_segment(live.db, workspace.id, segment_id)
        updated = await segments.update_segment(live.db, registry, workspace, segment_id, name, rule)
        return updated, None if updated["rule"] != before["rule"] else []
    await live.write(workspace.id, Scope(segments=(segment_id,)), Cause.RULE, work)
    return await segments.get_segment(live.db, workspace.id, segment_id)


async def delete_segment(live: LiveSegments, workspace_id: str, segment_id: str) -> bool:
    """Delete a segment with its members and log (no evaluation of it can be running meanwhile)."""
    async def work() -> tuple[bool, list[str]]:
        return await segments.delete_segment(live.db, workspace_id, segment_id), []
    return await live.write(workspace_id, Scope(segments=(segment_id,)), Cause.RULE, work)
