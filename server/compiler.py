"""Rule trees: validation, compilation into one MongoDB query, and the
pipelines that run it.

A rule document is the JSON shape of ``RuleInput``: an object with exactly
one key, ``all`` / ``any`` (non-empty lists of rules), ``not`` (a rule) or a
condition field registered by a plugin. Validation walks the whole tree
before anything runs and reports the first problem with the node's path
(``any[1].all[0].numericRange``). Compilation asks each condition's plugin for
a query document and joins them with ``$and`` / ``$or`` / ``$nor``, so the
whole tree is one ``$match``. Clauses that need ``$expr`` (evaluated per
document) go into a second ``$match`` after the index-friendly ones.

A condition may also contribute stages (``$lookup`` on a collection its
plugin declares, ``$addFields``, ``$set``) that add fields the ``$match``
reads. Each node's fields live under its own namespace (``_sq.n<node>``), so
conditions never collide; the stages run after the clauses that need none of
these fields, and the namespace is projected away before documents leave.

:func:`compile_rule_for` is the one way a rule becomes a :class:`CompiledRule`
(previews, saved segments, snapshots, splits, analytics, explanations,
``record-sizes``), and :func:`check` the one way a rule to save is checked.
"""

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from bson import json_util

from segmentql.plugins.api import ALWAYS, NEVER, CompileContext, Node, Observation, Query, RuleError, ValidationContext
from segmentql.plugins.registry import GROUPS, ConditionRegistry, RegisteredCondition

from . import fieldtypes, instants
from .coercion import coerced_rule
from .database import INDEXED_CONTACT_FIELDS, Workspace, now
from .errors import BadArgument, ConditionFailed, InvalidRule, child_path

FORBIDDEN_OPERATORS = frozenset({"$where", "$function", "$accumulator", "$out", "$merge"})
# Where the fields a node's stages add live: ``_sq.n<node>.<name>`` (see CompileContext.stage_field).
STAGE_NAMESPACE = "_sq"
STAGE_KINDS = ("$lookup", "$addFields", "$set")
LOOKUP_KEYS = ("from", "localField", "foreignField", "as")
STAGE_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
CONTACTS_COLLECTION = "contacts"
PAGE_PROJECTION = {"_id": 0, "stats.activity": 0, "stats.eventDays": 0}  # what Contact.stats shows
PAGE_PROJECTION_WITHOUT_STATS = {"_id": 0, "stats": 0}

# A rule document: the JSON shape of ``RuleInput`` (checked by validate_rule).
Rule = Mapping[str, Any]
# An aggregation pipeline: its stages, documents like queries.
Pipeline = list[Query]


@dataclass(frozen=True)
class RuleLimits:
    """Bounds on a rule's size, so a hostile rule costs little to refuse."""

    max_depth: int = 32
    max_nodes: int = 500
    max_list: int = 1000
    max_string: int = 1000


def _check_values(value: object, path: str, limits: RuleLimits) -> None:
    """Empty lists anywhere are refused, and long lists and strings, and
    values nested deeper than a rule may be (a ``JSON`` value holds whatever
    its sender nested: refused here, before a plugin walks it). Iterative."""
    stack: list[tuple[object, str, int]] = [(value, path, 0)]
    while stack:
        item, here, depth = stack.pop()
        if depth > limits.max_depth:
            raise InvalidRule(here, f"a value may be nested at most {limits.max_depth} levels deep")
        if isinstance(item, list):
            if not item:
                raise InvalidRule(here, "an empty list is not allowed")
            if len(item) > limits.max_list:
                raise InvalidRule(here, f"a list may hold at most {limits.max_list} items")
            stack.extend((v, here, depth + 1) for v in reversed(item))
        elif isinstance(item, Mapping):
            stack.extend((v, child_path(here, str(k)), depth + 1) for k, v in reversed(list(item.items())))
        elif isinstance(item, str) and len(item) > limits.max_string:
            raise InvalidRule(here, f"text may be at most {limits.max_string} characters")


# What a node without exactly one key is told (GraphQL's own refusal of one says the same: schema/rule_errors.py).
ONE_KEY = "a rule must have exactly one of `all`, `any`, `not` or a condition"


