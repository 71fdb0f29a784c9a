"""The compiler: a rule tree becomes one query (groups joined with
``$and`` / ``$or`` / ``$nor``, simplified), and a compiled rule gives the
pipelines that count, page and explain it: the workspace and an
index-friendly predicate first, ``$expr`` last. What a plugin returns is
checked before anything runs."""

import dataclasses
import datetime as dt

import pytest

from segmentql.plugins import ALWAYS, NEVER, CompileContext, Condition, Observation, RuleError, hookimpl
from segmentql.plugins.registry import load_registry
from segmentql.server import fieldtypes
from segmentql.server.compiler import (
    PAGE_PROJECTION,
    PAGE_PROJECTION_WITHOUT_STATS,
    CompiledNode,
    CompiledRule,
    _and,
    _index_first,
    _not,
    _or,
    check,
    compile_rule,
    compile_rule_for,
    extended_json,
)
from segmentql.server.database import INDEXED_CONTACT_FIELDS, Workspace
from segmentql.server.errors import BadArgument, ConditionFailed, InvalidRule

from ..stage_plugins import ORDERS, REFUSED, EmailLength, Spending, refusing_plugins
from ..test_plugin_output import EMITTED, NESTED_EXPR, EmitInput, emitting, rule_with

AS_OF = dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC)
CTX = CompileContext(as_of=AS_OF, custom_fields={"ltv": "NUMBER"}, coerce=fieldtypes.coerce)
HOT = {"leadScore": {"$gte": 80, "$lte": 100}}
EXPR = {"$expr": {"$gt": ["$stats.opens", 3]}}
WORKSPACE = Workspace("w", "acme", {"ltv": {"type": "NUMBER"}}, newest_event_day=None)
EXPR_RULE = {"campaign": {"campaignId": "k1", "clickedUrlContains": "x"}}  # a condition compiling to $expr


# -- simplification --------------------------------------------------------------

def test_and_of_nothing_is_always():
    assert _and([]) == ALWAYS == {}


def test_and_puts_different_fields_in_one_document_in_order():
    assert _and([{"a": 1}, {"b": 2}, {"c": 3}]) == {"a": 1, "b": 2, "c": 3}
    assert list(_and([{"b": 2}, {"a": 1}])) == ["b", "a"]


def test_and_states_a_repeated_test_once():
    assert _and([{"a": 1}, {"a": 1, "b": 2}, {"b": 2}]) == {"a": 1, "b": 2}


def test_and_keeps_two_tests_of_one_field_apart():
    assert _and([{"tags": {"$in": ["x"]}}, {"tags": {"$nin": ["y"]}}]) == {
        "$and": [{"tags": {"$in": ["x"]}}, {"tags": {"$nin": ["y"]}}]}


def test_and_flattens_nested_ands():
    assert _and([{"$and": [{"a": 1}, {"$and": [{"b": 2}]}]}, {"c": 3}]) == {"a": 1, "b": 2, "c": 3}


def test_and_of_always_is_what_else_there_is():
    assert _and([ALWAYS, {"a": 1}]) == {"a": 1}
    assert _and([ALWAYS, ALWAYS]) == ALWAYS


def test_or_with_always_is_always_and_of_one_is_that_one():
    assert _or([{"a": 1}, ALWAYS]) == ALWAYS
    assert _or([{"a": 1}]) == {"a": 1}
    assert _or([{"a": 1}, {"b": 2}]) == {"$or": [{"a": 1}, {"b": 2}]}


def test_not_of_always_is_never_and_otherwise_a_nor():
    assert _not(ALWAYS) == NEVER
    assert _not({"a": 1}) == {"$nor": [{"a": 1}]}


def test_simplified_documents_are_copies_never_the_shared_constants():
    for result in (_and([]), _or([ALWAYS]), _not(ALWAYS)):
        result["x"] = 1
    assert ALWAYS == {} and NEVER == {"_id": {"$exists": False}}


# -- compiling a tree --------------------------------------------------------------

def test_a_tree_compiles_to_one_query(registry):
    rule = {"all": [{"leadScore": {"tier": "HOT"}}, {"not": {"country": {"in": ["us"]}}}]}
    assert compile_rule(rule, registry, CTX) == {**HOT, "$nor": [{"country": {"$in": ["US"]}}]}


