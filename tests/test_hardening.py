"""Abuse at the GraphQL and HTTP layers is refused cheaply and clearly."""

import json

import pytest


def post_raw(http, key, content: bytes, content_type="application/json"):
    return http.post("/graphql", content=content, headers={"Authorization": f"Bearer {key}",
                                                           "Content-Type": content_type})


def test_query_depth_is_limited(gql):
    nested = "{ segments { edges { node { id } } } }"
    deep = "{ segments { edges { node { " + "contacts { edges { node { " * 4 + "id" + " } } }" * 4 + " } } } }"
    assert gql.graphql(nested) == {"segments": {"edges": []}}
    for _ in range(2):  # parsed and validated documents are cached: the second time is refused too
        errors = gql.errors(deep)
        assert errors[0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED" and "depth" in errors[0]["message"]


def test_aliases_are_limited(gql):
    query = "{ " + " ".join(f"a{i}: conditionTypes {{ field }}" for i in range(40)) + " }"
    for _ in range(2):
        assert "aliases" in gql.errors(query)[0]["message"].lower()


def test_tokens_are_limited(gql):
    query = "{ conditionTypes { " + "field " * 6000 + "} }"
    for _ in range(2):
        assert "token" in gql.errors(query)[0]["message"].lower()


def test_oversized_bodies_are_413(gql):
    body = json.dumps({"query": "{ conditionTypes { field } }", "variables": {"pad": "x" * 3_000_000}}).encode()
    response = post_raw(gql.http, gql.key, body)
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


def test_batching_is_off(gql):
    body = json.dumps([{"query": "{ conditionTypes { field } }"}] * 2).encode()
    assert post_raw(gql.http, gql.key, body).status_code == 400


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data"])
def test_only_json_posts_are_accepted(gql, content_type):
    response = post_raw(gql.http, gql.key, b"query=%7B+conditionTypes+%7B+field+%7D+%7D", content_type)
    assert response.status_code == 415


def test_mutations_are_never_run_via_get(gql):
    response = gql.http.get("/graphql", params={"query": 'mutation { deleteSegment(id: "x") }'},
                            headers={"Authorization": f"Bearer {gql.key}", "Accept": "application/json"})
    assert response.status_code in (400, 405)
    assert "data" not in response.text or '"deleteSegment"' not in response.text


def test_operator_shaped_values_are_data(gql):
    gql.graphql('mutation { defineCustomField(key: "plan", type: TEXT) { key } }')
    gql.graphql('mutation($c: [ContactInput!]!) { upsertContacts(contacts: $c) { accepted } }',
            c=[{"id": "x", "email": "x@example.com", "tags": ["$where", '{"$gt": 1}'],
                "customFields": {"plan": "$ne"}}])
    count = "query($r: RuleInput!) { segmentPreview(rule: $r) { count } }"
    assert gql.graphql(count, r={"tags": {"includesAny": ["$where"]}})["segmentPreview"]["count"] == 1
    assert gql.graphql(count, r={"customField": {"field": "plan", "equals": "$ne"}})["segmentPreview"]["count"] == 1
    assert gql.graphql(count, r={"country": {"in": ["$exists"]}})["segmentPreview"]["count"] == 0
    errors = gql.errors(count, r={"customField": {"field": "plan", "equals": {"$gt": ""}}})
    assert errors[0]["extensions"]["code"] == "INVALID_RULE"


@pytest.mark.parametrize("text", ["(a+)+$", ".*", "\\", "[", "%", "$where"])
def test_contains_text_is_literal(seed, text):
    rule = {"campaign": {"latest": True, "clickedUrlContains": text}}
    count = "query($r: RuleInput!) { segmentPreview(rule: $r, asOf: \"2026-11-28T12:00:00Z\") { count } }"
    assert seed.graphql(count, r=rule)["segmentPreview"]["count"] == 0