def _parts(node: object, path: str, registry: ConditionRegistry) -> tuple[str, object]:
    """The node's one key (a group or a registered condition) and its value."""
    if not isinstance(node, Mapping) or len(node) != 1:
        raise InvalidRule(path, ONE_KEY)
    ((kind, value),) = node.items()
    if not isinstance(kind, str) or (kind not in GROUPS and kind not in registry):
        raise InvalidRule(path, f"unknown condition {kind!r}")
    return kind, value


def validate_rule(rule: object, registry: ConditionRegistry, ctx: ValidationContext,
                  limits: RuleLimits = RuleLimits()) -> None:
    """Raise :class:`InvalidRule` for the first problem in the tree (``rule``
    as it arrived: anything JSON holds)."""
    nodes = 0
    # Iterative, so a 300-deep `not` chain is refused without deep recursion.
    stack: list[tuple[object, str, int]] = [(rule, "", 1)]
    while stack:
        node, path, depth = stack.pop()
        nodes += 1
        if nodes > limits.max_nodes:
            raise InvalidRule("", f"a rule may have at most {limits.max_nodes} nodes")
        if depth > limits.max_depth:
            raise InvalidRule(path, f"a rule may be nested at most {limits.max_depth} levels deep")
        kind, value = _parts(node, path, registry)
        here = child_path(path, kind)
        if kind == "not":
            stack.append((value, here, depth + 1))
        elif kind in ("all", "any"):
            if not isinstance(value, list) or not value:
                raise InvalidRule(here, f"`{kind}` needs at least one rule")
            if len(value) > limits.max_list:
                raise InvalidRule(here, f"a group may hold at most {limits.max_list} rules")
            stack.extend((child, child_path(here, i), depth + 1) for i, child in reversed(list(enumerate(value))))
        else:
            if not isinstance(value, Mapping):
                raise InvalidRule(here, "a condition must be an object")
            _check_values(value, here, limits)
            entry = registry[kind]
            try:
                entry.condition.validate(value, ctx)
            except RuleError as exc:
                raise InvalidRule(here, str(exc)) from None
            except Exception as exc:  # a plugin bug fails this request only
                raise ConditionFailed.raised(here, entry.plugin, exc) from exc


def _conjuncts(part: Query) -> list[Query]:
    """A query as the single-key queries that must all hold: a document's keys
    are ANDed, and so are the items of ``$and``."""
    found = []
    for key, value in part.items():
        if key == "$and":
            for item in value:
                found.extend(_conjuncts(item))
        else:
            found.append({key: value})
    return found


def _and(parts: list[Query]) -> Query:
    """All of ``parts``, with repeated tests once (conditions often imply the
    same thing, e.g. two engagement windows "some activity since day D") and
    as few documents as keys allow, tests kept in order."""
    conjuncts: list[Query] = []
    for part in parts:
        conjuncts.extend(c for c in _conjuncts(part) if c not in conjuncts)
    groups: list[Query] = []
    for conjunct in conjuncts:
        (key,) = conjunct
        if not groups or key in groups[-1]:
            groups.append({})
        groups[-1].update(conjunct)
    if not groups:
        return dict(ALWAYS)
    return groups[0] if len(groups) == 1 else {"$and": groups}


def _or(parts: list[Query]) -> Query:
    if any(part == ALWAYS for part in parts):
        return dict(ALWAYS)
    return parts[0] if len(parts) == 1 else {"$or": parts}


def _not(part: Query) -> Query:
    return dict(NEVER) if part == ALWAYS else {"$nor": [part]}


@dataclass(frozen=True)
class CompiledNode:
    """One node of a rule tree and the query selecting exactly its contacts."""

    path: str
    kind: str
    query: Query
    observations: tuple[Observation, ...] = ()
    plugin: str | None = None  # the condition's plugin; None for a group
    stages: tuple[Query, ...] = ()  # its stages, fields namespaced; $lookup not yet scoped to a workspace


