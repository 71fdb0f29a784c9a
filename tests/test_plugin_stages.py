"""Stages (issue 20): a condition joining its plugin's own collection through
``$lookup`` counts right, several such conditions in one tree keep their
fields apart, the fields never leave the database, ``explainSegment`` shows
the stages, each ``$lookup`` reads only the workspace's documents, and what
a condition may not contribute (or the database refuses) is CONDITION_FAILED
naming the plugin, the node and the stage or operator."""


import pytest
from starlette.testclient import TestClient

from segmentql.app import create_app
from segmentql.plugins import Condition, Observation, hookimpl
from segmentql.plugins.registry import load_registry
from segmentql.server import segments
from segmentql.server.compiler import compile_rule_for

from .conftest import new_workspace
from .stage_plugins import ORDERS, REFUSED, EmailLength, Spending, refusing_plugins, staging
from .test_plugin_output import EmitInput, emitting

# id -> (email, amounts of its orders in the workspace)
CONTACTS = {"a": ("a@example.com", [5, 20]), "b": ("bo@example.com", [50]), "c": ("carla@example.com", []),
            "d": ("dee@example.org", [150, 50])}
COUNT = "query($r: RuleInput!) { segmentPreview(rule: $r) { count } }"
MEMBERS = "query($r: RuleInput!) { segmentPreview(rule: $r) { contacts(first: 50) { edges { node { id } } } } }"
FROBNICATING = {"frobStage": [{"$addFields": {"x": {"$frobnicate": [1]}}}]}


class FrobnicatingObservation:
    """A condition whose query is fine and whose observed value the database refuses."""

    @hookimpl
    def segmentql_register_conditions(self, register):
        register(Condition(field="frobObserve", input_type=EmitInput, description="Observes $frobnicate.",
                           validate=lambda node, ctx: None, compile=lambda node, ctx: {"email": {"$exists": True}},
                           observe=lambda node, ctx: [Observation("frobnicated", {"$frobnicate": [1]}, "-")]))


@pytest.fixture(scope="module")
def app(embedded_uri, settings):
    registry = load_registry(load_entry_points=False, extra=[
        ("spending", Spending()), ("lengths", EmailLength()), *refusing_plugins(),
        ("frob_stage", staging("frobStage", FROBNICATING["frobStage"])),
        ("frobnicator", emitting("frobnicate", {"email": {"$frobnicate": 1}})),
        ("js_where", emitting("jsWhere", {"$where": "return true"})),
        ("frob_observe", FrobnicatingObservation())])
    with TestClient(create_app(settings, embedded_uri, registry)) as http:
        yield http


def add_orders(client, orders: list[tuple[str, float]]) -> None:
    """Documents of the test collection, in the client's workspace."""
    docs = [{"workspace_id": client.workspace_id, "contact_id": c, "amount": amount} for c, amount in orders]
    client.call(client.db.db[ORDERS].insert_many, docs)


@pytest.fixture(scope="module")
def client(app):
    client = new_workspace(app)
    contacts = ", ".join(f'{{id: "{i}", email: "{email}"}}' for i, (email, _) in CONTACTS.items())
    client.graphql(f"mutation {{ upsertContacts(contacts: [{contacts}]) {{ accepted }} }}")
    add_orders(client, [(i, amount) for i, (_, amounts) in CONTACTS.items() for amount in amounts])
    other = new_workspace(app)  # the same contact ids, big spenders: never seen from `client`
    add_orders(other, [(i, 1000) for i in CONTACTS])
    return client


def members(client, rule: dict) -> list[str]:
    edges = client.graphql(MEMBERS, r=rule)["segmentPreview"]["contacts"]["edges"]
    ids = [e["node"]["id"] for e in edges]
    assert client.graphql(COUNT, r=rule)["segmentPreview"]["count"] == len(ids)
    return ids


def expected(predicate) -> list[str]:
    return [i for i, (email, amounts) in CONTACTS.items() if predicate(email, sum(amounts))]


def test_a_condition_with_a_lookup_counts_from_the_workspaces_documents_only(client):
    assert members(client, {"spent": {"atLeast": 25}}) == expected(lambda e, total: total >= 25) == ["a", "b", "d"]
    assert members(client, {"spent": {"atLeast": 1000}}) == []  # the other workspace's orders are not joined
    assert members(client, {"not": {"spent": {"atLeast": 1}}}) == ["c"]


def test_stage_conditions_in_one_tree_keep_their_fields_apart(client):
    """Both conditions add a field named ``total``; `spent` appears twice."""
    rule = {"any": [{"spent": {"atLeast": 100}},
                    {"all": [{"not": {"spent": {"atLeast": 10}}}, {"not": {"emailLength": {"over": 14}}}]}]}
    assert members(client, rule) == expected(lambda e, t: t >= 100 or (t < 10 and len(e) <= 14)) == ["d"]
    rule = {"all": [{"emailLength": {"over": 14}}, {"not": {"spent": {"atLeast": 100}}}]}
    assert members(client, rule) == expected(lambda e, t: len(e) > 14 and t < 100) == ["c"]
    breakdown = client.graphql("query($r: RuleInput!) { segmentPreview(rule: $r) { breakdown { path count } } }",
                               r=rule)["segmentPreview"]["breakdown"]
    assert [b["count"] for b in breakdown] == [1, 2, 3, 1]  # all, emailLength, not, spent


