"""Live segments, property-based: whatever sequence of writes a workspace
gets through GraphQL (contacts upserted, deleted and created again, events
recorded, campaigns renamed and re-dated), every write logs exactly the
difference it made to each saved segment, and afterwards each segment's
stored members equal its rule evaluated afresh and the replay of its log.

Dates are real, relative to now: the rules' windows ("opened in the last 7
days") and the events' days are evaluated against today, as in production.
"""

import asyncio
import datetime as dt
import random
from concurrent.futures import ThreadPoolExecutor

from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from segmentql.server import ingest
from segmentql.server.live import Cause, Scope

from .conftest import new_workspace
from .examples import examples

CONTACT_IDS = [f"c{i:02}" for i in range(12)]
CAMPAIGN_IDS = ["k1", "k2", "k3", "k4"]
CAMPAIGN_NAMES = ["Launch", "Digest", "Promo", "Winback"]
TAGS = ["vip", "churned", "beta"]
INTERESTS = ["sms", "email", "ads"]
FIELDS = {"plan": "TEXT", "ltv": "NUMBER", "interests": "MULTI_SELECT"}
SEGMENTS = {
    "hot": {"leadScore": {"min": 70}},
    "vip_not_churned": {"tags": {"includesAny": ["vip"], "excludes": ["churned"]}},
    "opened_this_week": {"recency": {"activity": "OPENED", "withinDays": 7}},
    "engaged": {"engagement": {"metric": "OPENS", "comparison": "GTE", "value": 2, "withinDays": 14}},
    "launch_opened": {"campaign": {"campaignName": "Launch", "opened": True}},
    "latest_clicked_pricing": {"campaign": {"latest": True, "clickedUrlContains": "pricing"}},
    "digest_weeks_ago": {"campaign": {"campaignName": "Digest", "daysSinceSent": {"comparison": "GTE", "value": 20}}},
    "latest_sent_lately": {"campaign": {"latest": True, "daysSinceSent": {"comparison": "LTE", "value": 10}}},
    "pro_plan": {"customField": {"field": "plan", "equals": "pro"}},
    "abroad_or_valuable": {"any": [{"not": {"country": {"in": ["US"]}}},
                                   {"numericRange": {"field": "ltv", "comparison": "GTE", "value": 500}}]},
    "quiet_warm": {"all": [{"recency": {"activity": "ANY", "moreThanDaysAgo": 20}}, {"leadScore": {"min": 40}},
                           {"not": {"customField": {"field": "interests", "containsAny": ["sms"]}}}]},
    "converted_lately": {"all": [{"engagement": {"metric": "CONVERSIONS", "comparison": "GTE", "value": 1,
                                                 "withinDays": 30}},
                                 {"recency": {"activity": "CLICKED", "withinDays": 45}}]},
    "morning_openers": {"openHabits": {"hourFrom": 6, "hourTo": 11}},
}
CAUSES = {"upsert": "CONTACT", "recreate": "CONTACT", "events": "EVENT", "delete": "DELETE", "campaigns": "CAMPAIGN"}

UPSERT = "mutation($c: [ContactInput!]!) { upsertContacts(contacts: $c) { accepted unchanged errors { message } } }"
EVENTS = "mutation($e: [EventInput!]!) { recordEvents(events: $e) { accepted unchanged errors { message } } }"
DELETE = "mutation($ids: [ID!]!) { deleteContacts(ids: $ids) { accepted unchanged errors { message } } }"
CAMPAIGNS = "mutation($c: [CampaignInput!]!) { upsertCampaigns(campaigns: $c) { accepted errors { message } } }"
CREATE = "mutation($n: String!, $r: RuleInput!) { createSegment(name: $n, rule: $r) { id } }"
STORED = """query($id: ID!) { segment(id: $id) { count membership { asOf }
  contacts(first: 1000) { edges { node { id } } pageInfo { hasNextPage } } } }"""
