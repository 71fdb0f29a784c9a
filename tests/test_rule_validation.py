"""Rules that are not well formed are refused before anything runs, with
INVALID_RULE and a message naming the node's path and the reason."""

import pytest

from .rules import invalid_rule_message

FIELDS = {"ltv": "NUMBER", "plan": "TEXT", "signup": "DATE", "interests": "MULTI_SELECT", "bounced": "BOOLEAN"}


@pytest.fixture(scope="module")
def ws(http):
    from .conftest import new_workspace
    client = new_workspace(http)
    client.define_fields(FIELDS)
    return client


CASES = [
    ({"all": []}, "all", "at least one"),
    ({"any": [{"leadScore": {"min": 1}}, {"all": [{"tags": {"includesAny": []}}]}]}, "any[1].all[0].tags.includesAny",
     "empty list"),
    ({"country": {}}, "country", "exactly one of `in` and `notIn`"),
    ({"country": {"in": ["US"], "notIn": ["CA"]}}, "country", "exactly one"),
    ({"tags": {}}, "tags", "at least one"),
    ({"engagement": {"metric": "CLICKS", "comparison": "GTE", "value": 1, "device": "MOBILE"}}, "engagement",
     "only applies to metric OPENS"),
    ({"engagement": {"metric": "OPENS", "comparison": "GTE", "value": 1, "withinDays": 0}}, "engagement",
     "`withinDays` must be at least 1"),
    ({"recency": {"activity": "ANY"}}, "recency", "exactly one of `withinDays`, `moreThanDaysAgo`"),
    ({"recency": {"activity": "ANY", "withinDays": 3, "moreThanDaysAgo": 5}}, "recency", "exactly one"),
    ({"recency": {"activity": "ANY", "moreThanDaysAgo": 0}}, "recency", "at least 1"),
    ({"recency": {"activity": "ANY", "withinDays": 3, "includeNever": False}}, "recency", "`includeNever`"),
    ({"openHabits": {}}, "openHabits", "at least one"),
    ({"openHabits": {"hourFrom": 25}}, "openHabits", "from 0 to 24"),
    ({"openHabits": {"hourFrom": -1}}, "openHabits", "from 0 to 24"),
    ({"openHabits": {"hourFrom": 9, "hourTo": 9}}, "openHabits", "must differ"),
    ({"campaign": {"opened": True}}, "campaign", "exactly one of `campaignId`, `campaignName`, `latest`"),
    ({"campaign": {"latest": True, "campaignId": "k1", "opened": True}}, "campaign", "exactly one"),
    ({"campaign": {"latest": True}}, "campaign", "at least one of `opened`"),
    ({"campaign": {"latest": False, "opened": True}}, "campaign", "`latest` can only be true"),
    ({"campaign": {"latest": True, "clickedUrlContains": ""}}, "campaign", "must not be empty"),
    ({"campaign": {"campaignId": "k", "notClickedUrlContains": ""}}, "campaign", "must not be empty"),
    ({"leadScore": {}}, "leadScore", "at least one"),
    ({"leadScore": {"tier": "HOT", "min": 3}}, "leadScore", "either `tier` or `min`/`max`"),
    ({"numericRange": {"field": "nope", "min": 1}}, "numericRange", "'nope' is not declared"),
    ({"numericRange": {"field": "plan", "min": 1}}, "numericRange", "'plan' is TEXT; this condition needs NUMBER"),
    ({"numericRange": {"field": "ltv"}}, "numericRange", "at least one"),
    ({"numericRange": {"field": "ltv", "comparison": "GT"}}, "numericRange", "go together"),
    ({"numericRange": {"field": "ltv", "value": 3}}, "numericRange", "go together"),
    ({"numericRange": {"field": "ltv", "comparison": "GT", "value": 1, "min": 0}}, "numericRange", "not both"),
    ({"customField": {"field": "plan"}}, "customField", "exactly one of `equals`"),
    ({"customField": {"field": "plan", "equals": "a", "exists": True}}, "customField", "exactly one"),
    ({"customField": {"field": "plan", "containsAny": ["a"]}}, "customField", "applies to MULTI_SELECT"),
    ({"customField": {"field": "ltv", "equals": "lots"}}, "customField", "does not fit custom field 'ltv'"),
    ({"customField": {"field": "signup", "equals": "yesterday"}}, "customField", "does not fit"),
    ({"customField": {"field": "bounced", "notEquals": {"$ne": 1}}}, "customField", "does not fit"),
    ({"customField": {"field": "$where", "exists": True}}, "customField", "not declared"),
    ({"customField": {"field": "plan.x", "exists": True}}, "customField", "not declared"),
    ({"dateRange": {"field": "signup"}}, "dateRange", "at least one"),
    ({"dateRange": {"field": "ltv", "fromDays": 0}}, "dateRange", "needs DATE"),
    ({"dateAnniversary": {"field": "signup", "window": "NEXT_DAYS"}}, "dateAnniversary", "`days`"),
    ({"dateAnniversary": {"field": "signup", "window": "TODAY", "days": 3}}, "dateAnniversary", "`days`"),
    ({"dateAnniversary": {"field": "signup", "window": "NEXT_DAYS", "days": 0}}, "dateAnniversary", "at least 1"),
    ({"not": {"all": [{"leadScore": {"min": 1}}, {"not": {"country": {}}}]}}, "not.all[1].not.country", "exactly one"),
]


@pytest.mark.parametrize("rule, path, reason", CASES, ids=[c[1] + ":" + c[2][:20] for c in CASES])
def test_invalid_rule_names_path_and_reason(ws, rule, path, reason):
    message = invalid_rule_message(ws, rule)
    assert message.startswith(path + ":"), message
    assert reason in message, message


def test_one_of_is_enforced_by_graphql_itself(ws):
    errors = ws.errors("{ segmentPreview(rule: {country: {in: [\"US\"]}, tags: {excludes: [\"x\"]}}) { count } }")
    assert errors[0]["extensions"] == {"code": "INVALID_RULE", "rulePath": ""}  # placed: tests/test_rule_paths.py


@pytest.mark.parametrize("depth", [40, 300])
def test_deep_not_chains_are_refused_cheaply(ws, depth):
    rule = {"leadScore": {"min": 1}}
    for _ in range(depth):
        rule = {"not": rule}
    assert "nested at most 32 levels" in invalid_rule_message(ws, rule)


def test_saved_segments_are_validated_too(ws):
    errors = ws.errors('mutation { createSegment(name: "x", rule: {all: []}) { id } }')
    assert errors[0]["extensions"]["code"] == "INVALID_RULE" and errors[0]["message"].startswith("all:")


def test_rule_size_limits(ws):
    many = {"any": [{"leadScore": {"min": i % 100}} for i in range(600)]}
    assert "at most 500 nodes" in invalid_rule_message(ws, many)
    long_list = {"tags": {"includesAny": [f"t{i}" for i in range(1001)]}}
    message = invalid_rule_message(ws, long_list)
    assert message.startswith("tags.includesAny:") and "at most 1000 items" in message
    long_text = {"campaign": {"latest": True, "clickedUrlContains": "x" * 1001}}
    assert "at most 1000 characters" in invalid_rule_message(ws, long_text)
