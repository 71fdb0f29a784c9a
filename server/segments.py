"""Segments: evaluating rules (count, pages of members) and saved segments.

Resolvers call these; they hold no GraphQL types, so the CLI, the benchmarks
and the tests use the same code paths as the API.
"""

import contextlib
import datetime as dt
import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass

from pymongo.errors import ExecutionTimeout, OperationFailure, PyMongoError

from segmentql.plugins.api import Observation
from segmentql.plugins.registry import ConditionRegistry

from .compiler import CompiledNode, CompiledRule, check
from .database import Database, Workspace, doc_key, now
from .errors import BadArgument, ConditionFailed, InvalidRule, NotFound


@dataclass
class Page:
    """A page of contacts, and whether more follow. Every page is read with
    one item more than it shows, so a page of 0 items still tells whether
    there are any (``snapshots.IdPage`` too)."""

    contacts: list[dict]
    has_next: bool


# -- running a compiled rule ---------------------------------------------------------
# Every pipeline of a compiled rule runs through ``aggregate`` or ``stream``, so a
# query or stage the database refuses is blamed on the condition that produced it.

# Failures of a busy or failing database rather than of the query: timeouts,
# interruptions, shutdown and step-down, network trouble. Nothing is probed then.
NOT_ABOUT_THE_QUERY = frozenset({6, 7, 89, 91, 189, 262, 9001, 11600, 11601, 11602})


def _about_the_query(error: OperationFailure) -> bool:
    return not isinstance(error, ExecutionTimeout) and error.code not in NOT_ABOUT_THE_QUERY


def _refusal(error: OperationFailure) -> str:
    """The database's reason, short: its innermost "caused by", first sentence
    ("unknown operator: $frobnicate"), without the namespace it ran on."""
    message = str((error.details or {}).get("errmsg") or error)
    reason = message.split(" :: caused by :: ")[-1].split(". ")[0]
    return reason if len(reason) <= 200 else reason[:199] + "…"


async def _probe(db: Database, compiled: CompiledRule, nodes: list[CompiledNode],
                 queries: bool = True, observations: bool = True) -> OperationFailure | None:
    """How the database refuses one of ``nodes``' stages, queries or
    observed values (without ``queries`` or ``observations``: not those), or
    None if it takes them all."""
    try:
        await db.aggregate_contacts(compiled.probe_pipeline(nodes, queries, observations))
    except OperationFailure as exc:
        if _about_the_query(exc):
            return exc
        raise
    return None


