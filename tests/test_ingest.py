"""Data mutations: typed custom fields, upserts, idempotent events, late events,
per-item errors, deletes."""

from pathlib import Path

FIELD = "mutation($k: String!, $t: CustomFieldType!) { defineCustomField(key: $k, type: $t) { key type created } }"
CONTACTS = ("mutation($c: [ContactInput!]!) { upsertContacts(contacts: $c) "
            "{ accepted unchanged errors { index id message } } }")
CAMPAIGNS = ("mutation($c: [CampaignInput!]!) { upsertCampaigns(campaigns: $c) "
             "{ accepted unchanged errors { index id message } } }")
EVENTS = "mutation($e: [EventInput!]!) { recordEvents(events: $e) { accepted unchanged errors { index id message } } }"
DELETE = "mutation($ids: [ID!]!) { deleteContacts(ids: $ids) { accepted unchanged errors { message } } }"
CONTACT = """query($id: ID!) { contact(id: $id) { id email country timezone tags leadScore customFields
  stats { events opens clicks conversions sends lastOpenAt lastOpenDevice topOpenHour topOpenWeekday
          opensByDevice { mobile desktop tablet }
          campaigns { campaignId name received opens clicks clickedUrls latest } } } }"""


def test_define_custom_field_is_idempotent_and_refuses_type_change(gql):
    assert gql.graphql(FIELD, k="ltv", t="NUMBER")["defineCustomField"]["created"] is True
    assert gql.graphql(FIELD, k="ltv", t="NUMBER")["defineCustomField"]["created"] is False
    errors = gql.errors(FIELD, k="ltv", t="TEXT")
    assert errors[0]["extensions"]["code"] == "CONFLICT" and "NUMBER" in errors[0]["message"]


def test_custom_field_keys_are_checked(gql):
    for bad in ("Ltv", "1ltv", "ltv-x", "a" * 65, "$where", "a.b", "__proto__"):
        errors = gql.errors(FIELD, k=bad, t="NUMBER")
        assert errors[0]["extensions"]["code"] == "CONFLICT", bad


def test_contact_values_are_coerced_and_validated(gql):
    for key, kind in (("ltv", "NUMBER"), ("plan", "TEXT"), ("bounced", "BOOLEAN"), ("signup", "DATE"),
                      ("interests", "MULTI_SELECT")):
        gql.graphql(FIELD, k=key, t=kind)
    result = gql.graphql(CONTACTS, c=[
        {"id": "c1", "email": "one@example.com", "country": "us", "timezone": "America/Denver",
         "tags": ["vip"], "leadScore": 80,
         "customFields": {"ltv": "1200.5", "plan": "pro", "bounced": False, "signup": "2024-02-29",
                          "interests": ["sms", "sms", "automation"]}},
        {"id": "c2", "email": "two@example.com", "customFields": {"ltv": "lots"}},
        {"id": "c3", "email": "three@example.com", "customFields": {"unknown": 1}},
        {"id": "c4", "email": "four@example.com", "timezone": "Mars/Olympus"},
        {"id": "c5", "email": "five@example.com", "leadScore": 101},
        {"id": "c6", "email": "not an email"},
        {"id": "c7", "email": "seven@example.com", "country": "XX"},
    ])["upsertContacts"]
    assert result["accepted"] == 1 and result["unchanged"] == 0
    problems = {e["id"]: e["message"] for e in result["errors"]}
    assert set(problems) == {"c2", "c3", "c4", "c5", "c6", "c7"}
    assert "c2" in problems["c2"] and "ltv" in problems["c2"] and "number" in problems["c2"]
    assert "unknown" in problems["c3"] and "not declared" in problems["c3"]
    assert "Mars/Olympus" in problems["c4"]
    contact = gql.graphql(CONTACT, id="c1")["contact"]
    assert contact["country"] == "US"
    assert contact["customFields"] == {"ltv": 1200.5, "plan": "pro", "bounced": False,
                                       "signup": "2024-02-29T00:00:00.000Z", "interests": ["sms", "automation"]}


