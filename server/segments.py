"""Segments: evaluating rules (count, pages of members) and saved segments.

Resolvers call these; they hold no GraphQL types, so the CLI, the benchmarks
and the tests use the same code paths as the API.
"""

import base64
import binascii
import datetime as dt
import uuid
from dataclasses import dataclass

from segmentql.plugins.api import Observation

from .compiler import CompiledNode, CompiledRule, compile_context, compile_rule, indexed_fields, validate_rule, \
    validation_context
from .database import Database, Workspace, doc_key, now
from .registry import ConditionRegistry


class NotFound(LookupError):
    """The thing asked for does not exist in this workspace."""


class BadArgument(ValueError):
    """An argument outside what the field accepts; the message names it."""


@dataclass
class Page:
    contacts: list[dict]
    has_next: bool


def effective_as_of(as_of: dt.datetime | None) -> dt.datetime:
    if as_of is None:
        return now()
    return as_of.replace(tzinfo=dt.timezone.utc) if as_of.tzinfo is None else as_of.astimezone(dt.timezone.utc)


def check_rule(registry: ConditionRegistry, workspace: Workspace, rule: dict) -> None:
    validate_rule(rule, registry, validation_context(workspace.custom_fields))


async def compile_for(db: Database, registry: ConditionRegistry, workspace: Workspace, rule: dict,
                      as_of: dt.datetime | None, observe: bool = False) -> CompiledRule:
    """Validate and compile ``rule`` for the workspace at ``as_of`` (default
    now); with ``observe``, with the values each condition looks at. The
    workspace's facts (custom fields, newest event day) come with it: a request
    has them from the read that checked its key."""
    check_rule(registry, workspace, rule)
    context = compile_context(workspace.custom_fields, effective_as_of(as_of), workspace.newest_event_day)
    nodes: list[CompiledNode] = []
    query = compile_rule(rule, registry, context, nodes=nodes, observe=observe)
    return CompiledRule(workspace.id, query, tuple(nodes), indexed_fields(workspace.indexed_custom_fields))


async def count(db: Database, compiled: CompiledRule) -> int:
    result = await db.aggregate_contacts(compiled.count_pipeline())
    return result[0]["count"] if result else 0


def _node_counts(compiled: CompiledRule, result: dict) -> list[tuple[CompiledNode, int]]:
    return [(node, (result.get(f"n{i}") or [{"count": 0}])[0]["count"]) for i, node in enumerate(compiled.nodes)]


async def breakdown(db: Database, compiled: CompiledRule) -> list[tuple[CompiledNode, int]]:
    """How many contacts each node of the rule matches on its own, in one pass."""
    result = (await db.aggregate_contacts(compiled.breakdown_pipeline()) or [{}])[0]
    return _node_counts(compiled, result)


@dataclass(frozen=True)
class NodeMembership:
    """One node of a rule for one contact: whether it matches (from the node's
    compiled query) and the observed values behind it, as (observation, value)."""

    node: CompiledNode
    matched: bool
    values: list[tuple[Observation, object]]


async def membership(db: Database, compiled: CompiledRule, contact_id: str) -> list[NodeMembership]:
    """Whether one contact matches each node, by the same queries that decide
    membership, with the values each condition observed (compile with ``observe``)."""
    if not await db.contacts_by_id(compiled.workspace_id, [contact_id], {"id": 1}):
        raise NotFound(f"no contact with id {contact_id!r} in this workspace")
    pipeline = compiled.membership_pipeline(doc_key(compiled.workspace_id, contact_id))
    result = (await db.aggregate_contacts(pipeline) or [{}])[0]
    values = (result.get("values") or [{}])[0]
    return [NodeMembership(node, count == 1, [(o, values.get(f"o{i}_{j}")) for j, o in enumerate(node.observations)])
            for i, (node, count) in enumerate(_node_counts(compiled, result))]


def encode_cursor(kind: str, value: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode()


def decode_cursor(kind: str, cursor: str) -> str:
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadArgument(f"`after` is not a cursor returned by this API: {cursor[:40]!r}") from None
    prefix, _, value = text.partition(":")
    if prefix != kind or not value:
        raise BadArgument(f"`after` is not a {kind} cursor returned by this API")
    return value


def page_size(first: int | None, default: int, maximum: int) -> int:
    size = default if first is None else first
    if not 0 <= size <= maximum:
        raise BadArgument(f"`first` must be between 0 and {maximum}, got {size}")
    return size


async def members(db: Database, compiled: CompiledRule, first: int, after: str | None,
                  with_stats: bool = True) -> Page:
    after_id = decode_cursor("contact", after) if after else None
    if first == 0:
        return Page([], False)
    docs = await db.aggregate_contacts(compiled.page_pipeline(after_id, first, with_stats))
    return Page(docs[:first], len(docs) > first)


# -- saved segments -------------------------------------------------------------

def check_label(text: str, what: str) -> str:
    """A segment's name or a snapshot's label (``what``): not blank, at most 200 characters, trimmed."""
    if not isinstance(text, str) or not text.strip():
        raise BadArgument(f"{what} must not be empty")
    if len(text) > 200:
        raise BadArgument(f"{what} may be at most 200 characters")
    return text.strip()


async def create_segment(db: Database, registry: ConditionRegistry, workspace: Workspace, name: str,
                         rule: dict) -> dict:
    check_rule(registry, workspace, rule)
    workspace_id = workspace.id
    stamp = now()
    doc = {"workspace_id": workspace_id, "id": str(uuid.uuid4()), "name": check_label(name, "a segment name"),
           "rule": rule, "createdAt": stamp, "updatedAt": stamp, "revisions": []}
    await db.insert_segment(doc)
    return doc


async def get_segment(db: Database, workspace_id: str, segment_id: str) -> dict:
    doc = await db.segment(workspace_id, segment_id)
    if doc is None:
        raise NotFound(f"no segment with id {segment_id!r} in this workspace")
    return doc


async def update_segment(db: Database, registry: ConditionRegistry, workspace: Workspace, segment_id: str,
                         name: str | None, rule: dict | None) -> dict:
    workspace_id = workspace.id
    current = await get_segment(db, workspace_id, segment_id)
    changes: dict = {"updatedAt": now()}
    if name is not None:
        changes["name"] = check_label(name, "a segment name")
    if rule is not None:
        check_rule(registry, workspace, rule)
        changes["rule"] = rule
    previous = None
    if rule is not None and rule != current["rule"]:
        previous = {"rule": current["rule"], "name": current["name"], "savedAt": current["updatedAt"]}
    updated = await db.update_segment(workspace_id, segment_id, changes, previous)
    if updated is None:
        raise NotFound(f"no segment with id {segment_id!r} in this workspace")
    return updated


async def delete_segment(db: Database, workspace_id: str, segment_id: str) -> bool:
    return await db.delete_segment(workspace_id, segment_id)


async def list_segments(db: Database, workspace_id: str, first: int, after: str | None) -> tuple[list[dict], bool]:
    position = None
    if after:
        created, _, sid = decode_cursor("segment", after).partition("|")
        try:
            position = (dt.datetime.fromisoformat(created), sid)
        except ValueError:
            raise BadArgument("`after` is not a segment cursor returned by this API") from None
    docs = await db.segments_page(workspace_id, position, first + 1)
    return docs[:first], len(docs) > first


def segment_cursor(doc: dict) -> str:
    created = doc["createdAt"]
    created = created.replace(tzinfo=dt.timezone.utc) if created.tzinfo is None else created
    return encode_cursor("segment", f"{created.isoformat()}|{doc['id']}")