def compile_rule(rule: Rule, registry: ConditionRegistry, ctx: CompileContext, path: str = "",
                 nodes: list[CompiledNode] | None = None, observe: bool = False) -> Query:
    """The query document selecting exactly the contacts the (valid) rule
    selects. With ``nodes``, every node's own query is collected there too
    (pre-order), so per-node answers come from the very queries that decide
    membership, with its stages; with ``observe`` as well, each condition
    node also carries the values its plugin observes (for explanations)."""
    (kind,) = rule
    value = rule[kind]
    here = child_path(path, kind)
    nodes = [] if nodes is None else nodes  # numbers the nodes (pre-order), hence their namespaces
    position = len(nodes)
    nodes.append(CompiledNode(here, kind, {}))  # holds the place of this node before its children
    observations: tuple[Observation, ...] = ()
    plugin = None
    stages: tuple[Query, ...] = ()
    if kind == "not":
        query = _not(compile_rule(value, registry, ctx, here, nodes, observe))
    elif kind in GROUPS:
        children = [compile_rule(c, registry, ctx, child_path(here, i), nodes, observe) for i, c in enumerate(value)]
        query = _and(children) if kind == "all" else _or(children)
    else:
        entry = registry[kind]
        ctx = dataclasses.replace(ctx, stage_namespace=f"{STAGE_NAMESPACE}.n{position}")
        stages = _stages(entry, here, value, ctx, registry)
        query = _call_plugin(entry, here, "compile", value, ctx, dict)
        observations = _observations(entry, here, value, ctx) if observe else ()
        plugin = entry.plugin
    nodes[position] = CompiledNode(here, kind, query, observations, plugin, stages)
    return query


# What a plugin's hook returns once checked: a query (compile) or a list (observe).
PluginResult = TypeVar("PluginResult", dict[str, Any], list[Any])


def _call_plugin(entry: RegisteredCondition, here: str, hook: str, value: Node, ctx: CompileContext,
                 expected: type[PluginResult]) -> PluginResult:
    """A condition's ``compile`` or ``observe`` (``hook``), which must return
    an ``expected``: its RuleError is the user's INVALID_RULE, anything else a
    failure of that plugin for this request; what it returns is checked for
    operators no plugin may use and, for a query, for ``$expr`` where the
    database refuses it."""
    function: Callable[[Node, CompileContext], object] = getattr(entry.condition, hook)
    try:
        result = function(value, ctx)
    except RuleError as exc:
        raise InvalidRule(here, str(exc)) from None
    except Exception as exc:  # a plugin bug fails this request only
        raise ConditionFailed.raised(here, entry.plugin, exc) from exc
    if not isinstance(result, expected):
        raise ConditionFailed(here, entry.plugin, f"returned a {type(result).__name__} from {hook}, "
                                                  f"not a {expected.__name__}")
    operators = _operators(result)
    forbidden = operators & FORBIDDEN_OPERATORS
    if forbidden:
        what = {"compile": "", "observe": "an observation with ", "stages": "a stage with "}[hook]
        raise ConditionFailed(here, entry.plugin, f"returned {what}{', '.join(sorted(forbidden))}, "
                                                  "which no condition may use")
    misplaced = _misplaced_expr(result) if isinstance(result, dict) and "$expr" in operators else None
    if misplaced:
        raise ConditionFailed(here, entry.plugin, f"returned $expr under {misplaced}; the database accepts $expr "
                                                  "only at the top level of a query or inside $and/$or/$nor")
    return result


LOGICAL_OPERATORS = frozenset({"$and", "$or", "$nor"})


def _misplaced_expr(query: Query) -> str | None:
    """What holds a ``$expr`` the database would refuse (``$elemMatch``, or
    "a field"), or None. ``$expr`` tests the whole document, so MongoDB parses
    it only in a query document reached from the top through ``$and`` /
    ``$or`` / ``$nor``; anywhere else it is "unknown operator: $expr", an
    error the service would otherwise only meet when the query runs."""
    stack = [query]
    while stack:
        document = stack.pop()
        for key, value in document.items():
            if key in LOGICAL_OPERATORS and isinstance(value, list):
                stack.extend(item for item in value if isinstance(item, dict))
            elif key != "$expr":
                holder = _expr_holder(value, key)
                if holder:
                    return holder if holder.startswith("$") else "a field"
    return None


def _expr_holder(value: object, key: str) -> str | None:
    """The innermost field or operator (logical ones aside) holding a ``$expr``
    somewhere in ``value``, which ``key`` holds."""
    stack: list[tuple[object, str]] = [(value, key)]
    while stack:
        item, holder = stack.pop()
        if isinstance(item, dict):
            if "$expr" in item:
                return holder
            stack.extend((sub, holder if k in LOGICAL_OPERATORS else k) for k, sub in item.items() if k != "$literal")
        elif isinstance(item, list):
            stack.extend((sub, holder) for sub in item)
    return None


