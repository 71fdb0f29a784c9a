"""API keys: every GraphQL request needs one, and a key sees only its workspace."""

from .conftest import new_workspace

CONTACTS = """mutation($c: [ContactInput!]!) {
  upsertContacts(contacts: $c) { accepted unchanged errors { message } } }"""
CONTACT = """query($id: ID!) { contact(id: $id) { id email } }"""


def test_missing_key_is_401_without_data(http):
    response = http.post("/graphql", json={"query": "{ conditionTypes { field } }"})
    assert response.status_code == 401
    body = response.json()
    assert "data" not in body and body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_wrong_key_is_401(http):
    response = http.post("/graphql", json={"query": "{ conditionTypes { field } }"},
                         headers={"Authorization": "Bearer sq_not-a-real-key"})
    assert response.status_code == 401


def test_malformed_authorization_header_is_401(http):
    for header in ("sq_abc", "Basic dXNlcjpwYXNz", "Bearer ", "Bearer"):
        response = http.post("/graphql", json={"query": "{ conditionTypes { field } }"},
                             headers={"Authorization": header})
        assert response.status_code == 401, header


def test_get_query_needs_a_key_too(http):
    assert http.get("/graphql", params={"query": "{ conditionTypes { field } }"}).status_code == 401


def test_keys_are_stored_hashed(gql):
    [stored] = gql.call(gql.db.db.api_keys.find({"workspace_id": gql.workspace_id}).to_list)
    assert gql.key not in stored.values() and len(stored["hash"]) == 64 and stored["prefix"] == gql.key[:8]


def test_workspaces_are_isolated(http):
    a, b = new_workspace(http), new_workspace(http)
    a.graphql(CONTACTS, c=[{"id": "same-id", "email": "a@example.com"}])
    assert b.graphql(CONTACT, id="same-id")["contact"] is None
    b.graphql(CONTACTS, c=[{"id": "same-id", "email": "b@example.com"}])
    assert a.graphql(CONTACT, id="same-id")["contact"]["email"] == "a@example.com"
    assert b.graphql(CONTACT, id="same-id")["contact"]["email"] == "b@example.com"
    rule = {"tags": {"excludes": ["nothing"]}}
    count = "query($r: RuleInput!) { segmentPreview(rule: $r) { count } }"
    assert a.graphql(count, r=rule)["segmentPreview"]["count"] == 1
    assert b.graphql(count, r=rule)["segmentPreview"]["count"] == 1


def test_saved_segments_are_isolated(http):
    a, b = new_workspace(http), new_workspace(http)
    created = a.graphql('mutation { createSegment(name: "mine", rule: {leadScore: {tier: HOT}}) { id } }')
    sid = created["createSegment"]["id"]
    assert b.graphql("query($id: ID!) { segment(id: $id) { id } }", id=sid)["segment"] is None
    errors = b.errors('mutation($id: ID!) { updateSegment(id: $id, name: "stolen") { id } }', id=sid)
    assert errors[0]["extensions"]["code"] == "NOT_FOUND"
    assert b.graphql("mutation($id: ID!) { deleteSegment(id: $id) }", id=sid)["deleteSegment"] is False
    assert a.graphql("query($id: ID!) { segment(id: $id) { name } }", id=sid)["segment"]["name"] == "mine"
    assert b.graphql("{ segments { edges { node { id } } } }")["segments"]["edges"] == []


def test_mutations_cannot_reach_another_workspace(http):
    a, b = new_workspace(http), new_workspace(http)
    a.graphql(CONTACTS, c=[{"id": "mine", "email": "a@example.com"}])
    a.graphql('mutation { upsertCampaigns(campaigns: [{id: "k", name: "A only", sentAt: "2026-11-01T00:00:00Z"}]) '
          '{ accepted } }')
    events = b.graphql('mutation { recordEvents(events: [{id: "e", contactId: "mine", type: OPEN, '
                   'at: "2026-11-02T00:00:00Z"}]) { accepted errors { message } } }')["recordEvents"]
    assert events["accepted"] == 0 and "unknown contact 'mine'" in events["errors"][0]["message"]
    deleted = b.graphql('mutation { deleteContacts(ids: ["mine"]) { accepted unchanged } }')["deleteContacts"]
    assert deleted == {"accepted": 0, "unchanged": 1}
    b.graphql(CONTACTS, c=[{"id": "theirs", "email": "b@example.com"}])
    campaign_event = b.graphql('mutation { recordEvents(events: [{id: "e2", contactId: "theirs", type: SENT, '
                           'at: "2026-11-02T00:00:00Z", campaignId: "k"}]) { errors { message } } }')
    assert "unknown campaign 'k'" in campaign_event["recordEvents"]["errors"][0]["message"]
    explain = b.errors('{ explainMembership(contactId: "mine", rule: {leadScore: {min: 0}}) { member } }')
    assert explain[0]["extensions"]["code"] == "NOT_FOUND"
    assert a.graphql(CONTACT, id="mine")["contact"] == {"id": "mine", "email": "a@example.com"}
    assert a.graphql('{ contact(id: "mine") { stats { events } } }')["contact"]["stats"]["events"] == 0