def test_any_joins_with_or(registry):
    rule = {"any": [{"leadScore": {"tier": "HOT"}}, {"country": {"in": ["CA"]}}]}
    assert compile_rule(rule, registry, CTX) == {"$or": [HOT, {"country": {"$in": ["CA"]}}]}


def test_the_same_condition_twice_is_tested_once(registry):
    rule = {"all": [{"leadScore": {"tier": "HOT"}}, {"leadScore": {"min": 80, "max": 100}}]}
    assert compile_rule(rule, registry, CTX) == HOT


def test_every_node_is_collected_in_pre_order_with_its_own_query(registry):
    rule = {"all": [{"leadScore": {"tier": "HOT"}}, {"not": {"country": {"in": ["us"]}}}]}
    nodes: list[CompiledNode] = []
    query = compile_rule(rule, registry, CTX, nodes=nodes)
    assert [(n.path, n.kind) for n in nodes] == [
        ("all", "all"), ("all[0].leadScore", "leadScore"), ("all[1].not", "not"), ("all[1].not.country", "country")]
    assert [n.query for n in nodes] == [query, HOT, {"$nor": [{"country": {"$in": ["US"]}}]},
                                        {"country": {"$in": ["US"]}}]
    assert all(n.observations == () for n in nodes)


def test_observing_collects_what_each_condition_looks_at(registry):
    nodes: list[CompiledNode] = []
    compile_rule({"not": {"leadScore": {"tier": "HOT"}}}, registry, CTX, nodes=nodes, observe=True)
    assert nodes[0].observations == ()  # a group observes nothing itself
    assert nodes[1].observations == (Observation("lead score", "$leadScore", ">= 80 and <= 100 (HOT)"),)


# -- what plugins may return ---------------------------------------------------------

def registry_with(*plugins: tuple[str, object]):
    return load_registry(load_entry_points=False, extra=plugins)


@pytest.fixture(scope="module")
def emitters():
    """Every plugin of the integration suite's table, emitting its fixed query."""
    return registry_with(*[(plugin, emitting(field, query)) for field, (plugin, query, _) in EMITTED.items()],
                         ("nested_expr", emitting("nestedExpr", NESTED_EXPR)))


@pytest.mark.parametrize("field", [f for f in EMITTED if f != "frobnicate"])
def test_a_query_no_database_accepts_is_refused_naming_plugin_node_and_operator(emitters, field):
    plugin, _, refused = EMITTED[field]
    with pytest.raises(ConditionFailed) as failed:
        compile_rule(rule_with(field), emitters, CTX)
    assert str(failed.value).startswith(f"the condition at all[1].not.{field} (plugin '{plugin}') ")
    assert refused in str(failed.value)
    assert (failed.value.path, failed.value.plugin) == (f"all[1].not.{field}", plugin)


def test_an_unknown_operator_is_left_for_the_database_to_refuse(emitters):
    """Only the database knows its operators; the service then finds the culprit (tests/test_plugin_output.py)."""
    assert compile_rule({"frobnicate": {"on": True}}, emitters, CTX) == {"email": {"$frobnicate": 1}}


def test_expr_is_accepted_at_the_top_and_through_and_or_nor(emitters):
    assert compile_rule({"nestedExpr": {"on": True}}, emitters, CTX) == NESTED_EXPR


def test_operators_inside_a_literal_are_data():
    query = {"$expr": {"$eq": ["$email", {"$literal": {"$where": "x", "$expr": 1}}]}}
    assert compile_rule({"literal": {"on": True}}, registry_with(("lit", emitting("literal", query))), CTX) == query


def plugin_with(field: str, compile=None, observe=None):
    class Plugin:
        @hookimpl
        def segmentql_register_conditions(self, register):
            register(Condition(field=field, input_type=EmitInput, description="A test condition.",
                               validate=lambda node, ctx: None, compile=compile or (lambda node, ctx: {"a": 1}),
                               observe=observe))
    return Plugin()


def test_a_rule_error_from_compile_is_an_invalid_rule_at_the_node():
    def compile_(node, ctx):
        raise RuleError("needs a sunny day")
    registry = registry_with(("moody", plugin_with("moody", compile=compile_)))
    with pytest.raises(InvalidRule, match=r"^any\[0\]\.moody: needs a sunny day$"):
        compile_rule({"any": [{"moody": {"on": True}}]}, registry, CTX)