def _stages(entry: RegisteredCondition, here: str, value: Node, ctx: CompileContext,
            registry: ConditionRegistry) -> tuple[Query, ...]:
    """The condition's stages, checked, with the fields they add moved under
    the node's namespace (``ctx.stage_namespace``)."""
    if entry.condition.stages is None:
        return ()
    found = _call_plugin(entry, here, "stages", value, ctx, list)
    return tuple(_stage(stage, here, entry.plugin, ctx, registry) for stage in found)


def _stage(stage: object, here: str, plugin: str, ctx: CompileContext, registry: ConditionRegistry) -> Query:
    """One stage a condition may contribute, namespaced; ConditionFailed
    naming the stage (or collection) otherwise. Anything else could read
    other workspaces' data or reshape the contacts the ``$match`` decides on."""
    if not isinstance(stage, dict) or len(stage) != 1:
        raise ConditionFailed(here, plugin, "returned a stage that is not a document of one stage")
    ((kind, spec),) = stage.items()
    if kind not in STAGE_KINDS:
        raise ConditionFailed(here, plugin, f"returned a {kind} stage; a condition's stages may be only "
                                            f"{', '.join(STAGE_KINDS)}")
    if not isinstance(spec, dict) or not spec:
        raise ConditionFailed(here, plugin, f"returned a {kind} stage that is not a non-empty document")

    def own(name: object) -> str:
        if not isinstance(name, str) or not STAGE_FIELD_NAME.match(name):
            raise ConditionFailed(here, plugin, f"returned a {kind} stage adding the field {name!r}; stages add "
                                                "plain names (letters, digits, _), read as ctx.stage_field(name)")
        return ctx.stage_field(name)

    if kind != "$lookup":
        return {kind: {own(name): expression for name, expression in spec.items()}}
    if set(spec) != set(LOOKUP_KEYS) or not all(isinstance(v, str) and v and v[0] != "$" for v in spec.values()):
        raise ConditionFailed(here, plugin, f"returned a $lookup stage that is not {{{', '.join(LOOKUP_KEYS)}}} "
                                            "with field paths and a collection name")
    declared = registry.storage.collections.get(spec["from"])
    if declared is None or declared.plugin != plugin:
        raise ConditionFailed(here, plugin, f"returned a $lookup on the collection {spec['from']!r}, "
                                            f"which plugin {plugin!r} does not declare")
    return {"$lookup": {**spec, "as": own(spec["as"])}}


def _reads_stage_fields(clause: object) -> bool:
    """Whether ``clause`` may read a field some stage adds: a key or a string
    naming the namespace (a user value that merely looks like one only moves
    its clause after the stages)."""
    stack = [clause]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
            stack.extend(item.keys())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, str) and STAGE_NAMESPACE in item.split("$")[-1].split("."):
            return True
    return False


def _observations(entry: RegisteredCondition, here: str, value: Node, ctx: CompileContext) -> tuple[Observation, ...]:
    if entry.condition.observe is None:
        return ()
    found = _call_plugin(entry, here, "observe", value, ctx, list)
    if not all(isinstance(o, Observation) for o in found):
        raise ConditionFailed(here, entry.plugin, "returned something not an Observation from observe")
    return tuple(found)


def _merge_fields(query: Query) -> Query:
    """``{$and: [{a: 1}, {b: 2}, {$or: ...}]}`` as ``{a: 1, b: 2, $and: [{$or: ...}]}``: the
    same condition, but with plain field predicates at the top level, where
    query planners (the embedded server's in particular) look for indexes."""
    if list(query) != ["$and"]:
        return query
    merged: Query = {}
    rest: list[Query] = []
    for clause in query["$and"]:
        if all(not k.startswith("$") and k not in merged for k in clause):
            merged.update(clause)
        else:
            rest.append(clause)
    if rest:
        merged["$and"] = rest
    return merged


INDEX_FRIENDLY = frozenset({"$eq", "$in", "$all", "$gt", "$gte", "$lt", "$lte"})


