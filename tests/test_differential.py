"""Property-based differential test: random rule trees over the seed data set,
member ids from the service (GraphQL, compiled pipeline, embedded database)
against the reference evaluator written from the spec. Some trees are
evaluated at an ``asOf`` weeks before the newest events, which exercises the
"events after today" paths of the compiler."""

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import SEED_AS_OF
from .examples import examples
from .reference import Dataset
from .rules import member_ids

TAGS = ["vip", "unqualified", "beta", "newsletter", "customer", "trial", "partner", "churn-risk", "VIP"]
COUNTRIES = ["US", "CA", "GB", "DE", "FR", "JP", "BR", "IN", "AU", "us", "ZZ"]
ZONES = ["PST", "MST", "CST", "EST", "AKST", "HST", "Europe/London", "America/Phoenix", "Asia/Tokyo",
         "America/Toronto", "Pacific/Honolulu"]
CAMPAIGN_NAMES = ["Product Launch Q4", "Feature Announcement", "Black Friday Preview", "Weekly Digest #3",
                  "No Such Campaign"]
URL_TEXT = ["pricing", "DEMO", "/blog", "example.com", "zzz", "Pricing/Enter", "?"]
INTERESTS = ["email marketing", "automation", "analytics", "sms", "ecommerce", "webinars"]
COMPARISONS = ["EQ", "NE", "GT", "GTE", "LT", "LTE"]
AS_OFS = [SEED_AS_OF, SEED_AS_OF, "2026-10-15T08:00:00Z", "2026-03-01T00:00:00Z"]

days = st.integers(1, 400)
comparison = st.sampled_from(COMPARISONS)


def subset(items, min_size=1):
    return st.lists(st.sampled_from(items), min_size=min_size, max_size=4, unique=True)


def one_of_keys(*pairs):
    """A dict with exactly one of the (key, strategy) pairs."""
    return st.one_of(*[strategy.map(lambda v, k=key: {k: v}) for key, strategy in pairs])


def some_of(required: dict, optional: dict, at_least_one=True):
    @st.composite
    def build(draw):
        node = {k: draw(s) for k, s in required.items()}
        keys = draw(st.lists(st.sampled_from(sorted(optional)), min_size=1 if at_least_one else 0,
                             max_size=len(optional), unique=True))
        node.update({k: draw(optional[k]) for k in keys})
        return node
    return build()


@st.composite
def engagement(draw):
    metric = draw(st.sampled_from(["OPENS", "CLICKS", "CONVERSIONS"]))
    node = {"metric": metric, "comparison": draw(comparison), "value": draw(st.integers(-1, 12))}
    if draw(st.booleans()):
        node["withinDays"] = draw(days)
    if metric == "OPENS" and draw(st.booleans()):
        node["device"] = draw(st.sampled_from(["MOBILE", "DESKTOP", "TABLET"]))
    return node


@st.composite
def recency(draw):
    node = {"activity": draw(st.sampled_from(["OPENED", "CLICKED", "CONVERTED", "ANY"]))}
    if draw(st.booleans()):
        node["withinDays"] = draw(days)
    else:
        node["moreThanDaysAgo"] = draw(days)
        if draw(st.booleans()):
            node["includeNever"] = draw(st.booleans())
    return node


@st.composite
def open_habits(draw):
    node = {}
    hour_from = draw(st.none() | st.integers(0, 24))
    hour_to = draw(st.none() | st.integers(0, 24).filter(lambda h: h != hour_from))
    if hour_from is not None:
        node["hourFrom"] = hour_from
    if hour_to is not None:
        node["hourTo"] = hour_to
    if not node or draw(st.booleans()):
        node["weekdays"] = draw(subset(["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY",
                                        "SUNDAY"]))
    return node


