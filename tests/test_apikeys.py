"""API keys with scopes (README, "Keys"): READ keys query, WRITE keys also
write, ADMIN keys also manage keys and webhooks; revoked and expired keys are
refused at once; the command line issues, lists and revokes them.

Every request is real HTTP to the app on the session's embedded database;
commands run as child processes."""

import asyncio
import datetime as dt
import os
import subprocess
import sys
import time

import pytest

from segmentql.cli import demo_key
from segmentql.schema import build_schema
from segmentql.schema.scopes import ADMIN_FIELDS
from segmentql.server.database import ROLLUP_LAYOUT, hash_key, new_key

from .conftest import GraphQLClient, segmentql, unique

CREATE_KEY = """mutation($name: String!, $scope: ApiKeyScope!, $expiresAt: DateTime) {
  createApiKey(name: $name, scope: $scope, expiresAt: $expiresAt) {
    secret apiKey { id name prefix scope createdAt lastUsedAt expiresAt } } }"""
KEYS = "{ apiKeys { id name prefix scope createdAt lastUsedAt expiresAt } }"
REVOKE = "mutation($id: ID!) { revokeApiKey(id: $id) }"
CONTACTS = "mutation($c: [ContactInput!]!) { upsertContacts(contacts: $c) { accepted } }"
CONTACT = 'query { contact(id: "c1") { id } }'
SEGMENT = 'mutation { createSegment(name: "hot", rule: {leadScore: {min: 75}}) { id } }'
WEBHOOK = 'mutation { createWebhook(url: "http://127.0.0.1:9/hook") { secret } }'
READ_QUERY = "{ segments { edges { node { id } } } conditionTypes { field } }"


def issue(admin: GraphQLClient, scope: str, name: str = "test", expires_at: str | None = None
          ) -> tuple[GraphQLClient, dict]:
    """A client with a new key of ``scope`` (made by ``admin``), and the key as createApiKey returned it."""
    made = admin.graphql(CREATE_KEY, name=name, scope=scope, expiresAt=expires_at)["createApiKey"]
    return GraphQLClient(admin.http, made["secret"], admin.workspace_id), made["apiKey"]


def forbidden(client: GraphQLClient, query: str, **variables) -> dict:
    """The one error of a request the key's scope refuses (its extensions included)."""
    body = client.post(query, variables)
    assert body["data"] is None and len(body["errors"]) == 1, body
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body
    return body["errors"][0]


def in_a_moment(seconds: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)).isoformat()


def test_the_key_of_a_new_workspace_is_admin(gql):
    [key] = gql.graphql(KEYS)["apiKeys"]
    assert key["scope"] == "ADMIN" and key["name"] == "default" and key["prefix"] == gql.key[:8]


def test_a_read_key_queries_but_nothing_it_sends_mutates(gql):
    reader, _ = issue(gql, "READ")
    assert reader.graphql(READ_QUERY) == {"segments": {"edges": []}, "conditionTypes": gql.graphql(
        "{ conditionTypes { field } }")["conditionTypes"]}
    error = forbidden(reader, CONTACTS, c=[{"id": "c1", "email": "c1@example.com"}])
    assert error["extensions"]["requiredScope"] == "WRITE"
    assert error["message"] == "this API key's scope is READ; `upsertContacts` needs a key of scope WRITE"
    # Inside fragments too, and with an allowed field beside: the request is refused whole.
    error = forbidden(reader, """mutation { ...Write } fragment Write on Mutation {
        ... on Mutation { createSegment(name: "hot", rule: {leadScore: {min: 75}}) { id } } __typename }""")
    assert "`createSegment`" in error["message"]
    assert gql.graphql(CONTACT)["contact"] is None
    assert gql.graphql("{ segments { edges { node { id } } } }")["segments"]["edges"] == []


