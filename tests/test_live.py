"""Live segments: stored memberships kept current by every write path and by
time, and a change log that replays to them (tests/live_check.py)."""

import datetime as dt

import pytest

from .conftest import segmentql
from .live_check import assert_consistent, change_log

CREATE = """mutation($name: String!, $rule: RuleInput!) { createSegment(name: $name, rule: $rule) { id count
  membership { asOf updatedAt } } }"""
UPDATE = """mutation($id: ID!, $name: String, $rule: RuleInput) { updateSegment(id: $id, name: $name, rule: $rule) {
  id count } }"""
CONTACTS = "mutation($c: [ContactInput!]!) { upsertContacts(contacts: $c) { accepted errors { message } } }"
EVENTS = "mutation($e: [EventInput!]!) { recordEvents(events: $e) { accepted errors { message } } }"
CAMPAIGNS = "mutation($c: [CampaignInput!]!) { upsertCampaigns(campaigns: $c) { accepted errors { message } } }"
DELETE = "mutation($ids: [ID!]!) { deleteContacts(ids: $ids) { accepted } }"
STATE = """query($id: ID!) { segment(id: $id) { count membership { asOf updatedAt }
  contacts(first: 100) { edges { node { id } } } } }"""
HOT = {"leadScore": {"min": 75}}
RECENT = {"recency": {"activity": "ANY", "withinDays": 7}}


def ago(days: float) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(days=days)).isoformat()


def create(gql, rule, name="s") -> str:
    return gql.graphql(CREATE, name=name, rule=rule)["createSegment"]["id"]


def log_of(gql, segment_id) -> list[tuple]:
    return [(c["contactId"], c["change"], c["cause"]) for c in change_log(gql, segment_id)]


def contact(cid, score=None, **more) -> dict:
    return {"id": cid, "email": f"{cid}@x.io", "leadScore": score, **more}


def test_a_segment_follows_contact_writes_and_logs_each_change(gql):
    gql.graphql(CONTACTS, c=[contact("a", 80), contact("b", 10)])
    created = gql.graphql(CREATE, name="hot", rule=HOT)["createSegment"]
    assert created["count"] == 1 and created["membership"]["asOf"] and created["membership"]["updatedAt"]
    gql.graphql(CONTACTS, c=[contact("b", 90)])  # enters with one write...
    gql.graphql(CONTACTS, c=[contact("b", 5)])  # ...and leaves with the next: both logged
    gql.graphql(CONTACTS, c=[contact("c", 99)])
    gql.graphql(CONTACTS, c=[contact("c", 99)])  # a retried write logs nothing again
    assert assert_consistent(gql, created["id"]) == ["a", "c"]
    assert log_of(gql, created["id"]) == [("a", "ENTERED", "RULE"), ("b", "ENTERED", "CONTACT"),
                                          ("b", "LEFT", "CONTACT"), ("c", "ENTERED", "CONTACT")]


def test_events_campaigns_and_deletes_move_members_with_their_cause(gql):
    gql.graphql(CONTACTS, c=[contact("a"), contact("b")])
    gql.graphql(CAMPAIGNS, c=[{"id": "k1", "name": "Launch", "sentAt": ago(20)}])
    recent = create(gql, RECENT, "recent")
    launch = create(gql, {"campaign": {"campaignName": "Launch", "opened": True}}, "launch")
    assert gql.graphql(STATE, id=recent)["segment"]["count"] == 0
    gql.graphql(EVENTS, e=[{"id": "e0", "contactId": "a", "type": "SENT", "at": ago(20), "campaignId": "k1"},
                           {"id": "e1", "contactId": "a", "type": "OPEN", "at": ago(1), "campaignId": "k1"}])
    assert log_of(gql, recent) == log_of(gql, launch) == [("a", "ENTERED", "EVENT")]
    gql.graphql(CAMPAIGNS, c=[{"id": "k1", "name": "Relaunch", "sentAt": ago(20)}])  # renamed: nobody opened "Launch"
    assert log_of(gql, launch)[-1] == ("a", "LEFT", "CAMPAIGN")
    gql.graphql(DELETE, ids=["a"])
    assert log_of(gql, recent)[-1] == ("a", "LEFT", "DELETE")
    gql.graphql(CONTACTS, c=[contact("a")])  # back, without its events
    gql.graphql(EVENTS, e=[{"id": "e2", "contactId": "a", "type": "CLICK", "at": ago(2)}])
    assert log_of(gql, recent) == [("a", "ENTERED", "EVENT"), ("a", "LEFT", "DELETE"), ("a", "ENTERED", "EVENT")]
    for segment_id in (recent, launch):
        assert_consistent(gql, segment_id)


