"""SPEC section 5, rule by rule, on a handful of hand-made contacts whose
answers can be read off by eye. Today is Saturday 2026-11-28 (UTC) unless a
test says otherwise."""

import pytest

from .conftest import new_workspace
from .rules import member_ids

AS_OF = "2026-11-28T12:00:00Z"
FIELDS = {"ltv": "NUMBER", "plan": "TEXT", "bounced": "BOOLEAN", "signup": "DATE", "renewal": "DATE",
          "interests": "MULTI_SELECT"}
CONTACTS = [
    {"id": "a", "email": "a@example.com", "country": "US", "timezone": "America/Phoenix", "tags": ["vip", "beta"],
     "leadScore": 85, "customFields": {"ltv": 1500, "plan": "pro", "bounced": False, "signup": "2020-02-29",
                                       "interests": ["sms", "automation"]}},
    {"id": "b", "email": "b@example.com", "country": "ca", "timezone": "America/Toronto", "tags": ["unqualified"],
     "leadScore": 50, "customFields": {"ltv": 10, "plan": "free", "signup": "2023-11-28T20:00:00Z",
                                       "interests": []}},
    {"id": "c", "email": "c@example.com", "country": "MX", "timezone": "America/Cancun", "tags": [],
     "leadScore": None},
    {"id": "d", "email": "d@example.com", "country": "GB", "timezone": "Europe/London", "tags": ["VIP"],
     "leadScore": 49, "customFields": {"ltv": 0, "bounced": True, "signup": "2026-11-28"}},
    {"id": "e", "email": "e@example.com", "customFields": {"renewal": "2025-01-02"}},
]
CAMPAIGNS = [{"id": "k1", "name": "Launch", "sentAt": "2026-11-20T10:00:00Z"},
             {"id": "k2", "name": "Digest", "sentAt": "2026-11-27T10:00:00Z"}]
EVENTS = [
    # a: opens Friday 09:00 and Friday 10:30 in Phoenix (UTC-7); clicked a pricing link of k1
    {"id": "a0", "contactId": "a", "type": "SENT", "at": "2026-11-20T10:00:00Z", "campaignId": "k1"},
    {"id": "a1", "contactId": "a", "type": "OPEN", "at": "2026-11-27T16:00:00Z", "campaignId": "k1",
     "device": "MOBILE"},
    {"id": "a2", "contactId": "a", "type": "OPEN", "at": "2026-11-20T17:30:00Z", "device": "DESKTOP"},
    {"id": "a3", "contactId": "a", "type": "CLICK", "at": "2026-11-27T16:05:00Z", "campaignId": "k1",
     "url": "https://x.example/Pricing?plan=pro"},
    # b: two opens at the same instant (00:00 Saturday in Toronto): the greatest id decides the device
    {"id": "b0", "contactId": "b", "type": "SENT", "at": "2026-11-20T10:00:00Z", "campaignId": "k1"},
    {"id": "b9", "contactId": "b", "type": "SENT", "at": "2026-11-27T10:00:00Z", "campaignId": "k2"},
    {"id": "b1", "contactId": "b", "type": "OPEN", "at": "2026-11-28T05:00:00Z", "campaignId": "k2",
     "device": "TABLET"},
    {"id": "b2", "contactId": "b", "type": "OPEN", "at": "2026-11-28T05:00:00Z", "campaignId": "k2",
     "device": "MOBILE"},
    # c: one open without a device, Thursday 23:30 UTC (18:30 in Cancun), and a conversion
    {"id": "c1", "contactId": "c", "type": "OPEN", "at": "2026-10-01T23:30:00Z"},
    {"id": "c2", "contactId": "c", "type": "CONVERSION", "at": "2026-06-01T12:00:00Z"},
    # d: clicked k1 but never received it
    {"id": "d1", "contactId": "d", "type": "CLICK", "at": "2026-09-01T12:00:00Z", "campaignId": "k1",
     "url": "https://x.example/pricing"},
]


@pytest.fixture(scope="module")
def ws(http):
    client = new_workspace(http)
    client.define_fields(FIELDS)
    for mutation, name, items in (("upsertContacts(contacts: $x)", "[ContactInput!]!", CONTACTS),
                                  ("upsertCampaigns(campaigns: $x)", "[CampaignInput!]!", CAMPAIGNS),
                                  ("recordEvents(events: $x)", "[EventInput!]!", EVENTS)):
        result = client.graphql(f"mutation($x: {name}) {{ r: {mutation} {{ errors {{ message }} }} }}", x=items)
        assert result["r"]["errors"] == []
    return client