def test_upsert_keeps_omitted_fields_and_null_unsets(gql):
    gql.graphql(FIELD, k="plan", t="TEXT")
    gql.graphql(CONTACTS, c=[{"id": "c1", "email": "a@example.com", "country": "DE", "tags": ["x"],
                          "customFields": {"plan": "pro"}}])
    again = gql.graphql(CONTACTS, c=[{"id": "c1", "email": "a@example.com", "country": "DE"}])["upsertContacts"]
    assert again == {"accepted": 0, "unchanged": 1, "errors": []}
    gql.graphql(CONTACTS, c=[{"id": "c1", "email": "a@example.com", "country": None, "customFields": {"plan": None}}])
    contact = gql.graphql(CONTACT, id="c1")["contact"]
    assert contact["country"] is None and contact["tags"] == ["x"] and contact["customFields"] == {}


def _setup(gql):
    gql.graphql(CONTACTS, c=[{"id": "c1", "email": "a@example.com", "timezone": "Asia/Tokyo"},
                         {"id": "c2", "email": "b@example.com"}])
    gql.graphql(CAMPAIGNS, c=[{"id": "k1", "name": "Launch", "sentAt": "2026-11-01T10:00:00Z"},
                          {"id": "k2", "name": "Digest", "sentAt": "2026-11-20T10:00:00Z"}])


def test_events_are_idempotent_by_id_and_late_events_count(gql):
    _setup(gql)
    events = [
        {"id": "e1", "contactId": "c1", "type": "SENT", "at": "2026-11-01T10:00:00Z", "campaignId": "k1"},
        {"id": "e2", "contactId": "c1", "type": "OPEN", "at": "2026-11-02T01:00:00Z", "campaignId": "k1",
         "device": "MOBILE"},
    ]
    assert gql.graphql(EVENTS, e=events)["recordEvents"] == {"accepted": 2, "unchanged": 0, "errors": []}
    assert gql.graphql(EVENTS, e=events)["recordEvents"] == {"accepted": 0, "unchanged": 2, "errors": []}
    late = [{"id": "e0", "contactId": "c1", "type": "OPEN", "at": "2026-10-30T23:30:00Z", "device": "DESKTOP"},
            {"id": "e3", "contactId": "c1", "type": "CLICK", "at": "2026-11-02T01:05:00Z", "campaignId": "k1",
             "url": "https://Example.com/Pricing"}]
    gql.graphql(EVENTS, e=late)
    stats = gql.graphql(CONTACT, id="c1")["contact"]["stats"]
    assert stats["events"] == 4 and stats["opens"] == 2 and stats["clicks"] == 1
    assert stats["lastOpenDevice"] == "MOBILE"  # the latest open, whatever arrived last
    assert stats["opensByDevice"] == {"mobile": 1, "desktop": 1, "tablet": 0}
    assert stats["topOpenHour"] == 8  # 23:30 UTC and 01:00 UTC are 08:30 and 10:00 in Tokyo; tie -> earliest
    assert stats["campaigns"] == [{"campaignId": "k1", "name": "Launch", "received": True, "opens": 1,
                                   "clicks": 1, "clickedUrls": ["https://example.com/pricing"], "latest": True}]


def test_unknown_contact_or_campaign_is_reported_and_the_rest_kept(gql):
    _setup(gql)
    result = gql.graphql(EVENTS, e=[
        {"id": "e1", "contactId": "ghost", "type": "OPEN", "at": "2026-11-02T00:00:00Z"},
        {"id": "e2", "contactId": "c1", "type": "OPEN", "at": "2026-11-02T00:00:00Z", "campaignId": "nope"},
        {"id": "e3", "contactId": "c1", "type": "OPEN", "at": "2026-11-02T00:00:00Z"},
    ])["recordEvents"]
    assert result["accepted"] == 1
    assert {e["id"]: e["index"] for e in result["errors"]} == {"e1": 0, "e2": 1}
    assert "ghost" in result["errors"][0]["message"] and "nope" in result["errors"][1]["message"]


