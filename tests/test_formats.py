"""Formats a front end can rely on: every instant the API returns is RFC 3339
in UTC with milliseconds (`2026-11-28T12:00:00.000Z`), in `DateTime` fields
and inside JSON values alike; the custom scalars name their specification
(`@specifiedBy`); `explainSegment` gives the pipeline as relaxed Extended JSON
or as mongosh code that runs as it is."""

import datetime as dt
import json
import re

import bson
import pytest
from bson import Decimal128, Int64, ObjectId, Timestamp, json_util
from bson.regex import Regex

from segmentql.server.mongosh import aggregate

from . import mongosh_check

INSTANT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
CONTACTS = "mutation($c: [ContactInput!]!) { upsertContacts(contacts: $c) { accepted } }"
CAMPAIGNS = "mutation($c: [CampaignInput!]!) { upsertCampaigns(campaigns: $c) { accepted } }"
EVENTS = "mutation($e: [EventInput!]!) { recordEvents(events: $e) { accepted } }"
RULE = {"all": [{"recency": {"activity": "OPENED", "withinDays": 30}},
                {"dateRange": {"field": "signup", "after": "2020-01-01T00:00:00Z"}}]}
EVERY_INSTANT = """query($id: ID!, $r: RuleInput!) {
  segment(id: $id) { createdAt updatedAt revisions { savedAt } membership { asOf updatedAt }
    changes { edges { node { at } } } sizeHistory { at } snapshots { takenAt asOf }
    contacts { edges { node { createdAt updatedAt customFields
      stats { lastOpenAt lastActivityAt campaigns { sentAt } } } } } }
  explainMembership(contactId: "c1", rule: $r) { nodes { values { value } } }
  webhooks { createdAt updatedAt }
  apiKeys { createdAt expiresAt } }"""


def instants(value) -> list[str]:
    """Every text in ``value`` (a GraphQL answer) that looks like an instant in any ISO 8601 form."""
    if isinstance(value, dict):
        return [i for v in value.values() for i in instants(v)]
    if isinstance(value, list):
        return [i for v in value for i in instants(v)]
    return [value] if isinstance(value, str) and re.match(r"\d{4}-\d\d-\d\dT", value) else []


def test_every_instant_the_api_returns_is_utc_with_milliseconds(gql):
    gql.define_fields({"signup": "DATE"})
    gql.graphql(CONTACTS, c=[{"id": "c1", "email": "a@example.com",
                              "customFields": {"signup": "2024-02-29T13:14:15.123456+01:00"}}])
    gql.graphql(CAMPAIGNS, c=[{"id": "k1", "name": "Launch", "sentAt": "2026-11-20T10:00:00+02:00"}])
    now = dt.datetime.now(dt.UTC)
    gql.graphql(EVENTS, e=[{"id": "e1", "contactId": "c1", "type": "SENT", "campaignId": "k1",
                            "at": (now - dt.timedelta(days=2)).isoformat()},
                           {"id": "e2", "contactId": "c1", "type": "OPEN", "campaignId": "k1",
                            "at": (now - dt.timedelta(days=1)).isoformat()}])
    segment_id = gql.graphql("mutation($r: RuleInput!) { createSegment(name: \"s\", rule: $r) { id } }",
                             r={"leadScore": {"max": 100}})["createSegment"]["id"]
    gql.graphql("mutation($id: ID!, $r: RuleInput!) { updateSegment(id: $id, rule: $r) { id } }", id=segment_id, r=RULE)
    gql.graphql("mutation($id: ID!) { snapshotSegment(id: $id, label: \"now\") { id } }", id=segment_id)
    gql.graphql('mutation { createWebhook(url: "http://127.0.0.1:9/hook") { secret } }')
    gql.graphql('mutation { createApiKey(name: "k", scope: READ, expiresAt: "2099-01-01T01:00:00+01:00") { secret } }')

    data = gql.graphql(EVERY_INSTANT, id=segment_id, r=RULE)
    segment, contact = data["segment"], data["segment"]["contacts"]["edges"][0]["node"]
    found = instants(data)
    assert found and [i for i in found if not INSTANT.fullmatch(i)] == []
    # Each kind of field holds one, inside JSON values too, converted to UTC.
    assert contact["customFields"] == {"signup": "2024-02-29T12:14:15.123Z"}
    assert contact["stats"]["campaigns"] == [{"sentAt": "2026-11-20T08:00:00.000Z"}]
    assert "2099-01-01T00:00:00.000Z" in [k["expiresAt"] for k in data["apiKeys"]]
    assert all(len(instants(x)) == n for x, n in [
        (segment["createdAt"], 1), (segment["updatedAt"], 1), (segment["revisions"], 1), (segment["membership"], 2),
        (segment["changes"], 1), (segment["sizeHistory"], 1), (segment["snapshots"], 2),
        (contact["createdAt"], 1), (contact["updatedAt"], 1), (contact["stats"]["lastOpenAt"], 1),
        (data["explainMembership"], 2), (data["webhooks"], 2)])


