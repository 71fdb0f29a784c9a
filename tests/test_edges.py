"""Edges an attacker or a careless client finds: request bodies strawberry
cannot read, extreme but valid values, ambiguous documents, empty pages, and
saved segments that grow without bound. Each is refused with a clear JSON
error and a code, or answered correctly."""

import json

import bson
import pytest

from segmentql.server.database import Database
from segmentql.server.segments import MAX_SAVED_RULE_BYTES

from .conftest import SEED_AS_OF

HUGE = "1" + "0" * 5000  # more digits than Python turns into an int (sys.get_int_max_str_digits)
BAD_BODIES = {
    "a string": b'"x"',
    "null": b"null",
    "an empty list": b"[]",
    "a batch": json.dumps([{"query": "{ __typename }"}] * 2).encode(),
    "a number": b"123",
    "a 5,000-digit integer": HUGE.encode(),
    "a 5,000-digit integer variable": b'{"query": "{ __typename }", "variables": {"n": ' + HUGE.encode() + b"}}",
    "invalid UTF-8": b'{"query": "{ __typename }", "variables": {"s": "\xff\xfe"}}',
    "not JSON": b"{query: {}}",
    "NaN": b'{"query": "{ __typename }", "variables": {"w": NaN}}',
    "Infinity": b'{"query": "{ __typename }", "variables": {"w": -Infinity}}',
    "a number past the largest double": b'{"query": "{ __typename }", "variables": {"w": 1e999}}',
    "nothing": b"",
    "an object without query": b'{"variables": {}}',
    "a query that is no string": b'{"query": {"a": 1}}',
    "an empty query": b'{"query": " "}',
    "variables that are no object": b'{"query": "{ __typename }", "variables": [1]}',
    "extensions that are no object": b'{"query": "{ __typename }", "extensions": "x"}',
    "an operationName that is no string": b'{"query": "{ __typename }", "operationName": 1}',
    "a 2,000-deep not chain": json.dumps({"query": "query($r: RuleInput!) { segmentPreview(rule: $r) { count } }",
                                          "variables": {"r": "X"}}).encode().replace(
        b'"X"', b'{"not": ' * 2000 + b'{"leadScore": {"min": 1}}' + b"}" * 2000),
}


def post(client, body: bytes):
    return client.http.post("/graphql", content=body, headers={"Authorization": f"Bearer {client.key}",
                                                               "Content-Type": "application/json"})