def test_a_plugin_exception_names_only_its_type():
    """Its message may hold internals (connection strings, rule values)."""
    def compile_(node, ctx):
        raise KeyError("mongodb://secret@host")
    registry = registry_with(("buggy", plugin_with("buggy", compile=compile_)))
    with pytest.raises(ConditionFailed) as failed:
        compile_rule({"buggy": {"on": True}}, registry, CTX)
    assert str(failed.value) == "the condition at buggy (plugin 'buggy') failed: KeyError"


def test_compile_must_return_a_query_document():
    registry = registry_with(("listy", plugin_with("listy", compile=lambda node, ctx: [{"a": 1}])))
    with pytest.raises(ConditionFailed, match="returned a list from compile, not a dict"):
        compile_rule({"listy": {"on": True}}, registry, CTX)


def test_observations_are_checked_like_queries():
    where = plugin_with("peeky", observe=lambda node, ctx: [Observation("x", {"$function": {}}, "1")])
    with pytest.raises(ConditionFailed, match=r"returned an observation with \$function, which no condition may use"):
        compile_rule({"peeky": {"on": True}}, registry_with(("peeky", where)), CTX, nodes=[], observe=True)
    strings = plugin_with("wordy", observe=lambda node, ctx: ["opens: 3"])
    with pytest.raises(ConditionFailed, match="returned something not an Observation from observe"):
        compile_rule({"wordy": {"on": True}}, registry_with(("wordy", strings)), CTX, nodes=[], observe=True)


# -- the entry point: (rule, workspace facts, asOf) -> a compiled rule -------------------

def test_a_rule_is_compiled_with_the_workspaces_facts_at_as_of(registry):
    rule = {"all": [{"leadScore": {"tier": "HOT"}}, {"not": {"numericRange": {"field": "ltv", "min": 10}}}]}
    compiled = compile_rule_for(registry, WORKSPACE, rule, AS_OF)
    assert compiled.query == compile_rule(rule, registry, CTX)
    assert (compiled.workspace_id, compiled.as_of, compiled.indexed) == ("w", AS_OF, WORKSPACE.indexed_paths)
    assert [node.path for node in compiled.nodes] == ["all", "all[0].leadScore", "all[1].not",
                                                      "all[1].not.numericRange"]
    assert all(not node.observations for node in compiled.nodes)
    observed = compile_rule_for(registry, WORKSPACE, rule, AS_OF, observe=True)
    assert observed.nodes[1].observations


def test_a_rule_is_checked_before_it_is_compiled(registry):
    undeclared = {"numericRange": {"field": "score", "min": 1}}
    for refuse in (lambda: check(registry, WORKSPACE, undeclared),
                   lambda: compile_rule_for(registry, WORKSPACE, undeclared, AS_OF)):
        with pytest.raises(InvalidRule, match=r"^numericRange: custom field 'score' is not declared"):
            refuse()
    check(registry, WORKSPACE, {"numericRange": {"field": "ltv", "min": 1}})


def test_as_of_defaults_to_now_and_must_be_in_the_supported_range(registry):
    rule = {"tags": {"includesAny": ["x"]}}
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    assert before < compile_rule_for(registry, WORKSPACE, rule, None).as_of
    at = compile_rule_for(registry, WORKSPACE, rule, AS_OF.astimezone(dt.timezone(dt.timedelta(hours=9)))).as_of
    assert at == AS_OF and at.utcoffset() == dt.timedelta(0)
    with pytest.raises(BadArgument, match="outside the supported range"):
        compile_rule_for(registry, WORKSPACE, rule, dt.datetime(1899, 12, 31, tzinfo=dt.UTC))


# -- the leading $match ------------------------------------------------------------------

def test_indexed_fields_are_the_fixed_ones_then_the_declared_paths():
    assert WORKSPACE.indexed_paths == INDEXED_CONTACT_FIELDS
    fields = {"signup": {"type": "DATE", "indexed": True}, "ltv": {"type": "NUMBER", "indexed": True},
              "plan": {"type": "TEXT", "indexed": False}}
    assert Workspace("w", "acme", fields, None).indexed_paths == (
        *INDEXED_CONTACT_FIELDS, "custom.ltv", "custom.signup", "dateParts.signup.md")