async def _culprit(db: Database, compiled: CompiledRule, error: OperationFailure) -> ConditionFailed | None:
    """The condition whose own query, stages or observed values (those of
    explainMembership) the database refuses, as ConditionFailed, or None (the
    error is not about the query, or no condition alone causes it). Halving
    the suspects takes about log2(conditions) + 1 one-contact probes, so even
    a hostile rule of hundreds of conditions costs little."""
    suspects = [node for node in compiled.nodes if node.plugin is not None]
    if not suspects or not _about_the_query(error):
        return None
    try:
        refusal = await _probe(db, compiled, suspects)
        while refusal is not None and len(suspects) > 1:
            half = suspects[:len(suspects) // 2]
            in_half = await _probe(db, compiled, half)
            suspects, refusal = (half, in_half) if in_half is not None else (suspects[len(half):], refusal)
        if refusal is None:
            return None
        node = suspects[0]
        what = await _refused_part(db, compiled, node)
    except PyMongoError:
        return None  # the database failing now tells nothing about the query
    assert node.plugin is not None  # every suspect is a condition
    return ConditionFailed(node.path, node.plugin, f"returned {what} the database refuses: {_refusal(refusal)}")


async def _refused_part(db: Database, compiled: CompiledRule, node: CompiledNode) -> str:
    """Which part of ``node`` (one the database refuses) it refuses, for the message."""
    if node.stages and await _probe(db, compiled, [node], queries=False, observations=False) is not None:
        return "stages"
    if node.observations and await _probe(db, compiled, [node], queries=False) is not None:
        return "an observation"
    return "a query"


@contextlib.asynccontextmanager
async def _blaming(db: Database, compiled: CompiledRule) -> AsyncIterator[None]:
    try:
        yield
    except OperationFailure as exc:
        culprit = await _culprit(db, compiled, exc)
        if culprit is None:
            raise
        raise culprit from exc


async def aggregate(db: Database, compiled: CompiledRule, pipeline: list[dict]) -> list[dict]:
    """The documents of ``pipeline``, one of ``compiled``'s pipelines."""
    async with _blaming(db, compiled):
        return await db.aggregate_contacts(pipeline)


async def stream(db: Database, compiled: CompiledRule, pipeline: list[dict]) -> AsyncGenerator[dict, None]:
    """The documents of ``pipeline`` (one of ``compiled``'s) one by one, for readers that may stop early."""
    async with _blaming(db, compiled):
        async for doc in db.stream_contacts(pipeline):
            yield doc


async def count(db: Database, compiled: CompiledRule) -> int:
    result = await aggregate(db, compiled, compiled.count_pipeline())
    return result[0]["count"] if result else 0


def _node_counts(compiled: CompiledRule, result: dict) -> list[tuple[CompiledNode, int]]:
    return [(node, (result.get(f"n{i}") or [{"count": 0}])[0]["count"]) for i, node in enumerate(compiled.nodes)]


async def breakdown(db: Database, compiled: CompiledRule) -> list[tuple[CompiledNode, int]]:
    """How many contacts each node of the rule matches on its own, in one pass."""
    result = (await aggregate(db, compiled, compiled.breakdown_pipeline()) or [{}])[0]
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
    result = (await aggregate(db, compiled, pipeline) or [{}])[0]
    values = (result.get("values") or [{}])[0]
    return [NodeMembership(node, count == 1, [(o, values.get(f"o{i}_{j}")) for j, o in enumerate(node.observations)])
            for i, (node, count) in enumerate(_node_counts(compiled, result))]


async def members_among(db: Database, rules: Sequence[CompiledRule], contact_ids: Sequence[str]) -> list[set[str]]:
    """Which of ``contact_ids`` are members of each rule (all of one
    workspace), by each rule's own pipeline restricted to them: one aggregate
    per batch of ids, the rules side by side in a ``$facet``. A rule whose
    query the database refuses raises, as for any other pipeline of it."""
    found: list[set[str]] = [set() for _ in rules]
    if not rules:
        return found
    only_ids = {"$project": {"_id": 0, "id": 1}}
    for batch in await db.in_batches(contact_ids):
        among = {"$match": db.contacts_query(rules[0].workspace_id, batch)}
        pipeline = [among, {"$facet": {f"r{i}": rule.members_then(only_ids) for i, rule in enumerate(rules)}}]
        try:
            result = (await db.aggregate_contacts(pipeline) or [{}])[0]
        except OperationFailure:
            for rule in rules:  # the one whose own pipeline is refused takes the blame
                await aggregate(db, rule, [among, *rule.members_then(only_ids)])
            raise
        for i, members in enumerate(found):
            members.update(doc["id"] for doc in result.get(f"r{i}", ()))
    return found


async def members(db: Database, compiled: CompiledRule, first: int, after_id: str | None,
                  with_stats: bool = True) -> Page:
    """The ``first`` members after the contact id ``after_id``, in id order."""
    docs = await aggregate(db, compiled, compiled.page_pipeline(after_id, first, with_stats))
    return Page(docs[:first], len(docs) > first)


# -- saved segments -------------------------------------------------------------
# A saved rule is stored with its segment and kept in its revisions, so its size
# is bounded apart from the request's: 64 KB of JSON is hundreds of times a
# real segment's rule (the reference segments take at most 321 bytes).
MAX_SAVED_RULE_BYTES = 65_536


def check_label(text: str, what: str) -> str:
    """A segment's name or a snapshot's label (``what``): not blank, at most 200 characters, trimmed."""
    if not isinstance(text, str) or not text.strip():
        raise BadArgument(f"{what} must not be empty")
    if len(text) > 200:
        raise BadArgument(f"{what} may be at most 200 characters")
    return text.strip()


def check_saved_rule(registry: ConditionRegistry, workspace: Workspace, rule: dict) -> None:
    """A rule to save: well formed, and at most MAX_SAVED_RULE_BYTES as compact UTF-8 JSON."""
    size = len(json.dumps(rule, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))
    if size > MAX_SAVED_RULE_BYTES:
        raise InvalidRule("", f"a saved segment's rule may take at most {MAX_SAVED_RULE_BYTES:,} bytes as JSON; "
                              f"this one takes {size:,}")
    check(registry, workspace, rule)


def new_segment_id() -> str:
    return str(uuid.uuid4())


async def create_segment(db: Database, registry: ConditionRegistry, workspace: Workspace, name: str,
                         rule: dict, segment_id: str | None = None) -> dict:
    check_saved_rule(registry, workspace, rule)
    workspace_id = workspace.id
    stamp = now()
    doc = {"workspace_id": workspace_id, "id": segment_id or new_segment_id(),
           "name": check_label(name, "a segment name"), "rule": rule, "createdAt": stamp, "updatedAt": stamp}
    await db.insert_segment(doc)
    return doc


async def find_segment(db: Database, workspace_id: str, segment_id: str) -> dict | None:
    return await db.segment(workspace_id, segment_id)


async def get_segment(db: Database, workspace_id: str, segment_id: str) -> dict:
    doc = await find_segment(db, workspace_id, segment_id)
    if doc is None:
        raise NotFound(f"no segment with id {segment_id!r} in this workspace")
    return doc


async def revisions(db: Database, workspace_id: str, segment_id: str) -> list[dict]:
    """The segment's earlier versions ({name, rule, savedAt}), oldest first."""
    return await db.segment_revisions(workspace_id, segment_id)


async def update_segment(db: Database, registry: ConditionRegistry, workspace: Workspace, segment_id: str,
                         name: str | None, rule: dict | None) -> dict:
    workspace_id = workspace.id
    current = await get_segment(db, workspace_id, segment_id)
    # Later than the version it replaces, also within one millisecond: a
    # version's updatedAt becomes its revision's key (savedAt) when replaced.
    changes: dict = {"updatedAt": max(now(), current["updatedAt"] + dt.timedelta(milliseconds=1))}
    if name is not None:
        changes["name"] = check_label(name, "a segment name")
    if rule is not None:
        check_saved_rule(registry, workspace, rule)
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


async def list_segments(db: Database, workspace_id: str, first: int, after: tuple[dt.datetime, str] | None
                        ) -> tuple[list[dict], bool]:
    """The ``first`` segments newest first after the position ``after``
    ((createdAt, id) of the last one seen), and whether more follow."""
    docs = await db.segments_page(workspace_id, after, first + 1)
    return docs[:first], len(docs) > first


# The most segments a subscription or a webhook follows by name.
MAX_FOLLOWED = 100


async def saved_segment_ids(db: Database, workspace_id: str, segment_ids: Sequence[str]) -> list[str]:
    """``segment_ids`` (1 to MAX_FOLLOWED, each saved in the workspace), without repeats."""
    unique = list(dict.fromkeys(str(s) for s in segment_ids))
    if not unique or len(unique) > MAX_FOLLOWED:
        raise BadArgument(f"`segmentIds` names 1 to {MAX_FOLLOWED} segments (leave it out to follow all of them)")
    for segment_id in unique:
        if await db.segment(workspace_id, segment_id) is None:
            raise NotFound(f"`segmentIds`: no segment with id {segment_id[:80]!r} in this workspace")
    return unique
