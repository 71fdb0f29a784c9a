"""Exporting members: every member of a saved segment or snapshot, in id order,
as NDJSON or CSV, streamed over HTTP (``/v1/.../members.<format>``) and
written by ``segmentql export``."""

import csv
import datetime as dt
import io
import json
import random
import tracemalloc

import pytest
from starlette.testclient import TestClient

from segmentql.app import create_app
from segmentql.server import datagen, segments
from segmentql.server.embedded import uri_for_port
from segmentql.server.export import LIST_SEPARATOR

from .conftest import free_port, new_workspace, segmentql
from .shard_check import CHECK
from .test_bounded import store_snapshot
from .test_outage import _start as start_database

CONTACTS = "mutation($c: [ContactInput!]!) { upsertContacts(contacts: $c) { accepted errors { message } } }"
SEGMENT = "mutation($n: String!, $r: RuleInput!) { createSegment(name: $n, rule: $r) { id count } }"
SNAPSHOT = 'mutation($id: ID!) { snapshotSegment(id: $id, label: "send") { id size } }'
DELETE = "mutation($ids: [ID!]!) { deleteContacts(ids: $ids) { accepted } }"
FIELDS = {"plan": "TEXT", "interests": "MULTI_SELECT", "renewal": "DATE", "vip": "BOOLEAN", "ltv": "NUMBER"}
DEFAULT = ["id", "email", "country", "timezone", "tags", "leadScore"]
HOT = {"leadScore": {"min": 50}}
PEOPLE = [  # written out of id order; "d" is cold, "e" has no country, tags or custom values
    {"id": "c", "email": "c@example.io", "leadScore": 70, "tags": ["vip", "beta"], "country": "DE",
     "timezone": "Europe/Berlin",
     "customFields": {"plan": 'pro, "annual"\nrenewing', "interests": ["sms", "analytics"],
                      "renewal": "2027-01-31", "vip": True, "ltv": 1234.5}},
    {"id": "a", "email": "zoë@example.io", "leadScore": 90, "customFields": {"plan": "free", "vip": False, "ltv": 7}},
    {"id": "d", "email": "d@example.io", "leadScore": 10},
    {"id": "b", "email": "b@example.io", "leadScore": 55, "tags": ["newsletter"]},
    {"id": "e", "email": "e@example.io", "leadScore": 99},
]


@pytest.fixture(scope="module")
def crm(http):
    """A workspace with custom fields, five contacts and the segment of the hot ones (a, b, c, e)."""
    client = new_workspace(http)
    client.define_fields(FIELDS)
    assert client.graphql(CONTACTS, c=PEOPLE)["upsertContacts"] == {"accepted": 5, "errors": []}
    client.segment_id = client.graphql(SEGMENT, n="hot", r=HOT)["createSegment"]["id"]
    client.name = client.call(client.db.workspace, client.workspace_id).name
    return client


def get(client, path: str, key: str | None = None, **params):
    headers = {} if key == "" else {"Authorization": f"Bearer {key or client.key}"}
    return client.http.get(path, params=params, headers=headers)


def ndjson(response) -> list[dict]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-ndjson"
    *lines, end = response.text.split("\n")
    assert end == ""  # every line ends with a newline
    return [json.loads(line) for line in lines]