def test_index_first_leads_with_the_workspace_and_the_first_indexed_field():
    match = {"workspace_id": "w", "country": {"$in": ["US"]}, "email": "a@example.com", **HOT}
    assert _index_first(match, INDEXED_CONTACT_FIELDS) == [
        {"workspace_id": "w", **HOT}, {"country": {"$in": ["US"]}, "email": "a@example.com"}]


def test_index_first_takes_plain_values_and_index_friendly_operators_only():
    assert _index_first({"workspace_id": "w", "tags": "vip", "email": "a"}, ("tags",)) == [
        {"workspace_id": "w", "tags": "vip"}, {"email": "a"}]
    for unfriendly in ({"$ne": 3}, {"$exists": True}, {"$gte": 1, "$not": {"$eq": 2}}, {}):
        match = {"workspace_id": "w", "leadScore": unfriendly, "email": "a"}
        assert _index_first(match, ("leadScore",)) == [{"workspace_id": "w"}, {"leadScore": unfriendly, "email": "a"}]


def test_without_an_indexed_predicate_the_workspace_leads_alone():
    """A wider first filter makes the embedded server scan every workspace's contacts."""
    match = {"workspace_id": "w", "$nor": [{"email": "a"}]}
    assert _index_first(match, INDEXED_CONTACT_FIELDS) == [{"workspace_id": "w"}, {"$nor": [{"email": "a"}]}]
    assert _index_first({"workspace_id": "w", "email": "a", "id": {"$gt": "c7"}}, INDEXED_CONTACT_FIELDS) == [
        {"workspace_id": "w", "id": {"$gt": "c7"}}, {"email": "a"}]  # a page's cursor leads, on the id index


def test_index_first_leaves_a_narrow_match_whole():
    assert _index_first({"workspace_id": "w", **HOT}, INDEXED_CONTACT_FIELDS) == [{"workspace_id": "w", **HOT}]
    assert _index_first({"country": "US", **HOT, "email": "a"}, INDEXED_CONTACT_FIELDS) == [
        {"country": "US", **HOT, "email": "a"}]  # not one workspace's: nothing to lead with


# -- pipelines ------------------------------------------------------------------------------

def test_counting_leads_with_workspace_and_index_then_the_rest():
    rule = CompiledRule("w", {**HOT, "email": "a@example.com"}, AS_OF)
    assert rule.count_pipeline() == [{"$match": {"workspace_id": "w", **HOT}}, {"$match": {"email": "a@example.com"}},
                                     {"$count": "count"}]


def test_a_rule_matching_everyone_counts_the_workspace():
    assert CompiledRule("w", ALWAYS, AS_OF).count_pipeline() == [{"$match": {"workspace_id": "w"}}, {"$count": "count"}]


def test_expr_clauses_run_after_the_index_friendly_ones():
    rule = CompiledRule("w", {"$and": [HOT, {"country": "US"}, EXPR]}, AS_OF)
    assert rule.count_pipeline() == [{"$match": {"workspace_id": "w", **HOT}}, {"$match": {"country": "US"}},
                                     {"$match": EXPR}, {"$count": "count"}]


def test_expr_of_one_condition_in_a_group_still_runs_after_the_index_friendly_ones(registry):
    rule = {"all": [{"leadScore": {"tier": "HOT"}}, {"campaign": {"campaignId": "k1", "clickedUrlContains": "x"}}]}
    first = CompiledRule("w", compile_rule(rule, registry, CTX), AS_OF).count_pipeline()[0]["$match"]
    assert first == {"workspace_id": "w", **HOT}


def test_of_two_tests_of_one_field_the_first_leads_and_the_other_follows():
    rule = CompiledRule("w", {"$and": [{"tags": {"$in": ["x"]}}, {"tags": {"$nin": ["y"]}}]}, AS_OF)
    assert rule.count_pipeline() == [{"$match": {"workspace_id": "w", "tags": {"$in": ["x"]}}},
                                     {"$match": {"$and": [{"tags": {"$nin": ["y"]}}]}}, {"$count": "count"}]