CHANGES = """query($id: ID!, $first: Int!, $after: String) { segment(id: $id) { changes(first: $first, after: $after) {
  edges { cursor node { contactId change cause } } pageInfo { hasNextPage endCursor } } } }"""
MUTATIONS = {"upsert": (UPSERT, "c"), "recreate": (UPSERT, "c"), "events": (EVENTS, "e"), "delete": (DELETE, "ids"),
             "campaigns": (CAMPAIGNS, "c")}


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def ago(days: int, hours: int = 0) -> str:
    return (now() - dt.timedelta(days=days, hours=hours)).isoformat()


# -- what the writes are made of ------------------------------------------------

contact_ids = st.sampled_from(CONTACT_IDS)
maybe = st.booleans


@st.composite
def contact(draw, ids=contact_ids) -> dict:
    cid = draw(ids)
    item: dict = {"id": cid, "email": f"{cid}@example.com"}
    if draw(maybe()):
        item["leadScore"] = draw(st.integers(0, 100))
    if draw(maybe()):
        item["tags"] = draw(st.lists(st.sampled_from(TAGS), max_size=3, unique=True))
    if draw(maybe()):
        item["country"] = draw(st.sampled_from(["US", "CA", "DE"]))
    if draw(maybe()):
        item["timezone"] = draw(st.sampled_from(["America/New_York", "Asia/Tokyo", "Europe/Berlin"]))
    custom = draw(st.fixed_dictionaries({}, optional={
        "plan": st.sampled_from(["free", "pro", None]),
        "ltv": st.one_of(st.none(), st.integers(0, 1000)),
        "interests": st.one_of(st.none(), st.lists(st.sampled_from(INTERESTS), max_size=3, unique=True)),
    }))
    if custom:
        item["customFields"] = custom
    return item


@st.composite
def burst(draw, ids) -> list[dict]:
    """A few events of one contact, mostly recent, most of them of one campaign (received, opened, clicked)."""
    contact_id, campaign_id = draw(ids), draw(st.sampled_from(CAMPAIGN_IDS[:3]))
    events = []
    kinds = draw(st.lists(st.sampled_from(["OPEN", "OPEN", "CLICK", "CONVERSION"]), min_size=1, max_size=4))
    for kind in ["SENT"] * draw(maybe()) + kinds:
        item = {"id": f"e{draw(st.integers(0, 80))}", "contactId": contact_id, "type": kind,
                "at": ago(draw(st.sampled_from([0, 0, 1, 2, 4, 6, 9, 13, 18, 25, 40, 59])), draw(st.integers(0, 23)))}
        if kind == "SENT" or draw(st.integers(0, 3)):
            item["campaignId"] = campaign_id
        if kind == "OPEN" and draw(maybe()):
            item["device"] = draw(st.sampled_from(["MOBILE", "DESKTOP"]))
        if kind == "CLICK":
            item["url"] = draw(st.sampled_from(["https://x.io/pricing", "https://x.io/demo"]))
        events.append(item)
    return events


def campaign(ids) -> st.SearchStrategy[dict]:
    return st.builds(lambda cid, name, days: {"id": cid, "name": name, "sentAt": ago(days)},
                     ids, st.sampled_from(CAMPAIGN_NAMES), st.sampled_from([0, 2, 5, 9, 15, 21, 30, 45]))