def test_changing_a_rule_logs_the_difference_and_deleting_drops_everything(gql):
    gql.graphql(CONTACTS, c=[contact("a", 80), contact("b", 60), contact("c", 20)])
    sid = create(gql, HOT)
    assert gql.graphql(UPDATE, id=sid, name="renamed")["updateSegment"]["count"] == 1
    assert gql.graphql(UPDATE, id=sid, rule={"leadScore": {"min": 50}})["updateSegment"]["count"] == 2
    assert gql.graphql(UPDATE, id=sid, rule={"leadScore": {"max": 70}})["updateSegment"]["count"] == 2
    assert log_of(gql, sid) == [("a", "ENTERED", "RULE"), ("b", "ENTERED", "RULE"), ("a", "LEFT", "RULE"),
                                ("c", "ENTERED", "RULE")]
    assert_consistent(gql, sid)
    assert gql.graphql("mutation($id: ID!) { deleteSegment(id: $id) }", id=sid)["deleteSegment"] is True
    db = gql.db.db
    for collection in ("segment_members", "segment_changes"):
        assert gql.call(db[collection].count_documents, {"workspace_id": gql.workspace_id, "segment_id": sid}) == 0


def test_the_change_log_pages_with_stable_cursors(gql):
    gql.graphql(CONTACTS, c=[contact(f"c{i}", 90) for i in range(5)])
    sid = create(gql, HOT)
    gql.graphql(CONTACTS, c=[contact("c0", 1)])
    query = """query($id: ID!, $after: String) { segment(id: $id) { changes(first: 2, after: $after) {
      edges { cursor node { contactId change } } pageInfo { hasNextPage endCursor } } } }"""
    seen, after = [], None
    while True:
        page = gql.graphql(query, id=sid, after=after)["segment"]["changes"]
        seen += [(e["node"]["contactId"], e["node"]["change"]) for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [(f"c{i}", "ENTERED") for i in range(5)] + [("c0", "LEFT")]
    gql.graphql(CONTACTS, c=[contact("c0", 95)])  # resuming from the last cursor gives only what is new
    page = gql.graphql(query, id=sid, after=page["pageInfo"]["endCursor"])["segment"]["changes"]
    assert [(e["node"]["contactId"], e["node"]["change"]) for e in page["edges"]] == [("c0", "ENTERED")]
    for bad in ("nonsense", "Y2hhbmdlOng="):  # not base64 of ours; "change:x"
        error = gql.errors(query, id=sid, after=bad)[0]
        assert error["extensions"]["code"] == "BAD_USER_INPUT" and "`after`" in error["message"]


def test_count_and_members_with_as_of_evaluate_the_rule_then(gql):
    gql.graphql(CONTACTS, c=[contact("a")])
    gql.graphql(EVENTS, e=[{"id": "e1", "contactId": "a", "type": "OPEN", "at": ago(3)}])
    sid = create(gql, RECENT)
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).isoformat()
    segment = gql.graphql("""query($id: ID!, $t: DateTime) { segment(id: $id) { count then: count(asOf: $t)
      contacts(asOf: $t) { edges { node { id } } } } }""", id=sid, t=later)["segment"]
    assert segment["count"] == 1 and segment["then"] == 0 and segment["contacts"]["edges"] == []