def refusal(response, status: int = 400, code: str = "BAD_REQUEST") -> str:
    """The message of a JSON refusal with this status and code."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["content-type"] == "application/json"
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == code
    return error["message"]


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_no_body_gets_a_5xx_or_plain_text(gql, body):
    message = refusal(post(gql, body))
    assert "Traceback" not in message and "sys.set_int_max_str_digits" not in message
    assert gql.graphql("{ __typename }") == {"__typename": "Query"}


def test_each_refusal_says_what_is_wrong(gql):
    assert "JSON object" in refusal(post(gql, b"null"))
    assert "batching is off" in refusal(post(gql, b"[]"))
    assert "more than 4300 digits" in refusal(post(gql, HUGE.encode()))
    assert "UTF-8" in refusal(post(gql, BAD_BODIES["invalid UTF-8"]))
    assert "`query`" in refusal(post(gql, b"{}"))
    assert "`variables`" in refusal(post(gql, BAD_BODIES["variables that are no object"]))
    assert "nested too deeply" in refusal(post(gql, BAD_BODIES["a 2,000-deep not chain"]))
    assert refusal(post(gql, BAD_BODIES["NaN"])) == "the request body is not JSON: NaN is not a JSON number"
    assert "1e999 is too large" in refusal(post(gql, BAD_BODIES["a number past the largest double"]))


@pytest.mark.parametrize("params", [
    {"query": "{ __typename }", "variables": "[1]"},
    {"query": "{ __typename }", "variables": "{not json"},
    {"query": "{ __typename }", "variables": '{"n": ' + HUGE + "}"},
    {"query": "{ __typename }", "extensions": "1"},
    {"variables": "{}"},
    {"query": "query A { __typename } query B { __typename }"},
], ids=["list variables", "bad JSON", "5,000 digits", "extensions", "no query", "two operations"])
def test_no_get_query_string_gets_a_5xx_or_plain_text(gql, params):
    response = gql.http.get("/graphql", params=params, headers={"Authorization": f"Bearer {gql.key}",
                                                                "Accept": "application/json"})
    refusal(response)


def test_a_mutation_sent_by_get_is_refused_as_json(gql):
    response = gql.http.get("/graphql", params={"query": 'mutation { deleteSegment(id: "x") }'},
                            headers={"Authorization": f"Bearer {gql.key}", "Accept": "application/json"})
    assert "POST" in refusal(response, 405, "METHOD_NOT_ALLOWED") and response.headers["Allow"] == "POST"


# -- which operation runs --------------------------------------------------------

CREATE = 'mutation Create { createSegment(name: "made", rule: {leadScore: {min: 1}}) { id } }'
LIST = "query List { segments { edges { node { name } } } }"


def segment_names(client) -> list[str]:
    return [e["node"]["name"] for e in client.graphql(LIST)["segments"]["edges"]]


@pytest.mark.parametrize("document", [f"{CREATE} {LIST}", f"{LIST} {CREATE}",
                                      f"{CREATE} {CREATE.replace('Create', 'Again')}"])
def test_several_operations_without_operation_name_are_an_error_and_run_nothing(gql, document):
    message = refusal(gql.request(document))
    assert "name the one to run in `operationName`" in message
    assert segment_names(gql) == []


def test_the_named_operation_runs_and_an_unknown_name_is_an_error(gql):
    body = {"query": f"{CREATE} {LIST}", "operationName": "Create"}
    response = gql.http.post("/graphql", json=body, headers={"Authorization": f"Bearer {gql.key}"})
    assert response.json()["data"]["createSegment"]["id"]
    assert segment_names(gql) == ["made"]
    body["operationName"] = "Delete"
    response = gql.http.post("/graphql", json=body, headers={"Authorization": f"Bearer {gql.key}"})
    assert refusal(response) == "the document has no operation named 'Delete'"
    assert "no operation" in refusal(gql.request("fragment F on Query { __typename }"))


def test_an_envelope_check_parses_a_document_once(gql):
    """The check shares strawberry's parser cache: the document it parsed is the one that runs."""
    from strawberry.extensions.parser_cache import _get_parse_cache

    from segmentql.app import DOCUMENT_CACHE_SIZE

    cache = _get_parse_cache(DOCUMENT_CACHE_SIZE)
    query = "query Once { __typename } # " + gql.workspace_id
    before = cache.cache_info()
    assert gql.graphql(query) == {"__typename": "Query"}
    after = cache.cache_info()
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 1)


# -- day counts ------------------------------------------------------------------

COUNT = "query($r: RuleInput!, $a: DateTime) { segmentPreview(rule: $r, asOf: $a) { count } }"


@pytest.fixture
def dated(gql):
    """One contact active, sent a campaign and with a DATE field on 2000-01-01."""
    gql.define_fields({"renewal": "DATE"})
    gql.graphql("""mutation {
      upsertContacts(contacts: [{id: "c1", email: "c1@example.com", customFields: {renewal: "2000-01-01"}}])
        { accepted }
      upsertCampaigns(campaigns: [{id: "k1", name: "Millennium", sentAt: "2000-01-01T00:00:00Z"}]) { accepted }
      recordEvents(events: [{id: "e1", contactId: "c1", type: SENT, campaignId: "k1", at: "2000-01-01T00:00:00Z"},
                            {id: "e2", contactId: "c1", type: OPEN, campaignId: "k1", at: "2000-01-01T08:00:00Z"}])
        { accepted } }""")
    return gql


OUT_OF_RANGE = [
    ({"recency": {"activity": "ANY", "withinDays": 739_000}}, "recency: `withinDays`"),
    ({"recency": {"activity": "OPENED", "moreThanDaysAgo": 2**31 - 1}}, "recency: `moreThanDaysAgo`"),
    ({"engagement": {"metric": "OPENS", "comparison": "GTE", "value": 1, "withinDays": 36_501}},
     "engagement: `withinDays`"),
    ({"campaign": {"latest": True, "daysSinceSent": {"comparison": "GTE", "value": -2**31}}},
     "campaign: `daysSinceSent.value`"),
    ({"campaign": {"latest": True, "daysSinceSent": {"comparison": "LT", "value": 2**31 - 1}}},
     "campaign: `daysSinceSent.value`"),
    ({"dateRange": {"field": "renewal", "fromDays": -2**31}}, "dateRange: `fromDays`"),
    ({"dateRange": {"field": "renewal", "toDays": 2**31 - 1}}, "dateRange: `toDays`"),
    ({"dateAnniversary": {"field": "renewal", "window": "NEXT_DAYS", "days": 2**31 - 1}}, "dateAnniversary: `days`"),
    ({"all": [{"leadScore": {"min": 1}}, {"not": {"recency": {"activity": "ANY", "withinDays": 800_000}}}]},
     "all[1].not.recency: `withinDays`"),
]