def test_a_page_is_id_ordered_after_the_cursor_with_one_extra_document():
    rule = CompiledRule("w", {"email": "a"}, AS_OF)
    assert rule.page_pipeline("c7", 10) == [
        {"$match": {"workspace_id": "w", "id": {"$gt": "c7"}}}, {"$match": {"email": "a"}},
        {"$sort": {"id": 1}}, {"$limit": 11}, {"$project": PAGE_PROJECTION}]
    assert rule.page_pipeline(None, None, with_stats=False) == [
        {"$match": {"workspace_id": "w"}}, {"$match": {"email": "a"}}, {"$sort": {"id": 1}},
        {"$project": PAGE_PROJECTION_WITHOUT_STATS}]


def test_ids_and_members_then():
    rule = CompiledRule("w", HOT, AS_OF)
    assert rule.ids_pipeline() == [{"$match": {"workspace_id": "w", **HOT}}, {"$project": {"_id": 0, "id": 1}},
                                   {"$sort": {"id": 1}}]
    assert rule.members_then({"$limit": 1}) == [{"$match": {"workspace_id": "w", **HOT}}, {"$limit": 1}]


def compiled_with_nodes(registry) -> CompiledRule:
    nodes: list[CompiledNode] = []
    query = compile_rule({"not": {"leadScore": {"tier": "HOT"}}}, registry, CTX, nodes=nodes, observe=True)
    return CompiledRule("w", query, AS_OF, tuple(nodes))


def test_the_breakdown_counts_each_node_in_one_facet(registry):
    assert compiled_with_nodes(registry).breakdown_pipeline() == [
        {"$match": {"workspace_id": "w"}},
        {"$facet": {"n0": [{"$match": {"$nor": [HOT]}}, {"$count": "count"}],
                    "n1": [{"$match": HOT}, {"$count": "count"}]}}]


def test_membership_looks_up_one_contact_by_key_with_every_observed_value(registry):
    pipeline = compiled_with_nodes(registry).membership_pipeline("w:c1")
    assert pipeline[0] == {"$match": {"_id": "w:c1", "workspace_id": "w"}}
    assert pipeline[1]["$facet"]["values"] == [{"$project": {"_id": 0, "o1_0": "$leadScore"}}]
    assert set(pipeline[1]["$facet"]) == {"n0", "n1", "values"}


def test_a_probe_tries_the_given_nodes_and_their_observed_values_on_one_contact(registry):
    rule = compiled_with_nodes(registry)
    assert rule.probe_pipeline(rule.nodes[1:]) == [
        {"$match": {"workspace_id": "w"}}, {"$limit": 1},
        {"$facet": {"n0": [{"$match": HOT}], "o0": [{"$project": {"_id": 0, "v0": "$leadScore"}}]}}]
    assert rule.probe_pipeline(rule.nodes[1:], observations=False)[2] == {"$facet": {"n0": [{"$match": HOT}]}}


def test_extended_json_is_pasteable_into_mongosh():
    pipeline = [{"$match": {"at": {"$gte": AS_OF}, "n": 2**40}}]
    assert extended_json(pipeline) == [{"$match": {"at": {"$gte": {"$date": "2026-11-28T12:00:00Z"}}, "n": 2**40}}]


# -- stages ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stagers():
    return registry_with(("spending", Spending()), ("lengths", EmailLength()), *refusing_plugins())


SCOPE = [{"$match": {"workspace_id": "w"}}]


def spent_pipeline(node: int, at_least: float) -> tuple[list[dict], dict]:
    """The stages and the query of ``spent`` compiled as node ``node``."""
    ns = f"_sq.n{node}"
    return ([{"$lookup": {"from": ORDERS, "localField": "id", "foreignField": "contact_id", "as": f"{ns}.orders",
                          "pipeline": SCOPE}},
             {"$set": {f"{ns}.total": {"$sum": {"$map": {"input": f"${ns}.orders", "in": "$$this.amount"}}}}}],
            {f"{ns}.total": {"$gte": at_least}})


def test_stage_fields_live_in_the_nodes_namespace_and_lookups_read_the_workspace_only(stagers):
    compiled = compile_rule_for(stagers, WORKSPACE, {"spent": {"atLeast": 10}}, AS_OF)
    stages, query = spent_pipeline(0, 10)
    assert compiled.stages == stages
    assert compiled.count_pipeline() == [{"$match": {"workspace_id": "w"}}, *stages, {"$match": query},
                                         {"$project": {"_sq": 0}}, {"$count": "count"}]


