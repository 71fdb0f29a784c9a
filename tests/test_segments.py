"""Saved segments, previews, paging and explain, through GraphQL."""

import base64
import json

import pytest
from starlette.testclient import TestClient

from segmentql.app import create_app
from segmentql.plugins import Condition, hookimpl
from segmentql.plugins.registry import load_registry

from .conftest import new_workspace
from .test_plugin_output import EmitInput

SEGMENT_FIELDS = "id name rule createdAt updatedAt"


def test_create_read_update_delete_segment(seed):
    rule = {"all": [{"leadScore": {"tier": "HOT"}}, {"recency": {"activity": "ANY", "withinDays": 14}}]}
    create = f'mutation($r: RuleInput!) {{ createSegment(name: "Hot", rule: $r) {{ {SEGMENT_FIELDS} }} }}'
    created = seed.graphql(create, r=rule)["createSegment"]
    assert created["name"] == "Hot"
    # The rule comes back exactly as sent (no default added: tests/test_round_trip.py).
    assert created["rule"] == rule
    sid = created["id"]
    read = seed.graphql("query($id: ID!, $a: DateTime) { segment(id: $id) { name count(asOf: $a) rule } }",
                    id=sid, a="2026-11-28T12:00:00Z")["segment"]
    assert read["count"] > 0
    # Round trip: the stored rule is accepted back as RuleInput and means the same.
    again = seed.graphql("query($r: RuleInput!, $a: DateTime) { segmentPreview(rule: $r, asOf: $a) { count } }",
                     r=read["rule"], a="2026-11-28T12:00:00Z")
    assert again["segmentPreview"]["count"] == read["count"]
    updated = seed.graphql("mutation($id: ID!, $r: RuleInput) { updateSegment(id: $id, name: \"Hotter\", rule: $r) "
                       "{ name rule updatedAt } }", id=sid, r={"leadScore": {"min": 95}})["updateSegment"]
    assert updated["name"] == "Hotter" and updated["rule"] == {"leadScore": {"min": 95}}
    revisions = seed.graphql("query($id: ID!) { segment(id: $id) { revisions { name rule savedAt } } }",
                         id=sid)["segment"]["revisions"]
    assert [(r["name"], r["rule"]) for r in revisions] == [("Hot", created["rule"])]
    assert revisions[0]["savedAt"] == created["updatedAt"]
    assert seed.graphql("mutation($id: ID!) { deleteSegment(id: $id) }", id=sid)["deleteSegment"] is True
    assert seed.graphql("query($id: ID!) { segment(id: $id) { id } }", id=sid)["segment"] is None


def test_segments_are_paged_newest_first(gql):
    for name in ("a", "b", "c"):
        gql.graphql(f'mutation {{ createSegment(name: "{name}", rule: {{leadScore: {{min: 1}}}}) {{ id }} }}')
    page = "{ segments(first: 2) { edges { node { name } } pageInfo { hasNextPage endCursor } } }"
    first = gql.graphql(page)["segments"]
    assert [e["node"]["name"] for e in first["edges"]] == ["c", "b"] and first["pageInfo"]["hasNextPage"]
    rest = gql.graphql("query($a: String) { segments(first: 2, after: $a) { edges { node { name } } "
                   "pageInfo { hasNextPage } } }", a=first["pageInfo"]["endCursor"])["segments"]
    assert [e["node"]["name"] for e in rest["edges"]] == ["a"] and not rest["pageInfo"]["hasNextPage"]


def test_contacts_are_paged_by_id_without_gaps_or_repeats(seed):
    rule = {"country": {"in": ["US"]}}
    query = """query($r: RuleInput!, $after: String) { segmentPreview(rule: $r) { count
      contacts(first: 300, after: $after) { edges { cursor node { id email } } pageInfo { hasNextPage endCursor } }
    } }"""
    seen, after = [], None
    while True:
        data = seed.graphql(query, r=rule, after=after)["segmentPreview"]
        seen += [e["node"]["id"] for e in data["contacts"]["edges"]]
        if not data["contacts"]["pageInfo"]["hasNextPage"]:
            break
        after = data["contacts"]["pageInfo"]["endCursor"]
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == data["count"]