def test_refresh_segments_moves_members_with_time(cli_workspace, cli_env):
    name, gql = cli_workspace
    gql.graphql(CONTACTS, c=[contact("a"), contact("b")])
    gql.graphql(EVENTS, e=[{"id": "e1", "contactId": "a", "type": "OPEN", "at": ago(3)},
                           {"id": "e2", "contactId": "b", "type": "OPEN", "at": ago(30)}])
    sid = create(gql, RECENT)
    assert gql.graphql(STATE, id=sid)["segment"]["count"] == 1
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=10)).replace(microsecond=0)
    done = segmentql("refresh-segments", "--workspace", name, "--as-of", later.isoformat(), env=cli_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{name}\t1 segment(s) evaluated"
    state = gql.graphql(STATE, id=sid)["segment"]
    assert state["count"] == 0
    assert dt.datetime.fromisoformat(state["membership"]["asOf"]) == later
    change = change_log(gql, sid)[-1]
    assert (change["contactId"], change["change"], change["cause"]) == ("a", "LEFT", "TIME")
    assert dt.datetime.fromisoformat(change["at"]) == later
    earlier = (dt.datetime.now(dt.UTC) - dt.timedelta(days=28)).replace(microsecond=0)
    assert segmentql("refresh-segments", "--workspace", name, "--as-of", earlier.isoformat(),
                     env=cli_env).returncode == 0
    # As of 28 days ago only b had opened within 7 days. (Memberships dated an
    # earlier day are refreshed by the service's clock at any moment, so the
    # log, not the members, tells what this refresh did.)
    as_of_earlier = [(c["contactId"], c["change"], c["cause"]) for c in change_log(gql, sid)
                     if dt.datetime.fromisoformat(c["at"]) == earlier]
    assert as_of_earlier == [("b", "ENTERED", "TIME")]
    assert segmentql("refresh-segments", "--workspace", name, env=cli_env).returncode == 0
    assert_consistent(gql, sid)


@pytest.mark.parametrize("args, message", [
    (("--as-of", "yesterday"), "--as-of"),
    (("--as-of", "10000-01-01"), "--as-of"),
    (("--workspace", "no-such-workspace"), "no workspace named 'no-such-workspace'"),
])
def test_refresh_segments_refuses_bad_input_in_one_line(cli_env, args, message):
    done = segmentql("refresh-segments", *args, env=cli_env)
    assert done.returncode == 1 and message in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_rebuilding_rollups_and_declaring_fields_keep_memberships_current(cli_workspace, cli_env):
    name, gql = cli_workspace
    gql.graphql(CONTACTS, c=[contact("a"), contact("b")])
    gql.graphql(EVENTS, e=[{"id": "e1", "contactId": "a", "type": "OPEN", "at": ago(2)}])
    sid = create(gql, RECENT)
    # Rollups gone stale behind the service's back (as after a crash of an old version): a rebuild fixes them.
    db = gql.db.db
    gql.call(db.contacts.update_one, {"_id": f"{gql.workspace_id}:a", "workspace_id": gql.workspace_id},
             {"$set": {"stats.lastActivityAt": None, "stats.lastEngagedDay": None}})
    assert segmentql("refresh-segments", "--workspace", name, env=cli_env).returncode == 0
    assert gql.graphql(STATE, id=sid)["segment"]["count"] == 0
    done = segmentql("rebuild-rollups", "--workspace", name, env=cli_env)
    assert done.returncode == 0, done.stderr
    assert log_of(gql, sid)[-1] == ("a", "ENTERED", "EVENT")
    gql.define_fields({"plan": "TEXT"})
    assert_consistent(gql, sid)


def test_a_segment_whose_rule_no_longer_compiles_is_evaluated_by_readers_again(gql):
    """As when the plugin of one of its conditions was uninstalled: writes go on
    for the other segments, and its count is no longer served from stale members."""
    gql.graphql(CONTACTS, c=[contact("a", 80)])
    sid, other = create(gql, HOT, "broken"), create(gql, HOT, "fine")
    db = gql.db.db
    gql.call(db.segments.update_one, {"workspace_id": gql.workspace_id, "id": sid},
             {"$set": {"rule": {"uninstalled": {"x": 1}}}})
    gql.graphql(CONTACTS, c=[contact("b", 90)])
    assert log_of(gql, other)[-1] == ("b", "ENTERED", "CONTACT")
    error = gql.errors("query($id: ID!) { segment(id: $id) { count } }", id=sid)[0]
    assert error["extensions"]["code"] == "INVALID_RULE" and "uninstalled" in error["message"]
    assert gql.graphql("query($id: ID!) { segment(id: $id) { membership { asOf } } }", id=sid)["segment"] == {
        "membership": {"asOf": None}}


def test_a_writer_that_loses_its_lease_is_stopped_and_its_write_completed_by_the_next(gql):
    """A process stalled past its lease (simulated: the lease expires and another
    process takes it) stops at its next await; the next writer completes the write."""
    import asyncio

    from segmentql.server import ingest
    from segmentql.server.errors import Busy
    from segmentql.server.live import Cause, LiveSegments, Scope

    sid = create(gql, HOT)
    db = gql.db

    async def stalled_write():
        stalled = LiveSegments(db, gql.live.registry, lease_seconds=0.6)

        async def work():
            lapsed = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
            await db.db.write_leases.update_one({"_id": gql.workspace_id}, {"$set": {"until": lapsed}})
            assert await db.take_lease(gql.workspace_id, "another-process", 0.6)
            await ingest.upsert_contacts(db, gql.workspace_id, [contact("late", 99)])
            await asyncio.sleep(5)  # the stalled writer would log now: it is stopped first
            return None, ["late"]
        with pytest.raises(Busy, match="another writer took over"):
            await stalled.write(gql.workspace_id, Scope(contacts=("late",)), Cause.CONTACT, work)
    gql.call(stalled_write)
    gql.graphql(CONTACTS, c=[contact("z", 1)])  # the next writer (after the other lease lapses) completes it
    assert log_of(gql, sid) == [("late", "ENTERED", "CONTACT")]
    assert_consistent(gql, sid)
