"""A builder can place every error of a rule: a value GraphQL refuses (an
unknown enum value, a wrong type, a missing or unknown field, two conditions
or none in one node) and a node a plugin refuses all come back as
INVALID_RULE with ``extensions.rulePath``, given as a variable or written
inline, and the message starts with that path."""

import json

import pytest

from .conftest import new_workspace

PREVIEW = "query($r: RuleInput!) { segmentPreview(rule: $r) { count } }"


@pytest.fixture(scope="module")
def ws(http):
    client = new_workspace(http)
    client.define_fields({"signup": "DATE", "plan": "TEXT"})
    return client


class E(str):
    """An enum value: a string in JSON, a bare name in a GraphQL literal."""


def inline(value) -> str:
    """``value`` as a GraphQL literal: enum values (:class:`E`) bare, everything else as JSON."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {inline(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(inline(v) for v in value) + "]"
    if isinstance(value, E):
        return value
    return json.dumps(value)


def refusals(ws, rule) -> list[dict]:
    """The errors of a preview of ``rule``, sent as a variable and written inline (one error each)."""
    as_variable = ws.errors(PREVIEW, r=rule)
    written = ws.errors(f"{{ segmentPreview(rule: {inline(rule)}) {{ count }} }}")
    assert len(as_variable) == len(written) == 1, (as_variable, written)
    return [as_variable[0], written[0]]


def hot_or(node) -> dict:
    """The issue's shape: ``node`` at all[1].any[1]."""
    return {"all": [{"country": {"in": ["US"]}}, {"any": [{"leadScore": {"min": 90}}, node]}]}


CASES = [
    # what is wrong, the rule, its path, words of the reason
    ("unknown enum value", hot_or({"leadScore": {"tier": E("BOILING")}}), "all[1].any[1].leadScore.tier", "BOILING"),
    ("wrong type", hot_or({"leadScore": {"min": "high"}}), "all[1].any[1].leadScore.min", "Int"),
    ("wrong type in a list", {"not": {"country": {"in": ["US", 7]}}}, "not.country.in[1]", "String"),
    ("missing required field", hot_or({"recency": {"withinDays": 3}}), "all[1].any[1].recency.activity",
     "required field 'activity'"),
    ("unknown field", {"any": [{"leadScore": {"min": 1, "maximum": 3}}]}, "any[0].leadScore.maximum",
     "unknown field 'maximum'"),
    ("null for a required field", {"all": [{"recency": {"activity": E("ANY"), "withinDays": 3, "includeNever": None}}]},
     "all[0].recency.includeNever", "Boolean!"),
    ("two conditions in one node", {"all": [{"leadScore": {"min": 1}, "country": {"in": ["US"]}}]}, "all[0]",
     "exactly one of `all`, `any`, `not` or a condition"),
    ("an empty node", {"any": [{"leadScore": {"min": 1}}, {"not": {}}]}, "any[1].not",
     "exactly one of `all`, `any`, `not` or a condition"),
    ("a null condition", {"all": [{"leadScore": None}]}, "all[0]", "exactly one of"),
    ("two conditions at the root", {"leadScore": {"min": 1}, "tags": {"includesAny": ["vip"]}}, "", "exactly one of"),
]


@pytest.mark.parametrize("rule, path, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_input_errors_in_a_rule_are_invalid_rules_at_their_path(ws, rule, path, words):
    for error in refusals(ws, rule):
        assert error["extensions"] == {"code": "INVALID_RULE", "rulePath": path}, error
        assert error["message"].startswith(f"{path}: " if path else "a rule"), error
        assert words in error["message"], error


def test_a_variable_inside_an_inline_rule_is_placed_where_it_is_used(ws):
    query = ("query($inner: RuleInput!, $tier: LeadTier) { segmentPreview(rule: "
             "{not: {all: [{country: {in: [\"US\"]}}, $inner, {leadScore: {tier: $tier}}]}}) { count } }")
    errors = ws.errors(query, inner={"any": [{"leadScore": {"tier": "BOILING"}}]}, tier="HOT")
    assert [e["extensions"] for e in errors] == [
        {"code": "INVALID_RULE", "rulePath": "not.all[1].any[0].leadScore.tier"}]
    errors = ws.errors(query, inner={"leadScore": {"min": 1}}, tier="WARMISH")
    assert [e["extensions"] for e in errors] == [{"code": "INVALID_RULE", "rulePath": "not.all[2].leadScore.tier"}]
    errors = ws.errors(query, inner={"all": [{"leadScore": {"min": 1}, "tags": {"includesAny": ["a"]}}]}, tier="HOT")
    assert [e["extensions"] for e in errors] == [{"code": "INVALID_RULE", "rulePath": "not.all[1].all[0]"}]


def test_every_argument_typed_rule_input_is_placed_whatever_its_name(ws):
    segment = ws.graphql('mutation { createSegment(name: "s", rule: {leadScore: {min: 1}}) { id } }')["createSegment"]
    bad = "{all: [{leadScore: {tier: BOILING}}]}"
    for query in (f'mutation {{ createSegment(name: "x", rule: {bad}) {{ id }} }}',
                  f'mutation {{ updateSegment(id: "{segment["id"]}", rule: {bad}) {{ id }} }}',
                  f'{{ explainMembership(contactId: "c", rule: {bad}) {{ member }} }}',
                  f'{{ explainSegment(rule: {bad}) }}'):
        (error,) = ws.errors(query)
        assert error["extensions"] == {"code": "INVALID_RULE", "rulePath": "all[0].leadScore.tier"}, (query, error)


def test_plugin_validation_errors_carry_the_path_too(ws):
    (error,) = ws.errors(PREVIEW, r=hot_or({"recency": {"activity": "ANY"}}))
    assert error["extensions"] == {"code": "INVALID_RULE", "rulePath": "all[1].any[1].recency"}
    assert error["message"].startswith("all[1].any[1].recency: give exactly one of `withinDays`")
    (error,) = ws.errors(PREVIEW, r={"any": [{"tags": {"includesAny": []}}]})
    assert error["extensions"] == {"code": "INVALID_RULE", "rulePath": "any[0].tags.includesAny"}
    (error,) = ws.errors(PREVIEW, r={"not": {"customField": {"field": "nope", "exists": True}}})
    assert error["extensions"] == {"code": "INVALID_RULE", "rulePath": "not.customField"}
    (error,) = ws.errors(PREVIEW, r={"customField": {"field": "signup", "equals": "9999-12-31"}})
    assert error["extensions"] == {"code": "INVALID_RULE", "rulePath": "customField"}  # found when compiling


def test_other_input_errors_keep_their_codes(ws):
    (error,) = ws.errors("query($a: DateTime) { segmentPreview(rule: {leadScore: {min: 1}}, asOf: $a) { count } }",
                         a="yesterday")
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}
    (error,) = ws.errors('{ segmentPreview(rule: {leadScore: {min: 1}}) { nope } }')
    assert error["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}
    (error,) = ws.errors('mutation { upsertContacts(contacts: [{id: "a", email: 7}]) { accepted } }')
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED" and "rulePath" not in error["extensions"]
    (error,) = ws.errors(PREVIEW)  # no rule at all: an argument missing, nothing in a rule to place
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}