def members(ws, rule, as_of=AS_OF) -> set[str]:
    return set(member_ids(ws, rule, as_of))


def test_country_in_is_case_insensitive_and_not_in_matches_missing(ws):
    assert members(ws, {"country": {"in": ["us", "CA"]}}) == {"a", "b"}
    assert members(ws, {"country": {"notIn": ["US", "CA"]}}) == {"c", "d", "e"}


def test_timezone_abbreviations_cover_us_canada_mexico_by_standard_offset(ws):
    assert members(ws, {"timezone": {"in": ["MST"]}}) == {"a"}  # America/Phoenix
    assert members(ws, {"timezone": {"in": ["EST"]}}) == {"b", "c"}  # Toronto, Cancun
    assert members(ws, {"timezone": {"in": ["Europe/London"]}}) == {"d"}
    assert members(ws, {"timezone": {"notIn": ["EST"]}}) == {"a", "d", "e"}


def test_tags_are_exact_and_parts_combine(ws):
    assert members(ws, {"tags": {"includesAny": ["vip"]}}) == {"a"}
    assert members(ws, {"tags": {"includesAll": ["vip", "beta"]}}) == {"a"}
    assert members(ws, {"tags": {"excludes": ["unqualified"]}}) == {"a", "c", "d", "e"}
    assert members(ws, {"tags": {"includesAny": ["vip", "VIP"], "excludes": ["beta"]}}) == {"d"}


def test_engagement_counts_totals_windows_and_devices(ws):
    assert members(ws, {"engagement": {"metric": "OPENS", "comparison": "EQ", "value": 0}}) == {"d", "e"}
    assert members(ws, {"engagement": {"metric": "CONVERSIONS", "comparison": "EQ", "value": 0}}) == {
        "a", "b", "d", "e"}
    assert members(ws, {"engagement": {"metric": "OPENS", "comparison": "GTE", "value": 1, "withinDays": 1}}) == {"b"}
    assert members(ws, {"engagement": {"metric": "OPENS", "comparison": "GTE", "value": 1, "withinDays": 2}}) == {
        "a", "b"}
    assert members(ws, {"engagement": {"metric": "OPENS", "comparison": "EQ", "value": 2, "withinDays": 9}}) == {
        "a", "b"}
    assert members(ws, {"engagement": {"metric": "OPENS", "comparison": "EQ", "value": 1, "withinDays": 8}}) == {"a"}
    assert members(ws, {"engagement": {"metric": "OPENS", "device": "MOBILE", "comparison": "GTE", "value": 1}}) == {
        "a", "b"}
    assert members(ws, {"engagement": {"metric": "OPENS", "device": "TABLET", "comparison": "LT", "value": 1}}) == {
        "a", "c", "d", "e"}


def test_engagement_window_ignores_events_after_today(ws):
    # Evaluated as of 2026-11-27: b's opens on the 28th are after "today" and do not count.
    rule = {"engagement": {"metric": "OPENS", "comparison": "GTE", "value": 1, "withinDays": 1}}
    assert members(ws, rule, "2026-11-27T20:00:00Z") == {"a"}


def test_recency_within_and_more_than_days_ago_with_include_never(ws):
    assert members(ws, {"recency": {"activity": "OPENED", "withinDays": 1}}) == {"b"}
    assert members(ws, {"recency": {"activity": "OPENED", "moreThanDaysAgo": 30}}) == {"c", "d", "e"}
    assert members(ws, {"recency": {"activity": "OPENED", "moreThanDaysAgo": 30, "includeNever": False}}) == {"c"}
    assert members(ws, {"recency": {"activity": "ANY", "moreThanDaysAgo": 58, "includeNever": False}}) == {"c", "d"}
    assert members(ws, {"recency": {"activity": "CONVERTED", "withinDays": 365}}) == {"c"}


def test_last_open_device_ties_by_greatest_event_id_and_deviceless_opens_match_nothing(ws):
    assert members(ws, {"lastOpenDevice": {"in": ["MOBILE"]}}) == {"a", "b"}
    assert members(ws, {"lastOpenDevice": {"in": ["TABLET", "DESKTOP"]}}) == set()


def test_open_habits_in_the_contacts_timezone_with_ties_and_wrapping_hours(ws):
    assert members(ws, {"openHabits": {"hourFrom": 9, "hourTo": 10}}) == {"a"}  # tie 9 vs 10: earliest
    assert members(ws, {"openHabits": {"hourFrom": 22, "hourTo": 1}}) == {"b"}  # 00:00 Toronto
    assert members(ws, {"openHabits": {"hourFrom": 18}}) == {"c"}  # 18:30 in Cancun, up to 24
    assert members(ws, {"openHabits": {"hourTo": 1}}) == {"b"}
    assert members(ws, {"openHabits": {"weekdays": ["FRIDAY"]}}) == {"a"}
    assert members(ws, {"openHabits": {"hourFrom": 9, "hourTo": 12, "weekdays": ["SATURDAY"]}}) == set()