@pytest.mark.parametrize("rule, names", OUT_OF_RANGE, ids=[n for _, n in OUT_OF_RANGE])
def test_day_counts_out_of_range_are_an_invalid_rule_naming_the_field(dated, rule, names):
    [error] = dated.errors(COUNT, r=rule)
    assert error["extensions"]["code"] == "INVALID_RULE"
    assert error["message"].startswith(names) and "36500 days (100 years)" in error["message"], error["message"]


@pytest.mark.parametrize("rule, count", [
    ({"recency": {"activity": "ANY", "withinDays": 36_500}}, 1),
    ({"recency": {"activity": "ANY", "moreThanDaysAgo": 36_500, "includeNever": False}}, 0),
    ({"engagement": {"metric": "OPENS", "comparison": "EQ", "value": 1, "withinDays": 36_500}}, 1),
    ({"campaign": {"latest": True, "daysSinceSent": {"comparison": "LTE", "value": 36_500}}}, 1),
    ({"campaign": {"latest": True, "daysSinceSent": {"comparison": "GT", "value": -36_500}}}, 1),
    ({"dateRange": {"field": "renewal", "fromDays": -36_500, "toDays": 36_500}}, 1),
    ({"dateAnniversary": {"field": "renewal", "window": "NEXT_DAYS", "days": 36_500}}, 1),
], ids=["recency within", "recency more than", "engagement", "campaign LTE", "campaign GT", "dateRange",
        "dateAnniversary"])
def test_the_largest_day_counts_answer_correctly_whatever_the_as_of(dated, rule, count):
    assert dated.graphql(COUNT, r=rule, a=SEED_AS_OF)["segmentPreview"]["count"] == count
    for as_of in ("1900-01-01T00:00:00Z", "9000-12-31T23:59:59Z"):  # the ends of the instants accepted
        assert dated.graphql(COUNT, r=rule, a=as_of)["segmentPreview"]["count"] in (0, 1)


# -- split weights ---------------------------------------------------------------

SPLIT = """query($id: ID!, $v: [SplitVariantInput!]!) { segment(id: $id) {
  split(variants: $v, seed: "s") { variants { name share count } } } }"""


@pytest.fixture
def hundred(gql):
    contacts = [{"id": f"c{i:03}", "email": f"c{i}@example.com", "leadScore": 50} for i in range(100)]
    gql.graphql("mutation($c: [ContactInput!]!) { upsertContacts(contacts: $c) { accepted } }", c=contacts)
    created = gql.graphql('mutation { createSegment(name: "all", rule: {leadScore: {min: 1}}) { id } }')
    return gql, created["createSegment"]["id"]


def test_split_weights_whose_sum_overflows_are_refused(hundred):
    client, sid = hundred
    [error] = client.errors(SPLIT, id=sid, v=[{"name": "A", "weight": 1e308}, {"name": "B", "weight": 1e308}])
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and "weights must add up to at most" in error["message"]


def test_huge_and_tiny_weights_share_correctly(hundred):
    client, sid = hundred
    variants = client.graphql(SPLIT, id=sid, v=[{"name": "A", "weight": 1e307}, {"name": "B", "weight": 3e307},
                                                {"name": "C", "weight": 5e-324}])["segment"]["split"]["variants"]
    assert [v["share"] for v in variants] == [0.25, 0.75, 0.0]
    assert sum(v["count"] for v in variants) == 100 and 10 < variants[0]["count"] < 40


# -- first: 0 --------------------------------------------------------------------

CONNECTIONS = {
    "segmentPreview": (("query($f: Int) { segmentPreview(rule: {leadScore: {min: 1}}) "
                        "{ contacts(first: $f) { edges { cursor } pageInfo { hasNextPage } } } }"),
                       lambda d: d["segmentPreview"]["contacts"]),
    "Segment.contacts": (("query($id: ID!, $f: Int) { segment(id: $id) { contacts(first: $f) "
                          "{ edges { cursor } pageInfo { hasNextPage } } } }"), lambda d: d["segment"]["contacts"]),
    "segments": ("query($f: Int) { segments(first: $f) { edges { cursor } pageInfo { hasNextPage } } }",
                 lambda d: d["segments"]),
    "SplitVariant.contacts": (("query($id: ID!, $f: Int) { segment(id: $id) { split(variants: [{name: \"A\", "
                               "weight: 1}], seed: 1) { variants { contacts(first: $f) { edges { cursor } "
                               "pageInfo { hasNextPage } } } } } }"),
                              lambda d: d["segment"]["split"]["variants"][0]["contacts"]),
    "Snapshot.memberIds": (("query($s: ID!, $f: Int) { snapshot(id: $s) { memberIds(first: $f) { ids "
                            "pageInfo { hasNextPage } } } }"), lambda d: d["snapshot"]["memberIds"]),
    "SnapshotDiff.entered": (("query($s: ID!, $e: ID!, $f: Int) { snapshotDiff(a: $e, b: $s) { entered(first: $f) "
                              "{ ids pageInfo { hasNextPage } } } }"), lambda d: d["snapshotDiff"]["entered"]),
    "SnapshotDiff.left": (("query($s: ID!, $e: ID!, $f: Int) { snapshotDiff(a: $s, b: $e) { left(first: $f) "
                           "{ ids pageInfo { hasNextPage } } } }"), lambda d: d["snapshotDiff"]["left"]),
}


