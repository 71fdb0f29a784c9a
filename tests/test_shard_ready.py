"""Every command on contacts and events names its workspace, so a sharded
cluster routes it to that workspace's shards (README, "sharded cluster").

tests/shard_check.py watches every command the whole suite sends and fails
the run on any that does not; this test drives every write and read path once
on its own, so the check is exercised even when run alone."""

from segmentql.server import ingest

from .conftest import SEED_AS_OF
from .shard_check import CHECK

ONE_OF_EACH = """mutation($c: [ContactInput!]!, $m: [CampaignInput!]!, $e: [EventInput!]!) {
  defineCustomField(key: "plan", type: TEXT, indexed: true) { created }
  upsertCampaigns(campaigns: $m) { accepted }
  upsertContacts(contacts: $c) { accepted }
  recordEvents(events: $e) { accepted }
}"""
RULE = {"any": [{"engagement": {"metric": "OPENS", "comparison": "GTE", "value": 1, "withinDays": 30}},
                {"customField": {"field": "plan", "equals": "pro"}}]}
READS = """query($r: RuleInput!, $a: DateTime) {
  segmentPreview(rule: $r, asOf: $a) { count breakdown { path count } contacts(first: 2) { edges { node { id } } } }
  explainMembership(contactId: "c1", rule: $r, asOf: $a) { member }
  contact(id: "c1") { id stats { opens } }
}"""
SAVED = """mutation($r: RuleInput!, $a: DateTime) { createSegment(name: "s", rule: $r) { id count(asOf: $a)
  split(variants: [{name: "a", weight: 1}, {name: "b", weight: 1}], seed: "x") { variants { count
    contacts(first: 1) { edges { node { id } } } } }
  analytics(withinDays: 30, asOf: $a) { members } } }"""


def test_every_path_names_its_workspace(gql):
    before = len(CHECK.violations)
    gql.graphql(ONE_OF_EACH,
                m=[{"id": "m1", "name": "Welcome", "sentAt": "2026-11-01T10:00:00Z"}],
                c=[{"id": f"c{i}", "email": f"c{i}@example.com", "customFields": {"plan": "pro"}} for i in range(3)],
                e=[{"id": f"e{i}", "contactId": f"c{i}", "type": "OPEN", "campaignId": "m1",
                    "at": "2026-11-20T10:00:00Z"} for i in range(3)])
    gql.graphql(ONE_OF_EACH.replace("defineCustomField", "again: defineCustomField"),  # existing ones: updates
                m=[{"id": "m1", "name": "Welcome!", "sentAt": "2026-11-01T10:00:00Z"}],
                c=[{"id": "c1", "email": "c1@example.com", "timezone": "Asia/Tokyo"}],
                e=[{"id": "e9", "contactId": "c1", "type": "CLICK", "at": "2026-11-21T10:00:00Z"}])
    gql.graphql(READS, r=RULE, a=SEED_AS_OF)
    segment = gql.graphql(SAVED, r=RULE, a=SEED_AS_OF)["createSegment"]
    gql.graphql("mutation($id: ID!) { snapshotSegment(id: $id, label: \"x\") { size } }", id=segment["id"])
    gql.call(ingest.rebuild_all_rollups, gql.db, gql.workspace_id)
    gql.graphql('mutation { deleteContacts(ids: ["c2"]) { accepted } }')
    assert CHECK.violations[before:] == []
    assert {"find", "aggregate", "insert", "update", "delete"} <= set(CHECK.seen)
