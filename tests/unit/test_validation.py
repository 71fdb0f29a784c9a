"""Rule validation with the real built-in conditions: the whole tree is
checked before anything runs, and the first problem is reported with the
path of its node and a reason a marketer can act on."""

import pytest

from segmentql.plugins import Condition, ValidationContext, hookimpl
from segmentql.plugins.registry import load_registry
from segmentql.server import fieldtypes
from segmentql.server.compiler import RuleLimits, validate_rule
from segmentql.server.errors import ConditionFailed, InvalidRule

from ..test_plugin_output import EmitInput
from ..test_rule_validation import CASES, FIELDS

CTX = ValidationContext(custom_fields=FIELDS, coerce=fieldtypes.coerce)
FINE = {"leadScore": {"min": 1}}
DEFAULT_LIMITS = RuleLimits()


def problem(rule, registry, limits: RuleLimits = DEFAULT_LIMITS) -> str:
    with pytest.raises(InvalidRule) as refused:
        validate_rule(rule, registry, CTX, limits)
    return str(refused.value)


@pytest.mark.parametrize("rule, path, reason", CASES, ids=[c[1] + ":" + c[2][:20] for c in CASES])
def test_every_invalid_rule_of_the_api_is_refused_here_with_its_path_and_reason(registry, rule, path, reason):
    """The INVALID_RULE cases of tests/test_rule_validation.py, decided without a database."""
    message = problem(rule, registry)
    assert message.startswith(path + ":") and reason in message, message


def test_a_well_formed_tree_passes(registry):
    validate_rule({"all": [FINE, {"not": {"any": [{"country": {"in": ["US"]}}, {"tags": {"excludes": ["x"]}}]}}]},
                  registry, CTX)


def test_unknown_conditions_are_named_at_their_node(registry):
    assert problem({"any": [FINE, {"all": [{"shoeSize": {"min": 40}}]}]}, registry) == \
        "any[1].all[0]: unknown condition 'shoeSize'"


def test_a_node_has_exactly_one_key(registry):
    shape = "a rule must have exactly one of `all`, `any`, `not` or a condition"
    assert problem({"all": [FINE], "any": [FINE]}, registry) == shape  # the root has no path
    assert problem({}, registry) == shape
    assert problem({"not": [FINE]}, registry) == f"not: {shape}"
    assert problem({"all": [FINE, "leadScore"]}, registry) == f"all[1]: {shape}"


def test_groups_hold_rules_and_conditions_hold_objects(registry):
    assert problem({"any": FINE}, registry) == "any: `any` needs at least one rule"
    assert problem({"leadScore": [1]}, registry) == "leadScore: a condition must be an object"


def test_the_first_problem_in_reading_order_is_reported(registry):
    assert problem({"all": [{"country": {}}, {"nope": {}}]}, registry).startswith("all[0].country:")
    assert problem({"all": [{"nope": {}}, {"country": {}}]}, registry).startswith("all[0]:")


def test_the_default_limits():
    assert RuleLimits() == RuleLimits(max_depth=32, max_nodes=500, max_list=1000, max_string=1000)


def test_depth_is_limited_at_the_node_past_the_limit(registry):
    rule = {"not": {"not": {"not": FINE}}}
    validate_rule(rule, registry, CTX, RuleLimits(max_depth=4))
    assert problem(rule, registry, RuleLimits(max_depth=3)) == \
        "not.not.not: a rule may be nested at most 3 levels deep"


def test_a_very_deep_chain_is_refused_without_recursing(registry):
    rule = FINE
    for _ in range(20_000):
        rule = {"not": rule}
    assert "nested at most 32 levels deep" in problem(rule, registry)


def test_nodes_lists_and_texts_are_limited(registry):
    limits = RuleLimits(max_nodes=3, max_list=2, max_string=5)
    assert problem({"all": [FINE, FINE, FINE]}, registry, limits) == "all: a group may hold at most 2 rules"
    assert problem({"all": [FINE, {"not": FINE}]}, registry, limits) == "a rule may have at most 3 nodes"
    assert problem({"tags": {"excludes": ["a", "b", "c"]}}, registry, limits) == \
        "tags.excludes: a list may hold at most 2 items"
    assert problem({"tags": {"excludes": ["abcdef"]}}, registry, limits) == \
        "tags.excludes: text may be at most 5 characters"


def test_a_validator_that_crashes_fails_the_request_naming_its_plugin():
    class Crashing:
        @hookimpl
        def segmentql_register_conditions(self, register):
            register(Condition(field="crashy", input_type=EmitInput, description="Crashes.",
                               validate=lambda node, ctx: 1 / 0, compile=lambda node, ctx: {}))
    registry = load_registry(load_entry_points=False, extra=[("crashing", Crashing())])
    with pytest.raises(ConditionFailed) as failed:
        validate_rule({"not": {"crashy": {"on": True}}}, registry, CTX)
    assert str(failed.value) == "the condition at not.crashy (plugin 'crashing') failed: ZeroDivisionError"