def test_page_size_limits_and_bad_cursors(seed):
    query = ("query($f: Int, $a: String) { segmentPreview(rule: {leadScore: {min: 0}}) "
             "{ contacts(first: $f, after: $a) { edges { node { id } } } } }")
    default = seed.graphql(query)["segmentPreview"]["contacts"]["edges"]
    assert len(default) == 20
    assert len(seed.graphql(query, f=1000)["segmentPreview"]["contacts"]["edges"]) == 1000
    for first in (1001, -1):
        errors = seed.errors(query, f=first)
        assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT" and "`first`" in errors[0]["message"]
    errors = seed.errors(query, a="not-a-cursor!")
    assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT"
    forged = base64.urlsafe_b64encode(b"segment:x").decode()
    assert seed.errors(query, a=forged)[0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_contact_stats_are_exposed(seed):
    node = seed.graphql("""{ segmentPreview(rule: {engagement: {metric: CLICKS, comparison: GTE, value: 1}}) {
        contacts(first: 1) { edges { node { id stats { clicks lastClickAt campaigns { campaignId } } } } } } }""")
    contact = node["segmentPreview"]["contacts"]["edges"][0]["node"]
    assert contact["stats"]["clicks"] >= 1 and contact["stats"]["lastClickAt"]


def test_explain_returns_the_pipeline_that_runs(seed):
    rule = {"all": [{"leadScore": {"tier": "HOT"}}, {"campaign": {"latest": True, "clickedUrlContains": "$where"}}]}
    explained = seed.graphql("query($r: RuleInput!) { explainSegment(rule: $r, asOf: \"2026-11-28T12:00:00Z\") }",
                         r=rule)["explainSegment"]
    assert explained["collection"] == "contacts"
    pipeline = explained["pipeline"]
    assert pipeline[0]["$match"]["workspace_id"] == seed.workspace_id
    assert pipeline[-1] == {"$count": "count"}
    text = json.dumps(pipeline)
    assert '{"$literal": "$where"}' in text  # user text is data, never an operator or a pattern
    for forbidden in ("$where\":", "$function", "$accumulator", "$regex", "$out", "$merge"):
        assert forbidden not in text.replace('"$literal": "$where"', "")
    # Running the explained pipeline directly gives the preview's count.
    from bson import json_util
    direct = seed.call(seed.db.aggregate_contacts, json_util.loads(json.dumps(pipeline)))
    preview = seed.graphql('query($r: RuleInput!) { segmentPreview(rule: $r, asOf: "2026-11-28T12:00:00Z") { count } }',
                           r=rule)["segmentPreview"]["count"]
    assert (direct[0]["count"] if direct else 0) == preview


def test_condition_types_lists_every_builtin(gql):
    types = gql.graphql("{ conditionTypes { field inputType plugin distribution description } }")["conditionTypes"]
    assert [t["field"] for t in types] == ["country", "timezone", "tags", "engagement", "recency", "lastOpenDevice",
                                           "openHabits", "campaign", "leadScore", "numericRange", "customField",
                                           "dateRange", "dateAnniversary"]
    assert {t["inputType"] for t in types} >= {"SetCondition", "CampaignCondition", "DateAnniversaryCondition"}
    assert all(t["description"] and t["distribution"] == "segmentql" for t in types)


class CountingCondition:
    """A plugin whose ``counted`` condition (contacts tagged vip) counts how
    often the service validates and compiles it."""

    def __init__(self):
        self.validated = self.compiled = 0

    def validate(self, node, ctx) -> None:
        self.validated += 1

    def compile(self, node, ctx) -> dict:
        self.compiled += 1
        return {"tags": "vip"}

    @hookimpl
    def segmentql_register_conditions(self, register):
        register(Condition(field="counted", input_type=EmitInput, description="Contacts tagged vip, counted.",
                           validate=self.validate, compile=self.compile))


@pytest.fixture(scope="module")
def counting(embedded_uri, settings):
    """A workspace on an app with the counting condition, and the condition."""
    condition = CountingCondition()
    registry = load_registry(load_entry_points=False, extra=[("counting", condition)])
    with TestClient(create_app(settings, embedded_uri, registry)) as http:
        client = new_workspace(http)
        client.graphql('mutation { upsertContacts(contacts: [{id: "a", email: "a@example.com", tags: ["vip"]}, '
                       '{id: "b", email: "b@example.com"}]) { accepted } }')
        yield client, condition


def test_a_saved_segment_compiles_once_per_request_however_many_fields_ask(counting):
    client, condition = counting
    sid = client.graphql('mutation { createSegment(name: "vip", rule: {counted: {on: true}}) { id } }'
                         )["createSegment"]["id"]
    condition.validated = condition.compiled = 0
    segment = client.graphql("""query($id: ID!, $a: DateTime) { segment(id: $id) {
        count(asOf: $a) contacts(first: 5, asOf: $a) { edges { node { id } } }
        split(variants: [{name: "A", weight: 1}], seed: "s", asOf: $a) { variants { count } }
        analytics(asOf: $a) { members } again: count(asOf: $a) } }""", id=sid, a="2026-11-28T12:00:00Z")["segment"]
    assert segment["count"] == segment["again"] == segment["analytics"]["members"] == 1
    assert [e["node"]["id"] for e in segment["contacts"]["edges"]] == ["a"]
    assert segment["split"]["variants"] == [{"count": 1}]
    assert (condition.validated, condition.compiled) == (1, 1)
    # Another asOf is another compilation, and another request compiles again;
    # the count without asOf reads the stored members and compiles nothing.
    client.graphql('query($id: ID!) { segment(id: $id) { count january: count(asOf: "2026-01-01T00:00:00Z")'
                   ' december: count(asOf: "2026-12-01T00:00:00Z") } }', id=sid)
    assert (condition.validated, condition.compiled) == (3, 3)