def test_campaign_names_are_unique(gql):
    _setup(gql)
    result = gql.graphql(CAMPAIGNS, c=[{"id": "k3", "name": "Launch", "sentAt": "2026-11-21T10:00:00Z"}])
    assert result["upsertCampaigns"]["accepted"] == 0
    assert "already used by campaign 'k1'" in result["upsertCampaigns"]["errors"][0]["message"]


def test_campaign_changes_reach_recipients_summaries(gql):
    _setup(gql)
    gql.graphql(EVENTS, e=[
        {"id": "s1", "contactId": "c1", "type": "SENT", "at": "2026-11-01T10:00:00Z", "campaignId": "k1"},
        {"id": "s2", "contactId": "c1", "type": "SENT", "at": "2026-11-20T10:00:00Z", "campaignId": "k2"}])
    latest = {c["campaignId"]: c["latest"] for c in gql.graphql(CONTACT, id="c1")["contact"]["stats"]["campaigns"]}
    assert latest == {"k1": False, "k2": True}
    gql.graphql(CAMPAIGNS, c=[{"id": "k1", "name": "Relaunch", "sentAt": "2026-11-25T10:00:00Z"}])
    summaries = {c["campaignId"]: c for c in gql.graphql(CONTACT, id="c1")["contact"]["stats"]["campaigns"]}
    assert summaries["k1"]["name"] == "Relaunch" and summaries["k1"]["latest"] is True
    assert summaries["k2"]["latest"] is False


def test_timezone_change_recomputes_open_habits(gql):
    _setup(gql)
    gql.graphql(EVENTS, e=[{"id": "o1", "contactId": "c2", "type": "OPEN", "at": "2026-11-02T23:00:00Z"}])
    assert gql.graphql(CONTACT, id="c2")["contact"]["stats"]["topOpenHour"] == 23
    gql.graphql(CONTACTS, c=[{"id": "c2", "email": "b@example.com", "timezone": "Asia/Tokyo"}])
    stats = gql.graphql(CONTACT, id="c2")["contact"]["stats"]
    assert stats["topOpenHour"] == 8 and stats["topOpenWeekday"] == "TUESDAY"


def test_delete_contacts_removes_contact_and_events(gql):
    _setup(gql)
    gql.graphql(EVENTS, e=[{"id": "o1", "contactId": "c1", "type": "OPEN", "at": "2026-11-02T23:00:00Z"}])
    deleted = gql.graphql(DELETE, ids=["c1", "c1", "zz"])["deleteContacts"]
    assert deleted == {"accepted": 1, "unchanged": 1, "errors": []}
    assert gql.graphql(CONTACT, id="c1")["contact"] is None
    events = gql.call(gql.db.events_of_contacts, gql.workspace_id, ["c1"])
    assert events == {"c1": []}
    # The id can be used again from scratch: the old event is gone, so it counts anew.
    gql.graphql(CONTACTS, c=[{"id": "c1", "email": "a@example.com"}])
    assert gql.graphql(EVENTS, e=[{"id": "o1", "contactId": "c1", "type": "OPEN",
                               "at": "2026-11-02T23:00:00Z"}])["recordEvents"]["accepted"] == 1


def test_contact_lookup_of_unknown_id_is_null(gql):
    assert gql.graphql(CONTACT, id="nobody")["contact"] is None


