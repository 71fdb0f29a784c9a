"""Webhooks (issue 17): managed over GraphQL, their changes POSTed as signed
JSON batches to real receiver processes on loopback, at least once, in log
order, retried with backoff, and bounded: redirects are not followed, a slow
receiver cannot stall the others, a failing one keeps a fixed number of
attempts. A service or receiver killed mid-delivery: tests/test_webhooks_lifecycle.py.

Most tests use the session's in-process app (its dispatcher allows loopback
receivers, retries first after 100 ms and waits 2 s for an answer). What
needs other settings runs a ``segmentql serve`` child on a database of its
own: on the session's, its dispatcher would take up the session's webhooks
too, with its settings."""

import contextlib
import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from segmentql.server.cursors import change_cursor, change_position
from segmentql.server.database import now

from .conftest import GraphQLClient, free_port, segmentql, serving, unique
from .test_live import CONTACTS, CREATE, contact
from .webhook_check import delivered_changes, received, signature_valid, start_receiver, wait_for

FIELDS = "id url segmentIds description status deliveredThrough createdAt updatedAt"
CREATE_WEBHOOK = f"""mutation($url: String!, $segmentIds: [ID!], $description: String) {{
  createWebhook(url: $url, segmentIds: $segmentIds, description: $description) {{ secret webhook {{ {FIELDS} }} }} }}"""
UPDATE_WEBHOOK = f"""mutation($id: ID!, $url: String, $segmentIds: [ID!], $description: String, $enabled: Boolean) {{
  updateWebhook(id: $id, url: $url, segmentIds: $segmentIds, description: $description, enabled: $enabled) {{
    {FIELDS} }} }}"""
DELETE_WEBHOOK = "mutation($id: ID!) { deleteWebhook(id: $id) }"
ROTATE = "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret webhook { id } } }"
REDELIVER = f"mutation($id: ID!, $from: String) {{ redeliverWebhook(id: $id, fromCursor: $from) {{ {FIELDS} }} }}"
WEBHOOKS = f"{{ webhooks {{ {FIELDS} }} }}"
DELIVERIES = """query($first: Int, $after: String) { webhooks { id deliveries(first: $first, after: $after) {
  edges { cursor node { id state changeCount firstCursor lastCursor createdAt finishedAt nextAttemptAt attemptCount
    attempts { at statusCode error durationMs } } }
  pageInfo { hasNextPage endCursor } } } }"""
CHANGES = """query($id: ID!, $after: String) { segment(id: $id) { changes(first: 1000, after: $after) {
  edges { cursor node { segmentId contactId change cause at } } } } }"""
HOT, COLD = {"leadScore": {"min": 75}}, {"leadScore": {"max": 20}}
FAIL_FOREVER = ("--fail", "1000000000")


@dataclass(frozen=True)
class Receiver:
    """A receiver process: where to send, and what it logged."""

    url: str
    log: Path
    port: int

    def posts(self) -> list[dict]:
        return received(self.log)

    def changes(self) -> list[dict]:
        """Every change answered 2xx, once each (by cursor), in arrival order."""
        return delivered_changes(self.log)


@pytest.fixture
def receiver(tmp_path):
    """Starts receivers (``tests/webhook_receiver.py`` options); each is killed after the test."""
    procs = []

    def start(*options: str) -> Receiver:
        port = free_port()
        log = tmp_path / f"receiver-{port}.jsonl"
        procs.append(start_receiver(port, log, *options))
        return Receiver(f"http://127.0.0.1:{port}/hook", log, port)
    yield start
    for proc in procs:
        proc.kill()
        proc.wait()
        proc.stdout.close()


@pytest.fixture
def ws(gql):
    """A fresh workspace of the in-process app whose webhooks are deleted after
    the test: the session's dispatcher would otherwise retry them for a day."""
    yield gql
    for hook in gql.graphql(WEBHOOKS)["webhooks"]:
        gql.graphql(DELETE_WEBHOOK, id=hook["id"])