def test_a_read_key_exports_members(gql):
    segment = gql.graphql(SEGMENT)["createSegment"]["id"]
    reader, _ = issue(gql, "READ")
    response = gql.http.get(f"/v1/segments/{segment}/members.ndjson", headers={"Authorization": f"Bearer {reader.key}"})
    assert response.status_code == 200 and response.text == ""


def test_a_read_key_subscribes(gql):
    gql.graphql(SEGMENT)
    gql.graphql(CONTACTS, c=[{"id": "a", "email": "a@x.io", "leadScore": 90},
                             {"id": "b", "email": "b@x.io", "leadScore": 95}])
    changes = gql.graphql('{ segments { edges { node { changes { edges { cursor node { contactId } } } } } } }')
    [first, second] = changes["segments"]["edges"][0]["node"]["changes"]["edges"]
    reader, _ = issue(gql, "READ")
    with gql.http.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as socket:
        socket.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {reader.key}"}})
        assert socket.receive_json() == {"type": "connection_ack"}
        socket.send_json({"id": "1", "type": "subscribe", "payload": {
            "query": "subscription($after: String) { segmentChanges(after: $after) { contactId change } }",
            "variables": {"after": first["cursor"]}}})
        assert socket.receive_json() == {"id": "1", "type": "next", "payload": {"data": {"segmentChanges": {
            "contactId": second["node"]["contactId"], "change": "ENTERED"}}}}


def test_a_write_key_writes_but_cannot_manage_keys_or_webhooks(gql):
    writer, _ = issue(gql, "WRITE")
    assert writer.graphql(CONTACTS, c=[{"id": "c1", "email": "c1@example.com"}])["upsertContacts"]["accepted"] == 1
    assert writer.graphql(SEGMENT)["createSegment"]["id"]
    for refused in (KEYS, "{ webhooks { id } }", WEBHOOK, 'mutation { revokeApiKey(id: "x") }'):
        assert forbidden(writer, refused)["extensions"]["requiredScope"] == "ADMIN", refused
    error = forbidden(writer, CREATE_KEY, name="escalate", scope="ADMIN")
    assert error["message"] == "this API key's scope is WRITE; `createApiKey` needs a key of scope ADMIN"
    assert len(gql.graphql(KEYS)["apiKeys"]) == 2 and gql.graphql("{ webhooks { id } }")["webhooks"] == []


def test_an_admin_key_manages_keys_and_webhooks(gql):
    admin, _ = issue(gql, "ADMIN")
    assert admin.graphql(WEBHOOK)["createWebhook"]["secret"].startswith("whsec_")
    _reader, key = issue(admin, "READ", name="dashboard")
    assert [k["name"] for k in admin.graphql(KEYS)["apiKeys"]] == ["default", "test", "dashboard"]
    assert admin.graphql(REVOKE, id=key["id"]) == {"revokeApiKey": True}


def test_api_keys_lists_keys_without_their_secrets(gql):
    _client, made = issue(gql, "WRITE", name="importer", expires_at="2099-01-01T00:00:00Z")
    secret = _client.key
    assert secret.startswith("sq_") and made["prefix"] == secret[:8] and made["lastUsedAt"] is None
    assert made["expiresAt"] == "2099-01-01T00:00:00.000Z" and made["scope"] == "WRITE"
    response = gql.request(KEYS)
    assert secret not in response.text and gql.key not in response.text
    listed = response.json()["data"]["apiKeys"]
    assert [k["prefix"] for k in listed] == [gql.key[:8], secret[:8]]
    assert listed[1] == made


def test_a_revoked_key_is_refused_at_once(gql):
    reader, key = issue(gql, "READ")
    assert reader.request(READ_QUERY).status_code == 200
    assert gql.graphql(REVOKE, id=key["id"]) == {"revokeApiKey": True}
    response = reader.request(READ_QUERY)
    assert response.status_code == 401 and response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert gql.http.get("/v1/segments/x/members.csv", headers={"Authorization": f"Bearer {reader.key}"}
                        ).status_code == 401
    assert key["id"] not in [k["id"] for k in gql.graphql(KEYS)["apiKeys"]]
    assert gql.graphql(REVOKE, id=key["id"]) == {"revokeApiKey": False}  # already revoked
    assert gql.graphql(REVOKE, id="no-such-key") == {"revokeApiKey": False}