def test_bulk_reads_by_index_range_fall_back_for_scattered_ids_and_find_the_same(gql):
    """Many ids are read as one index range first (consecutive in an import),
    falling back to `$in` when the range holds many others: same answer."""
    ids = [f"c{i:03}" for i in range(330)]
    gql.graphql(CONTACTS, c=[{"id": i, "email": f"{i}@example.com"} for i in ids])
    gql.graphql(EVENTS, e=[{"id": f"e{i}", "contactId": i, "type": "OPEN", "at": "2026-11-02T01:00:00Z"} for i in ids])
    for wanted in (ids[10:250], ids[::2], ids[::3], [*ids[:120], "nobody"]):
        bulk = gql.call(gql.db.contacts_by_id, gql.workspace_id, wanted, {"id": 1})
        one_by_one = {}
        for start in range(0, len(wanted), 50):
            one_by_one.update(gql.call(gql.db.contacts_by_id, gql.workspace_id, wanted[start:start + 50], {"id": 1}))
        assert sorted(bulk) == sorted(one_by_one) == sorted(set(wanted) - {"nobody"})
        events = gql.call(gql.db.events_of_contacts, gql.workspace_id, wanted)
        assert {cid: [e["id"] for e in evs] for cid, evs in events.items()} == {
            cid: ([] if cid == "nobody" else [f"e{cid}"]) for cid in wanted}


def test_rollups_of_an_older_layout_are_rebuilt_before_serving(gql):
    """A store written by an older version lacks fields conditions now read;
    the service rebuilds such a workspace's rollups at start-up
    (ingest.upgrade_rollups, run by the app's lifespan) from the raw events."""
    from segmentql.server import ingest

    gql.graphql(CONTACTS, c=[{"id": "x", "email": "x@example.com"}])
    gql.graphql(EVENTS, e=[{"id": f"o{i}", "contactId": "x", "type": "OPEN", "at": f"2026-11-2{i}T08:00:00Z"}
                           for i in range(3)])
    rule = {"engagement": {"metric": "OPENS", "comparison": "GTE", "value": 3, "withinDays": 30}}
    assert gql.members(rule, "2026-11-28T12:00:00Z") == ["x"]
    raw = gql.db.db  # make it look like an older version's store
    gql.call(raw.contacts.update_many, {"workspace_id": gql.workspace_id}, {"$unset": {"stats.eventDays": ""}})
    gql.call(raw.workspaces.update_one, {"_id": gql.workspace_id}, {"$unset": {"rollupLayout": ""}})
    assert gql.members(rule, "2026-11-28T12:00:00Z") == []

    upgraded = gql.call(ingest.upgrade_rollups, gql.db)
    assert (gql.call(gql.db.workspace_for_key, gql.key).name, 1) in upgraded
    assert gql.members(rule, "2026-11-28T12:00:00Z") == ["x"]
    assert gql.call(ingest.upgrade_rollups, gql.db) == []  # nothing left to do


def test_contacts_held_by_an_import_are_created_once_with_their_rollups(gql):
    """Bulk import holds new contacts back, stores their events, then writes
    each contact once with rollups. Events stored for a held contact that was
    never written (a killed import) are picked up whenever it is created."""
    from segmentql.server import ingest

    held: dict = {}
    gql.call(ingest.upsert_contacts, gql.db, gql.workspace_id,
             [{"id": "h1", "email": "h1@example.com", "timezone": "Europe/Paris"},
              {"id": "h2", "email": "h2@example.com"}, {"id": "h1", "email": "h1@example.com", "leadScore": 7}],
             held)
    assert set(held) == {"h1", "h2"} and held["h1"]["leadScore"] == 7 and held["h1"]["timezone"] == "Europe/Paris"
    assert gql.graphql(CONTACT, id="h1")["contact"] is None  # nothing written yet
    opens = [{"id": f"{cid}-{i}", "contactId": cid, "type": "OPEN", "at": "2026-11-27T08:00:00Z"}
             for cid in ("h1", "h2") for i in range(2)]
    result, _due = gql.call(ingest.store_events, gql.db, gql.workspace_id, opens, held)
    assert result.accepted == 4 and not result.errors
    gql.call(ingest.create_contacts, gql.db, gql.workspace_id, {"h1": held["h1"]})  # h2 is "killed" before
    contact = gql.graphql(CONTACT, id="h1")["contact"]
    assert contact["leadScore"] == 7 and contact["stats"]["opens"] == 2 and contact["stats"]["topOpenHour"] == 9
    assert gql.graphql(CONTACT, id="h2")["contact"] is None
    gql.graphql(CONTACTS, c=[{"id": "h2", "email": "h2@example.com"}])  # created later, through GraphQL
    assert gql.graphql(CONTACT, id="h2")["contact"]["stats"]["opens"] == 2