def test_campaign_needs_receipt_and_counts_only_that_campaign(ws):
    assert members(ws, {"campaign": {"campaignId": "k1", "clickedUrlContains": "PRICING"}}) == {"a"}  # not d
    assert members(ws, {"campaign": {"campaignName": "Launch", "opened": False}}) == {"b"}
    assert members(ws, {"campaign": {"campaignName": "Launch", "notClickedUrlContains": "pricing"}}) == {"b"}
    assert members(ws, {"campaign": {"latest": True, "opened": True}}) == {"a", "b"}  # a: k1, b: k2
    assert members(ws, {"campaign": {"latest": True, "daysSinceSent": {"comparison": "EQ", "value": 1}}}) == {"b"}
    assert members(ws, {"campaign": {"campaignId": "k1", "daysSinceSent": {"comparison": "GTE", "value": 8}}}) == {
        "a", "b"}
    assert members(ws, {"campaign": {"campaignName": "Nope", "opened": False}}) == set()


def test_campaign_url_text_is_literal(ws):
    assert members(ws, {"campaign": {"campaignId": "k1", "clickedUrlContains": "pricing?plan"}}) == {"a"}
    assert members(ws, {"campaign": {"campaignId": "k1", "clickedUrlContains": ".*"}}) == set()


def test_lead_score_ranges_and_tiers_skip_missing_scores(ws):
    assert members(ws, {"leadScore": {"tier": "HOT"}}) == {"a"}
    assert members(ws, {"leadScore": {"tier": "COLD"}}) == {"d"}
    assert members(ws, {"leadScore": {"min": 50}}) == {"a", "b"}
    assert members(ws, {"leadScore": {"max": 50}}) == {"b", "d"}


def test_numeric_range_never_matches_a_missing_field(ws):
    assert members(ws, {"numericRange": {"field": "ltv", "comparison": "GT", "value": 5}}) == {"a", "b"}
    assert members(ws, {"numericRange": {"field": "ltv", "comparison": "NE", "value": 10}}) == {"a", "d"}
    assert members(ws, {"numericRange": {"field": "ltv", "min": 0, "max": 10}}) == {"b", "d"}


def test_custom_field_operators(ws):
    assert members(ws, {"customField": {"field": "plan", "equals": "pro"}}) == {"a"}
    assert members(ws, {"customField": {"field": "plan", "notEquals": "pro"}}) == {"b", "c", "d", "e"}
    assert members(ws, {"customField": {"field": "bounced", "equals": "true"}}) == {"d"}
    assert members(ws, {"customField": {"field": "interests", "equals": ["automation", "sms"]}}) == {"a"}
    assert members(ws, {"customField": {"field": "interests", "containsNone": ["sms"]}}) == {"b", "c", "d", "e"}
    assert members(ws, {"customField": {"field": "interests", "containsAny": ["sms", "x"]}}) == {"a"}
    assert members(ws, {"customField": {"field": "interests", "exists": True}}) == {"a", "b"}  # [] is stored
    assert members(ws, {"customField": {"field": "signup", "equals": "2020-02-29T23:59:00Z"}}) == {"a"}
    assert members(ws, {"customField": {"field": "ltv", "equals": "1500.0"}}) == {"a"}


def test_date_range_relative_days_and_instants(ws):
    assert members(ws, {"dateRange": {"field": "signup", "fromDays": -1, "toDays": 0}}) == {"d"}
    assert members(ws, {"dateRange": {"field": "signup", "before": "2023-11-28T20:00:00Z"}}) == {"a"}
    assert members(ws, {"dateRange": {"field": "signup", "after": "2023-11-28T20:00:00Z"}}) == {"d"}


def test_date_anniversary_today_and_this_month_need_a_later_year(ws):
    assert members(ws, {"dateAnniversary": {"field": "signup", "window": "TODAY"}}) == {"b"}  # not d: same year
    assert members(ws, {"dateAnniversary": {"field": "signup", "window": "THIS_MONTH"}}) == {"b"}


def test_date_anniversary_of_29_february(ws):
    rule = {"dateAnniversary": {"field": "signup", "window": "TODAY"}}
    assert members(ws, rule, "2027-02-28T08:00:00Z") == {"a"}  # 2027 has no 29 February
    assert members(ws, rule, "2028-02-28T08:00:00Z") == set()
    assert members(ws, rule, "2028-02-29T08:00:00Z") == {"a"}
    assert members(ws, {"dateAnniversary": {"field": "signup", "window": "NEXT_DAYS", "days": 1}},
                   "2028-02-28T08:00:00Z") == {"a"}


