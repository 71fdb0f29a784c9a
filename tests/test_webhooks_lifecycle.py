"""Webhooks across processes and SIGKILLs: a receiver that fails, is killed and
comes back; a service killed while a delivery is in flight; two services
delivering one webhook. Each ends with the receiver holding, deduplicated by
cursor, exactly the changes its segments logged, in log order, every copy of
a change the same.

The services are ``segmentql serve`` children on a database of their own (on
the session's embedded server). The in-process app of the ``http`` fixture
runs a dispatcher too, on the session's database: there it could take up the
deliveries of a killed service, and these tests could not say which process
delivers what. Each test waits on what can be observed (the receiver's log,
``Webhook.deliveries``), never on a guessed time."""

import collections
import datetime as dt
import json
import threading
from pathlib import Path

import pytest

from segmentql.server.cursors import change_position

from .conftest import free_port, segmentql, serving, unique
from .test_live import CONTACTS, contact, create
from .test_live_lifecycle import post
from .webhook_check import delivered_changes, received, signature_valid, start_receiver, wait_for

WARM = {"leadScore": {"min": 50, "max": 100}}
HOT = {"leadScore": {"min": 80, "max": 100}}
COLD = {"leadScore": {"min": 0, "max": 49}}  # a segment no webhook follows

CREATE_WEBHOOK = """mutation($url: String!, $ids: [ID!]) { createWebhook(url: $url, segmentIds: $ids) {
  webhook { id } secret } }"""
DELIVERIES = """query { webhooks { id deliveries(first: 100) { edges { node {
  id state firstCursor lastCursor attemptCount attempts { statusCode error } } } } } }"""
CHANGES = """query($id: ID!, $after: String) { segment(id: $id) { changes(first: 1000, after: $after) {
  edges { cursor node { contactId change cause at } } pageInfo { hasNextPage endCursor } } } }"""
SLOW = 60  # seconds a test waits at most for what a service does in a few


@pytest.fixture(scope="module")
def env(cli_env) -> dict:
    """A service that may deliver to loopback, gives up a dead process's claim
    within seconds (answer timeout 3 s + write lease 2 s) and retries soon."""
    return {**cli_env, "SEGMENTQL_DATABASE": "segmentql_webhooks_lifecycle", "SEGMENTQL_WEBHOOK_ALLOW_PRIVATE": "1",
            "SEGMENTQL_WRITE_LEASE_SECONDS": "2", "SEGMENTQL_WEBHOOK_TIMEOUT_SECONDS": "3",
            "SEGMENTQL_WEBHOOK_FIRST_RETRY_MS": "100"}


class Workspace:
    """A fresh workspace of ``env``'s database, its GraphQL POSTed to whichever service ``base`` names."""

    def __init__(self, env: dict):
        done = segmentql("workspace", "create", unique("hooks"), env=env)
        assert done.returncode == 0, done.stderr
        self.key, self.base = done.stdout.strip().splitlines()[-1], ""

    def graphql(self, query: str, **variables) -> dict:
        return post(self.base, self.key, query, **variables)

    def score(self, **scores: int) -> None:
        """One write setting these contacts' lead scores (moving them in and out of segments)."""
        self.graphql(CONTACTS, c=[contact(cid, score) for cid, score in scores.items()])

    def follow(self, url: str) -> tuple[list[str], str]:
        """Segments WARM and HOT (and COLD, not followed), made while the
        workspace is empty, and a webhook of the first two: the segments and
        the webhook's secret. Every change the segments log comes after it."""
        segments = [create(self, WARM, "warm"), create(self, HOT, "hot")]
        create(self, COLD, "cold")
        return segments, self.graphql(CREATE_WEBHOOK, url=url, ids=segments)["createWebhook"]["secret"]

    def deliveries(self) -> list[dict]:
        """The only webhook's deliveries, newest first."""
        (webhook,) = self.graphql(DELIVERIES)["webhooks"]
        return [edge["node"] for edge in webhook["deliveries"]["edges"]]

    def logged(self, segment_ids: list[str]) -> list[dict]:
        """Every change these segments logged (``Segment.changes``), as a receiver gets them, in log order."""
        changes = []
        for segment_id in segment_ids:
            after = None
            while True:
                page = self.graphql(CHANGES, id=segment_id, after=after)["segment"]["changes"]
                changes += [{"cursor": e["cursor"], "segmentId": segment_id, **e["node"]} for e in page["edges"]]
                if not page["pageInfo"]["hasNextPage"]:
                    break
                after = page["pageInfo"]["endCursor"]
        return sorted(changes, key=lambda c: change_position(c["cursor"]))