def test_a_held_contact_created_meanwhile_by_another_writer_keeps_the_later_rows(gql):
    """An import holds a new contact; another writer creates it; a later import
    row for it is written then, together with the held change, and the import's
    end does not write the older held change over either."""
    from segmentql.server import ingest

    held: dict = {}
    gql.call(ingest.upsert_contacts, gql.db, gql.workspace_id, [{"id": "h", "email": "first@example.com"}], held)
    gql.graphql(CONTACTS, c=[{"id": "h", "email": "api@example.com", "country": "FR"}])  # the other writer
    gql.call(ingest.upsert_contacts, gql.db, gql.workspace_id, [{"id": "h", "email": "later@example.com"}], held)
    gql.call(ingest.create_contacts, gql.db, gql.workspace_id, held)
    contact = gql.graphql(CONTACT, id="h")["contact"]
    assert (contact["email"], contact["country"]) == ("later@example.com", "FR")


def test_later_fields_of_a_mutation_see_what_earlier_ones_changed(gql):
    """Within a mutation every field reads the workspace's facts afresh, so a
    snapshot taken later in the same request knows the event just recorded is
    after its `asOf` (and does not count it)."""
    gql.graphql(CONTACTS, c=[{"id": "x", "email": "x@example.com"}])
    gql.graphql(EVENTS, e=[{"id": "early", "contactId": "x", "type": "OPEN", "at": "2026-11-20T08:00:00Z"}])
    rule = {"engagement": {"metric": "OPENS", "comparison": "GTE", "value": 1, "withinDays": 1}}
    segment = gql.graphql('mutation($r: RuleInput!) { createSegment(name: "today", rule: $r) { id } }',
                          r=rule)["createSegment"]["id"]
    result = gql.graphql("""mutation($e: [EventInput!]!, $s: ID!) {
        recordEvents(events: $e) { accepted }
        snapshotSegment(id: $s, label: "as of the 27th", asOf: "2026-11-27T12:00:00Z") { size } }""",
                         e=[{"id": "late", "contactId": "x", "type": "OPEN", "at": "2026-11-28T08:00:00Z"}], s=segment)
    assert result == {"recordEvents": {"accepted": 1}, "snapshotSegment": {"size": 0}}


def test_a_field_declared_earlier_in_a_mutation_is_known_to_later_fields(gql):
    result = gql.graphql("""mutation($r: RuleInput!) {
        defineCustomField(key: "plan", type: TEXT) { created }
        upsertContacts(contacts: [{id: "p", email: "p@example.com", customFields: {plan: "pro"}}]) { accepted }
        createSegment(name: "pro", rule: $r) { count } }""", r={"customField": {"field": "plan", "equals": "pro"}})
    assert result == {"defineCustomField": {"created": True}, "upsertContacts": {"accepted": 1},
                      "createSegment": {"count": 1}}


def test_resolvers_get_workspace_facts_only_through_workspace_facts():
    """The facts read with the key are reachable only through
    ``workspace_facts``, which rereads them in mutations: no resolver can use
    stale ones by forgetting a reload."""
    schema_dir = Path(__file__).resolve().parents[1] / "schema"
    users = sorted(p.name for p in schema_dir.glob("*.py") if "facts_with_key" in p.read_text())
    assert users == ["context.py"]