def write(data, alive: set[str], deleted: set[str], received: set[str]) -> tuple[str, list]:
    """The next write: its kind and its items. Events and deletes are mostly
    of stored contacts (``alive``; events of an unknown one are refused),
    campaign changes mostly of campaigns sent to someone (``received``);
    ``recreate`` upserts contacts deleted before."""
    kinds = ["upsert"] * 2 + ["events"] * 3 + ["delete"] + ["campaigns"] * 2 + ["recreate"] * bool(deleted)
    kind = data.draw(st.sampled_from(kinds), label="kind")
    known = st.one_of(contact_ids, *[st.sampled_from(sorted(alive))] * 3 * bool(alive))
    items = {
        "upsert": st.lists(contact(), min_size=1, max_size=4),
        "recreate": st.lists(contact(st.sampled_from(sorted(deleted) or CONTACT_IDS)), min_size=1, max_size=3),
        "events": st.lists(burst(known), min_size=1, max_size=3).map(lambda bursts: [e for b in bursts for e in b]),
        "delete": st.lists(known, min_size=1, max_size=3, unique=True),
        "campaigns": st.lists(campaign(st.one_of(st.sampled_from(CAMPAIGN_IDS),
                                                 *[st.sampled_from(sorted(received))] * 3 * bool(received))),
                              min_size=1, max_size=2),
    }[kind]
    return kind, data.draw(items, label=kind)


# -- reading a workspace's segments -------------------------------------------------

def fresh_members(gql, segment_ids: dict[str, str]) -> dict[str, set[str]]:
    """Each saved segment's rule evaluated now (segmentPreview), all in one request."""
    names = list(segment_ids)
    params = ", ".join(f"$r{i}: RuleInput!" for i in range(len(names)))
    fields = " ".join(f"s{i}: segmentPreview(rule: $r{i}) {{ contacts(first: 100) {{ edges {{ node {{ id }} }} "
                      f"pageInfo {{ hasNextPage }} }} }}" for i in range(len(names)))
    data = gql.graphql(f"query({params}) {{ {fields} }}", **{f"r{i}": SEGMENTS[n] for i, n in enumerate(names)})
    found = {}
    for i, name in enumerate(names):
        page = data[f"s{i}"]["contacts"]
        assert not page["pageInfo"]["hasNextPage"]
        found[name] = {e["node"]["id"] for e in page["edges"]}
    return found


def new_changes(gql, segment_ids: dict[str, str], cursors: dict[str, str | None]) -> dict[str, list[tuple]]:
    """Each segment's changes logged after its cursor, as (contact, change, cause); moves the cursors on."""
    names = list(segment_ids)
    params = ", ".join(f"$i{i}: ID!, $a{i}: String" for i in range(len(names)))
    fields = " ".join(f"s{i}: segment(id: $i{i}) {{ changes(first: 500, after: $a{i}) {{ edges {{ node {{ contactId "
                      f"change cause }} }} pageInfo {{ hasNextPage endCursor }} }} }}" for i in range(len(names)))
    variables = {}
    for i, name in enumerate(names):
        variables |= {f"i{i}": segment_ids[name], f"a{i}": cursors[name]}
    data = gql.graphql(f"query({params}) {{ {fields} }}", **variables)
    found = {}
    for i, name in enumerate(names):
        page = data[f"s{i}"]["changes"]
        assert not page["pageInfo"]["hasNextPage"]
        found[name] = [(e["node"]["contactId"], e["node"]["change"], e["node"]["cause"]) for e in page["edges"]]
        cursors[name] = page["pageInfo"]["endCursor"] or cursors[name]
    return found


def expected_changes(before: set[str], after: set[str], cause: str) -> list[tuple]:
    return sorted([(c, "ENTERED", cause) for c in after - before] + [(c, "LEFT", cause) for c in before - after])


def whole_log(gql, segment_id: str, page: int) -> list[dict]:
    """The segment's change log, paged ``page`` at a time by cursor; a cursor past the end gives nothing."""
    log, after = [], None
    while True:
        found = gql.graphql(CHANGES, id=segment_id, first=page, after=after)["segment"]["changes"]
        assert len(found["edges"]) <= page
        log += [e["node"] for e in found["edges"]]
        if found["edges"]:
            assert found["pageInfo"]["endCursor"] == found["edges"][-1]["cursor"]
            after = found["pageInfo"]["endCursor"]
        if not found["pageInfo"]["hasNextPage"]:
            beyond = gql.graphql(CHANGES, id=segment_id, first=page, after=after)["segment"]["changes"]
            assert beyond == {"edges": [], "pageInfo": {"hasNextPage": False, "endCursor": None}}
            return log


