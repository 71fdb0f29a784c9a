"""Index-friendly predicates lead the pipeline: selective rules read only the
contacts an index finds (explain executionStats on the seed data set), and
declared custom fields get their indexes at declaration."""

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
def test_selective_rules_read_only_what_an_index_finds(seed, name):
    stats = execution_stats(seed, SELECTIVE[name])
    assert 0 < stats["totalKeysExamined"] and stats["totalDocsExamined"] <= stats["totalKeysExamined"] < 2000, stats


def test_a_rule_without_an_indexable_predicate_scans(seed):
    stats = execution_stats(seed, {"timezone": {"in": ["EST"]}})
    assert stats["totalKeysExamined"] == 0 and stats["totalDocsExamined"] >= 2000


def test_declaring_a_custom_field_indexes_it(gql):
    gql.define_fields({"renewal_on": "DATE", "seats": "NUMBER"})
    indexes = gql.call(gql.db.db.contacts.index_information)
    keys = {tuple(k for k, _ in spec["key"]) for spec in indexes.values()}
    assert {("workspace_id", "custom.renewal_on"), ("workspace_id", "dateParts.renewal_on.md"),
            ("workspace_id", "custom.seats")} <= keys
