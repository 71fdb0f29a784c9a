"""Index-friendly predicates lead the pipeline: selective rules read only the
contacts an index finds (explain executionStats on the seed data set), and
custom fields declared `indexed` get their indexes."""

import json

import pytest
from bson import json_util

from .conftest import SEED_AS_OF

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
    assert 0 < stats["totalKeysExamined"] and stats["totalDocsExamined"] <= stats["totalKeysExamined"] < 2000, stats


def test_a_rule_without_an_indexable_predicate_scans(seed):
    stats = execution_stats(seed, {"timezone": {"in": ["EST"]}})
    assert stats["totalKeysExamined"] == 0 and stats["totalDocsExamined"] >= 2000


DECLARE = "mutation($k: String!, $t: CustomFieldType!, $i: Boolean!) { defineCustomField(key: $k, type: $t, " \
          "indexed: $i) { created } }"


def index_keys(client) -> set[tuple[str, ...]]:
    return {tuple(k for k, _ in spec["key"]) for spec in client.call(client.db.db.contacts.index_information).values()}


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
    keys = index_keys(gql)
    assert {("workspace_id", "custom.renewal_on_x"), ("workspace_id", "dateParts.renewal_on_x.md")} <= keys
    assert ("workspace_id", "custom.seats_x") not in keys
    gql.graphql(DECLARE, k="seats_x", t="NUMBER", i=True)  # added later
    assert ("workspace_id", "custom.seats_x") in index_keys(gql)
    error = gql.errors(DECLARE, k="seats_x", t="TEXT", i=True)[0]
    assert error["extensions"]["code"] == "CONFLICT" and "already declared as NUMBER" in error["message"]


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
    assert [list(stage) for stage in pipeline] == [["$match"], ["$count"]]  # nothing to lead with: one scan