def table(response) -> list[list[str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    return list(csv.reader(io.StringIO(response.text, newline="")))


def refusal(response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": code}
    return error["message"]


def segment_url(client, fmt="ndjson"):
    return f"/v1/segments/{client.segment_id}/members.{fmt}"


# -- content --------------------------------------------------------------------

def test_ndjson_has_every_member_in_id_order_with_the_default_fields(crm):
    response = get(crm, segment_url(crm))
    assert response.headers["content-disposition"] == f'attachment; filename="segment-{crm.segment_id}.ndjson"'
    rows = ndjson(response)
    assert [r["id"] for r in rows] == ["a", "b", "c", "e"]
    assert all(list(r) == [*DEFAULT, "custom"] for r in rows)
    assert all(list(r["custom"]) == sorted(FIELDS) for r in rows)  # every declared field, absent ones null
    assert rows[2] == {"id": "c", "email": "c@example.io", "country": "DE", "timezone": "Europe/Berlin",
                       "tags": ["vip", "beta"], "leadScore": 70,
                       "custom": {"interests": ["sms", "analytics"], "ltv": 1234.5, "plan": 'pro, "annual"\nrenewing',
                                  "renewal": "2027-01-31T00:00:00.000Z", "vip": True}}
    assert rows[0]["email"] == "zoë@example.io" and rows[0]["custom"]["interests"] is None
    assert rows[3] == {"id": "e", "email": "e@example.io", "country": None, "timezone": None, "tags": [],
                       "leadScore": 99, "custom": dict.fromkeys(sorted(FIELDS))}


def test_csv_has_a_header_then_one_quoted_row_per_member(crm):
    response = get(crm, segment_url(crm, "csv"))
    assert response.headers["content-disposition"] == f'attachment; filename="segment-{crm.segment_id}.csv"'
    header, *rows = table(response)
    assert header == [*DEFAULT, *(f"custom.{key}" for key in sorted(FIELDS))]
    assert [r[0] for r in rows] == ["a", "b", "c", "e"]
    assert rows[2] == ["c", "c@example.io", "DE", "Europe/Berlin", f"vip{LIST_SEPARATOR}beta", "70",
                       f"sms{LIST_SEPARATOR}analytics", "1234.5", 'pro, "annual"\nrenewing', "2027-01-31T00:00:00.000Z",
                       "true"]
    assert rows[0] == ["a", "zoë@example.io", "", "", "", "90", "", "7", "free", "", "false"]  # nulls are empty


def test_fields_choose_the_columns_and_their_order(crm):
    fields = "email,custom.plan,createdAt,id,updatedAt"
    rows = ndjson(get(crm, segment_url(crm), fields=fields))
    assert [list(r) for r in rows] == [["email", "createdAt", "id", "updatedAt", "custom"]] * 4
    assert rows[1]["custom"] == {"plan": None} and rows[0]["custom"] == {"plan": "free"}
    created = dt.datetime.fromisoformat(rows[0]["createdAt"])
    assert rows[0]["createdAt"].endswith("Z") and created.utcoffset() == dt.timedelta(0)
    header, *lines = table(get(crm, segment_url(crm, "csv"), fields=fields))
    assert header == fields.split(",")
    assert [line[:3] for line in lines] == [[r["email"], r["custom"]["plan"] or "", r["createdAt"]] for r in rows]
    assert [r["id"] for r in ndjson(get(crm, segment_url(crm), fields=" id , leadScore "))] == ["a", "b", "c", "e"]


def test_a_snapshot_exports_its_frozen_members_skipping_those_deleted_since(http):
    client = new_workspace(http)
    client.graphql(CONTACTS, c=[{"id": f"s{i}", "email": f"s{i}@example.io", "leadScore": 60} for i in range(3)])
    segment_id = client.graphql(SEGMENT, n="warm", r=HOT)["createSegment"]["id"]
    snapshot = client.graphql(SNAPSHOT, id=segment_id)["snapshotSegment"]
    client.graphql(CONTACTS, c=[{"id": "s3", "email": "s3@example.io", "leadScore": 80}])  # after the snapshot
    client.graphql(DELETE, ids=["s1"])
    response = get(client, f"/v1/snapshots/{snapshot['id']}/members.ndjson", fields="id")
    assert response.headers["content-disposition"] == f'attachment; filename="snapshot-{snapshot["id"]}.ndjson"'
    assert snapshot["size"] == 3 and ndjson(response) == [{"id": "s0"}, {"id": "s2"}]
    assert table(get(client, f"/v1/snapshots/{snapshot['id']}/members.csv", fields="id,email")) == [
        ["id", "email"], ["s0", "s0@example.io"], ["s2", "s2@example.io"]]
    assert [r["id"] for r in ndjson(get(client, f"/v1/segments/{segment_id}/members.ndjson"))] == ["s0", "s2", "s3"]


def test_a_segment_with_no_stored_members_yet_exports_its_rules_members(crm):
    """A segment saved by an earlier version, before memberships were stored."""
    workspace = crm.call(crm.db.workspace, crm.workspace_id)
    legacy = crm.call(segments.create_segment, crm.db, crm.http.app.state.segmentql.registry, workspace, "legacy",
                      {"leadScore": {"min": 60}})
    assert "membership" not in crm.call(crm.db.segment, crm.workspace_id, legacy["id"])
    rows = ndjson(get(crm, f"/v1/segments/{legacy['id']}/members.ndjson", fields="id,leadScore"))
    assert rows == [{"id": "a", "leadScore": 90}, {"id": "c", "leadScore": 70}, {"id": "e", "leadScore": 99}]


# -- refusals -------------------------------------------------------------------

def test_unknown_or_foreign_ids_are_not_found(crm, gql):
    message = refusal(get(crm, "/v1/segments/no-such-segment/members.csv"), 404, "NOT_FOUND")
    assert "'no-such-segment'" in message
    message = refusal(get(crm, "/v1/snapshots/no-such-snapshot/members.ndjson"), 404, "NOT_FOUND")
    assert "'no-such-snapshot'" in message
    # another workspace's segment does not exist for this key
    assert crm.segment_id in refusal(get(gql, segment_url(crm)), 404, "NOT_FOUND")


def test_an_unknown_format_is_not_found(crm):
    message = refusal(get(crm, segment_url(crm, "xlsx")), 404, "NOT_FOUND")
    assert "'xlsx'" in message and "ndjson" in message and "csv" in message


@pytest.mark.parametrize("fields, named", [
    ("id,nope", "'nope'"),
    ("id,custom.undeclared", "custom field 'undeclared' is not declared"),
    ("stats", "'stats'"),
    ("", "empty field name"),
    ("id,,email", "empty field name"),
])
def test_bad_fields_are_refused_naming_the_field_and_listing_the_allowed_ones(crm, fields, named):
    message = refusal(get(crm, segment_url(crm, "csv"), fields=fields), 400, "BAD_USER_INPUT")
    assert named in message
    assert "id, email, country, timezone, tags, leadScore, createdAt, updatedAt, custom.interests" in message


def test_a_field_named_twice_is_refused(crm):
    message = refusal(get(crm, segment_url(crm), fields="id,email,id"), 400, "BAD_USER_INPUT")
    assert message == "`fields` names 'id' twice"


@pytest.mark.parametrize("key", ["", "sq_not-a-key"])
def test_a_missing_or_wrong_key_is_unauthenticated(crm, key):
    response = get(crm, segment_url(crm), key=key)
    refusal(response, 401, "UNAUTHENTICATED")
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_exports_answer_503_while_the_database_is_down(tmp_path, settings, registry):
    port = free_port()
    database = start_database(port, tmp_path / "db")
    try:
        with TestClient(create_app(settings, uri_for_port(port), registry)) as http:
            client = new_workspace(http)
            client.graphql(CONTACTS, c=PEOPLE[:1])
            segment_id = client.graphql(SEGMENT, n="hot", r=HOT)["createSegment"]["id"]
            database.terminate()
            database.wait(timeout=30)
            refusal(get(client, f"/v1/segments/{segment_id}/members.csv"), 503, "DATABASE_UNAVAILABLE")
    finally:
        database.terminate()
        database.wait(timeout=30)


# -- the command line -------------------------------------------------------------

def test_the_command_writes_what_the_api_streams_to_stdout_or_a_file(crm, cli_env, tmp_path):
    done = segmentql("export", "--workspace", crm.name, "--segment", crm.segment_id, env=cli_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == get(crm, segment_url(crm)).text and done.stderr == ""  # no progress off a terminal
    out = tmp_path / "hot.csv"
    done = segmentql("export", "--workspace", crm.name, "--segment", crm.segment_id, "--format", "csv",
                     "--fields", "id,custom.interests,createdAt", "--out", str(out), env=cli_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and [p.name for p in tmp_path.iterdir()] == ["hot.csv"]
    assert out.read_bytes() == get(crm, segment_url(crm, "csv"), fields="id,custom.interests,createdAt").content


@pytest.mark.parametrize("change, named", [
    ({"--workspace": "no-such-workspace"}, "no workspace named 'no-such-workspace'"),
    ({"--segment": "no-such-segment"}, "no segment with id 'no-such-segment'"),
    ({"--fields": "id,custom.nope"}, "custom field 'nope' is not declared"),
], ids=["workspace", "segment", "field"])
def test_the_command_refuses_bad_input_in_one_line(crm, cli_env, tmp_path, change, named):
    given = {"--workspace": crm.name, "--segment": crm.segment_id, "--out": str(tmp_path / "x.ndjson"), **change}
    done = segmentql("export", *(part for pair in given.items() for part in pair), env=cli_env)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and named in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


# -- streaming ------------------------------------------------------------------------

BULK = 20_000


def streamed(client, path: str) -> dict:
    """Read an export piece by piece, keeping none: the contacts read (by
    ``find``) when the first piece arrived and in all, the body's size and
    lines, its first and last rows, and the peak memory it took."""
    finds = CHECK.seen.get("find", 0)
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        with client.http.stream("GET", path, headers={"Authorization": f"Bearer {client.key}"}) as response:
            assert response.status_code == 200
            pieces = response.iter_bytes()
            first = next(pieces)
            seen = {"finds_at_first": CHECK.seen.get("find", 0) - finds, "first": json.loads(first.split(b"\n")[0]),
                    "size": len(first), "lines": first.count(b"\n"), "last": first}
            for piece in pieces:
                seen["size"] += len(piece)
                seen["lines"] += piece.count(b"\n")
                seen["last"] = piece
        seen["peak"] = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    seen["finds"] = CHECK.seen.get("find", 0) - finds
    seen["last"] = json.loads(seen["last"].rsplit(b"\n", 2)[-2])
    return seen


def test_a_large_export_streams_in_flat_memory(http, tmp_path):
    """20,000 generated contacts exported in full: the first piece arrives once
    the first batch of contacts is read (of 20), and the peak memory is that
    of exporting 2,000. (Through snapshots: saving a segment of 20,000 stores
    each member, half a minute here; its export reads them the same way, a
    batch per round trip.)"""
    rng, as_of = random.Random(5), dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC)
    (tmp_path / "fields.json").write_text(json.dumps([{"key": k, "type": t} for k, t in datagen.FIELDS.items()]))
    (tmp_path / "contacts.ndjson").write_text("".join(
        json.dumps(datagen.make_contact(rng, i, as_of)) + "\n" for i in range(BULK)))
    client = new_workspace(http)
    client.import_directory(tmp_path)
    ids = [f"c{i:07d}" for i in range(BULK)]
    small = streamed(client, f"/v1/snapshots/{store_snapshot(client, ids[:BULK // 10])}/members.ndjson")
    large = streamed(client, f"/v1/snapshots/{store_snapshot(client, ids)}/members.ndjson")
    assert (large["lines"], large["first"]["id"], large["last"]["id"]) == (BULK, ids[0], ids[-1])
    assert large["finds_at_first"] <= 2 and large["finds"] >= BULK // 1000
    assert large["size"] > 9 * small["size"] and large["peak"] < 1.5 * small["peak"], (small, large)