def replayed(log: list[dict]) -> set[str]:
    """Members after applying the log in order; each contact's changes alternate, starting with ENTERED."""
    members: set[str] = set()
    for change in log:
        contact_id = change["contactId"]
        if change["change"] == "ENTERED":
            assert contact_id not in members, f"{contact_id} entered twice in a row: {log}"
            members.add(contact_id)
        else:
            assert contact_id in members, f"{contact_id} left without having entered: {log}"
            members.remove(contact_id)
    return members


def stored_members(gql, segment_id: str) -> set[str]:
    stored = gql.graphql(STORED, id=segment_id)["segment"]
    assert stored["membership"]["asOf"] is not None
    assert not stored["contacts"]["pageInfo"]["hasNextPage"]
    ids = [e["node"]["id"] for e in stored["contacts"]["edges"]]
    assert ids == sorted(ids) and stored["count"] == len(ids)
    return set(ids)


def run(gql, kind: str, items: list) -> None:
    query, variable = MUTATIONS[kind]
    gql.graphql(query, **{variable: items})  # items refused (an unknown contact, a taken name) are part of the test


def setup_workspace(http, contacts: list[dict]) -> tuple:
    """A fresh workspace with the custom fields, three campaigns, ``contacts``, then every segment of SEGMENTS."""
    gql = new_workspace(http)
    gql.define_fields(FIELDS)
    run(gql, "campaigns", [{"id": "k1", "name": "Launch", "sentAt": ago(30)},
                           {"id": "k2", "name": "Digest", "sentAt": ago(25)},
                           {"id": "k3", "name": "Promo", "sentAt": ago(3)}])
    if contacts:
        run(gql, "upsert", contacts)
    segment_ids = {name: gql.graphql(CREATE, n=name, r=rule)["createSegment"]["id"] for name, rule in SEGMENTS.items()}
    return gql, segment_ids


# -- the properties ------------------------------------------------------------------