def test_a_key_may_revoke_itself(gql):
    admin, key = issue(gql, "ADMIN")
    assert admin.graphql(REVOKE, id=key["id"]) == {"revokeApiKey": True}
    assert admin.request(READ_QUERY).status_code == 401


def test_another_workspace_cannot_revoke_a_key(http, gql):
    reader, key = issue(gql, "READ")
    doc, secret = http.portal.call(gql.db.create_workspace, unique("ws"))
    stranger = GraphQLClient(http, secret, doc["_id"])
    assert stranger.graphql(REVOKE, id=key["id"]) == {"revokeApiKey": False}
    assert [k["name"] for k in stranger.graphql(KEYS)["apiKeys"]] == ["default"]
    assert reader.request(READ_QUERY).status_code == 200


def test_an_expired_key_is_refused(gql):
    reader, _ = issue(gql, "READ", expires_at=in_a_moment(1.5))
    assert reader.request(READ_QUERY).status_code == 200
    time.sleep(1.6)
    assert reader.request(READ_QUERY).status_code == 401
    assert len(gql.graphql(KEYS)["apiKeys"]) == 2  # listed (with its past expiresAt) until revoked


@pytest.mark.parametrize("name, expires_at, says", [
    ("", None, "`name` must be 1 to 100"), (" " * 3, None, "`name` must be 1 to 100"),
    ("x" * 101, None, "`name` must be 1 to 100"), ("late", "2020-01-01T00:00:00Z", "`expiresAt` must be in the future"),
])
def test_bad_arguments_are_refused(gql, name, expires_at, says):
    [error] = gql.errors(CREATE_KEY, name=name, scope="READ", expiresAt=expires_at)
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and says in error["message"]
    assert len(gql.graphql(KEYS)["apiKeys"]) == 1


def test_a_workspace_has_at_most_100_valid_keys(gql):
    many = "mutation { " + " ".join(f'k{i}: createApiKey(name: "k{i}", scope: READ) {{ apiKey {{ id }} }}'
                                    for i in range(25)) + " }"
    for _ in range(3):
        gql.graphql(many)
    tail = "mutation { " + " ".join(f'k{i}: createApiKey(name: "k{i}", scope: READ) {{ apiKey {{ id }} }}'
                                    for i in range(24)) + " }"
    gql.graphql(tail)
    [error] = gql.errors(CREATE_KEY, name="one too many", scope="READ")
    assert error["extensions"]["code"] == "LIMIT_EXCEEDED" and "revoke one first" in error["message"]
    keys = gql.graphql(KEYS)["apiKeys"]
    assert len(keys) == 100
    assert gql.graphql(REVOKE, id=keys[-1]["id"]) == {"revokeApiKey": True}
    assert gql.graphql(CREATE_KEY, name="room again", scope="READ")["createApiKey"]["secret"]


def test_last_used_at_is_noted(gql):
    reader, key = issue(gql, "READ")
    assert key["lastUsedAt"] is None
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    reader.graphql(READ_QUERY)
    deadline = time.monotonic() + 10
    while (used := next(k for k in gql.graphql(KEYS)["apiKeys"] if k["id"] == key["id"])["lastUsedAt"]) is None:
        assert time.monotonic() < deadline, "lastUsedAt was never set"
        time.sleep(0.05)
    assert dt.datetime.fromisoformat(used) >= before
    reader.graphql(READ_QUERY)  # within the minute: not written again
    time.sleep(0.2)
    assert next(k for k in gql.graphql(KEYS)["apiKeys"] if k["id"] == key["id"])["lastUsedAt"] == used


