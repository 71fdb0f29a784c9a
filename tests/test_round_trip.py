"""A saved rule comes back exactly as it was sent: ``Segment.rule``, its
revisions and its snapshots give the JSON the client sent (no default added,
no value rewritten), while evaluating it applies the defaults and coercions
as before: the same members as the rule written out in full."""

import datetime as dt

import pytest
import strawberry
from starlette.testclient import TestClient

from segmentql.app import create_app
from segmentql.plugins import Condition, hookimpl
from segmentql.plugins.registry import load_registry

from .conftest import new_workspace

AS_OF = "2026-11-28T12:00:00Z"  # the seed data's "as of"

# Sent the way a front end may send it: defaults left out (recency's includeNever),
# enums, an instant with an offset and milliseconds, an Int where a Float goes, one
# value where a list goes, an explicit null, groups nested three deep.
SENT = {"all": [
    {"any": [{"recency": {"activity": "OPENED", "moreThanDaysAgo": 60}},
             {"engagement": {"metric": "CLICKS", "comparison": "GTE", "value": 2, "withinDays": 30}}]},
    {"not": {"country": {"in": "BR"}}},
    {"any": [{"customField": {"field": "signup_date", "exists": True}},
             {"customField": {"field": "customer_ltv", "exists": False}}]},
    {"not": {"all": [{"numericRange": {"field": "customer_ltv", "min": 5000, "max": None}},
                     {"dateRange": {"field": "signup_date", "after": "2026-06-01T00:00:00.000+02:00"}}]}},
]}
# The same rule as plugins take it, every default and coercion written out: what segments stored before.
IN_FULL = {"all": [
    {"any": [{"recency": {"activity": "OPENED", "moreThanDaysAgo": 60, "includeNever": True}},
             {"engagement": {"metric": "CLICKS", "comparison": "GTE", "value": 2, "withinDays": 30}}]},
    {"not": {"country": {"in": ["BR"]}}},
    {"any": [{"customField": {"field": "signup_date", "exists": True}},
             {"customField": {"field": "customer_ltv", "exists": False}}]},
    {"not": {"all": [{"numericRange": {"field": "customer_ltv", "min": 5000.0}},
                     {"dateRange": {"field": "signup_date", "after": "2026-05-31T22:00:00Z"}}]}},
]}

PREVIEW = "query($r: RuleInput!, $a: DateTime) { segmentPreview(rule: $r, asOf: $a) { count } }"
CREATE = "mutation($r: RuleInput!) { createSegment(name: \"round trip\", rule: $r) { id rule count } }"
READ = ("query($id: ID!, $a: DateTime) { segment(id: $id) { rule count(asOf: $a) "
        "revisions { rule } snapshots { rule } } }")


def preview(seed, rule) -> int:
    return seed.graphql(PREVIEW, r=rule, a=AS_OF)["segmentPreview"]["count"]


@pytest.fixture(scope="module")
def counted(seed):
    """How many contacts the rule selects at AS_OF, written out in full."""
    count = preview(seed, IN_FULL)
    assert 0 < count < 2000, count  # a rule that decides something
    return count


def test_a_saved_rule_reads_back_as_sent_and_counts_as_in_full(seed, counted):
    created = seed.graphql(CREATE, r=SENT)["createSegment"]
    assert created["rule"] == SENT
    # Its stored members (evaluated at creation) are those of the rule now, in full or as sent.
    assert created["count"] == seed.graphql("query($r: RuleInput!) { segmentPreview(rule: $r) { count } }",
                                            r=IN_FULL)["segmentPreview"]["count"]
    read = seed.graphql(READ, id=created["id"], a=AS_OF)["segment"]
    assert read["rule"] == SENT and read["count"] == counted == preview(seed, SENT)


def test_revisions_and_snapshots_keep_the_rule_as_sent(seed, counted):
    segment = seed.graphql(CREATE, r=SENT)["createSegment"]["id"]
    snapshot = seed.graphql("mutation($id: ID!, $a: DateTime) { snapshotSegment(id: $id, label: \"send\", asOf: $a) "
                            "{ rule size } }", id=segment, a=AS_OF)["snapshotSegment"]
    assert snapshot == {"rule": SENT, "size": counted}
    newer = {"recency": {"activity": "ANY", "moreThanDaysAgo": 30}}
    updated = seed.graphql("mutation($id: ID!, $r: RuleInput) { updateSegment(id: $id, rule: $r) { rule } }",
                           id=segment, r=newer)["updateSegment"]
    assert updated["rule"] == newer
    read = seed.graphql(READ, id=segment, a=AS_OF)["segment"]
    assert read["rule"] == newer and read["revisions"] == [{"rule": SENT}] and read["snapshots"] == [{"rule": SENT}]
    assert read["count"] == preview(seed, {"recency": {"activity": "ANY", "moreThanDaysAgo": 30, "includeNever": True}})


