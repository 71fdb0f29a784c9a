"""Index-friendly predicates lead the pipeline: selective rules read only the
contacts an index finds (explain executionStats on the seed data set), and
custom fields declared `indexed` get their indexes."""

import json

import pytest
from bson import json_util

from segmentql.server.database import MAX_INDEXED_PATHS_PER_WORKSPACE

from .conftest import SEED_AS_OF, new_workspace

CONTACTS = "mutation($c: [ContactInput!]!) { upsertContacts(contacts: $c) { accepted } }"
EXPLAIN = "query($r: RuleInput!, $a: DateTime) { explainSegment(rule: $r, asOf: $a) }"
SELECTIVE = {
    "lead score tier": {"leadScore": {"tier": "HOT"}},
    "campaign by name": {"campaign": {"campaignName": "Product Launch Q4", "clickedUrlContains": "pricing"}},
    "campaign by id": {"campaign": {"campaignId": "cmp002", "opened": True}},
    "total clicks": {"engagement": {"metric": "CLICKS", "comparison": "GTE", "value": 10}},
    "engagement window": {"engagement": {"metric": "OPENS", "comparison": "GTE", "value": 3, "withinDays": 7}},
    "top open hour": {"openHabits": {"hourFrom": 9, "hourTo": 12}},
    "custom number": {"numericRange": {"field": "total_revenue", "comparison": "GT", "value": 5000}},
    "custom date range": {"dateRange": {"field": "trial_end_date", "fromDays": 0, "toDays": 7}},
    "anniversary this month": {"dateAnniversary": {"field": "signup_date", "window": "THIS_MONTH"}},
    "custom multi-select": {"customField": {"field": "interests", "containsAny": ["sms"]}},
}


def execution_stats(client, rule) -> dict:
    pipeline = json_util.loads(json.dumps(client.graphql(EXPLAIN, r=rule, a=SEED_AS_OF)["explainSegment"]["pipeline"]))
    explained = client.call(client.db.db.command, {"explain": {"aggregate": "contacts", "pipeline": pipeline,
                                                               "cursor": {}}, "verbosity": "executionStats"})
    return explained.get("executionStats") or explained["stages"][0]["$cursor"]["executionStats"]


@pytest.mark.parametrize("name", SELECTIVE)
def test_selective_rules_read_only_what_an_index_finds(indexed_seed, name):
    stats = execution_stats(indexed_seed, SELECTIVE[name])
    assert stats["totalKeysExamined"] > 0 and stats["totalDocsExamined"] <= stats["totalKeysExamined"] < 2000, stats


def test_a_rule_without_an_indexable_predicate_reads_only_its_workspace(seed, gql):
    """It reads every contact of the workspace, by the workspace's index, and
    none of the other workspaces' (here, at least the one made beside it)."""
    gql.graphql(CONTACTS, c=[{"id": f"o{i}", "email": f"o{i}@example.com"} for i in range(50)])
    for rule in ({"timezone": {"in": ["EST"]}}, {"not": {"timezone": {"in": ["EST"]}}}):
        stats = execution_stats(seed, rule)
        assert stats["totalKeysExamined"] == stats["totalDocsExamined"] == 2000


DECLARE = ("mutation($k: String!, $t: CustomFieldType!, $i: Boolean!) { defineCustomField(key: $k, type: $t, "
           "indexed: $i) { created } }")


def own_indexes(client) -> set[str]:
    """The paths of the custom-field indexes of the client's workspace (partial, on its contacts only)."""
    info = client.call(client.db.db.contacts.index_information)
    own = {spec["key"][1][0] for spec in info.values()
           if spec.get("partialFilterExpression") == {"workspace_id": client.workspace_id}}
    assert own == {name.rsplit(":", 1)[1] for name in info if name.startswith(f"custom:{client.workspace_id}:")}
    return own


@pytest.fixture(scope="module")
def indexed_seed(seed):
    """The seed workspace with the custom fields its rules filter on declared again, indexed."""
    for key, kind in (("total_revenue", "NUMBER"), ("lifetime_opens", "NUMBER"), ("trial_end_date", "DATE"),
                      ("signup_date", "DATE"), ("interests", "MULTI_SELECT")):
        assert seed.graphql(DECLARE, k=key, t=kind, i=True) == {"defineCustomField": {"created": False}}
    return seed