def test_every_admin_field_is_a_field_of_the_schema(registry):
    schema = build_schema(registry)._schema
    fields = set(schema.query_type.fields) | set(schema.mutation_type.fields)
    managing_access = {"apiKeys", "createApiKey", "revokeApiKey", "webhooks", "createWebhook", "updateWebhook",
                       "deleteWebhook", "rotateWebhookSecret", "redeliverWebhook"}
    assert managing_access == ADMIN_FIELDS and fields >= ADMIN_FIELDS


# --- the command line ---------------------------------------------------------------------------------------


def keys_listed(name: str, env: dict) -> list[dict]:
    done = segmentql("workspace", "keys", name, env=env)
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    columns = header.split("\t")
    assert columns == ["id", "name", "prefix", "scope", "created", "last used", "expires"]
    return [dict(zip(columns, row.split("\t"), strict=True)) for row in rows]


def test_cli_issues_lists_and_revokes_keys(cli_workspace, cli_env):
    name, admin = cli_workspace
    done = segmentql("workspace", "key", name, "--scope", "READ", "--name", "reports", "--expires",
                     "2099-01-01T00:00:00Z", env=cli_env)
    assert done.returncode == 0, done.stderr
    secret = done.stdout.strip().splitlines()[-1]
    assert secret.startswith("sq_") and "READ" in done.stderr
    reader = GraphQLClient(admin.http, secret, admin.workspace_id)
    assert reader.graphql(READ_QUERY)["segments"] == {"edges": []}
    assert forbidden(reader, CONTACTS, c=[{"id": "c1", "email": "c1@example.com"}])

    listed = keys_listed(name, cli_env)
    assert [(k["name"], k["scope"]) for k in listed] == [("default", "ADMIN"), ("reports", "READ")]
    reports = listed[1]
    assert reports["prefix"] == secret[:8] and reports["expires"] == "2099-01-01T00:00:00Z"
    assert reports["created"].endswith("Z") and reports["last used"] != "-"  # the query above used it
    assert secret not in segmentql("workspace", "keys", name, env=cli_env).stdout

    done = segmentql("workspace", "revoke", name, reports["id"], env=cli_env)
    assert done.returncode == 0, done.stderr
    assert reader.request(READ_QUERY).status_code == 401
    assert [k["name"] for k in keys_listed(name, cli_env)] == ["default"]
    again = segmentql("workspace", "revoke", name, reports["id"], env=cli_env)
    assert again.returncode == 1 and "no key" in again.stderr and "Traceback" not in again.stderr


def test_cli_key_defaults_to_admin_as_before(cli_workspace, cli_env):
    name, admin = cli_workspace
    done = segmentql("workspace", "key", name, env=cli_env)
    assert done.returncode == 0, done.stderr
    issued = GraphQLClient(admin.http, done.stdout.strip().splitlines()[-1], admin.workspace_id)
    assert issued.graphql(KEYS)["apiKeys"][-1]["name"] == "cli"


@pytest.mark.parametrize("args, says", [
    (["--expires", "2020-01-01T00:00:00Z"], "`expiresAt` must be in the future"),
    (["--expires", "soon"], "--expires: expected a date"),
    (["--name", ""], "must be 1 to 100 characters"),
])
def test_cli_refuses_bad_keys_in_one_line(cli_workspace, cli_env, args, says):
    name, _admin = cli_workspace
    done = segmentql("workspace", "key", name, *args, env=cli_env)
    assert done.returncode == 1 and says in done.stderr and "Traceback" not in done.stderr
    assert len(keys_listed(name, cli_env)) == 1


def test_cli_key_commands_name_a_missing_workspace(cli_env):
    for args in (["key", "nope-no-such"], ["keys", "nope-no-such"], ["revoke", "nope-no-such", "x"]):
        done = segmentql("workspace", *args, env=cli_env)
        assert done.returncode == 1 and "no workspace named 'nope-no-such'" in done.stderr, args