class Receiver:
    """``tests/webhook_receiver.py`` on a port and log of its own, started
    with the same options each time (so it goes on counting its failures)."""

    def __init__(self, log: Path, *options: str):
        self.port, self.log, self.options, self.proc = free_port(), log, options, None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/segmentql"

    def start(self) -> "Receiver":
        self.proc = start_receiver(self.port, self.log, *self.options)
        return self

    def kill(self) -> None:
        """SIGKILL: a POST it is answering gets no answer."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc.stdout.close()
            self.proc = None


@pytest.fixture
def receiver(tmp_path):
    """Start a receiver with options; killed at the end of the test."""
    started = []

    def start(*options: str) -> Receiver:
        started.append(Receiver(tmp_path / f"received-{len(started)}.jsonl", *options).start())
        return started[-1]
    yield start
    for each in started:
        each.kill()


def identity(change: dict) -> tuple:
    """What identifies a change and what it says (``at`` as an instant: GraphQL and the payload format it apart)."""
    at = dt.datetime.fromisoformat(change["at"])
    return change["cursor"], change["segmentId"], change["contactId"], change["change"], change["cause"], at


def assert_received_every_change(workspace: Workspace, segments: list[str], receiver: Receiver, secret: str) -> None:
    """Once every delivery succeeded: the receiver has each change of the
    segments once it drops copies, in log order; every copy of a change and
    every POST of a delivery is the same; every POST is signed."""
    expected = [identity(c) for c in workspace.logged(segments)]
    assert expected, "the test logged no change"
    wait_for(lambda: all(d["state"] == "SUCCEEDED" for d in workspace.deliveries())
             and len(delivered_changes(receiver.log)) >= len(expected), timeout=SLOW)
    assert [identity(c) for c in delivered_changes(receiver.log)] == expected
    posts = received(receiver.log)
    copies, bodies = collections.defaultdict(set), collections.defaultdict(set)
    for record in posts:
        bodies[record["body"]["deliveryId"]].add(json.dumps(record["body"]["changes"]))
        for change in record["body"]["changes"]:
            copies[change["cursor"]].add(json.dumps(change, sort_keys=True))
    assert all(len(versions) == 1 for versions in copies.values()), "a change was sent in two versions"
    assert all(len(versions) == 1 for versions in bodies.values()), "a delivery was sent with other changes"
    assert all(signature_valid(record, secret) for record in posts)


def test_a_receiver_that_fails_is_killed_and_restarted_still_gets_every_change(env, receiver):
    """Its first two answers are 500s, the second after it was killed in the
    middle of answering; it stays dead while more changes are logged and
    retried; started again, it gets them all, and more."""
    workspace = Workspace(env)
    hooks = receiver("--fail", "2", "--delay", "1")  # logs each POST, then answers after a second
    with serving(env) as (workspace.base, _service):
        segments, secret = workspace.follow(hooks.url)
        workspace.score(a=90, b=60, c=20)
        workspace.score(b=85, d=70)
        wait_for(lambda: len(received(hooks.log)) == 2)  # answered 500 once, now answering again
        hooks.kill()
        workspace.score(a=10, e=95)  # logged while nobody listens
        # The delivery the kill interrupted is retried, and refused, while the receiver is down.
        wait_for(lambda: workspace.deliveries()[-1]["attemptCount"] >= 3, timeout=SLOW)
        first = workspace.deliveries()[-1]
        assert first["state"] == "PENDING"
        assert first["attempts"][0]["statusCode"] == 500
        assert all(a["statusCode"] is None and a["error"] for a in first["attempts"][1:])
        hooks.start()
        workspace.score(d=40, e=55, f=80)
        assert_received_every_change(workspace, segments, hooks, secret)
    posts = received(hooks.log)
    sent = collections.Counter(p["body"]["deliveryId"] for p in posts)
    assert sent[posts[0]["body"]["deliveryId"]] >= 3  # answered 500, cut off by the kill, then kept


def test_a_service_killed_during_a_delivery_loses_nothing(env, receiver):
    """SIGKILL while a POST waits for its answer, with more changes queued
    behind it: the next service sends that delivery again (same id, same
    changes) once the dead one's claim lapses, then the rest."""
    workspace = Workspace(env)
    hooks = receiver("--delay", "2")  # each POST is logged, then answered two seconds later
    with serving(env) as (workspace.base, service):
        segments, secret = workspace.follow(hooks.url)
        workspace.score(a=90, b=60, c=20)
        workspace.score(b=85, d=70)
        (interrupted,) = wait_for(lambda: received(hooks.log))  # in flight
        service.kill()
        service.wait()
    with serving(env) as (workspace.base, _service):
        workspace.score(a=30, e=99)
        assert_received_every_change(workspace, segments, hooks, secret)
        deliveries = {d["id"]: d for d in workspace.deliveries()}
    delivery_id = interrupted["body"]["deliveryId"]
    resent = [p for p in received(hooks.log) if p["body"]["deliveryId"] == delivery_id]
    assert len(resent) >= 2 and all(p["body"] == interrupted["body"] for p in resent)
    assert {{k.lower(): v for k, v in p["headers"].items()}["segmentql-delivery"] for p in resent} == {delivery_id}
    changes = interrupted["body"]["changes"]
    assert deliveries[delivery_id]["state"] == "SUCCEEDED"
    assert (deliveries[delivery_id]["firstCursor"], deliveries[delivery_id]["lastCursor"]) == (
        changes[0]["cursor"], changes[-1]["cursor"])


def test_two_services_deliver_one_webhook_in_log_order(env, receiver):
    """Four clients flip their contacts in and out through two services at
    once; both services' dispatchers want the webhook, and the receiver
    fails its first answers (retries free the claim): one at a time
    delivers it, so every delivery starts after the one before."""
    workspace = Workspace(env)
    hooks = receiver("--fail", "2")
    with serving(env) as (first, _one), serving(env) as (second, _two):
        workspace.base = first
        segments, secret = workspace.follow(hooks.url)

        def client(n: int) -> None:
            for round_ in range(6):
                score = (90, 60, 10)[round_ % 3]
                post((first, second)[round_ % 2], workspace.key, CONTACTS, c=[contact(f"t{n}", score)])
        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert_received_every_change(workspace, segments, hooks, secret)
    positions = [change_position(c["cursor"]) for c in delivered_changes(hooks.log)]
    assert positions == sorted(positions)
    starts = [change_position(p["body"]["changes"][0]["cursor"]) for p in received(hooks.log)]
    assert starts == sorted(starts), "a delivery was sent before one of earlier changes"