def test_date_anniversary_this_week_across_a_year_end(ws):
    rule = {"dateAnniversary": {"field": "renewal", "window": "THIS_WEEK"}}
    assert members(ws, rule, "2026-12-29T10:00:00Z") == {"e"}  # week of Mon 28 Dec - Sun 3 Jan 2027
    assert members(ws, rule, "2026-12-27T10:00:00Z") == set()


def test_groups_and_not(ws):
    rule = {"any": [{"all": [{"country": {"in": ["US"]}}, {"leadScore": {"min": 80}}]},
                    {"not": {"engagement": {"metric": "OPENS", "comparison": "GTE", "value": 1}}}]}
    assert members(ws, rule) == {"a", "d", "e"}


GROUPED = {"any": [{"all": [{"country": {"in": ["US"]}}, {"leadScore": {"min": 80}}]},
                   {"not": {"engagement": {"metric": "OPENS", "comparison": "GTE", "value": 1}}}]}
PATHS = ["any", "any[0].all", "any[0].all[0].country", "any[0].all[1].leadScore", "any[1].not",
         "any[1].not.engagement"]


def test_breakdown_counts_every_node_on_its_own(ws):
    data = ws.graphql("query($r: RuleInput!, $a: DateTime) { segmentPreview(rule: $r, asOf: $a) "
                  "{ count breakdown { path kind count } } }", r=GROUPED, a=AS_OF)["segmentPreview"]
    assert [(n["path"], n["kind"], n["count"]) for n in data["breakdown"]] == [
        ("any", "any", 3), ("any[0].all", "all", 1), ("any[0].all[0].country", "country", 1),
        ("any[0].all[1].leadScore", "leadScore", 1), ("any[1].not", "not", 2),
        ("any[1].not.engagement", "engagement", 3)]
    assert data["breakdown"][0]["count"] == data["count"]


def test_explain_membership_node_by_node(ws):
    query = """query($c: ID!, $r: RuleInput, $s: ID, $a: DateTime) {
      explainMembership(contactId: $c, rule: $r, segmentId: $s, asOf: $a) { contactId member nodes { path matched } }
    }"""
    a = ws.graphql(query, c="a", r=GROUPED, a=AS_OF)["explainMembership"]
    assert a["member"] is True
    matched = [True, True, True, True, False, True]
    assert [(n["path"], n["matched"]) for n in a["nodes"]] == list(zip(PATHS, matched, strict=True))
    sid = ws.graphql('mutation($r: RuleInput!) { createSegment(name: "g", rule: $r) { id } }',
                     r=GROUPED)["createSegment"]["id"]
    b = ws.graphql(query, c="b", s=sid, a=AS_OF)["explainMembership"]
    assert b["member"] is False
    assert [n["matched"] for n in b["nodes"]] == [False, False, False, False, False, True]
    assert ws.errors(query, c="nobody", r=GROUPED, a=AS_OF)[0]["extensions"]["code"] == "NOT_FOUND"
    assert ws.errors(query, c="a", a=AS_OF)[0]["extensions"]["code"] == "BAD_USER_INPUT"


EVERY_CONDITION = {"all": [
    {"engagement": {"metric": "OPENS", "comparison": "GTE", "value": 3, "withinDays": 30}},
    {"engagement": {"metric": "OPENS", "comparison": "EQ", "value": 1, "device": "MOBILE"}},
    {"leadScore": {"tier": "HOT"}},
    {"country": {"in": ["us"]}},
    {"timezone": {"notIn": ["EST"]}},
    {"tags": {"includesAny": ["vip"], "excludes": ["unqualified"]}},
    {"recency": {"activity": "OPENED", "withinDays": 7}},
    {"lastOpenDevice": {"in": ["MOBILE"]}},
    {"openHabits": {"hourFrom": 9, "hourTo": 12, "weekdays": ["FRIDAY"]}},
    {"campaign": {"campaignId": "k1", "clickedUrlContains": "PRICING"}},
    {"numericRange": {"field": "ltv", "comparison": "GT", "value": 1000}},
    {"customField": {"field": "plan", "equals": "pro"}},
    {"dateRange": {"field": "signup", "toDays": -1000}},
    {"dateAnniversary": {"field": "signup", "window": "THIS_MONTH"}},
]}
EXPLAIN_VALUES = """query($c: ID!, $r: RuleInput, $a: DateTime) { explainMembership(contactId: $c, rule: $r, asOf: $a)
  { member nodes { path matched values { label value needed } } } }"""