def test_the_namespace_never_leaves_the_database(client, app):
    workspace = client.call(client.db.workspace_for_key, client.key)
    registry = app.app.state.segmentql.registry
    compiled = compile_rule_for(registry, workspace, {"not": {"spent": {"atLeast": 30}}}, None)
    page = client.call(segments.members, client.db, compiled, 10, None)
    assert [doc["id"] for doc in page.contacts] == ["a", "c"]
    assert all("_sq" not in doc for doc in page.contacts)
    ids = client.call(segments.aggregate, client.db, compiled, compiled.ids_pipeline())
    assert ids == [{"id": "a"}, {"id": "c"}]


def test_explain_segment_shows_the_stages_scoped_to_the_workspace(client):
    pipeline = client.graphql("query($r: RuleInput!) { explainSegment(rule: $r) }",
                              r={"all": [{"tags": {"includesAny": ["x"]}}, {"spent": {"atLeast": 5}}]}
                              )["explainSegment"]["pipeline"]
    assert pipeline[1] == {"$lookup": {"from": ORDERS, "localField": "id", "foreignField": "contact_id",
                                       "as": "_sq.n2.orders",
                                       "pipeline": [{"$match": {"workspace_id": client.workspace_id}}]}}
    assert pipeline[2] == {"$set": {"_sq.n2.total": {"$sum": {"$map": {"input": "$_sq.n2.orders",
                                                                        "in": "$$this.amount"}}}}}
    assert pipeline[3:] == [{"$match": {"_sq.n2.total": {"$gte": 5}}}, {"$project": {"_sq": 0}}, {"$count": "count"}]


def test_a_saved_segment_with_stages_is_kept_current_by_writes(client, app):
    other = new_workspace(app)
    other.graphql('mutation { upsertContacts(contacts: [{id: "p", email: "p@example.com"}]) { accepted } }')
    add_orders(other, [("p", 40), ("q", 60)])
    segment = other.graphql('mutation { createSegment(name: "spenders", rule: {spent: {atLeast: 50}}) '
                            "{ id count } }")["createSegment"]
    assert segment["count"] == 0
    other.graphql('mutation { upsertContacts(contacts: [{id: "q", email: "q@example.com"}]) { accepted } }')
    query = "query($id: ID!) { segment(id: $id) { count contacts(first: 5) { edges { node { id } } } } }"
    stored = other.graphql(query, id=segment["id"])["segment"]
    assert stored["count"] == 1 and stored["contacts"]["edges"] == [{"node": {"id": "q"}}]


@pytest.mark.parametrize("field", REFUSED)
def test_a_stage_no_condition_may_contribute_is_refused_naming_plugin_node_and_stage(client, field):
    plugin, _, refused = REFUSED[field]
    errors = client.errors(COUNT, r={"all": [{"spent": {"atLeast": 1}}, {"not": {field: {"on": True}}}]})
    assert errors[0]["extensions"]["code"] == "CONDITION_FAILED"
    assert errors[0]["message"].startswith(f"the condition at all[1].not.{field} (plugin '{plugin}') ")
    assert refused in errors[0]["message"]


@pytest.mark.parametrize("field, refused", [
    ("frobnicate", "returned a query the database refuses"),
    ("frobStage", "returned stages the database refuses"),
])
def test_what_the_database_refuses_is_blamed_on_the_condition(client, field, refused):
    rule = {"any": [{"spent": {"atLeast": 1}}, {"not": {field: {"on": True}}}]}
    for query in (COUNT, MEMBERS):
        errors = client.errors(query, r=rule)
        assert errors[0]["extensions"]["code"] == "CONDITION_FAILED", errors
        plugin = "frobnicator" if field == "frobnicate" else "frob_stage"
        assert errors[0]["message"].startswith(f"the condition at any[1].not.{field} (plugin '{plugin}') {refused}")
        assert "$frobnicate" in errors[0]["message"]


def test_an_observed_value_the_database_refuses_is_blamed_on_the_condition(client):
    """explainMembership computes what conditions observe: a refused
    expression there names the condition like a refused query does."""
    errors = client.errors('{ explainMembership(contactId: "a", rule: {all: [{spent: {atLeast: 1}}, '
                           '{frobObserve: {on: true}}]}) { nodes { matched } } }')
    assert errors[0]["extensions"]["code"] == "CONDITION_FAILED", errors
    assert errors[0]["message"].startswith("the condition at all[1].frobObserve (plugin 'frob_observe') returned "
                                           "an observation the database refuses"), errors
    assert "$frobnicate" in errors[0]["message"]


def test_a_refused_operator_is_named(client):
    errors = client.errors(COUNT, r={"not": {"jsWhere": {"on": True}}})
    assert errors[0]["extensions"]["code"] == "CONDITION_FAILED"
    assert errors[0]["message"] == ("the condition at not.jsWhere (plugin 'js_where') returned $where, "
                                    "which no condition may use")
