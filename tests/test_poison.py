"""Poison resistance of the data path: no value, line or stored document can
crash or wedge ingestion, rollups, import or start-up. Instants outside
1900-01-01..9000-12-31 and strings that are not valid Unicode are refused item
by item; a stored document that cannot be rolled up is reported and skipped;
a retried write completes what its failed attempt left half-done; and every
part of a contact's rollups that grows with its events is bounded."""

import datetime as dt
import json
import logging
from datetime import UTC

import bson
import httpx
import pytest

from segmentql.plugins import contact
from segmentql.server import ingest, rollups
from segmentql.server.rollups import compute_stats

from .conftest import running_service, segmentql, unique

CONTACTS = ("mutation($c: [ContactInput!]!) { upsertContacts(contacts: $c) "
            "{ accepted unchanged errors { index id message } } }")
CAMPAIGNS = ("mutation($c: [CampaignInput!]!) { upsertCampaigns(campaigns: $c) "
             "{ accepted unchanged errors { index id message } } }")
EVENTS = "mutation($e: [EventInput!]!) { recordEvents(events: $e) { accepted unchanged errors { index id message } } }"
DELETE = "mutation($ids: [ID!]!) { deleteContacts(ids: $ids) { accepted unchanged errors { index id message } } }"
CONTACT = """query($id: ID!) { contact(id: $id) { id timezone customFields stats { events opens clicks topOpenHour
  campaigns { campaignId name sentAt received latest clicks clickedUrls clickedUrlsDropped } } } }"""
POISON_INSTANTS = ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00+14:00"]
RANGE = "is outside the supported range 1900-01-01 to 9000-12-31"
LONE = "\udcff"  # a lone surrogate: JSON can spell it ("\udcff"), UTF-8 cannot encode it