@contextlib.contextmanager
def service_workspace(cli_env: dict, **env: str):
    """A client of a fresh workspace on a ``segmentql serve`` child with these
    settings, on a database of its own."""
    env = {**cli_env, "SEGMENTQL_DATABASE": unique("segmentql_webhooks").replace("-", "_"), **env}
    made = segmentql("workspace", "create", unique("wh"), env=env)
    assert made.returncode == 0, made.stderr
    with serving(env) as (base, _proc), httpx.Client(base_url=base, timeout=30) as client:
        yield GraphQLClient(client, made.stdout.strip().splitlines()[-1], None)


@pytest.fixture(scope="module")
def strict_service(cli_env):
    """A service that refuses private and loopback targets (the default)."""
    with service_workspace(cli_env, SEGMENTQL_WEBHOOK_ALLOW_PRIVATE="0") as client:
        yield client


@pytest.fixture(scope="module")
def brief_retries_service(cli_env):
    """A service that gives up on a delivery after retrying it for 1 s."""
    with service_workspace(cli_env, SEGMENTQL_WEBHOOK_ALLOW_PRIVATE="1", SEGMENTQL_WEBHOOK_RETRY_FOR_SECONDS="1",
                           SEGMENTQL_WEBHOOK_FIRST_RETRY_MS="100") as client:
        yield client


def create_webhook(client, url: str, **arguments) -> tuple[dict, str]:
    made = client.graphql(CREATE_WEBHOOK, url=url, **arguments)["createWebhook"]
    return made["webhook"], made["secret"]


def code_of(client, query: str, **variables) -> tuple[str, str]:
    """The code and message of the one error a request gets."""
    [error] = client.errors(query, **variables)
    return error["extensions"]["code"], error["message"]


def scores(client, **by_contact: int) -> None:
    """One write setting contacts' lead scores."""
    client.graphql(CONTACTS, c=[contact(cid, score) for cid, score in by_contact.items()])


def segment(client, rule: dict, name: str = "s") -> str:
    return client.graphql(CREATE, name=name, rule=rule)["createSegment"]["id"]


def logged_after(client, segment_ids: list[str], cursor: str | None) -> list[dict]:
    """The changes of these segments logged after ``cursor``, in log order, as webhooks send them."""
    changes = [{"cursor": e["cursor"], **e["node"]} for sid in segment_ids
               for e in client.graphql(CHANGES, id=sid, after=cursor)["segment"]["changes"]["edges"]]
    return sorted(changes, key=lambda c: change_position(c["cursor"]))


def instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def same_changes(sent: list[dict], logged: list[dict]) -> bool:
    """Whether what a receiver got is the log's changes (``at`` compared as instants)."""
    def timed(change: dict) -> dict:
        return {**change, "at": instant(change["at"])}
    return [timed(c) for c in sent] == [timed(c) for c in logged]


def deliveries(client, webhook_id: str, first: int = 20, after: str | None = None) -> dict:
    hooks = client.graphql(DELIVERIES, first=first, after=after)["webhooks"]
    return next(h["deliveries"] for h in hooks if h["id"] == webhook_id)


def delivery_nodes(client, webhook_id: str) -> list[dict]:
    """The webhook's deliveries, newest first."""
    return [e["node"] for e in deliveries(client, webhook_id)["edges"]]


def webhook(client, webhook_id: str) -> dict:
    return next(h for h in client.graphql(WEBHOOKS)["webhooks"] if h["id"] == webhook_id)


def header(record: dict, name: str) -> str:
    return {k.lower(): v for k, v in record["headers"].items()}[name.lower()]


# -- managing webhooks ------------------------------------------------------------------------------