def test_explain_membership_shows_the_values_that_decided_each_node(ws):
    explained = ws.graphql(EXPLAIN_VALUES, c="a", r=EVERY_CONDITION, a=AS_OF)["explainMembership"]
    root, *conditions = explained["nodes"]
    assert root == {"path": "all", "matched": False, "values": []}
    shown = [(n["matched"], v["label"], v["value"], v["needed"]) for n in conditions for v in n["values"]]
    assert shown == [
        (False, "opens on the last 30 days", 2, ">= 3"),
        (True, "opens on MOBILE in total", 1, "= 1"),
        (True, "lead score", 85, ">= 80 and <= 100 (HOT)"),
        (True, "country", "US", "one of us"),
        (True, "time zone", "America/Phoenix", "none of EST"),
        (True, "tags", ["vip", "beta"], "includes any of vip; includes none of unqualified"),
        (True, "latest open", "2026-11-27T16:00:00.000Z", "on or after 2026-11-22 (the last 7 days)"),
        (True, "device of the latest open", "MOBILE", "one of MOBILE"),
        (True, "most common open hour", 9, "from 9:00 to 12:00 (hours 9, 10, 11)"),
        (True, "most common open weekday", "FRIDAY", "one of FRIDAY"),
        (True, "campaign k1", {"id": "k1", "name": "Launch", "sentAt": "2026-11-20T10:00:00.000Z", "received": True,
                               "opens": 1, "clicks": 1, "urls": ["https://x.example/pricing?plan=pro"]},
         "received, a clicked url contains 'PRICING'"),
        (True, "custom field ltv", 1500, "> 1000"),
        (True, "custom field plan", "pro", "= 'pro'"),
        (True, "custom field signup", "2020-02-29T00:00:00.000Z", "on or before 2024-03-03"),
        (False, "custom field signup", "2020-02-29T00:00:00.000Z", "an anniversary from 2026-11-01 to 2026-11-30"),
    ]


def test_explain_membership_values_of_a_contact_without_data(ws):
    explained = ws.graphql(EXPLAIN_VALUES, c="e", r=EVERY_CONDITION, a=AS_OF)["explainMembership"]
    values = {v["label"]: v["value"] for n in explained["nodes"] for v in n["values"]}
    assert values["opens on the last 30 days"] == 0 and values["opens on MOBILE in total"] == 0
    assert values["lead score"] is None and values["country"] is None and values["tags"] == []
    assert values["latest open"] is None and values["most common open weekday"] is None
    assert values["campaign k1"] is None and values["custom field ltv"] is None


def test_engagement_windows_are_exact_past_the_kept_event_days(http):
    """Rollups keep the days of the newest DAYS_KEPT events per series; larger
    counts are read from the daily buckets. Both give the same answers."""
    from segmentql.plugins.contact import DAYS_KEPT

    assert DAYS_KEPT == 100  # the counts below straddle it
    client = new_workspace(http)
    client.graphql("mutation($c: [ContactInput!]!) { upsertContacts(contacts: $c) { accepted } }",
                   c=[{"id": "heavy", "email": "h@example.com"}, {"id": "light", "email": "l@example.com"}])
    # heavy: 13 opens on each of the 10 days up to today (130); light: 1 open today.
    opens = [{"id": f"h{day}-{n}", "contactId": "heavy", "type": "OPEN", "at": f"2026-11-{19 + day}T{n:02d}:00:00Z"}
             for day in range(10) for n in range(13)]
    opens.append({"id": "l1", "contactId": "light", "type": "OPEN", "at": "2026-11-28T08:00:00Z"})
    assert client.graphql("mutation($e: [EventInput!]!) { recordEvents(events: $e) { accepted } }",
                          e=opens)["recordEvents"]["accepted"] == 131

    def opened(comparison, value, days):
        return members(client, {"engagement": {"metric": "OPENS", "comparison": comparison, "value": value,
                                               "withinDays": days}})
    assert opened("GTE", 100, 10) == opened("GTE", 101, 10) == opened("EQ", 130, 10) == {"heavy"}
    assert opened("GTE", 131, 10) == set() and opened("LT", 131, 10) == {"heavy", "light"}
    assert opened("GTE", 104, 8) == {"heavy"} and opened("GTE", 105, 8) == set()  # 8 days: 104 opens
    assert opened("EQ", 104, 8) == {"heavy"} and opened("LTE", 99, 8) == {"light"}
    assert opened("GTE", 13, 1) == {"heavy"} and opened("GTE", 14, 1) == set()
