"""Segment insight beyond counts (issue 8): snapshots and their diffs, size
history, A/B splits and engagement analytics, through GraphQL on the
embedded database."""

import datetime as dt
import math

import pytest

from .conftest import SEED_AS_OF, new_workspace, segmentql
from .reference import Dataset
from .rules import member_ids

VIP = {"tags": {"includesAny": ["vip"]}}
EVERYONE = {"not": {"tags": {"includesAny": ["no-such-tag"]}}}


def upsert(ws, contacts):
    result = ws.graphql("mutation($c: [ContactInput!]!) { upsertContacts(contacts: $c) { errors { message } } }",
                    c=contacts)
    assert result["upsertContacts"]["errors"] == []


def contacts(ids, tags=("vip",)):
    return [{"id": i, "email": f"{i}@example.com", "tags": list(tags)} for i in ids]


def create_segment(ws, rule, name="segment") -> str:
    return ws.graphql("mutation($r: RuleInput!, $n: String!) { createSegment(name: $n, rule: $r) { id } }",
                  r=rule, n=name)["createSegment"]["id"]


SNAPSHOT = """mutation($id: ID!, $label: String!) { snapshotSegment(id: $id, label: $label)
  { id label size segmentId segmentName rule takenAt asOf } }"""
DIFF = """query($a: ID!, $b: ID!, $first: Int, $after: String) { snapshotDiff(a: $a, b: $b) {
  a { label } b { label } stayedCount
  entered(first: $first, after: $after) { totalCount ids pageInfo { hasNextPage endCursor } }
  left(first: $first) { totalCount ids } } }"""


@pytest.fixture
def vip_segment(gql):
    upsert(gql, contacts(["c1", "c2", "c3"]) + contacts(["c4", "c5"], tags=()))
    return gql, create_segment(gql, VIP, "VIPs")


def test_a_snapshot_freezes_the_members_and_a_diff_shows_who_entered_and_left(vip_segment):
    ws, sid = vip_segment
    first = ws.graphql(SNAPSHOT, id=sid, label="  before the send ")["snapshotSegment"]
    assert (first["label"], first["size"], first["segmentId"], first["segmentName"], first["rule"]) == (
        "before the send", 3, sid, "VIPs", VIP)
    upsert(ws, contacts(["c3"], tags=()) + contacts(["c4", "c6"]))
    ws.graphql('mutation { deleteContacts(ids: ["c1"]) { accepted } }')
    second = ws.graphql(SNAPSHOT, id=sid, label="after")["snapshotSegment"]
    assert second["size"] == 3  # c2, c4, c6

    diff = ws.graphql(DIFF, a=first["id"], b=second["id"], first=1)["snapshotDiff"]
    assert (diff["a"]["label"], diff["b"]["label"], diff["stayedCount"]) == ("before the send", "after", 1)
    assert diff["left"] == {"totalCount": 2, "ids": ["c1"]}
    assert diff["entered"]["totalCount"] == 2 and diff["entered"]["ids"] == ["c4"]
    rest = ws.graphql(DIFF, a=first["id"], b=second["id"], first=5, after=diff["entered"]["pageInfo"]["endCursor"])
    assert rest["snapshotDiff"]["entered"]["ids"] == ["c6"]
    assert rest["snapshotDiff"]["entered"]["pageInfo"]["hasNextPage"] is False

    # the first snapshot still holds c1 (deleted since) and its own rule after the segment changes
    ws.graphql('mutation($id: ID!) { updateSegment(id: $id, rule: {tags: {includesAny: ["nobody"]}}) { id } }', id=sid)
    listed = ws.graphql('query($id: ID!) { segment(id: $id) { snapshots { label size rule '
                    'memberIds(first: 2) { totalCount ids pageInfo { hasNextPage } } } } }', id=sid)
    assert [(s["label"], s["size"], s["rule"]) for s in listed["segment"]["snapshots"]] == [
        ("after", 3, VIP), ("before the send", 3, VIP)]
    assert listed["segment"]["snapshots"][1]["memberIds"] == {
        "totalCount": 3, "ids": ["c1", "c2"], "pageInfo": {"hasNextPage": True}}


