"""A plugin's query that a real mongod would refuse fails the request as
CONDITION_FAILED naming the plugin, the node and what was refused: either the
compiler refuses it before anything runs ($where, $expr under a field or
$elemMatch), or the database does and the condition behind it is found."""


import pytest
import strawberry
from starlette.testclient import TestClient

from segmentql.app import create_app
from segmentql.plugins import Condition, hookimpl
from segmentql.plugins.registry import load_registry

from .conftest import new_workspace


@strawberry.input(description="Test input.")
class EmitInput:
    on: bool | None = strawberry.UNSET


def emitting(field: str, query: dict):
    """A plugin whose condition ``field`` compiles to ``query``, whatever the node."""
    class Plugin:
        @hookimpl
        def segmentql_register_conditions(self, register):
            register(Condition(field=field, input_type=EmitInput, description="Emits a fixed query.",
                               validate=lambda node, ctx: None, compile=lambda node, ctx: query))
    return Plugin()


EQ = {"$eq": ["$email", "a@example.com"]}
# field -> (plugin, the query it emits, what the message must name)
EMITTED = {
    "exprInElemMatch": ("elem_expr", {"tags": {"$elemMatch": {"$expr": EQ}}}, "$expr under $elemMatch"),
    "exprUnderField": ("field_expr", {"email": {"$expr": EQ}}, "$expr under a field"),
    "exprInOrUnderField": ("deep_expr", {"$or": [{"tags": "vip"}, {"email": {"$not": {"$expr": EQ}}}]},
                           "$expr under $not"),
    "jsWhere": ("js_where", {"$where": "return true"}, "returned $where, which no condition may use"),
    "frobnicate": ("frobnicator", {"email": {"$frobnicate": 1}},
                   "returned a query the database refuses: unknown operator: $frobnicate"),
}
# $expr where mongod takes it: at the top, or through $and / $or / $nor at any depth.
NESTED_EXPR = {"$or": [{"$and": [{"tags": "vip"}, {"$expr": EQ}]}, {"$nor": [{"$or": [{"$expr": {"$eq": [1, 1]}}]}]}]}
PREVIEW_COUNT = "query($r: RuleInput!) { segmentPreview(rule: $r) { count } }"
PREVIEW_PAGE = "query($r: RuleInput!) { segmentPreview(rule: $r) { contacts(first: 5) { edges { node { id } } } } }"


@pytest.fixture(scope="module")
def client(embedded_uri, settings):
    """A workspace on an app with every emitting plugin, holding contacts
    (the embedded server meets an unknown operator only on a document)."""
    registry = load_registry(load_entry_points=False, extra=[
        *[(plugin, emitting(field, query)) for field, (plugin, query, _) in EMITTED.items()],
        ("nested_expr", emitting("nestedExpr", NESTED_EXPR))])
    with TestClient(create_app(settings, embedded_uri, registry)) as http:
        client = new_workspace(http)
        client.graphql('mutation { upsertContacts(contacts: [{id: "a", email: "a@example.com", tags: ["vip"]}, '
                       '{id: "b", email: "b@example.com", tags: ["vip", "x"]}]) { accepted } }')
        yield client


def rule_with(field: str) -> dict:
    """The condition two levels down, beside a built-in one that matches: at ``all[1].not.<field>``."""
    return {"all": [{"tags": {"includesAny": ["vip"]}}, {"not": {field: {"on": True}}}]}


def assert_names_the_culprit(errors: list[dict], field: str) -> None:
    plugin, _, refused = EMITTED[field]
    assert len(errors) == 1, errors
    assert errors[0]["extensions"]["code"] == "CONDITION_FAILED"
    assert errors[0]["message"].startswith(f"the condition at all[1].not.{field} (plugin '{plugin}') ")
    assert refused in errors[0]["message"]


@pytest.mark.parametrize("field", EMITTED)
def test_a_preview_count_names_the_plugin_the_node_and_the_operator(client, field):
    assert_names_the_culprit(client.errors(PREVIEW_COUNT, r=rule_with(field)), field)


@pytest.mark.parametrize("field", EMITTED)
def test_a_preview_page_names_the_plugin_the_node_and_the_operator(client, field):
    assert_names_the_culprit(client.errors(PREVIEW_PAGE, r=rule_with(field)), field)


@pytest.mark.parametrize("field", EMITTED)
def test_a_saved_segments_count_names_the_plugin_the_node_and_the_operator(client, field):
    sid = client.graphql("mutation($r: RuleInput!) { createSegment(name: \"s\", rule: $r) { id } }",
                         r=rule_with(field))["createSegment"]["id"]
    assert_names_the_culprit(client.errors("query($id: ID!) { segment(id: $id) { count } }", id=sid), field)


@pytest.mark.parametrize("query", [
    "query($id: ID!) { segment(id: $id) { contacts(first: 5) { edges { node { id } } } } }",
    ("query($id: ID!) { segment(id: $id) { split(variants: [{name: \"A\", weight: 1}], seed: \"s\") "
     "{ variants { count } } } }"),
    ("query($id: ID!) { segment(id: $id) { split(variants: [{name: \"A\", weight: 1}], seed: \"s\") "
     "{ variants { contacts(first: 1) { edges { node { id } } } } } } }"),
    "query($id: ID!) { segment(id: $id) { analytics(withinDays: 7) { members } } }",
    "mutation($id: ID!) { snapshotSegment(id: $id, label: \"send\") { id } }",
])
def test_every_way_of_running_a_segment_blames_the_refused_condition(client, query):
    sid = client.graphql("mutation($r: RuleInput!) { createSegment(name: \"s\", rule: $r) { id } }",
                         r=rule_with("frobnicate"))["createSegment"]["id"]
    assert_names_the_culprit(client.errors(query, id=sid), "frobnicate")


def test_breakdown_and_explanation_blame_the_refused_condition(client):
    errors = client.errors("query($r: RuleInput!) { segmentPreview(rule: $r) { breakdown { path count } } }",
                           r=rule_with("frobnicate"))
    assert_names_the_culprit(errors, "frobnicate")
    errors = client.errors('query($r: RuleInput!) { explainMembership(contactId: "a", rule: $r) { member } }',
                           r=rule_with("frobnicate"))
    assert_names_the_culprit(errors, "frobnicate")


def test_the_culprit_is_found_among_many_conditions(client):
    """Candidates are halved: the refused one is named wherever it stands."""
    fine = [{"tags": {"excludes": [f"t{i}"]}} for i in range(12)]
    for position in (0, 5, 12):
        rule = {"all": [*fine[:position], {"frobnicate": {"on": True}}, *fine[position:]]}
        errors = client.errors(PREVIEW_COUNT, r=rule)
        assert errors[0]["extensions"]["code"] == "CONDITION_FAILED"
        assert errors[0]["message"].startswith(f"the condition at all[{position}].frobnicate (plugin 'frobnicator')")


def test_expr_through_logical_operators_is_accepted_and_runs(client):
    assert client.graphql(PREVIEW_COUNT, r={"nestedExpr": {"on": True}})["segmentPreview"] == {"count": 1}
    assert client.graphql(PREVIEW_COUNT, r={"not": {"nestedExpr": {"on": True}}})["segmentPreview"] == {"count": 1}