def _index_first(match: Query, indexed: tuple[str, ...]) -> list[Query]:
    """The leading $match, split so that its first stage is narrow: ``workspace_id``
    plus one indexed field with an index-friendly predicate when there is one,
    else ``workspace_id`` alone. The embedded server's planner only uses an index
    for such a narrow filter, and scans the whole collection, every workspace's
    contacts, for anything wider (a `$nor` beside ``workspace_id``: 0.75 s instead
    of 0.05 s for 2,000 contacts beside another workspace's 50,000); the rest
    then runs on the documents the index found. A real MongoDB joins the two
    stages again."""
    if "workspace_id" not in match or len(match) < 2:
        return [match]
    for field in (*indexed, "id"):  # the contact id last: a page's cursor
        predicate = match.get(field)
        friendly = (not isinstance(predicate, dict)) or (predicate and set(predicate) <= INDEX_FRIENDLY)
        if predicate is not None and friendly:
            rest = {k: v for k, v in match.items() if k not in ("workspace_id", field)}
            return [{"workspace_id": match["workspace_id"], field: predicate}, *([rest] if rest else [])]
    return [{"workspace_id": match["workspace_id"]}, {k: v for k, v in match.items() if k != "workspace_id"}]


def _operators(value: object) -> set[str]:
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, sub in item.items():
                if key == "$literal":
                    continue  # data, whatever it looks like
                if isinstance(key, str) and key.startswith("$"):
                    found.add(key)
                stack.append(sub)
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, Observation):
            stack.append(item.value)
    return found


@dataclass(frozen=True)
class CompiledRule:
    """A rule compiled for one workspace at one ``asOf``: the pipelines that
    count its members, page through them, and answer per node. ``indexed``:
    the contact fields the leading ``$match`` may lead with, preferred first."""

    workspace_id: str
    query: Query
    as_of: dt.datetime
    nodes: tuple[CompiledNode, ...] = ()
    indexed: tuple[str, ...] = INDEXED_CONTACT_FIELDS

    def _scoped(self, stages: Sequence[Query]) -> Pipeline:
        """``stages`` with each ``$lookup`` reading the workspace's documents only."""
        scope = [{"$match": {"workspace_id": self.workspace_id}}]
        return [{"$lookup": {**stage["$lookup"], "pipeline": scope}} if "$lookup" in stage else stage
                for stage in stages]

    @property
    def stages(self) -> Pipeline:
        """Every condition node's stages, in the order of the nodes, ``$lookup`` scoped to the workspace."""
        return self._scoped([stage for node in self.nodes for stage in node.stages])

    def _per_node(self, first_match: Query) -> Pipeline:
        """One pass: each node's query counted in a ``$facet`` branch (keys
        n0, n1, ...), after every node's stages. Only counts and observed
        values leave, so the stages' fields need no projecting away."""
        return [{"$match": first_match}, *self.stages,
                {"$facet": {f"n{i}": [{"$match": node.query}, {"$count": "count"}]
                            for i, node in enumerate(self.nodes)}}]

    def probe_pipeline(self, nodes: Sequence[CompiledNode], queries: bool = True,
                       observations: bool = True) -> Pipeline:
        """``nodes``' own stages, queries and observed values (without
        ``queries`` or ``observations``: not those) on one contact of the
        workspace, each in a ``$facet`` branch: cheap whatever the rule, yet
        it fails as the whole pipeline did when one of these is what the
        database refuses. mongod parses every stage before reading anything;
        the embedded server meets a bad operator only on a document it
        evaluates, hence the one contact rather than none."""
        branches: dict[str, Pipeline] = {}
        for i, node in enumerate(nodes):
            stages = self._scoped(node.stages)
            branches[f"n{i}"] = [*stages, *([{"$match": node.query}] if queries else [])]
            if observations and node.observations:
                branches[f"o{i}"] = [*stages, {"$project": {
                    "_id": 0, **{f"v{j}": observation.value for j, observation in enumerate(node.observations)}}}]
        return [{"$match": {"workspace_id": self.workspace_id}}, {"$limit": 1}, {"$facet": branches}]

    def breakdown_pipeline(self) -> Pipeline:
        return self._per_node({"workspace_id": self.workspace_id})

    def membership_pipeline(self, contact_key: str) -> Pipeline:
        """Per-node matches for one contact, plus (facet ``values``) every
        observed value, keyed ``o<node>_<observation>``."""
        pipeline = self._per_node({"_id": contact_key, "workspace_id": self.workspace_id})  # a key lookup
        values = {f"o{i}_{j}": observation.value for i, node in enumerate(self.nodes)
                  for j, observation in enumerate(node.observations)}
        if values:
            pipeline[-1]["$facet"]["values"] = [{"$project": {"_id": 0, **values}}]
        return pipeline

    def _match_stages(self, extra: Query | None = None) -> Pipeline:
        """The members: what needs no stage's field first (index-friendly
        clauses, then ``$expr``), so stages run on as few contacts as
        possible; then the stages, the clauses reading their fields, and the
        namespace projected away."""
        staged = self.stages
        clauses = _conjuncts(self.query)  # so a condition's $expr clause leaves its group's plain ones in front
        reads_stages = [bool(staged) and _reads_stage_fields(c) for c in clauses]
        later = [c for c, reads in zip(clauses, reads_stages, strict=True) if reads]
        clauses = [c for c, reads in zip(clauses, reads_stages, strict=True) if not reads]
        plain = [c for c in clauses if "$expr" not in _operators(c)]
        costly = [c for c in clauses if "$expr" in _operators(c)]
        first = _merge_fields(_and([{"workspace_id": self.workspace_id}, *([extra] if extra else []), *plain]))
        stages = [{"$match": part} for part in _index_first(first, self.indexed)]
        if costly:
            stages.append({"$match": _and(costly)})
        if staged:
            stages += [*staged, *([{"$match": _and(later)}] if later else []), {"$project": {STAGE_NAMESPACE: 0}}]
        return stages

    def members_then(self, *stages: Query) -> Pipeline:
        """The stages selecting the members, followed by ``stages``."""
        return [*self._match_stages(), *stages]

    def count_pipeline(self) -> Pipeline:
        return self.members_then({"$count": "count"})

    def page_pipeline(self, after: str | None, first: int | None, with_stats: bool = True) -> Pipeline:
        """Members ordered by contact id, after the id ``after``; one extra
        document tells whether there is a next page (``first`` None: all of
        them). Without ``with_stats`` the rollups (most of a contact
        document) stay in the database."""
        extra = {"id": {"$gt": after}} if after is not None else None
        limit = [] if first is None else [{"$limit": first + 1}]
        return [*self._match_stages(extra), {"$sort": {"id": 1}}, *limit,
                {"$project": PAGE_PROJECTION if with_stats else PAGE_PROJECTION_WITHOUT_STATS}]

    def ids_pipeline(self) -> Pipeline:
        """Every member's id, in id order."""
        return self.members_then({"$project": {"_id": 0, "id": 1}}, {"$sort": {"id": 1}})