@pytest.mark.parametrize("name", CONNECTIONS)
def test_first_0_gives_no_items_and_tells_whether_there_are_any(hundred, name):
    client, sid = hundred
    snap = client.graphql('mutation($id: ID!) { snapshotSegment(id: $id, label: "all") { id } }', id=sid)
    empty_segment = client.graphql('mutation { createSegment(name: "none", rule: {leadScore: {max: 0}}) { id } }')
    empty = client.graphql('mutation($id: ID!) { snapshotSegment(id: $id, label: "none") { id } }',
                           id=empty_segment["createSegment"]["id"])
    query, connection = CONNECTIONS[name]
    ids = {"id": sid, "s": snap["snapshotSegment"]["id"], "e": empty["snapshotSegment"]["id"]}
    variables = {k: v for k, v in ids.items() if f"${k}:" in query}
    page = connection(client.graphql(query, **variables, f=0))
    assert (page.get("edges", page.get("ids")), page["pageInfo"]["hasNextPage"]) == ([], True)
    page = connection(client.graphql(query, **variables, f=1))
    assert len(page.get("edges", page.get("ids"))) == 1 and page["pageInfo"]["hasNextPage"]


def test_first_0_of_nothing_says_there_is_nothing(gql):
    page = gql.graphql(CONNECTIONS["segmentPreview"][0], f=0)["segmentPreview"]["contacts"]
    assert page == {"edges": [], "pageInfo": {"hasNextPage": False}}
    assert gql.graphql(CONNECTIONS["segments"][0], f=0)["segments"] == {"edges": [], "pageInfo": {"hasNextPage": False}}


# -- saved segments: rule size and revisions ---------------------------------------

UPDATE = "mutation($id: ID!, $r: RuleInput) { updateSegment(id: $id, rule: $r) { id } }"
REVISIONS = "query($id: ID!) { segment(id: $id) { revisions { name rule savedAt } } }"