@settings(max_examples=examples(15), deadline=None, derandomize=True,
          phases=[Phase.explicit, Phase.generate, Phase.shrink],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_every_write_logs_its_difference_and_stored_members_equal_the_rule_and_the_log(http, data):
    today = now().date()
    initial = data.draw(st.lists(contact(), max_size=8), label="initial contacts")
    gql, segment_ids = setup_workspace(http, initial)
    cursors: dict[str, str | None] = dict.fromkeys(segment_ids)
    members = fresh_members(gql, segment_ids)
    created = new_changes(gql, segment_ids, cursors)
    for name in SEGMENTS:
        assert sorted(created[name]) == expected_changes(set(), members[name], "RULE"), name

    alive, deleted, received = {c["id"] for c in initial}, set(), set()
    for _ in range(data.draw(st.integers(4, 14), label="writes")):
        kind, items = write(data, alive, deleted, received)
        run(gql, kind, items)
        if kind == "events":
            received |= {e["campaignId"] for e in items if e["type"] == "SENT" and e["contactId"] in alive}
        elif kind == "delete":
            alive, deleted = alive - set(items), deleted | set(items)
        elif kind in ("upsert", "recreate"):
            alive, deleted = alive | {c["id"] for c in items}, deleted - {c["id"] for c in items}
        after = fresh_members(gql, segment_ids)
        logged = new_changes(gql, segment_ids, cursors)
        if now().date() != today:
            return  # the day changed meanwhile: time, not the write, may have moved members
        for name in SEGMENTS:
            assert sorted(logged[name]) == expected_changes(members[name], after[name], CAUSES[kind]), (
                f"segment {name} after {kind} {items}")
        members = after
        for name in SEGMENTS:
            event(f"{kind} moved {name}" if logged[name] else f"{kind} wrote")

    assert gql.call(gql.live.refresh, gql.workspace_id) == len(SEGMENTS)
    untimely = new_changes(gql, segment_ids, cursors)
    if now().date() == today:
        assert untimely == {name: [] for name in SEGMENTS}, "the refresh found changes no write logged"
    for name, segment_id in segment_ids.items():
        stored = stored_members(gql, segment_id)
        assert stored == set(gql.members(SEGMENTS[name], as_of=None)), name
        log = whole_log(gql, segment_id, page=4)
        assert whole_log(gql, segment_id, page=1000) == log
        assert replayed(log) == stored, name


# -- deterministic cases ------------------------------------------------------------

def log_of(gql, segment_id: str) -> list[tuple]:
    return [(c["contactId"], c["change"], c["cause"]) for c in whole_log(gql, segment_id, page=1000)]


def test_a_contact_entering_with_one_write_and_leaving_with_the_next_has_both_changes_logged(http):
    gql, ids = setup_workspace(http, [{"id": "a", "email": "a@example.com", "leadScore": 10}])
    opened = [{"id": f"o{i}", "contactId": "a", "type": "OPEN", "at": ago(i), "campaignId": "k1"} for i in range(2)]
    sent = {"id": "s1", "contactId": "a", "type": "SENT", "at": ago(30), "campaignId": "k1"}
    steps = [
        (UPSERT, "c", [{"id": "a", "email": "a@example.com", "leadScore": 90}]),
        (UPSERT, "c", [{"id": "a", "email": "a@example.com", "leadScore": 30}]),
        (EVENTS, "e", [sent, *opened]),
        (CAMPAIGNS, "c", [{"id": "k1", "name": "Relaunch", "sentAt": ago(30)}]),
        (CAMPAIGNS, "c", [{"id": "k1", "name": "Launch", "sentAt": ago(30)}]),
        (DELETE, "ids", ["a"]),
        (UPSERT, "c", [{"id": "a", "email": "a@example.com", "leadScore": 75}]),
    ]
    for query, variable, items in steps:
        gql.graphql(query, **{variable: items})
    assert log_of(gql, ids["hot"]) == [("a", "ENTERED", "CONTACT"), ("a", "LEFT", "CONTACT"),
                                       ("a", "ENTERED", "CONTACT")]
    assert log_of(gql, ids["engaged"]) == [("a", "ENTERED", "EVENT"), ("a", "LEFT", "DELETE")]
    assert log_of(gql, ids["launch_opened"]) == [("a", "ENTERED", "EVENT"), ("a", "LEFT", "CAMPAIGN"),
                                                 ("a", "ENTERED", "CAMPAIGN"), ("a", "LEFT", "DELETE")]
    assert stored_members(gql, ids["hot"]) == {"a"} and stored_members(gql, ids["engaged"]) == set()


def test_a_write_sent_again_logs_nothing_twice(http):
    gql, ids = setup_workspace(http, [])
    contacts = [{"id": "a", "email": "a@example.com", "leadScore": 80, "tags": ["vip"]},
                {"id": "b", "email": "b@example.com", "leadScore": 90, "customFields": {"plan": "pro"}}]
    opens = [{"id": f"o{i}", "contactId": "a", "type": "OPEN", "at": ago(0, i)} for i in range(3)]
    assert gql.graphql(UPSERT, c=contacts)["upsertContacts"]["accepted"] == 2
    assert gql.graphql(UPSERT, c=contacts)["upsertContacts"] == {"accepted": 0, "unchanged": 2, "errors": []}
    assert gql.graphql(EVENTS, e=opens)["recordEvents"]["accepted"] == 3
    assert gql.graphql(EVENTS, e=opens)["recordEvents"] == {"accepted": 0, "unchanged": 3, "errors": []}
    # The same upsert sent twice at once: one of them is the workspace's writer at a time.
    changed = [{**c, "leadScore": 5} for c in contacts]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: gql.graphql(UPSERT, c=changed), range(2)))
    assert log_of(gql, ids["hot"]) == [("a", "ENTERED", "CONTACT"), ("b", "ENTERED", "CONTACT"),
                                       ("a", "LEFT", "CONTACT"), ("b", "LEFT", "CONTACT")]
    assert log_of(gql, ids["vip_not_churned"]) == [("a", "ENTERED", "CONTACT")]
    assert log_of(gql, ids["pro_plan"]) == [("b", "ENTERED", "CONTACT")]
    assert log_of(gql, ids["engaged"]) == [("a", "ENTERED", "EVENT")]
    assert log_of(gql, ids["opened_this_week"]) == [("a", "ENTERED", "EVENT")]