def test_a_rule_written_inline_reads_back_as_written(seed):
    created = seed.graphql('mutation { createSegment(name: "inline", rule: {any: [{leadScore: {tier: HOT}}, '
                           '{recency: {activity: CLICKED, moreThanDaysAgo: 90}}, {country: {in: "FR"}}]}) '
                           '{ id rule } }')["createSegment"]
    assert created["rule"] == {"any": [{"leadScore": {"tier": "HOT"}},
                                       {"recency": {"activity": "CLICKED", "moreThanDaysAgo": 90}},
                                       {"country": {"in": "FR"}}]}
    read = seed.graphql(READ, id=created["id"], a=AS_OF)["segment"]
    assert read["count"] == preview(seed, {"any": [
        {"leadScore": {"tier": "HOT"}},
        {"recency": {"activity": "CLICKED", "moreThanDaysAgo": 90, "includeNever": True}},
        {"country": {"in": ["FR"]}}]})


def test_a_rule_stored_in_full_still_evaluates_the_same(seed, counted):
    """Segments saved before rules were kept as sent hold them in full (defaults and coercions written out)."""
    created = seed.graphql(CREATE, r=IN_FULL)["createSegment"]
    assert created["rule"] == IN_FULL
    assert seed.graphql(READ, id=created["id"], a=AS_OF)["segment"]["count"] == counted


def test_one_rule_where_a_group_takes_a_list_is_saved_as_sent_and_counts_as_the_list(seed):
    sent = {"all": {"any": {"leadScore": {"tier": "HOT"}}}}
    listed = {"all": [{"any": [{"leadScore": {"tier": "HOT"}}]}]}
    expected = preview(seed, listed)
    assert preview(seed, sent) == expected
    created = seed.graphql(CREATE, r=sent)["createSegment"]
    assert created["rule"] == sent and created["count"] == expected
    written = seed.graphql('mutation { createSegment(name: "inline", rule: {not: {any: {leadScore: {tier: HOT}}}}) '
                           '{ id rule } }')["createSegment"]
    assert written["rule"] == {"not": {"any": {"leadScore": {"tier": "HOT"}}}}
    updated = seed.graphql("mutation($id: ID!, $r: RuleInput) { updateSegment(id: $id, rule: $r) { rule } }",
                           id=written["id"], r=sent)["updateSegment"]
    assert updated["rule"] == sent
    assert seed.graphql(READ, id=written["id"], a=AS_OF)["segment"]["count"] == expected


# A third-party condition whose input has what GraphQL fills in on its own: a
# None default, a default_factory, a nested input's defaults, and scalars
# parsed into Python values (a Date). It records every node it is given.
@strawberry.input(description="Test: a window.")
class WindowInput:
    days: int = strawberry.field(default=7, description="Days.")
    until: dt.date | None = strawberry.field(default=None, description="Last day.")


@strawberry.input(description="Test: records its nodes.")
class RecordedInput:
    since: dt.date = strawberry.field(description="A day (the Date scalar).")
    limit: int | None = strawberry.field(default=None, description="Absent unless given.")
    labels: list[str] = strawberry.field(default_factory=lambda: ["a", "b"], description="Labels.")
    window: WindowInput | None = strawberry.field(default_factory=WindowInput, description="A window.")
    weight: float = strawberry.field(default=1, description="A Float given as an Int.")


class Recorder:
    def __init__(self):
        self.nodes: list[dict] = []

    @hookimpl
    def segmentql_register_conditions(self, register):
        register(Condition(field="recorded", input_type=RecordedInput, description="Records its nodes.",
                           validate=lambda node, ctx: None, compile=self.compile))

    def compile(self, node, ctx) -> dict:
        self.nodes.append(node)
        return {}


@pytest.fixture(scope="module")
def recorder(embedded_uri, settings):
    plugin = Recorder()
    registry = load_registry(load_entry_points=False, extra=[("recorder", plugin)])
    with TestClient(create_app(settings, embedded_uri, registry)) as http:
        yield plugin, new_workspace(http)


@pytest.mark.parametrize("rule, node", [
    ({"since": "2026-01-02"},
     {"since": "2026-01-02", "labels": ["a", "b"], "window": {"days": 7}, "weight": 1.0}),
    ({"since": "2026-01-02", "limit": None, "labels": "x", "window": {"until": "2026-03-04"}, "weight": 2},
     {"since": "2026-01-02", "labels": ["x"], "window": {"days": 7, "until": "2026-03-04"}, "weight": 2.0}),
], ids=["defaults", "given"])
def test_a_plugin_is_given_the_same_node_for_a_preview_and_the_segment_saved_from_it(recorder, rule, node):
    plugin, client = recorder
    plugin.nodes.clear()
    client.graphql("query($r: RuleInput!) { segmentPreview(rule: $r) { count } }", r={"recorded": rule})
    (previewed,) = plugin.nodes
    created = client.graphql(CREATE, r={"recorded": rule})["createSegment"]
    assert created["rule"] == {"recorded": rule}
    client.graphql("query($id: ID!) { segment(id: $id) { count(asOf: \"2026-11-28T12:00:00Z\") } }",
                   id=created["id"])
    assert previewed == node
    assert plugin.nodes[1:] and all(saved == previewed for saved in plugin.nodes[1:]), plugin.nodes