def tags_rule(size: int) -> dict:
    """A valid rule of about ``size`` bytes of JSON."""
    per = 900
    return {"tags": {"includesAny": [f"{i:04}" + "x" * (per - 4) for i in range(max(1, size // (per + 3)))]}}


def rule_bytes(rule: dict) -> int:
    return len(json.dumps(rule, separators=(",", ":")).encode())


def test_a_saved_rule_is_at_most_64_kb(gql):
    big, fits = tags_rule(MAX_SAVED_RULE_BYTES + 1000), tags_rule(MAX_SAVED_RULE_BYTES - 1000)
    assert rule_bytes(big) > MAX_SAVED_RULE_BYTES >= rule_bytes(fits)
    create = "mutation($r: RuleInput!) { createSegment(name: \"s\", rule: $r) { id } }"
    [error] = gql.errors(create, r=big)
    assert error["extensions"]["code"] == "INVALID_RULE"
    assert error["message"] == (f"a saved segment's rule may take at most 65,536 bytes as JSON; "
                                f"this one takes {rule_bytes(big):,}")
    sid = gql.graphql(create, r=fits)["createSegment"]["id"]
    assert gql.errors(UPDATE, id=sid, r=big)[0]["extensions"]["code"] == "INVALID_RULE"
    # a preview of the same rule is not saved, so only the request's limits apply
    assert gql.graphql(COUNT, r=big)["segmentPreview"]["count"] == 0


def stored_segment(client, sid: str) -> dict:
    return client.call(client.db.db.segments.find_one, {"workspace_id": client.workspace_id, "id": sid})


def stored_revisions(client, sid: str) -> list[dict]:
    async def read():
        cursor = client.db.db.segment_revisions.find({"workspace_id": client.workspace_id, "segment_id": sid})
        return await cursor.to_list()
    return client.call(read)


def test_revisions_are_stored_apart_and_the_newest_are_kept(gql):
    filler = tags_rule(8000)["tags"]["includesAny"]
    rules = [{"tags": {"includesAny": [f"v{i}", *filler]}} for i in range(Database.SEGMENT_REVISIONS_KEPT + 5)]
    sid = gql.graphql("mutation($r: RuleInput!) { createSegment(name: \"s\", rule: $r) { id } }",
                      r={"leadScore": {"min": 0}})["createSegment"]["id"]
    for rule in rules:
        gql.graphql(UPDATE, id=sid, r=rule)
    revisions = gql.graphql(REVISIONS, id=sid)["segment"]["revisions"]
    assert len(revisions) == Database.SEGMENT_REVISIONS_KEPT
    # oldest first, the newest kept: the rules before the current one, in order
    assert [r["rule"]["tags"]["includesAny"] for r in revisions] == [r["tags"]["includesAny"] for r in rules[4:-1]]
    assert [r["savedAt"] for r in revisions] == sorted({r["savedAt"] for r in revisions})
    segment = stored_segment(gql, sid)  # one rule, however many revisions
    assert "revisions" not in segment and len(bson.encode(segment)) < rule_bytes(rules[-1]) + 1000
    listed = gql.graphql("{ segments { edges { node { id name } } } }")["segments"]["edges"]
    assert [e["node"]["id"] for e in listed] == [sid]
    assert gql.graphql("mutation($id: ID!) { deleteSegment(id: $id) }", id=sid)["deleteSegment"]
    assert stored_revisions(gql, sid) == []


def test_revisions_of_an_earlier_version_move_out_once_even_if_a_move_was_cut_short(gql):
    """Segments used to keep their revisions in their own document. Asked
    for, they are moved to their collection; a move cut short (some stored,
    the list still in the segment) is completed without duplicates."""
    sid = gql.graphql('mutation { createSegment(name: "v3", rule: {leadScore: {min: 3}}) { id updatedAt } }'
                      )["createSegment"]["id"]
    segment = stored_segment(gql, sid)
    old = [{"name": f"v{i}", "rule": {"leadScore": {"min": i}}, "savedAt": segment["createdAt"].replace(year=2020 + i)}
           for i in range(3)]
    gql.call(gql.db.db.segments.update_one, {"workspace_id": gql.workspace_id, "id": sid},
             {"$set": {"revisions": old}})
    gql.call(gql.db.db.segment_revisions.insert_one,
             {"workspace_id": gql.workspace_id, "segment_id": sid, **old[1]})  # as if a move was killed
    # reading segments never reads the old list
    assert "revisions" not in gql.call(gql.db.segment, gql.workspace_id, sid)
    assert all("revisions" not in s for s in gql.call(gql.db.segments_page, gql.workspace_id, None, 10))
    for _ in range(2):
        revisions = gql.graphql(REVISIONS, id=sid)["segment"]["revisions"]
        assert [(r["name"], r["rule"]) for r in revisions] == [(o["name"], o["rule"]) for o in old]
    assert "revisions" not in stored_segment(gql, sid) and len(stored_revisions(gql, sid)) == 3
    gql.graphql(UPDATE, id=sid, r={"leadScore": {"min": 4}})
    assert [r["name"] for r in gql.graphql(REVISIONS, id=sid)["segment"]["revisions"]] == ["v0", "v1", "v2", "v3"]


def test_revisions_belong_to_their_workspace(gql, http):
    from .conftest import new_workspace

    other = new_workspace(http)
    sid = gql.graphql('mutation { createSegment(name: "mine", rule: {leadScore: {min: 1}}) { id } }'
                      )["createSegment"]["id"]
    gql.graphql(UPDATE, id=sid, r={"leadScore": {"min": 2}})
    assert other.call(other.db.segment_revisions, other.workspace_id, sid) == []
    assert len(gql.call(gql.db.segment_revisions, gql.workspace_id, sid)) == 1


@pytest.mark.parametrize("bound", ["after", "before"])
@pytest.mark.parametrize("instant", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59Z"])
def test_date_range_instants_outside_the_supported_range_are_invalid_rules(gql, bound, instant):
    gql.define_fields({"renews_on": "DATE"})
    error = gql.errors("query($r: RuleInput!) { segmentPreview(rule: $r) { count } }",
                       r={"dateRange": {"field": "renews_on", bound: instant}})[0]
    assert error["extensions"]["code"] == "INVALID_RULE"
    assert f"dateRange.{bound}" in error["message"] or bound in error["message"]
    assert "outside the supported range" in error["message"]