def test_stages_run_after_the_clauses_that_need_none_of_their_fields(stagers):
    rule = {"all": [{"tags": {"includesAny": ["vip"]}}, {"not": {"spent": {"atLeast": 10}}}, EXPR_RULE]}
    compiled = compile_rule_for(stagers, WORKSPACE, rule, AS_OF)
    stages, query = spent_pipeline(3, 10)
    pipeline = compiled.count_pipeline()
    before = pipeline[:pipeline.index(stages[0])]
    assert [list(stage) for stage in before] == [["$match"]] * len(before)
    assert "_sq" not in str(before) and "'tags'" in str(before) and "$expr" in str(before[-1])
    assert pipeline[len(before):] == [*stages, {"$match": {"$nor": [query]}}, {"$project": {"_sq": 0}},
                                      {"$count": "count"}]


def test_two_conditions_adding_the_same_name_do_not_collide(stagers):
    rule = {"any": [{"spent": {"atLeast": 100}}, {"not": {"emailLength": {"over": 12}}}, {"spent": {"atLeast": 5}}]}
    compiled = compile_rule_for(stagers, WORKSPACE, rule, AS_OF)
    def added(stage: dict) -> list[str]:
        ((kind, spec),) = stage.items()
        return [spec["as"]] if kind == "$lookup" else list(spec)
    assert [(n.path, [field for stage in n.stages for field in added(stage)]) for n in compiled.nodes if n.stages] == [
        ("any[0].spent", ["_sq.n1.orders", "_sq.n1.total"]),
        ("any[1].not.emailLength", ["_sq.n3.total"]),
        ("any[2].spent", ["_sq.n4.orders", "_sq.n4.total"])]
    assert compiled.query == {"$or": [{"_sq.n1.total": {"$gte": 100}}, {"$nor": [{"_sq.n3.total": {"$gt": 12}}]},
                                      {"_sq.n4.total": {"$gte": 5}}]}


def test_every_pipeline_of_a_rule_with_stages_runs_them_and_drops_the_namespace(stagers):
    compiled = compile_rule_for(stagers, WORKSPACE, {"spent": {"atLeast": 10}}, AS_OF)
    stages, query = spent_pipeline(0, 10)
    tail = [*stages, {"$match": query}, {"$project": {"_sq": 0}}]
    assert compiled.page_pipeline("c7", 10)[1:] == [*tail, {"$sort": {"id": 1}}, {"$limit": 11},
                                                    {"$project": PAGE_PROJECTION}]
    assert compiled.ids_pipeline()[1:5] == tail
    assert compiled.members_then({"$limit": 1})[1:] == [*tail, {"$limit": 1}]
    assert compiled.breakdown_pipeline() == [{"$match": {"workspace_id": "w"}}, *stages,
                                             {"$facet": {"n0": [{"$match": query}, {"$count": "count"}]}}]
    assert compiled.probe_pipeline(compiled.nodes) == [{"$match": {"workspace_id": "w"}}, {"$limit": 1},
                                                       {"$facet": {"n0": [*stages, {"$match": query}]}}]
    assert compiled.probe_pipeline(compiled.nodes, queries=False)[-1] == {"$facet": {"n0": stages}}


def test_a_rule_without_stages_compiles_as_before(registry):
    compiled = compile_rule_for(registry, WORKSPACE, {"tags": {"includesAny": ["vip"]}}, AS_OF)
    assert compiled.stages == [] and all(not node.stages for node in compiled.nodes)
    assert compiled.count_pipeline() == [{"$match": {"workspace_id": "w", "tags": {"$in": ["vip"]}}},
                                         {"$count": "count"}]


@pytest.mark.parametrize("field", REFUSED)
def test_a_stage_no_condition_may_contribute_is_refused_naming_plugin_node_and_stage(stagers, field):
    plugin, _, refused = REFUSED[field]
    with pytest.raises(ConditionFailed) as failed:
        compile_rule({"any": [{"tags": {"includesAny": ["x"]}}, {field: {"on": True}}]}, stagers, CTX)
    assert str(failed.value).startswith(f"the condition at any[1].{field} (plugin '{plugin}') ")
    assert refused in str(failed.value)


def test_stage_field_is_for_a_node_being_compiled():
    assert dataclasses.replace(CTX, stage_namespace="_sq.n2").stage_field("orders") == "_sq.n2.orders"
    with pytest.raises(RuntimeError, match="stage_field is for a node being compiled"):
        CTX.stage_field("orders")