def test_cli_refuses_an_unknown_scope(cli_workspace, cli_env):
    done = segmentql("workspace", "key", cli_workspace[0], "--scope", "ROOT", env=cli_env)
    assert done.returncode == 2 and "invalid choice: 'ROOT'" in done.stderr


# --- keys of earlier versions, and the demo's key ----------------------------------------------------------------


def test_a_key_stored_the_old_way_keeps_working_as_admin(http, cli_env):
    """Earlier versions kept hashes in ``workspaces.keys``; starting (any
    command, or the service) copies them, once, even when two start at once."""
    db = http.app.state.segmentql.db
    name, secret, workspace_id = unique("old"), new_key(), unique("wsid")
    http.portal.call(db.db.workspaces.insert_one, {
        "_id": workspace_id, "name": name, "keys": [hash_key(secret)], "createdAt": dt.datetime.now(dt.UTC),
        "rollupLayout": ROLLUP_LAYOUT, "settledSeq": 0})
    starting = [subprocess.Popen([sys.executable, "-m", "segmentql.cli", "workspace", "keys", name], env=cli_env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for process in starting:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        assert [row.split("\t")[1:4] for row in out.splitlines()[1:]] == [["legacy", "-", "ADMIN"]]
    legacy = GraphQLClient(http, secret, workspace_id)
    [listed] = legacy.graphql(KEYS)["apiKeys"]
    assert listed["name"] == "legacy" and listed["prefix"] is None and listed["scope"] == "ADMIN"
    assert legacy.graphql(CREATE_KEY, name="new", scope="READ")["createApiKey"]["secret"]
    stored = http.portal.call(db.workspace_by_name, name)
    assert stored["keys"] == [hash_key(secret)]  # kept for processes of the earlier version (a rolling upgrade)
    assert legacy.graphql(REVOKE, id=listed["id"]) == {"revokeApiKey": True}
    assert legacy.request(READ_QUERY).status_code == 401
    again = segmentql("workspace", "keys", name, env=cli_env)  # another start-up: a revoked key stays revoked
    assert again.returncode == 0 and "legacy" not in again.stdout
    assert legacy.request(READ_QUERY).status_code == 401


def test_the_demo_reuses_its_key_while_it_is_valid(gql, tmp_path):
    path = tmp_path / "data" / "demo-key"

    def key() -> str:
        return gql.call(demo_key, gql.db, gql.workspace_id, path)

    first = key()
    assert path.read_text().strip() == first and os.stat(path).st_mode & 0o777 == 0o600
    assert key() == first and GraphQLClient(gql.http, first, gql.workspace_id).request(READ_QUERY).status_code == 200
    assert [k["name"] for k in gql.graphql(KEYS)["apiKeys"]] == ["default", "demo"]
    gql.graphql(REVOKE, id=gql.graphql(KEYS)["apiKeys"][1]["id"])
    second = key()
    assert second != first and path.read_text().strip() == second
    other, _ = gql.call(gql.db.create_workspace, unique("ws"))
    path.write_text(gql.key + "\n")  # a valid key, but of another workspace than the demo's: not taken
    assert gql.call(demo_key, gql.db, other["_id"], path) != gql.key


def test_concurrent_starts_move_each_old_key_once(http):
    """Two processes' start-ups at once (here: two ``ensure_indexes`` of one process) store one document per key."""
    db = http.app.state.segmentql.db
    secret, workspace_id = new_key(), unique("wsid")
    http.portal.call(db.db.workspaces.insert_one, {
        "_id": workspace_id, "name": unique("old"), "keys": [hash_key(secret)], "createdAt": dt.datetime.now(dt.UTC),
        "rollupLayout": ROLLUP_LAYOUT, "settledSeq": 0})

    async def both() -> None:
        await asyncio.gather(db.ensure_indexes(), db.ensure_indexes())
    http.portal.call(both)
    assert http.portal.call(db.db.api_keys.count_documents, {"hash": hash_key(secret)}) == 1
    assert http.portal.call(db.workspace_for_key, secret).id == workspace_id
