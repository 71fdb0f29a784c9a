"""Fuzzing with hypothesis-graphql: schema-valid queries and mutations with
arbitrary arguments never get a 5xx or an unmasked error, and an interrupted
recordEvents retried never double-counts."""

import graphql
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import from_schema, nodes

from segmentql.plugins.registry import load_registry
from segmentql.schema import build_schema
from segmentql.server import ingest

from .examples import examples

SDL = build_schema(load_registry(load_entry_points=False)).as_str()
SCALARS = {
    "DateTime": st.sampled_from(["2026-11-28T12:00:00Z", "2026-01-01", "not a date", "9999-12-31T23:59:59Z"]).map(
        nodes.String),
    "JSON": st.one_of(st.integers(-5, 5).map(nodes.Int), st.text(max_size=8).map(nodes.String),
                      st.just(graphql.NullValueNode()), st.booleans().map(nodes.Boolean)),
    "SplitSeed": st.one_of(st.integers(-5, 5).map(nodes.Int), st.text(max_size=8).map(nodes.String),
                           st.floats(allow_nan=False, allow_infinity=False).map(nodes.Float)),
}
KNOWN_CODES = {"GRAPHQL_VALIDATION_FAILED", "BAD_USER_INPUT", "INVALID_RULE", "NOT_FOUND", "CONFLICT", "TIMEOUT",
               "QUERY_TOO_COSTLY"}


@settings(max_examples=examples(80), deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(document=from_schema(SDL, custom_scalars=SCALARS))
def test_fuzzed_requests_never_crash_or_leak(gql, document):
    response = gql.request(document)
    assert response.status_code < 500, response.text
    for error in response.json().get("errors") or []:
        assert error["extensions"]["code"] in KNOWN_CODES, error
        assert "Traceback" not in error["message"] and "pymongo" not in error["message"].lower()


def test_record_events_retried_after_an_interrupted_batch_counts_once(gql):
    gql.graphql('mutation { upsertContacts(contacts: [{id: "c1", email: "a@example.com"}]) { accepted } }')
    events = [{"id": f"e{i}", "contactId": "c1", "type": "OPEN", "at": f"2026-11-0{i + 1}T10:00:00Z"}
              for i in range(3)]
    # The first attempt stored the raw events and died before its rollups were written.
    gql.call(ingest.store_events, gql.db, gql.workspace_id, events)
    retry = gql.graphql('mutation($e: [EventInput!]!) { recordEvents(events: $e) { accepted unchanged } }', e=events)
    assert retry["recordEvents"] == {"accepted": 0, "unchanged": 3}
    again = gql.graphql('mutation($e: [EventInput!]!) { recordEvents(events: $e) { accepted unchanged } }', e=events)
    assert again["recordEvents"] == {"accepted": 0, "unchanged": 3}
    stats = gql.graphql('{ contact(id: "c1") { stats { events opens } } }')["contact"]["stats"]
    assert stats == {"events": 3, "opens": 3}
