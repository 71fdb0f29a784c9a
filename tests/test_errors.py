"""The error convention: every error has extensions.code, expected failures
are explained, unexpected ones are masked, and the service keeps serving."""

import dataclasses

from starlette.testclient import TestClient

from segmentql.app import create_app

from .conftest import GraphQLClient

HEAVY = {"any": [{"engagement": {"metric": "OPENS", "comparison": "GTE", "value": 3, "withinDays": 30}},
                 {"campaign": {"latest": True, "clickedUrlContains": "pricing"}}]}


def test_a_query_over_the_time_limit_is_a_timeout_and_the_service_lives_on(embedded_uri, settings, registry, seed):
    impatient = dataclasses.replace(settings, max_time_ms=1)
    with TestClient(create_app(impatient, embedded_uri, registry)) as http:
        client = GraphQLClient(http, seed.key, seed.workspace_id)
        errors = client.errors("query($r: RuleInput!) { segmentPreview(rule: $r) { count } }", r=HEAVY)
        assert errors[0]["extensions"]["code"] == "TIMEOUT"
        assert "time limit" in errors[0]["message"] and "MaxTimeMS" not in errors[0]["message"]
        assert client.graphql("{ contact(id: \"c0000001\") { id } }") == {"contact": {"id": "c0000001"}}


def test_graphql_validation_errors_have_a_code(gql):
    errors = gql.errors("{ segmentPreview(rule: {country: {in: [\"US\"]}}) { nope } }")
    assert errors[0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "nope" in errors[0]["message"]


def test_not_found_and_bad_input_codes(gql):
    errors = gql.errors('mutation { updateSegment(id: "missing", name: "x") { id } }')
    assert errors[0]["extensions"]["code"] == "NOT_FOUND"
    errors = gql.errors('mutation { createSegment(name: "  ", rule: {leadScore: {min: 1}}) { id } }')
    assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT" and "name" in errors[0]["message"]