def test_a_webhook_is_created_listed_updated_and_deleted_and_its_secret_shown_once(ws):
    hot, cold = segment(ws, HOT, "hot"), segment(ws, COLD, "cold")
    hook, secret = create_webhook(ws, "http://127.0.0.1:9/a", segmentIds=[hot], description="journeys")
    assert secret.startswith("whsec_") and len(secret) > 30
    assert hook["url"] == "http://127.0.0.1:9/a" and hook["segmentIds"] == [hot]
    assert hook["description"] == "journeys" and hook["status"] == "ACTIVE"
    assert ws.graphql(WEBHOOKS)["webhooks"] == [hook]
    fields = ws.graphql('{ __type(name: "Webhook") { fields { name } } }')["__type"]["fields"]
    assert "secret" not in {f["name"] for f in fields}  # shown once, by createWebhook and rotateWebhookSecret
    assert code_of(ws, "{ webhooks { secret } }")[0] == "GRAPHQL_VALIDATION_FAILED"

    changed = ws.graphql(UPDATE_WEBHOOK, id=hook["id"], url="http://127.0.0.1:9/b", description="crm",
                         segmentIds=[cold, hot])["updateWebhook"]
    assert (changed["url"], changed["description"]) == ("http://127.0.0.1:9/b", "crm")
    assert changed["segmentIds"] == [cold, hot]
    assert changed["createdAt"] == hook["createdAt"] and instant(changed["updatedAt"]) >= instant(hook["updatedAt"])
    assert ws.graphql(UPDATE_WEBHOOK, id=hook["id"], segmentIds=None)["updateWebhook"]["segmentIds"] is None  # all
    assert ws.graphql(UPDATE_WEBHOOK, id=hook["id"], enabled=False)["updateWebhook"]["status"] == "DISABLED"
    enabled = ws.graphql(UPDATE_WEBHOOK, id=hook["id"], enabled=True)["updateWebhook"]
    assert enabled["status"] == "ACTIVE" and enabled["url"] == "http://127.0.0.1:9/b"  # what was not given is kept
    assert ws.graphql(WEBHOOKS)["webhooks"] == [enabled]

    assert ws.graphql(DELETE_WEBHOOK, id=hook["id"])["deleteWebhook"] is True
    assert ws.graphql(DELETE_WEBHOOK, id=hook["id"])["deleteWebhook"] is False
    assert ws.graphql(WEBHOOKS)["webhooks"] == []
    for query in (UPDATE_WEBHOOK, ROTATE, REDELIVER):
        code, message = code_of(ws, query, id=hook["id"])
        assert code == "NOT_FOUND" and hook["id"] in message


def test_bad_webhook_settings_are_refused_with_a_code_and_nothing_is_written(ws):
    sid = segment(ws, HOT)
    hook, _ = create_webhook(ws, "http://127.0.0.1:9/ok")
    refused = [  # what is wrong, the code, a word of the message
        ({"url": "ftp://127.0.0.1/x"}, "BAD_USER_INPUT", "scheme"),
        ({"url": "javascript:alert(1)"}, "BAD_USER_INPUT", "scheme"),
        ({"url": "http://user:secret@127.0.0.1/"}, "BAD_USER_INPUT", "password"),
        ({"url": "http://127.0.0.1/" + "a" * 2048}, "BAD_USER_INPUT", "2048"),
        ({"description": "d" * 501}, "BAD_USER_INPUT", "500"),
        ({"segmentIds": ["no-such-segment"]}, "NOT_FOUND", "no-such-segment"),
        ({"segmentIds": []}, "BAD_USER_INPUT", "segmentIds"),
    ]
    for wrong, code, word in refused:
        for query, arguments in ((CREATE_WEBHOOK, {"url": "http://127.0.0.1/", **wrong}),
                                 (UPDATE_WEBHOOK, {"id": hook["id"], **wrong})):
            got, message = code_of(ws, query, **arguments)
            assert (got, word in message) == (code, True), (query, wrong, message)
    for cursor in ("nonsense", change_cursor(0), change_cursor(10**6)):  # not a cursor; before or past the log
        code, message = code_of(ws, REDELIVER, id=hook["id"], **{"from": cursor})
        assert code == "BAD_USER_INPUT" and "fromCursor" in message
    assert ws.graphql(WEBHOOKS)["webhooks"] == [hook]

    for i in range(24):
        create_webhook(ws, f"http://127.0.0.1:9/{i}", segmentIds=[sid])
    code, message = code_of(ws, CREATE_WEBHOOK, url="http://127.0.0.1:9/26th")
    assert code == "LIMIT_EXCEEDED" and "25" in message
    assert len(ws.graphql(WEBHOOKS)["webhooks"]) == 25