@st.composite
def campaign(draw):
    selector = draw(one_of_keys(("campaignId", st.sampled_from([f"cmp{i:03d}" for i in range(1, 42)])),
                                ("campaignName", st.sampled_from(CAMPAIGN_NAMES)),
                                ("latest", st.just(True))))
    parts = draw(some_of({}, {
        "opened": st.booleans(), "clicked": st.booleans(),
        "clickedUrlContains": st.sampled_from(URL_TEXT), "notClickedUrlContains": st.sampled_from(URL_TEXT),
        "daysSinceSent": st.fixed_dictionaries({"comparison": comparison, "value": st.integers(0, 400)})}))
    return {**selector, **parts}


@st.composite
def lead_score(draw):
    if draw(st.booleans()):
        return {"tier": draw(st.sampled_from(["HOT", "WARM", "COLD"]))}
    return draw(some_of({}, {"min": st.integers(0, 100), "max": st.integers(0, 100)}))


@st.composite
def numeric_range(draw):
    node = {"field": draw(st.sampled_from(["customer_ltv", "total_revenue", "lifetime_opens"]))}
    value = st.sampled_from([0, 1, 10, 30, 50, 400, 1000, 5000])
    if draw(st.booleans()):
        node.update(comparison=draw(comparison), value=draw(value))
    else:
        node.update(draw(some_of({}, {"min": value, "max": value})))
    return node


@st.composite
def custom_field(draw):
    field = draw(st.sampled_from(["plan", "bounced", "interests", "customer_ltv", "signup_date", "trial_end_date"]))
    if draw(st.integers(0, 5)) == 0:
        return {"field": field, "exists": draw(st.booleans())}
    operand = {
        "plan": st.sampled_from(["free", "starter", "pro", "enterprise", "Pro"]),
        "bounced": st.booleans(),
        "interests": subset(INTERESTS),
        "customer_ltv": st.sampled_from([536.22, 100, 0]),
        "signup_date": st.sampled_from(["2021-08-04", "2024-11-08T12:00:00Z", "2020-02-29"]),
        "trial_end_date": st.sampled_from(["2026-11-01", "2026-12-05", "2026-11-28T23:00:00Z"]),
    }[field]
    operators = ["equals", "notEquals"] + (["containsAny", "containsAll", "containsNone"]
                                           if field == "interests" else [])
    return {"field": field, draw(st.sampled_from(operators)): draw(operand)}


@st.composite
def date_range(draw):
    node = {"field": draw(st.sampled_from(["trial_end_date", "signup_date"]))}
    instant = st.sampled_from(["2026-11-20T00:00:00Z", "2024-01-01T00:00:00Z", "2026-11-30T12:00:00Z"])
    node.update(draw(some_of({}, {"fromDays": st.integers(-60, 40), "toDays": st.integers(-40, 60),
                                  "after": instant, "before": instant})))
    return node


@st.composite
def date_anniversary(draw):
    window = draw(st.sampled_from(["TODAY", "THIS_WEEK", "THIS_MONTH", "NEXT_DAYS"]))
    node = {"field": draw(st.sampled_from(["signup_date", "trial_end_date"])), "window": window}
    if window == "NEXT_DAYS":
        node["days"] = draw(st.sampled_from([1, 3, 30, 100, 366, 800]))
    return node


CONDITIONS = st.one_of(
    one_of_keys(("in", subset(COUNTRIES)), ("notIn", subset(COUNTRIES))).map(lambda n: {"country": n}),
    one_of_keys(("in", subset(ZONES)), ("notIn", subset(ZONES))).map(lambda n: {"timezone": n}),
    some_of({}, {"includesAny": subset(TAGS), "includesAll": subset(TAGS), "excludes": subset(TAGS)}).map(
        lambda n: {"tags": n}),
    engagement().map(lambda n: {"engagement": n}),
    recency().map(lambda n: {"recency": n}),
    subset(["MOBILE", "DESKTOP", "TABLET"]).map(lambda d: {"lastOpenDevice": {"in": d}}),
    open_habits().map(lambda n: {"openHabits": n}),
    campaign().map(lambda n: {"campaign": n}),
    lead_score().map(lambda n: {"leadScore": n}),
    numeric_range().map(lambda n: {"numericRange": n}),
    custom_field().map(lambda n: {"customField": n}),
    date_range().map(lambda n: {"dateRange": n}),
    date_anniversary().map(lambda n: {"dateAnniversary": n}),
)