def test_instants_sent_back_in_the_returned_form_are_accepted(gql):
    created = gql.graphql('mutation { createApiKey(name: "k", scope: READ, expiresAt: "2099-01-01T00:00:00.000Z") '
                          '{ apiKey { expiresAt } } }')
    assert created["createApiKey"]["apiKey"]["expiresAt"] == "2099-01-01T00:00:00.000Z"


SCALARS = '{ __schema { types { name kind specifiedByURL } } }'


def test_custom_scalars_name_their_specification(gql):
    urls = {t["name"]: t["specifiedByURL"] for t in gql.graphql(SCALARS)["__schema"]["types"] if t["kind"] == "SCALAR"}
    assert urls["DateTime"] == "https://datatracker.ietf.org/doc/html/rfc3339"
    assert urls["Date"] == "https://datatracker.ietf.org/doc/html/rfc3339#section-5.6"
    assert urls["JSON"] == "https://www.rfc-editor.org/rfc/rfc8259"
    assert {name for name, url in urls.items() if url is None} == {"String", "Int", "Float", "Boolean", "ID",
                                                                   "SplitSeed"}  # no published specification


EXPLAIN = """query($r: RuleInput!, $f: ExplainFormat) {
  explainSegment(rule: $r, asOf: "2026-11-28T12:00:00Z", format: $f) }"""
EXPLAINED = {"all": [{"recency": {"activity": "OPENED", "withinDays": 7}},
                     {"campaign": {"campaignName": "Say \"hi\"\nzoë 🙂", "clickedUrlContains": "$PRICING"}},
                     {"numericRange": {"field": "ltv", "comparison": "GT", "value": 1000.0}},
                     {"not": {"dateRange": {"field": "signup", "before": "2020-02-29T23:59:00.5Z"}}}]}


def test_explain_segment_as_extended_json_by_default(gql):
    gql.define_fields({"ltv": "NUMBER", "signup": "DATE"})
    default = gql.graphql(EXPLAIN, r=EXPLAINED)["explainSegment"]
    assert default == gql.graphql(EXPLAIN, r=EXPLAINED, f="EXTENDED_JSON")["explainSegment"]
    assert default["collection"] == "contacts" and default["pipeline"][-1] == {"$count": "count"}
    assert {"$date": "2020-02-29T23:59:00.500Z"} in _leaves(default["pipeline"])


def test_explain_segment_as_mongosh_code_runs_the_same_pipeline(gql):
    gql.define_fields({"ltv": "NUMBER", "signup": "DATE"})
    code = gql.graphql(EXPLAIN, r=EXPLAINED, f="MONGOSH")["explainSegment"]
    assert code.startswith('db.getCollection("contacts").aggregate([\n') and code.endswith("\n])")
    assert 'ISODate("2020-02-29T23:59:00.500Z")' in code and 'ISODate("2026-11-22T00:00:00.000Z")' in code
    assert '"$gt": Double(1000.0)' in code and '"name": "Say \\"hi\\"\\nzoë 🙂"' in code
    extended = gql.graphql(EXPLAIN, r=EXPLAINED)["explainSegment"]
    as_bson = json_util.loads(json.dumps(extended), json_options=json_util.JSONOptions(tz_aware=True, tzinfo=dt.UTC))
    assert bson.encode(mongosh_check.run(code)) == bson.encode(as_bson)


def _leaves(value) -> list:
    if isinstance(value, list):
        return [x for v in value for x in _leaves(v)]
    if isinstance(value, dict) and "$date" not in value:
        return [x for v in value.values() for x in _leaves(v)]
    return [value]


@pytest.mark.parametrize("value", [
    dt.datetime(2026, 11, 28, 12, 0, 0, 122000, tzinfo=dt.UTC),
    {"$expr": {"$eq": [{"$literal": {"$gt": "$email", "at": dt.datetime(1969, 7, 20, 20, 17, tzinfo=dt.UTC)}}, 1]}},
    ['say "hi"\n\tthen\\leave', "zoë 東京 🙂", "a\u2028b\u2029c", "</script>", ""],
    [7, 2**31, -(2**31) - 1, 2**53 + 1, Int64(5), 1.5, 3.0, -0.0, 1e16, float("inf"), float("-inf")],
    [Regex("(?-i)AA_/x", "im"), ObjectId("65e8ba8a4b3c33a76e6cacca"), Decimal128("0.1"), Timestamp(1, 2)],
    {"__proto__": {"a": None}, "b": True, "c": {}, "d": []},
], ids=["instant", "literal", "strings", "numbers", "bson", "objects"])
def test_mongosh_code_gives_back_the_same_bson(value):
    pipeline = [{"$match": {"v": value}}]
    assert bson.encode(mongosh_check.run(aggregate("contacts", pipeline))) == bson.encode(
        {"collection": "contacts", "pipeline": pipeline})


def test_nan_stays_a_double():
    back = mongosh_check.run(aggregate("contacts", [{"v": float("nan")}]))["pipeline"][0]["v"]
    assert isinstance(back, float) and back != back