def test_private_loopback_and_metadata_addresses_are_refused_by_default(strict_service):
    service = strict_service
    for url in ("http://127.0.0.1:8080/hook", "http://localhost/", "http://169.254.169.254/latest/meta-data",
                "http://10.1.2.3/", "http://[::1]/", "http://2130706433/"):
        code, message = code_of(service, CREATE_WEBHOOK, url=url)
        assert code == "BAD_USER_INPUT" and ("refused" in message or "internal name" in message), (url, message)
    assert service.graphql(WEBHOOKS)["webhooks"] == []
    # A public URL is accepted (no DNS at registration; this workspace logs no change, so nothing is sent)...
    hook, _ = create_webhook(service, "https://example.com/hook")
    # ...and cannot be pointed inside afterwards.
    code, _ = code_of(service, UPDATE_WEBHOOK, id=hook["id"], url="http://10.1.2.3/")
    assert code == "BAD_USER_INPUT"
    assert [h["url"] for h in service.graphql(WEBHOOKS)["webhooks"]] == ["https://example.com/hook"]


# -- deliveries ---------------------------------------------------------------------------------------


def test_changes_logged_after_creation_arrive_in_log_order_signed_with_the_secret(ws, receiver):
    scores(ws, a=80, b=10)
    hot, cold = segment(ws, HOT, "hot"), segment(ws, COLD, "cold")  # their first members: logged before the webhooks
    every, hot_only = receiver(), receiver()
    all_hook, all_secret = create_webhook(ws, every.url)
    hot_hook, hot_secret = create_webhook(ws, hot_only.url, segmentIds=[hot])
    scores(ws, b=90)  # b enters hot, leaves cold
    scores(ws, a=5, c=99)  # a leaves hot, enters cold; c enters hot
    expected = logged_after(ws, [hot, cold], all_hook["deliveredThrough"])
    assert sorted((c["contactId"], c["segmentId"] == hot, c["change"]) for c in expected) == [
        ("a", False, "ENTERED"), ("a", True, "LEFT"), ("b", False, "LEFT"), ("b", True, "ENTERED"),
        ("c", True, "ENTERED")]
    expected_hot = [c for c in expected if c["segmentId"] == hot]

    wait_for(lambda: len(every.changes()) == len(expected) and len(hot_only.changes()) == len(expected_hot))
    assert same_changes(every.changes(), expected)
    assert same_changes(hot_only.changes(), expected_hot)
    for got, hook, secret in ((every, all_hook, all_secret), (hot_only, hot_hook, hot_secret)):
        for post in got.posts():
            assert set(post["body"]) == {"webhookId", "deliveryId", "changes"}
            assert post["body"]["webhookId"] == hook["id"]
            assert header(post, "Segmentql-Delivery") == post["body"]["deliveryId"]
            assert header(post, "Content-Type") == "application/json"
            for change in post["body"]["changes"]:
                assert set(change) == {"cursor", "segmentId", "contactId", "change", "cause", "at"}
            assert signature_valid(post, secret)
            assert not signature_valid(post, all_secret if secret == hot_secret else hot_secret)
            assert not signature_valid(post, secret, tolerance=-1)  # a stale timestamp does not verify
    wait_for(lambda: webhook(ws, all_hook["id"])["deliveredThrough"] == expected[-1]["cursor"])
    assert all(d["state"] == "SUCCEEDED" for d in delivery_nodes(ws, all_hook["id"]))