def test_custom_fields_are_indexed_on_request_only(gql):
    assert gql.graphql(DECLARE, k="renewal_on_x", t="DATE", i=True)["defineCustomField"]["created"] is True
    assert gql.graphql(DECLARE, k="seats_x", t="NUMBER", i=False)["defineCustomField"]["created"] is True
    assert own_indexes(gql) == {"custom.renewal_on_x", "dateParts.renewal_on_x.md"}
    gql.graphql(DECLARE, k="seats_x", t="NUMBER", i=True)  # added later
    assert "custom.seats_x" in own_indexes(gql)
    error = gql.errors(DECLARE, k="seats_x", t="TEXT", i=True)[0]
    assert error["extensions"]["code"] == "CONFLICT" and "already declared as NUMBER" in error["message"]


def test_one_workspaces_declarations_never_change_anothers_index(http):
    """Workspace A stores lists under `k` (a MULTI_SELECT: a multikey index);
    workspace B's NUMBER `k` keeps a plain index with two-sided range bounds."""
    a, b = new_workspace(http), new_workspace(http)
    a.graphql(DECLARE, k="k", t="MULTI_SELECT", i=True)
    a.graphql(CONTACTS, c=[{"id": "a1", "email": "a@example.com", "customFields": {"k": ["x", "y"]}}])
    b.graphql(DECLARE, k="k", t="NUMBER", i=True)
    b.graphql(CONTACTS, c=[{"id": f"b{i}", "email": f"b{i}@example.com", "customFields": {"k": i}} for i in range(50)])
    rule = {"all": [{"numericRange": {"field": "k", "min": 10, "max": 12}},
                    {"tags": {"excludes": ["x"]}}]}
    stats = execution_stats(b, rule)
    assert stats["totalKeysExamined"] <= 4 and stats["totalDocsExamined"] == 3  # both bounds used
    plan = b.call(b.db.db.command, "explain", {"find": "contacts", "filter": {
        "workspace_id": b.workspace_id, "custom.k": {"$gte": 10, "$lte": 12}}})["queryPlanner"]["winningPlan"]
    assert plan["inputStage"]["indexName"] == f"custom:{b.workspace_id}:custom.k"
    assert plan["inputStage"]["isMultiKey"] is False


def test_indexed_custom_fields_have_a_budget_per_workspace(http):
    greedy, other = new_workspace(http), new_workspace(http)
    for n in range(MAX_INDEXED_PATHS_PER_WORKSPACE):
        greedy.graphql(DECLARE, k=f"n{n}", t="NUMBER", i=True)
    error = greedy.errors(DECLARE, k="one_more", t="NUMBER", i=True)[0]
    assert error["extensions"]["code"] == "LIMIT_EXCEEDED" and "at most 8 indexed" in error["message"]
    fields = greedy.call(greedy.db.custom_fields, greedy.workspace_id)
    assert "one_more" not in fields  # refused before anything was written
    assert other.graphql(DECLARE, k="n0", t="NUMBER", i=True)["defineCustomField"]["created"] is True
    assert own_indexes(other) == {"custom.n0"}


def test_only_indexed_custom_fields_lead_the_pipeline(gql):
    gql.graphql(DECLARE, k="plain_n", t="NUMBER", i=False)
    gql.graphql(DECLARE, k="fast_n", t="NUMBER", i=True)
    rule = {"all": [{"numericRange": {"field": "plain_n", "comparison": "GT", "value": 1}},
                    {"numericRange": {"field": "fast_n", "comparison": "GT", "value": 1}},
                    {"tags": {"excludes": ["x"]}}]}
    pipeline = gql.graphql(EXPLAIN, r=rule, a=SEED_AS_OF)["explainSegment"]["pipeline"]
    assert set(pipeline[0]["$match"]) == {"workspace_id", "custom.fast_n"}
    only_plain = {"all": rule["all"][::2]}
    pipeline = gql.graphql(EXPLAIN, r=only_plain, a=SEED_AS_OF)["explainSegment"]["pipeline"]
    assert pipeline[0] == {"$match": {"workspace_id": gql.workspace_id}}  # nothing indexed: the workspace leads alone
    assert [list(stage) for stage in pipeline] == [["$match"], ["$match"], ["$count"]]