def extended_json(pipeline: Pipeline) -> Pipeline:
    """The pipeline in MongoDB relaxed Extended JSON, pasteable into mongosh."""
    converted: Pipeline = json.loads(json_util.dumps(pipeline, json_options=json_util.RELAXED_JSON_OPTIONS))
    return converted


# -- the entry point -------------------------------------------------------------------

def effective_as_of(as_of: dt.datetime | None) -> dt.datetime:
    """The instant an argument names, in UTC (``None``: now); BadArgument
    outside the supported range (server/instants.py)."""
    if as_of is None:
        return now()
    try:
        return instants.checked(as_of)
    except instants.OutOfRange as exc:
        raise BadArgument(str(exc)) from None


def check(registry: ConditionRegistry, workspace: Workspace, rule: Rule) -> Rule:
    """InvalidRule (or ConditionFailed) unless ``rule`` is well formed for the
    workspace's declared custom fields: all that saving a rule needs. Returns
    it as its plugins take it (input defaults added: :func:`coerced_rule`),
    the form to compile; a saved rule stays as it was sent."""
    coerced = coerced_rule(rule, registry)
    validate_rule(coerced, registry, ValidationContext(custom_fields=workspace.custom_fields, coerce=fieldtypes.coerce))
    return cast(Rule, coerced)  # validated: a rule


def compile_rule_for(registry: ConditionRegistry, workspace: Workspace, rule: Rule,
                     as_of: dt.datetime | None, observe: bool = False) -> CompiledRule:
    """``rule`` checked (as :func:`check`) and compiled for the workspace at
    ``as_of`` (default now); with ``observe``, each condition node carries the
    values its plugin observes (for explanations).

    Everything it needs comes with ``workspace`` (declared custom fields, the
    day of the newest event, the indexed paths), which a request has from the
    read that checked its key: no database, nothing to wait for."""
    rule = check(registry, workspace, rule)
    at = effective_as_of(as_of)
    context = CompileContext(as_of=at, custom_fields=workspace.custom_fields, coerce=fieldtypes.coerce,
                             newest_event_day=workspace.newest_event_day)
    nodes: list[CompiledNode] = []
    query = compile_rule(rule, registry, context, nodes=nodes, observe=observe)
    return CompiledRule(workspace.id, query, at, tuple(nodes), workspace.indexed_paths)