def test_a_receiver_failing_its_first_answers_still_gets_every_change_in_the_same_delivery(ws, receiver):
    sid = segment(ws, HOT)
    flaky = receiver("--fail", "3")
    hook, secret = create_webhook(ws, flaky.url)
    scores(ws, **{f"c{i}": 90 for i in range(5)})
    expected = logged_after(ws, [sid], hook["deliveredThrough"])
    assert len(expected) == 5
    wait_for(lambda: len(flaky.changes()) == 5)
    assert same_changes(flaky.changes(), expected)

    first_four = flaky.posts()[:4]
    assert [p["status"] for p in first_four] == [500, 500, 500, 204]
    assert len({p["body"]["deliveryId"] for p in first_four}) == 1  # the same delivery, retried
    assert len({p["raw"] for p in first_four}) == 1  # byte for byte: the same deliveryId, changes and cursors
    assert all(signature_valid(p, secret) for p in first_four)
    oldest = delivery_nodes(ws, hook["id"])[-1]
    assert oldest["id"] == first_four[0]["body"]["deliveryId"] and oldest["state"] == "SUCCEEDED"
    assert oldest["attemptCount"] == 4 and [a["statusCode"] for a in oldest["attempts"]] == [500, 500, 500, 204]
    assert all(isinstance(a["durationMs"], int) and a["durationMs"] >= 0 for a in oldest["attempts"])
    assert [a["at"] for a in oldest["attempts"]] == sorted(a["at"] for a in oldest["attempts"])
    assert oldest["finishedAt"] and oldest["nextAttemptAt"] is None
    assert (oldest["firstCursor"], oldest["lastCursor"]) == (expected[0]["cursor"], expected[-1]["cursor"])


def test_a_delivery_finished_by_a_service_stopped_before_moving_the_webhook_on_is_not_stuck(ws, receiver):
    """The state a service leaves when it stops between a delivery's success and
    moving its webhook on: the next dispatcher moves it on and goes on with
    the later changes (it used to fail on the finished delivery forever)."""
    sid = segment(ws, HOT)
    got = receiver()
    hook, _ = create_webhook(ws, got.url)
    scores(ws, a=90)
    moved_on = hook["deliveredThrough"]
    wait_for(lambda: len(got.changes()) == 1 and webhook(ws, hook["id"])["deliveredThrough"] != moved_on)
    db = ws.db.db
    ws.call(db.webhooks.update_one, {"workspace_id": ws.workspace_id, "id": hook["id"]},
            {"$set": {"position": change_position(hook["deliveredThrough"]), "dueAt": now()}})
    scores(ws, b=90)
    wait_for(lambda: len(got.changes()) == 2)
    assert same_changes(got.changes(), logged_after(ws, [sid], hook["deliveredThrough"]))
    assert [d["state"] for d in delivery_nodes(ws, hook["id"])] == ["SUCCEEDED", "SUCCEEDED"]


def test_after_a_rotation_deliveries_are_signed_with_the_new_and_the_previous_secret(ws, receiver):
    segment(ws, HOT)
    got = receiver()
    hook, old = create_webhook(ws, got.url)
    scores(ws, a=90)
    wait_for(lambda: len(got.posts()) == 1)
    rotated = ws.graphql(ROTATE, id=hook["id"])["rotateWebhookSecret"]
    new = rotated["secret"]
    assert rotated["webhook"]["id"] == hook["id"] and new.startswith("whsec_") and new != old
    scores(ws, b=90)
    wait_for(lambda: len(got.posts()) == 2)
    before, after = got.posts()
    assert header(before, "Segmentql-Signature").count("v1=") == 1
    stamp, *signatures = header(after, "Segmentql-Signature").split(",")
    assert len(signatures) == 2 and all(s.startswith("v1=") for s in signatures)
    alone = [{**after, "headers": {"Segmentql-Signature": f"{stamp},{s}"}} for s in signatures]
    assert sorted((signature_valid(a, new), signature_valid(a, old)) for a in alone) == [(False, True), (True, False)]
    assert not signature_valid(after, "whsec_someone-else")