def post(gql, query: str, **variables) -> dict:
    """A request that must succeed, sent as ASCII JSON so that its variables may
    hold lone surrogates (escaped as the JSON text "\\udcff")."""
    response = gql.http.post("/graphql", content=json.dumps({"query": query, "variables": variables}),
                             headers={"Authorization": f"Bearer {gql.key}", "Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert not body.get("errors"), body["errors"]
    return body["data"]


def raw_contact_key(gql, contact_id: str) -> dict:
    """The filter of one contact for the raw driver: ``_id`` first, and its workspace."""
    return {"_id": f"{gql.workspace_id}:{contact_id}", "workspace_id": gql.workspace_id}


def raw_event(gql, event_id: str, contact_id: str, **fields) -> None:
    """Store an event as an older version (or a hand-made script) could have."""
    doc = {"_id": f"{gql.workspace_id}:{event_id}", "workspace_id": gql.workspace_id, "id": event_id,
           "contact_id": contact_id, "type": "OPEN", "at": dt.datetime(2026, 11, 2, 1, tzinfo=UTC), **fields}
    gql.call(gql.db.db.events.insert_one, doc)


# -- instants ---------------------------------------------------------------------

@pytest.mark.parametrize("instant", POISON_INSTANTS)
def test_instants_out_of_range_are_refused_per_item_and_the_batch_kept(gql, instant):
    gql.define_fields({"signup": "DATE"})
    contacts = gql.graphql(CONTACTS, c=[
        {"id": "tokyo", "email": "t@example.com", "timezone": "Asia/Tokyo"},
        {"id": "bad", "email": "b@example.com", "customFields": {"signup": instant}},
        {"id": "kiritimati", "email": "k@example.com", "timezone": "Pacific/Kiritimati"}])["upsertContacts"]
    assert contacts["accepted"] == 2 and contacts["errors"] == [
        {"index": 1, "id": "bad", "message": f"contact 'bad': custom field 'signup': {instant} {RANGE}"}]
    campaigns = gql.graphql(CAMPAIGNS, c=[{"id": "k1", "name": "Launch", "sentAt": "2026-11-01T10:00:00Z"},
                                          {"id": "k2", "name": "Later", "sentAt": instant}])["upsertCampaigns"]
    assert campaigns["accepted"] == 1 and campaigns["errors"] == [
        {"index": 1, "id": "k2", "message": f"campaign 'k2': sentAt: {instant} {RANGE}"}]
    events = gql.graphql(EVENTS, e=[
        {"id": "poison", "contactId": "tokyo", "type": "OPEN", "at": instant},
        {"id": "o1", "contactId": "tokyo", "type": "OPEN", "at": "2026-11-02T01:00:00Z", "campaignId": "k1"},
        {"id": "o2", "contactId": "kiritimati", "type": "OPEN", "at": "2026-11-02T01:00:00Z"}])["recordEvents"]
    assert events == {"accepted": 2, "unchanged": 0, "errors": [
        {"index": 0, "id": "poison", "message": f"event 'poison': at: {instant} {RANGE}"}]}
    tokyo = gql.graphql(CONTACT, id="tokyo")["contact"]["stats"]
    assert (tokyo["events"], tokyo["opens"], tokyo["topOpenHour"]) == (1, 1, 10)  # 01:00 UTC is 10:00 in Tokyo
    assert gql.graphql(CONTACT, id="kiritimati")["contact"]["stats"]["topOpenHour"] == 15
    later = gql.graphql(EVENTS, e=[{"id": "o3", "contactId": "tokyo", "type": "OPEN", "at": "2026-11-03T01:00:00Z"}])
    assert later["recordEvents"]["accepted"] == 1
    assert gql.graphql(CONTACT, id="tokyo")["contact"]["stats"]["opens"] == 2


@pytest.mark.parametrize("instant", [*POISON_INSTANTS, "1899-12-31T23:59:59Z", "9001-01-01T00:00:00Z"])
def test_datetime_arguments_out_of_range_are_bad_user_input(gql, instant):
    segment = gql.graphql('mutation { createSegment(name: "all", rule: {leadScore: {min: 0}}) { id } }')
    variables = {"s": segment["createSegment"]["id"], "a": instant}
    for query in (
            'query($a: DateTime) { segmentPreview(rule: {leadScore: {min: 0}}, asOf: $a) { count } }',
            'query($s: ID!, $a: DateTime) { segment(id: $s) { count(asOf: $a) } }',
            'query($s: ID!, $a: DateTime) { segment(id: $s) { contacts(asOf: $a) { edges { cursor } } } }',
            'query($s: ID!, $a: DateTime) { segment(id: $s) { analytics(asOf: $a) { opens } } }',
            'query($s: ID!, $a: DateTime) { segment(id: $s) { sizeHistory(since: $a) { size } } }',
            'query($s: ID!, $a: DateTime) { explainMembership(contactId: "x", segmentId: $s, asOf: $a) { member } }',
            'mutation($s: ID!, $a: DateTime) { snapshotSegment(id: $s, label: "x", asOf: $a) { size } }'):
        errors = gql.errors(query, **{k: v for k, v in variables.items() if f"${k}" in query})
        assert [e["extensions"]["code"] for e in errors] == ["BAD_USER_INPUT"], (query, errors)
        assert errors[0]["message"] == f"{instant} {RANGE}"
    literal = gql.errors(f'{{ segmentPreview(rule: {{leadScore: {{min: 0}}}}, asOf: "{instant}") {{ count }} }}')
    assert literal[0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_rule_operands_out_of_range_are_invalid_rules(gql):
    gql.define_fields({"signup": "DATE"})
    errors = gql.errors('query($r: RuleInput!) { segmentPreview(rule: $r) { count } }',
                        r={"customField": {"field": "signup", "equals": "9999-12-31"}})
    assert errors[0]["extensions"]["code"] == "INVALID_RULE" and RANGE in errors[0]["message"]


# -- strings ---------------------------------------------------------------------

def test_strings_that_are_not_unicode_are_refused_per_item(gql):
    gql.define_fields({"plan": "TEXT", "interests": "MULTI_SELECT"})
    contacts = post(gql, CONTACTS, c=[
        {"id": "c" + LONE, "email": "a@example.com"},
        {"id": "c1", "email": LONE + "@example.com"},
        {"id": "c2", "email": "c2@example.com", "tags": ["vip", LONE]},
        {"id": "c3", "email": "c3@example.com", "customFields": {"plan": LONE}},
        {"id": "c4", "email": "c4@example.com", "customFields": {"interests": ["sms", LONE]}},
        {"id": "c5", "email": "c5@example.com", "customFields": {"plan" + LONE: "pro"}},
        {"id": "c6", "email": "c6@example.com", "timezone": LONE},
        {"id": "good", "email": "good@example.com", "tags": ["vip"]}])["upsertContacts"]
    assert contacts["accepted"] == 1
    assert [(e["index"], e["id"]) for e in contacts["errors"]] == [
        (0, None), (1, "c1"), (2, "c2"), (3, "c3"), (4, "c4"), (5, "c5"), (6, "c6")]
    where = [e["message"].split(": ", 1)[1] for e in contacts["errors"]]
    assert where == [f"{w} is not valid Unicode text (it holds a lone surrogate)" for w in (
        "id", "email", "tags[1]", "customFields.plan", "customFields.interests[1]", "a key of customFields",
        "timezone")]
    campaigns = post(gql, CAMPAIGNS, c=[{"id": "k" + LONE, "name": "A", "sentAt": "2026-11-01T10:00:00Z"},
                                        {"id": "k1", "name": LONE, "sentAt": "2026-11-01T10:00:00Z"},
                                        {"id": "k2", "name": "Launch", "sentAt": "2026-11-01T10:00:00Z"}])
    assert campaigns["upsertCampaigns"]["accepted"] == 1
    assert [e["index"] for e in campaigns["upsertCampaigns"]["errors"]] == [0, 1]
    events = post(gql, EVENTS, e=[
        {"id": "e" + LONE, "contactId": "good", "type": "OPEN", "at": "2026-11-02T01:00:00Z"},
        {"id": "e1", "contactId": "good" + LONE, "type": "OPEN", "at": "2026-11-02T01:00:00Z"},
        {"id": "e2", "contactId": "good", "type": "CLICK", "at": "2026-11-02T01:00:00Z", "campaignId": "k2",
         "url": "https://x.example/" + LONE},
        {"id": "e3", "contactId": "good", "type": "OPEN", "at": "2026-11-02T01:00:00Z", "campaignId": "k" + LONE},
        {"id": "e4", "contactId": "good", "type": "OPEN", "at": "2026-11-02T01:00:00Z", "campaignId": "k2"}])
    assert events["recordEvents"]["accepted"] == 1
    assert [e["index"] for e in events["recordEvents"]["errors"]] == [0, 1, 2, 3]
    assert gql.graphql(CONTACT, id="good")["contact"]["stats"]["opens"] == 1
    deleted = post(gql, DELETE, ids=["c" + LONE, "good"])["deleteContacts"]
    assert deleted == {"accepted": 1, "unchanged": 0, "errors": [
        {"index": 0, "id": None, "message": "id is not valid Unicode text (it holds a lone surrogate)"}]}


def test_custom_field_keys_must_match_the_whole_pattern(gql):
    for key in ("x\n", "plan\n", "x\r\n"):
        errors = gql.errors("mutation($k: String!) { defineCustomField(key: $k, type: NUMBER) { created } }", k=key)
        assert errors[0]["extensions"]["code"] == "CONFLICT", key
    assert gql.call(gql.db.custom_fields, gql.workspace_id) == {}


def test_number_values_are_numbers_as_json_spells_them(gql):
    gql.define_fields({"ltv": "NUMBER"})
    refused = ["1_000", "1__0", "\u0663", "\uff11", "infinity", "nan", "0x10", "1e400", "9" * 25, "12 34", ""]
    result = gql.graphql(CONTACTS, c=[{"id": f"r{i}", "email": f"r{i}@example.com", "customFields": {"ltv": v}}
                                      for i, v in enumerate(refused)])["upsertContacts"]
    assert result["accepted"] == 0 and len(result["errors"]) == len(refused)
    accepted = {" 42 ": 42, "-0.5": -0.5, "1e3": 1000.0, "+7": 7, ".5": 0.5, "007": 7, "9223372036854775807": 2**63 - 1}
    result = gql.graphql(CONTACTS, c=[{"id": f"a{i}", "email": f"a{i}@example.com", "customFields": {"ltv": v}}
                                      for i, v in enumerate(accepted)])["upsertContacts"]
    assert result == {"accepted": len(accepted), "unchanged": 0, "errors": []}
    stored = [gql.graphql(CONTACT, id=f"a{i}")["contact"]["customFields"]["ltv"] for i in range(len(accepted))]
    assert stored == list(accepted.values())


def test_contact_fields_past_their_size_bound_are_refused_per_item(gql):
    """4 MiB of fields: with the rollups' bounds, a contact stays under MongoDB's 16 MB."""
    huge = [f"tag-{i:07}-" + "x" * 50 for i in range(80_000)]
    result = gql.call(ingest.upsert_contacts, gql.db, gql.workspace_id,
                      [{"id": "huge", "email": "h@example.com", "tags": huge}, {"id": "ok", "email": "ok@example.com"}])
    assert result.accepted == 1 and [(e.index, e.id) for e in result.errors] == [(0, "huge")]
    assert "more than 4 MiB" in result.errors[0].message


# -- stored documents that cannot be rolled up -------------------------------------

# What older versions, other clients or hands may have stored for contact "poisoned".
STORED_POISON = {
    "an OPEN dated 9999 of a contact in Tokyo": lambda gql: raw_event(
        gql, "raw", "poisoned", at=dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
    "an event of no known type": lambda gql: raw_event(gql, "raw", "poisoned", type="BOUNCE"),
    "an unknown time zone": lambda gql: gql.call(gql.db.db.contacts.update_one, raw_contact_key(gql, "poisoned"),
                                                 {"$set": {"timezone": "Mars/Olympus"}}),
    "a campaign sent in 9999": lambda gql: gql.call(
        gql.db.db.campaigns.update_one, {"workspace_id": gql.workspace_id, "id": "k1"},
        {"$set": {"sentAt": dt.datetime(9999, 1, 1, tzinfo=UTC)}}),
}


def _poisoned_and_innocent(gql, poison: str) -> None:
    gql.graphql(CONTACTS, c=[{"id": "innocent", "email": "i@example.com"},
                             {"id": "poisoned", "email": "p@example.com", "timezone": "Asia/Tokyo"}])
    gql.graphql(CAMPAIGNS, c=[{"id": "k1", "name": "Launch", "sentAt": "2026-11-01T10:00:00Z"}])
    gql.graphql(EVENTS, e=[{"id": "s1", "contactId": "poisoned", "type": "SENT", "at": "2026-11-01T10:00:00Z",
                            "campaignId": "k1"}])
    STORED_POISON[poison](gql)


@pytest.mark.parametrize("poison", STORED_POISON)
def test_a_stored_poison_is_reported_and_skipped_and_the_rest_refreshed(gql, poison, caplog):
    _poisoned_and_innocent(gql, poison)
    with caplog.at_level(logging.ERROR, logger="segmentql"):
        result = gql.graphql(EVENTS, e=[
            {"id": "p1", "contactId": "poisoned", "type": "OPEN", "at": "2026-11-02T01:00:00Z"},
            {"id": "i1", "contactId": "innocent", "type": "OPEN", "at": "2026-11-02T01:00:00Z"}])["recordEvents"]
    assert result["accepted"] == 1 and [(e["index"], e["id"]) for e in result["errors"]] == [(0, "p1")]
    assert result["errors"][0]["message"].startswith(
        "event 'p1': stored, but its contact's engagement rollups cannot be computed: ")
    assert gql.graphql(CONTACT, id="innocent")["contact"]["stats"]["opens"] == 1
    logged = [r.getMessage() for r in caplog.records]
    assert any(gql.workspace_id in m and "'poisoned'" in m and "cannot be computed" in m for m in logged), logged
    # Later batches are not blocked by it either.
    later = gql.graphql(EVENTS, e=[{"id": "i2", "contactId": "innocent", "type": "OPEN",
                                    "at": "2026-11-03T01:00:00Z"}])["recordEvents"]
    assert later == {"accepted": 1, "unchanged": 0, "errors": []}
    # A move to another zone refreshes both; the poisoned one is reported, unless the move cured it.
    moved = gql.graphql(CONTACTS, c=[{"id": "innocent", "email": "i@example.com", "timezone": "Europe/Paris"},
                                     {"id": "poisoned", "email": "p@example.com", "timezone": "Europe/Berlin"}])
    cured = poison == "an unknown time zone"
    assert [e["id"] for e in moved["upsertContacts"]["errors"]] == ([] if cured else ["poisoned"])
    assert gql.graphql(CONTACT, id="innocent")["contact"]["stats"]["topOpenHour"] == 2  # 01:00 UTC in Paris


def test_a_stored_date_beyond_python_s_years_is_read_and_refused_alone(gql):
    """MongoDB can hold dates before year 1 (the embedded server cannot, so
    this reads the BSON such a server would send): events and campaigns are
    read with a codec that returns them as DatetimeMS instead of failing the
    whole read, and the rollup refuses just their contact."""
    before_year_1 = bson.DatetimeMS(-62_135_650_000_000)
    for collection in ("events", "campaigns"):
        options = gql.db._with_any_dates(collection).codec_options
        assert options.tz_aware
        stored = bson.encode({"at": before_year_1, "ok": dt.datetime(2026, 1, 1, tzinfo=UTC)})
        read = bson.decode(stored, codec_options=options)
        assert read == {"at": before_year_1, "ok": dt.datetime(2026, 1, 1, tzinfo=UTC)}
    with pytest.raises(rollups.UnusableData, match=r"event 'e1' at is DatetimeMS.* not a datetime in the supported"):
        compute_stats([{"id": "e1", "type": "OPEN", "at": before_year_1}], None, {})
    with pytest.raises(rollups.UnusableData, match="campaign 'k1' sentAt is DatetimeMS"):
        compute_stats([{"id": "e1", "type": "SENT", "at": dt.datetime(2026, 1, 1, tzinfo=UTC), "campaign_id": "k1"}],
                      None, {"k1": {"name": "Launch", "sentAt": before_year_1}})


def test_rebuild_record_sizes_and_start_up_complete_around_a_poisoned_contact(gql, cli_env):
    _poisoned_and_innocent(gql, "an OPEN dated 9999 of a contact in Tokyo")
    raw_event(gql, "late", "innocent")  # stored without its rollups: a rebuild counts it
    gql.graphql('mutation { createSegment(name: "everyone", rule: {leadScore: {min: 0}}) { id } }')
    name = gql.call(gql.db.workspace, gql.workspace_id).name
    logged = f"workspace {gql.workspace_id}: the rollups of contact 'poisoned' cannot be computed"

    done = segmentql("rebuild-rollups", "--workspace", name, env=cli_env)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "rebuilt the rollups of 1 contacts" in done.stderr and logged in done.stderr
    assert "at: 9999-12-31T23:59:59Z " + RANGE in done.stderr
    assert gql.graphql(CONTACT, id="innocent")["contact"]["stats"]["opens"] == 1

    def older_layout():
        gql.call(gql.db.db.workspaces.update_one, {"_id": gql.workspace_id}, {"$unset": {"rollupLayout": ""}})

    older_layout()  # record-sizes rebuilds rollups of an older layout before it counts
    done = segmentql("record-sizes", "--workspace", name, env=cli_env)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert logged in done.stderr and "everyone" in done.stdout

    older_layout()  # a service starting after an upgrade rebuilds them, then serves
    with running_service(cli_env) as base:
        response = httpx.post(base + "/graphql", json={"query": '{ contact(id: "innocent") { stats { opens } } }'},
                              headers={"Authorization": f"Bearer {gql.key}"})
    assert response.json() == {"data": {"contact": {"stats": {"opens": 1}}}}
    assert gql.call(gql.db.workspaces_with_old_rollups) == []


# -- import -----------------------------------------------------------------------

def test_import_stores_every_good_line_and_reports_each_bad_one(cli_env, http, tmp_path):
    name = unique("poison")
    created = segmentql("workspace", "create", name, env=cli_env)
    key = created.stdout.strip().splitlines()[-1]
    (tmp_path / "fields.json").write_text('[{"key": "signup", "type": "DATE"}, {"key": "ltv", "type": "NUMBER"}]')
    lines = {
        "campaigns.ndjson": [
            '{"id": "k1", "name": "Launch", "sentAt": "2026-11-01T10:00:00Z"}',
            '{"id": "k2", "name": "Later", "sentAt": "9999-12-31T23:59:59Z"}',
            '{"id": "k3", "name": "\\udcff", "sentAt": "2026-11-01T10:00:00Z"}'],
        "contacts.ndjson": [
            '{"id": "a", "email": "a@example.com", "timezone": "Asia/Tokyo"}',
            '{"id": "b", "email": "b@example.com", "customFields": {"signup": "0001-01-01T00:00:00+14:00"}}',
            '{"id": "b\\udcff", "email": "b@example.com"}',
            '{"id": "c", "email": "c@example.com", "customFields": {"ltv": "1_000"}}',
            '{"id": "d", "email": "d@example.com", "customFields": {"ltv": "1000"}}'],
        "events.ndjson": [
            '{"id": "e1", "contactId": "a", "type": "OPEN", "at": "2026-11-02T01:00:00Z", "campaignId": "k1"}',
            '{"id": "e2", "contactId": "a", "type": "OPEN", "at": "9999-12-31T23:59:59Z"}',
            '{"id": "e3", "contactId": "d", "type": "CLICK", "at": "2026-11-02T01:00:00Z", "url": "\\udcff"}',
            '{"id": "e4", "contactId": "d", "type": "OPEN", "at": "0001-01-01T00:00:00+14:00"}',
            '{"id": "e5", "contactId": "d", "type": "OPEN", "at": "2026-11-02T01:00:00Z"}'],
    }
    for file, content in lines.items():
        (tmp_path / file).write_text("\n".join(content) + "\n")
    done = segmentql("import", "--workspace", name, str(tmp_path), env=cli_env)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    for expected in (
            f"campaigns.ndjson:2: campaign 'k2': sentAt: 9999-12-31T23:59:59Z {RANGE}",
            "campaigns.ndjson:3: campaign 'k3': name is not valid Unicode text",
            f"contacts.ndjson:2: contact 'b': custom field 'signup': 0001-01-01T00:00:00+14:00 {RANGE}",
            "contacts.ndjson:3: contact None: id is not valid Unicode text",
            "contacts.ndjson:4: contact 'c': custom field 'ltv': expected a number, got '1_000'",
            f"events.ndjson:2: event 'e2': at: 9999-12-31T23:59:59Z {RANGE}",
            "events.ndjson:3: event 'e3': url is not valid Unicode text",
            f"events.ndjson:4: event 'e4': at: 0001-01-01T00:00:00+14:00 {RANGE}",
            "campaigns: 1 stored, 0 unchanged, 2 refused", "contacts: 2 stored, 0 unchanged, 3 refused",
            "events: 2 stored, 0 unchanged, 3 refused"):
        assert expected in done.stderr, (expected, done.stderr)
    response = http.post("/graphql", json={"query": '{ a: contact(id: "a") { stats { opens topOpenHour } } '
                                                    'd: contact(id: "d") { customFields stats { opens } } }'},
                         headers={"Authorization": f"Bearer {key}"})
    assert response.json()["data"] == {"a": {"stats": {"opens": 1, "topOpenHour": 10}},
                                       "d": {"customFields": {"ltv": 1000}, "stats": {"opens": 1}}}


# -- retries ----------------------------------------------------------------------

def test_a_retried_time_zone_change_heals_the_rollups(gql):
    gql.graphql(CONTACTS, c=[{"id": "c1", "email": "a@example.com", "timezone": "America/New_York"}])
    gql.graphql(EVENTS, e=[{"id": "o1", "contactId": "c1", "type": "OPEN", "at": "2026-11-02T13:00:00Z"}])
    assert gql.graphql(CONTACT, id="c1")["contact"]["stats"]["topOpenHour"] == 8
    # The first attempt wrote the new zone and died before its refresh (DATABASE_UNAVAILABLE).
    gql.call(gql.db.db.contacts.update_one, raw_contact_key(gql, "c1"), {"$set": {"timezone": "Asia/Tokyo"}})
    retry = gql.graphql(CONTACTS, c=[{"id": "c1", "email": "a@example.com", "timezone": "Asia/Tokyo"}])
    assert retry["upsertContacts"] == {"accepted": 0, "unchanged": 1, "errors": []}
    assert gql.graphql(CONTACT, id="c1")["contact"]["stats"]["topOpenHour"] == 22


def test_a_retried_campaign_change_heals_the_recipients_summaries(gql):
    gql.graphql(CONTACTS, c=[{"id": "c1", "email": "a@example.com"}])
    gql.graphql(CAMPAIGNS, c=[{"id": "k1", "name": "Launch", "sentAt": "2026-11-01T10:00:00Z"},
                              {"id": "k2", "name": "Digest", "sentAt": "2026-11-20T10:00:00Z"}])
    gql.graphql(EVENTS, e=[{"id": f"s{k}", "contactId": "c1", "type": "SENT", "at": "2026-11-20T10:00:00Z",
                            "campaignId": k} for k in ("k1", "k2")])
    # The first attempt renamed and moved k1, and died before refreshing its recipients.
    gql.call(gql.db.db.campaigns.update_one, {"workspace_id": gql.workspace_id, "id": "k1"},
             {"$set": {"name": "Launch v2", "sentAt": dt.datetime(2026, 11, 25, 10, tzinfo=UTC)}})
    retry = gql.graphql(CAMPAIGNS, c=[{"id": "k1", "name": "Launch v2", "sentAt": "2026-11-25T10:00:00Z"}])
    assert retry["upsertCampaigns"] == {"accepted": 0, "unchanged": 1, "errors": []}
    summaries = {c["campaignId"]: (c["name"], c["sentAt"], c["latest"])
                 for c in gql.graphql(CONTACT, id="c1")["contact"]["stats"]["campaigns"]}
    assert summaries == {"k1": ("Launch v2", "2026-11-25T10:00:00.000Z", True),
                         "k2": ("Digest", "2026-11-20T10:00:00.000Z", False)}
    assert gql.members({"campaign": {"campaignName": "Launch v2", "opened": False}}) == ["c1"]


# -- bounded rollups ---------------------------------------------------------------

def test_clicked_urls_are_capped_per_campaign_with_an_exact_count_of_the_rest(gql):
    """4,200 distinct 4 KB urls (17 MB) used to push the contact past 16 MB."""
    gql.graphql(CONTACTS, c=[{"id": "c1", "email": "a@example.com"}])
    gql.graphql(CAMPAIGNS, c=[{"id": "k", "name": "K", "sentAt": "2026-01-01T00:00:00Z"}])
    gql.graphql(EVENTS, e=[{"id": "sent", "contactId": "c1", "type": "SENT", "at": "2026-01-01T00:00:00Z",
                            "campaignId": "k"}])
    start = dt.datetime(2026, 1, 2, tzinfo=UTC)
    for batch in range(10):
        clicks = [{"id": f"c{n:05}", "contactId": "c1", "type": "CLICK", "campaignId": "k",
                   "at": (start + dt.timedelta(seconds=n)).isoformat(),
                   "url": f"https://x.example/U{n:05}/" + "a" * 4070}
                  for n in range(batch * 420, batch * 420 + 420)]
        assert gql.graphql(EVENTS, e=clicks)["recordEvents"] == {"accepted": 420, "unchanged": 0, "errors": []}
    stats = gql.graphql(CONTACT, id="c1")["contact"]["stats"]
    summary = stats["campaigns"][0]
    assert stats["clicks"] == summary["clicks"] == 4200
    assert len(summary["clickedUrls"]) == rollups.URLS_PER_CAMPAIGN and summary["clickedUrlsDropped"] == 4100
    # the first clicked, lower-cased
    assert [u.split("/")[3] for u in summary["clickedUrls"][:2]] == ["u00000", "u00001"]
    assert gql.members({"campaign": {"campaignId": "k", "clickedUrlContains": "/U00099/"}}) == ["c1"]
    assert gql.members({"campaign": {"campaignId": "k", "clickedUrlContains": "/U00100/"}}) == []  # dropped


def _window(activity: list[dict], first_day: int) -> int:
    """Opens on days >= first_day, read from the rollup as conditions read it."""
    covering = [b["opensSince"] for b in activity if b["day"] >= first_day]
    return max(covering, default=0)


def test_stats_stay_bounded_whatever_the_event_stream():
    """Every part of ``stats`` that grows with the events is bounded: the worst
    stream (each bound passed, ids, names and urls of the greatest length in
    4-byte characters) gives a rollup that fits a contact with the largest
    fields under MongoDB's 16 MB, and counts exactly what it left out."""
    wide = "\U0001F600"
    days, campaign_count, url_campaigns, urls_each = rollups.ACTIVITY_DAYS_KEPT + 50, 2500, 3, 150
    first = dt.datetime(1990, 1, 1, 12, tzinfo=UTC)
    campaigns = {f"{i:05}" + wide * 251: {"name": f"{i:05}" + wide * 251, "sentAt": first + dt.timedelta(days=i)}
                 for i in range(campaign_count)}
    ids = list(campaigns)
    events = [{"id": f"o{d}", "type": "OPEN", "at": first + dt.timedelta(days=d), "device": "MOBILE"}
              for d in range(days)]
    events += [{"id": f"s{i}", "type": "SENT", "at": first, "campaign_id": cid} for i, cid in enumerate(ids)]
    events += [{"id": f"c{i}-{n}", "type": "CLICK", "at": first, "campaign_id": ids[-1 - i],
                "url": f"{i}-{n:03}" + wide * 4090} for i in range(url_campaigns) for n in range(urls_each)]
    stats = compute_stats(events, "Asia/Tokyo", campaigns)

    size = len(bson.encode({"stats": stats}))
    assert size < 10 * 2**20 and size + ingest.MAX_CONTACT_BYTES + 2**16 < 16 * 2**20, size
    kept = {s["id"]: s for s in stats["campaigns"]}
    assert 0 < len(kept) < campaign_count and stats["campaignsDropped"] == campaign_count - len(kept)
    assert kept[ids[-1]]["latest"] and set(kept) == set(ids[-len(kept):])  # the latest, then the newest
    with_urls = [kept[ids[-1 - i]] for i in range(url_campaigns)]
    assert len(with_urls[0]["urls"]) == rollups.URLS_PER_CAMPAIGN
    assert all(len(s["urls"]) + s["urlsDropped"] == urls_each for s in with_urls)
    assert sum(len(u.encode()) for s in with_urls for u in s["urls"]) <= rollups.URL_BYTES_KEPT
    assert stats["opens"] == days and len(stats["activity"]) == rollups.ACTIVITY_DAYS_KEPT
    assert stats["activityDaysMerged"] == days - rollups.ACTIVITY_DAYS_KEPT
    oldest_kept = stats["activity"][-1]["day"]
    today = contact.day_number(first) + days - 1
    for first_day in (oldest_kept + 1, oldest_kept + 500, today):  # windows after the merged days are exact
        assert _window(stats["activity"], first_day) == today - first_day + 1
    assert _window(stats["activity"], oldest_kept) == days  # ...the oldest kept day stands for every older one
    assert stats["eventDays"]["opens"] == list(range(today, today - contact.DAYS_KEPT, -1))