def test_events_stored_by_a_write_cut_short_are_logged_once_by_its_retry(http):
    gql, ids = setup_workspace(http, [{"id": "a", "email": "a@example.com"}])
    opens = [{"id": f"o{i}", "contactId": "a", "type": "OPEN", "at": ago(i)} for i in range(2)]
    # The first attempt stored the raw events and died before its rollups and memberships were written.
    gql.call(ingest.store_events, gql.db, gql.workspace_id, opens)
    assert stored_members(gql, ids["engaged"]) == set()
    for _ in range(2):
        assert gql.graphql(EVENTS, e=opens)["recordEvents"] == {"accepted": 0, "unchanged": 2, "errors": []}
    assert log_of(gql, ids["engaged"]) == [("a", "ENTERED", "EVENT")]
    assert stored_members(gql, ids["engaged"]) == {"a"}


def test_concurrent_writes_to_one_workspace_keep_every_segment_exact(http):
    """Writes of one workspace sent at the same time are evaluated one at a
    time, each against the data as it left it: afterwards every segment's
    stored members still equal its rule and its log's replay. Most writes
    move two contacts in and out of the same segments, where two writers
    evaluating at once could leave them wrong."""
    gql, ids = setup_workspace(http, [{"id": c, "email": f"{c}@example.com", "leadScore": 50} for c in CONTACT_IDS])
    rng = random.Random(16)

    def send(n: int) -> tuple[str, str, list]:
        cid = rng.choice(CONTACT_IDS[:2] * 4 + CONTACT_IDS)
        return rng.choice([
            (UPSERT, "c", [{"id": cid, "email": f"{cid}@example.com", "leadScore": rng.choice([10, 90]),
                            "tags": rng.sample(TAGS, rng.randrange(3)),
                            "customFields": {"plan": rng.choice(["pro", "free"])}}]),
            (UPSERT, "c", [{"id": cid, "email": f"{cid}@example.com", "leadScore": rng.choice([10, 90])}]),
            (EVENTS, "e", [{"id": f"x{n}-{i}", "contactId": cid, "type": "OPEN", "at": ago(i)} for i in range(2)]),
            (DELETE, "ids", [cid]),
        ])
    sends = [send(n) for n in range(60)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda send: gql.graphql(send[0], **{send[1]: send[2]}), sends))
    for name, segment_id in ids.items():
        stored = stored_members(gql, segment_id)
        assert stored == set(gql.members(SEGMENTS[name], as_of=None)), name
        assert replayed(whole_log(gql, segment_id, page=1000)) == stored, name


def test_one_process_runs_the_writes_of_a_workspace_one_at_a_time(http):
    """Writers queue in the process before they take the workspace's lease
    (which they share): one arriving while others wait, or just as one is
    woken, still waits its turn."""
    gql = new_workspace(http)
    running, most = 0, 0

    async def work() -> tuple[None, list[str]]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.02)
        running -= 1
        return None, []

    async def writers() -> None:
        async def one(delay: float) -> None:
            await asyncio.sleep(delay)
            await gql.live.write(gql.workspace_id, Scope(contacts=()), Cause.CONTACT, work)
        await asyncio.gather(*(one(i * 0.01) for i in range(16)))

    gql.call(writers)
    assert most == 1