def test_size_history_has_a_point_per_snapshot_and_per_record_sizes_run(vip_segment, cli_env):
    ws, sid = vip_segment
    ws.graphql(SNAPSHOT, id=sid, label="one")
    upsert(ws, contacts(["c7"]))
    workspace = ws.call(ws.db.db.workspaces.find_one, {"_id": ws.workspace_id})
    done = segmentql("record-sizes", "--workspace", workspace["name"], env=cli_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\t")[1:3] == [sid, "4"]
    history = ws.graphql('query($id: ID!) { segment(id: $id) { sizeHistory { at size source } } }',
                     id=sid)["segment"]["sizeHistory"]
    assert [(p["size"], p["source"]) for p in history] == [(3, "SNAPSHOT"), (4, "RECORDED")]
    assert history[0]["at"] <= history[1]["at"]
    newest = ws.graphql('query($id: ID!) { segment(id: $id) { sizeHistory(last: 1) { size } } }', id=sid)
    assert newest["segment"]["sizeHistory"] == [{"size": 4}]
    later = ws.graphql('query($id: ID!, $s: DateTime) { segment(id: $id) { sizeHistory(since: $s) { size } } }',
                   id=sid, s="2999-01-01T00:00:00Z")
    assert later["segment"]["sizeHistory"] == []
    error = ws.errors('query($id: ID!) { segment(id: $id) { sizeHistory(last: 0) { size } } }', id=sid)[0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and "`last`" in error["message"]


def test_snapshot_errors_and_workspace_isolation(vip_segment, http):
    ws, sid = vip_segment
    snap = ws.graphql(SNAPSHOT, id=sid, label="kept")["snapshotSegment"]["id"]
    assert ws.errors(SNAPSHOT, id="nope", label="x")[0]["extensions"]["code"] == "NOT_FOUND"
    blank = ws.errors(SNAPSHOT, id=sid, label="  ")[0]
    assert blank["extensions"]["code"] == "BAD_USER_INPUT" and "label" in blank["message"]
    assert ws.errors(DIFF, a=snap, b="nope")[0]["extensions"]["code"] == "NOT_FOUND"

    other = new_workspace(http)
    assert other.graphql('query($id: ID!) { snapshot(id: $id) { id } }', id=snap) == {"snapshot": None}
    assert other.errors(DIFF, a=snap, b=snap)[0]["extensions"]["code"] == "NOT_FOUND"
    assert other.graphql('mutation($id: ID!) { deleteSnapshot(id: $id) }', id=snap) == {"deleteSnapshot": False}

    assert ws.graphql('mutation($id: ID!) { deleteSegment(id: $id) }', id=sid) == {"deleteSegment": True}
    assert ws.graphql('query($id: ID!) { snapshot(id: $id) { id } }', id=snap) == {"snapshot": None}


SPLIT = """query($id: ID!, $v: [SplitVariantInput!]!, $seed: SplitSeed!) { segment(id: $id) {
  count split(variants: $v, seed: $seed) { seed variants { name weight share count } } } }"""
VARIANT_PAGE = """query($id: ID!, $v: [SplitVariantInput!]!, $seed: SplitSeed!, $after: String) { segment(id: $id) {
  split(variants: $v, seed: $seed) { variants { name
    contacts(first: 1000, after: $after) { edges { node { id } } pageInfo { hasNextPage endCursor } } } } } }"""
ABC = [{"name": "A", "weight": 50}, {"name": "B", "weight": 30}, {"name": "C", "weight": 20}]


def assignment(ws, sid, variants, seed) -> dict[str, str]:
    """contact id -> variant name, paging through every variant."""
    found: dict[str, str] = {}
    for name in [v["name"] for v in variants]:
        after = None
        while True:
            data = ws.graphql(VARIANT_PAGE, id=sid, v=variants, seed=seed, after=after)["segment"]["split"]
            page = next(v for v in data["variants"] if v["name"] == name)["contacts"]
            for edge in page["edges"]:
                assert edge["node"]["id"] not in found, "a contact in two variants"
                found[edge["node"]["id"]] = name
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
    return found


@pytest.fixture(scope="module")
def everyone(seed):
    return create_segment(seed, EVERYONE, "everyone")


def test_a_split_puts_every_member_in_exactly_one_variant_by_weight(seed, everyone):
    data = seed.graphql(SPLIT, id=everyone, v=ABC, seed="spring")["segment"]
    members = data["count"]
    assert members == 2000 and data["split"]["seed"] == "spring"
    variants = data["split"]["variants"]
    assert [(v["name"], v["weight"], v["share"]) for v in variants] == [
        ("A", 50, 0.5), ("B", 30, 0.3), ("C", 20, 0.2)]
    assert sum(v["count"] for v in variants) == members
    for v in variants:  # binomial tolerance: within 4.5 standard deviations (fails by chance ~1 in 150,000)
        spread = math.sqrt(members * v["share"] * (1 - v["share"]))
        assert abs(v["count"] - members * v["share"]) <= 4.5 * spread, v

    assigned = assignment(seed, everyone, ABC, "spring")
    assert sorted(assigned) == sorted(member_ids(seed, EVERYONE))
    assert {name: list(assigned.values()).count(name) for name in "ABC"} == {v["name"]: v["count"] for v in variants}
    assert assignment(seed, everyone, ABC, "spring") == assigned  # the same inputs, the same split
    reseeded = assignment(seed, everyone, ABC, "autumn")
    agree = sum(assigned[c] == reseeded[c] for c in assigned) / members
    assert abs(agree - 0.38) < 0.05  # independent splits agree with chance 0.5² + 0.3² + 0.2², give or take 4.5 sd


def test_adding_contacts_never_moves_existing_ones(gql):
    upsert(gql, contacts([f"c{i:03}" for i in range(60)]))
    sid = create_segment(gql, VIP)
    halves = [{"name": "control", "weight": 1}, {"name": "test", "weight": 1}]
    before = assignment(gql, sid, halves, 7)
    upsert(gql, contacts([f"n{i:03}" for i in range(40)]))
    after = assignment(gql, sid, halves, "7")  # an integer seed is its decimal string
    assert len(after) == 100
    assert {c: after[c] for c in before} == before


@pytest.mark.parametrize("variants, seed, message", [
    ([], "s", "1 to 100 variants"),
    ([{"name": "A", "weight": 0}], "s", "variant 'A' needs a weight above 0"),
    ([{"name": "A", "weight": -1}, {"name": "B", "weight": 1}], "s", "variant 'A' needs a weight above 0"),
    ([{"name": "A", "weight": 1}, {"name": "A", "weight": 1}], "s", "repeated: 'A'"),
    ([{"name": " ", "weight": 1}], "s", "variant names"),
    ([{"name": "A", "weight": 1}], "x" * 201, "`seed`"),
])
def test_a_bad_split_is_a_clear_error(vip_segment, variants, seed, message):
    ws, sid = vip_segment
    error = ws.errors(SPLIT, id=sid, v=variants, seed=seed)[0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and message in error["message"], error


def test_a_split_seed_must_be_a_string_or_an_integer(vip_segment):
    ws, sid = vip_segment
    error = ws.errors(SPLIT, id=sid, v=[{"name": "A", "weight": 1}], seed=1.5)[0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and "SplitSeed" in error["message"]
    literal = ws.errors('query($id: ID!) { segment(id: $id) { split(variants: [{name: "A", weight: 1}], seed: 0.5) '
                        '{ seed } } }', id=sid)[0]
    assert literal["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED" and "SplitSeed" in literal["message"]


ANALYTICS = """query($id: ID!, $days: Int, $asOf: DateTime) { segment(id: $id) {
  analytics(withinDays: $days, asOf: $asOf) { withinDays from to members received opens clicks conversions
    openers clickers converters openRate clickRate clickToOpenRate conversionRate } } }"""
ENGAGED = {"any": [{"engagement": {"metric": "OPENS", "comparison": "GTE", "value": 1}},
                   {"leadScore": {"min": 60}}]}


@pytest.fixture(scope="module")
def reference(seed_dir):
    return Dataset.load(seed_dir)


@pytest.mark.parametrize("days, as_of", [(30, SEED_AS_OF), (7, SEED_AS_OF), (90, "2026-10-15T08:00:00Z")])
def test_analytics_match_the_raw_events(seed, reference, days, as_of):
    sid = create_segment(seed, ENGAGED, "engaged")
    data = seed.graphql(ANALYTICS, id=sid, days=days, asOf=as_of)["segment"]["analytics"]
    moment = dt.datetime.fromisoformat(as_of.replace("Z", "+00:00"))
    today = moment.date()
    first = today - dt.timedelta(days=days - 1)
    members = [reference.contacts[c] for c in reference.members(ENGAGED, moment)]
    totals = {}
    for metric in ("OPENS", "CLICKS", "CONVERSIONS"):
        counts = [reference.engagement_count({"metric": metric, "withinDays": days}, c, today) for c in members]
        totals[metric] = (sum(counts), sum(1 for n in counts if n))
    received = sum(1 for c in members for campaign in {e["campaignId"] for e in reference.events[c["id"]]
                                                        if e["type"] == "SENT" and e.get("campaignId")}
                   if first <= reference.campaigns[campaign]["sentAt"].date() <= today)
    assert data == {
        "withinDays": days, "from": first.isoformat(), "to": today.isoformat(), "members": len(members),
        "received": received, "opens": totals["OPENS"][0], "clicks": totals["CLICKS"][0],
        "conversions": totals["CONVERSIONS"][0], "openers": totals["OPENS"][1], "clickers": totals["CLICKS"][1],
        "converters": totals["CONVERSIONS"][1], "openRate": totals["OPENS"][1] / len(members),
        "clickRate": totals["CLICKS"][1] / len(members), "clickToOpenRate": totals["CLICKS"][1] / totals["OPENS"][1],
        "conversionRate": totals["CONVERSIONS"][1] / len(members)}
    assert data["opens"] > 0 and data["received"] > 0


def test_analytics_of_an_empty_segment_have_no_rates(vip_segment):
    ws, _ = vip_segment
    sid = create_segment(ws, {"tags": {"includesAny": ["nobody"]}})
    data = ws.graphql('query($id: ID!) { segment(id: $id) { analytics { withinDays members opens openRate '
                  'clickToOpenRate } } }', id=sid)["segment"]["analytics"]
    assert (data["withinDays"], data["members"], data["opens"], data["openRate"], data["clickToOpenRate"]) == (
        30, 0, 0, None, None)
    error = ws.errors(ANALYTICS, id=sid, days=0, asOf=None)[0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and "`withinDays`" in error["message"]


def test_record_sizes_rebuilds_rollups_of_an_older_layout_first(gql, cli_env):
    """A cron-run `record-sizes` may be the first thing to meet a store an
    upgrade left with older rollups; it rebuilds them before counting."""
    upsert(gql, contacts(["c1"]))
    gql.graphql('mutation($e: [EventInput!]!) { recordEvents(events: $e) { accepted } }',
                e=[{"id": f"o{i}", "contactId": "c1", "type": "OPEN", "at": f"2026-11-2{i}T08:00:00Z"}
                   for i in range(3)])
    sid = create_segment(gql, {"engagement": {"metric": "OPENS", "comparison": "GTE", "value": 3,
                                              "withinDays": 3650}}, "openers")
    raw = gql.db.db
    gql.call(raw.contacts.update_many, {"workspace_id": gql.workspace_id}, {"$unset": {"stats.eventDays": ""}})
    gql.call(raw.workspaces.update_one, {"_id": gql.workspace_id}, {"$unset": {"rollupLayout": ""}})
    workspace = gql.call(raw.workspaces.find_one, {"_id": gql.workspace_id})
    done = segmentql("record-sizes", "--workspace", workspace["name"], env=cli_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\t")[1:3] == [sid, "1"]
    assert "rollupLayout" in gql.call(raw.workspaces.find_one, {"_id": gql.workspace_id})