def test_a_delivery_refused_for_the_whole_retry_window_fails_and_is_redelivered_on_request(
        brief_retries_service, receiver):
    service = brief_retries_service
    sid = segment(service, HOT)
    down = receiver(*FAIL_FOREVER)
    hook, secret = create_webhook(service, down.url)
    scores(service, a=90, b=95)
    wait_for(lambda: webhook(service, hook["id"])["status"] == "FAILED", timeout=20)
    [failed] = delivery_nodes(service, hook["id"])
    assert failed["state"] == "FAILED" and failed["finishedAt"] and failed["nextAttemptAt"] is None
    assert failed["changeCount"] == 2 and failed["attemptCount"] >= 2
    assert {a["statusCode"] for a in failed["attempts"]} == {500}
    sent = len(down.posts())
    assert sent == failed["attemptCount"] and all(signature_valid(p, secret) for p in down.posts())

    scores(service, c=99)  # logged while the webhook has failed: it waits
    time.sleep(1.5)
    assert len(down.posts()) == sent and webhook(service, hook["id"])["status"] == "FAILED"

    up = receiver()
    moved = service.graphql(UPDATE_WEBHOOK, id=hook["id"], url=up.url)["updateWebhook"]
    assert moved["status"] == "FAILED"  # a new URL alone does not resume it
    assert service.graphql(REDELIVER, id=hook["id"])["redeliverWebhook"]["status"] == "ACTIVE"
    expected = logged_after(service, [sid], hook["deliveredThrough"])
    assert [c["contactId"] for c in expected] == ["a", "b", "c"]
    wait_for(lambda: len(up.changes()) == 3)
    assert same_changes(up.changes(), expected)
    assert up.changes()[0]["cursor"] == failed["firstCursor"] and up.changes()[1]["cursor"] == failed["lastCursor"]
    assert webhook(service, hook["id"])["status"] == "ACTIVE" and len(down.posts()) == sent

    wait_for(lambda: webhook(service, hook["id"])["deliveredThrough"] == expected[-1]["cursor"])
    posts = len(up.posts())
    service.graphql(REDELIVER, id=hook["id"], **{"from": expected[1]["cursor"]})

    def sent_again() -> list[dict]:
        return [c for p in up.posts()[posts:] for c in p["body"]["changes"]]
    again = wait_for(lambda: len(sent_again()) == 2 and sent_again())
    assert same_changes(again, expected[1:])  # from that change on, itself included
    states = [d["state"] for d in delivery_nodes(service, hook["id"])]
    assert states[-1] == "FAILED" and "SUCCEEDED" in states


# -- bounds -------------------------------------------------------------------------------------------


def test_redirects_are_not_followed(ws, receiver):
    segment(ws, HOT)
    elsewhere = receiver()
    redirecting = receiver("--redirect", f"http://127.0.0.1:{elsewhere.port}/hook")
    hook, _ = create_webhook(ws, redirecting.url)
    scores(ws, a=90)
    attempts = wait_for(lambda: [a for d in delivery_nodes(ws, hook["id"]) for a in d["attempts"]])
    assert attempts[0]["statusCode"] == 307 and "redirects are not followed" in attempts[0]["error"]
    assert delivery_nodes(ws, hook["id"])[0]["state"] == "PENDING"  # a failure: retried later, never followed
    assert len(redirecting.posts()) >= 1 and elsewhere.posts() == []


def test_a_slow_receiver_times_out_without_holding_up_another_webhook(ws, receiver):
    segment(ws, HOT)
    slow, fast = receiver("--delay", "5"), receiver()
    slow_hook, _ = create_webhook(ws, slow.url)
    fast_hook, _ = create_webhook(ws, fast.url)
    scores(ws, a=90)
    wait_for(lambda: len(fast.changes()) == 1 and slow.posts(), timeout=10)
    [timed_out] = wait_for(lambda: [a for d in delivery_nodes(ws, slow_hook["id"]) for a in d["attempts"]],
                           timeout=10)
    assert timed_out["statusCode"] is None and "no answer within 2 s" in timed_out["error"]
    assert 1_900 <= timed_out["durationMs"] < 5_000  # the timeout, not the receiver's delay
    [delivered] = delivery_nodes(ws, fast_hook["id"])
    assert delivered["state"] == "SUCCEEDED"
    assert instant(delivered["finishedAt"]) < instant(timed_out["at"])  # while the other one hung


def test_an_answer_trickling_in_is_cut_at_the_timeout(ws, receiver):
    """The timeout bounds the whole answer, not each read of it: a receiver
    sending its body a byte every half second holds a delivery slot 2 s, not 500."""
    segment(ws, HOT)
    trickling = receiver("--trickle", "0.5")
    hook, _ = create_webhook(ws, trickling.url)
    scores(ws, a=90)
    [cut] = wait_for(lambda: [a for d in delivery_nodes(ws, hook["id"]) for a in d["attempts"]][:1], timeout=10)
    assert cut["statusCode"] is None and "no answer within 2 s" in cut["error"]
    assert 1_900 <= cut["durationMs"] < 4_000