def test_an_operations_default_is_placed_where_its_variable_is_used(ws):
    for query, path in [
        ("query($x: RuleInput! = {leadScore: {tier: BOILING}}) { segmentPreview(rule: $x) { count } }",
         "leadScore.tier"),
        (("query($x: RuleInput! = {leadScore: {tier: BOILING}}) { segmentPreview(rule: {all: [{tags: "
          "{includesAny: [\"a\"]}}, $x]}) { count } }"), "all[1].leadScore.tier"),
        ("query($t: LeadTier = BOILING) { segmentPreview(rule: {not: {leadScore: {tier: $t}}}) { count } }",
         "not.leadScore.tier"),
        (("query($x: RuleInput! = {any: [{leadScore: {min: 1}, country: {in: \"US\"}}]}) "
          "{ segmentPreview(rule: $x) { count } }"), "any[0]"),
    ]:
        (error,) = ws.errors(query)
        assert error["extensions"] == {"code": "INVALID_RULE", "rulePath": path}, (query, error)


@pytest.mark.parametrize("query", [
    "{ segmentPreview(rule: {all: [$nope]}) { count } }",
    "{ segmentPreview(rule: {leadScore: {tier: $nope}}) { count } }",
    "{ segmentPreview(rule: {not: $nope}) { count } }",
    'mutation { createSegment(name: "x", rule: {not: $nope}) { id } }',
    "fragment F on Query { segmentPreview(rule: {not: $nope}) { count } } { ...F }",
], ids=["in a list", "in a condition", "alone in a node", "alone in a node, saved", "in a fragment"])
def test_a_variable_not_defined_is_a_document_error_not_a_rules(ws, query):
    (error,) = ws.errors(query)
    assert error["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}, error
    assert error["message"] == "Variable '$nope' is not defined."


def test_a_value_nested_deeper_than_a_rule_may_be_is_refused_at_its_place(ws):
    for depth in (33, 900):
        rule = {"any": [{"customField": {"field": "plan", "equals": json.loads("[" * depth + '"x"' + "]" * depth)}}]}
        for query in (PREVIEW, 'mutation($r: RuleInput!) { createSegment(name: "deep", rule: $r) { id } }'):
            (error,) = ws.errors(query, r=rule)
            assert error["extensions"] == {"code": "INVALID_RULE", "rulePath": "any[0].customField.equals"}, error
            assert "nested at most 32 levels deep" in error["message"]


def test_logs_give_a_names_the_client_chose_as_a_placeholder(ws, capsys):
    capsys.readouterr()
    too_long = {"secretKey": "x" * 1001}
    for request_id, rule in [("unknown-name-1", {"any": [{"leadScore": {"min": 1, "secretName": 3}}]}),
                             ("unknown-name-2", {"customField": {"field": "plan", "equals": too_long}})]:
        answer = ws.request(PREVIEW, {"r": rule}, headers={"X-Request-ID": request_id})
        assert "secret" in answer.json()["errors"][0]["extensions"]["rulePath"]
    log = capsys.readouterr().err
    assert "secret" not in log
    assert "[unknown-name-1] INVALID_RULE at the document, rule node any[0].leadScore.?" in log
    assert "[unknown-name-2] INVALID_RULE at ['segmentPreview'], rule node customField.equals.?" in log