RULES = st.recursive(CONDITIONS, lambda children: st.one_of(
    st.lists(children, min_size=1, max_size=3).map(lambda c: {"all": c}),
    st.lists(children, min_size=1, max_size=3).map(lambda c: {"any": c}),
    children.map(lambda c: {"not": c})), max_leaves=6)


@pytest.fixture(scope="module")
def reference(seed_dir):
    return Dataset.load(seed_dir)


@settings(max_examples=examples(40), deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(rule=RULES, as_of=st.sampled_from(AS_OFS))
def test_random_rules_match_reference(seed, reference, rule, as_of):
    expected = reference.members(rule, dt.datetime.fromisoformat(as_of.replace("Z", "+00:00")))
    assert sorted(member_ids(seed, rule, as_of)) == sorted(expected), rule


@settings(max_examples=examples(28), deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(condition=CONDITIONS, as_of=st.sampled_from(AS_OFS))
def test_every_condition_and_its_negation_match_reference(seed, reference, condition, as_of):
    moment = dt.datetime.fromisoformat(as_of.replace("Z", "+00:00"))
    for rule in (condition, {"not": condition}):
        assert sorted(member_ids(seed, rule, as_of)) == sorted(reference.members(rule, moment)), rule


def _subrules(rule):
    """Every node of a rule tree, pre-order, as the service's breakdown lists them."""
    (kind, value), = rule.items()
    yield rule
    if kind in ("all", "any"):
        for child in value:
            yield from _subrules(child)
    elif kind == "not":
        yield from _subrules(value)


@settings(max_examples=examples(15), deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(rule=RULES, as_of=st.sampled_from(AS_OFS))
def test_breakdown_counts_match_reference(seed, reference, rule, as_of):
    moment = dt.datetime.fromisoformat(as_of.replace("Z", "+00:00"))
    breakdown = seed.graphql("query($r: RuleInput!, $a: DateTime) { segmentPreview(rule: $r, asOf: $a) "
                         "{ breakdown { count } } }", r=rule, a=as_of)["segmentPreview"]["breakdown"]
    assert [n["count"] for n in breakdown] == [len(reference.members(r, moment)) for r in _subrules(rule)], rule


EXPLAIN = """query($c: ID!, $r: RuleInput!, $a: DateTime) { explainMembership(contactId: $c, rule: $r, asOf: $a)
  { member nodes { matched values { value } } } }"""


@settings(max_examples=examples(25), deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(rule=RULES, as_of=st.sampled_from(AS_OFS), pick=st.integers(0, 10**6), engaged=engagement())
def test_explain_membership_matches_reference_node_by_node(seed, reference, rule, as_of, pick, engaged):
    """explainMembership's matched flags are the reference's answers for every
    node, and the count shown for an engagement node is the reference's count."""
    moment = dt.datetime.fromisoformat(as_of.replace("Z", "+00:00"))
    contacts = sorted(reference.contacts)
    contact = reference.contacts[contacts[pick % len(contacts)]]
    rule = {"all": [rule, {"engagement": engaged}]}
    explained = seed.graphql(EXPLAIN, c=contact["id"], r=rule, a=as_of)["explainMembership"]
    expected = [reference.matches(r, contact, moment.date()) for r in _subrules(rule)]
    assert [n["matched"] for n in explained["nodes"]] == expected, rule
    assert explained["member"] is expected[0]
    shown = explained["nodes"][-1]["values"][0]["value"]
    assert shown == reference.engagement_count(engaged, contact, moment.date()), (engaged, contact["id"])