def retry_now(client, webhook_id: str) -> None:
    """Move the pending delivery's next attempt (and the webhook's due time) to
    now and wake the dispatcher: a day of backoff passes in a moment, every
    attempt still a real POST to the receiver."""
    db, stamp = client.db.db, now()
    client.call(db.webhook_deliveries.update_one,
                {"workspace_id": client.workspace_id, "webhook_id": webhook_id, "state": "PENDING"},
                {"$set": {"nextAttemptAt": stamp}})
    client.call(db.webhooks.update_one, {"workspace_id": client.workspace_id, "id": webhook_id},
                {"$set": {"dueAt": stamp}})
    client.http.portal.call(lambda: [nudge(client.workspace_id) for nudge in client.live.listeners])


def attempts_when_idle(client, webhook_id: str) -> int:
    """The pending delivery's attempt count once the dispatcher let the webhook go
    (its next attempt set); 0 while it holds it or before the delivery is made."""
    db = client.db.db
    delivery = client.call(db.webhook_deliveries.find_one, {"workspace_id": client.workspace_id,
                                                            "webhook_id": webhook_id, "state": "PENDING"})
    hook = client.call(db.webhooks.find_one, {"workspace_id": client.workspace_id, "id": webhook_id})
    return 0 if delivery is None or "claimOwner" in hook else delivery["attemptCount"]


def test_a_receiver_failing_forever_leaves_a_delivery_of_bounded_size(ws, receiver):
    segment(ws, HOT)
    down = receiver(*FAIL_FOREVER)
    hook, _ = create_webhook(ws, down.url)
    scores(ws, a=90)
    attempts = 0
    while attempts < 30:  # each retry brought forward; an early one may also come by itself
        attempts = wait_for(lambda last=attempts: (n := attempts_when_idle(ws, hook["id"])) > last and n, every=0.02)
        retry_now(ws, hook["id"])
    attempts = wait_for(lambda: (n := attempts_when_idle(ws, hook["id"])) > 30 and n, every=0.02)
    [pending] = delivery_nodes(ws, hook["id"])
    assert pending["state"] == "PENDING" and pending["nextAttemptAt"] and pending["finishedAt"] is None
    assert pending["attemptCount"] == attempts and len(pending["attempts"]) == 25  # the newest 25 of them
    assert len(down.posts()) == attempts and len({p["body"]["deliveryId"] for p in down.posts()}) == 1
    at = [a["at"] for a in pending["attempts"]]
    assert at == sorted(at) and all(a["statusCode"] == 500 for a in pending["attempts"])


def test_deliveries_page_newest_first(ws, receiver):
    sid = segment(ws, HOT)
    got = receiver()
    hook, _ = create_webhook(ws, got.url)
    for i in range(3):
        scores(ws, **{f"c{i}": 90})
        wait_for(lambda i=i: len(got.posts()) == i + 1)
    sent = [p["body"]["deliveryId"] for p in got.posts()]
    first = deliveries(ws, hook["id"], first=2)
    assert first["pageInfo"]["hasNextPage"] is True and len(first["edges"]) == 2
    rest = deliveries(ws, hook["id"], first=2, after=first["pageInfo"]["endCursor"])
    assert rest["pageInfo"]["hasNextPage"] is False and len(rest["edges"]) == 1
    nodes = [e["node"] for e in first["edges"] + rest["edges"]]
    assert [n["id"] for n in nodes] == sent[::-1]
    assert [n["firstCursor"] for n in nodes] == [c["cursor"] for c in logged_after(ws, [sid], None)][::-1]
    assert [n["createdAt"] for n in nodes] == sorted((n["createdAt"] for n in nodes), reverse=True)
    code, message = code_of(ws, DELIVERIES, first=2, after="nonsense")
    assert code == "BAD_USER_INPUT" and "after" in message
    code, message = code_of(ws, DELIVERIES, first=101)
    assert code == "BAD_USER_INPUT" and "first" in message
