"""Subscriptions: `segmentChanges` over `graphql-transport-ws`, end to end.

A real `segmentql serve` child process serves every test (started once for
the module); subscribers are real WebSocket clients and every write is a real
HTTP POST to it, so nothing but the service itself decides what a subscriber
sees. What it sees is compared with the log `Segment.changes` pages out.
"""

import asyncio
import contextlib
import datetime as dt
import json
import time

import httpx
import pytest
import websockets

from segmentql.server.cursors import change_position

from .conftest import segmentql, serving

PROTOCOL = "graphql-transport-ws"
READ_TIMEOUT = 10  # seconds a change may take to arrive before a test fails
# Longer than the followers' poll of the settled log (server/changefeed.py):
# a change that were going to come would have come.
QUIET = 0.6

FIELDS = "cursor segmentId contactId change at cause"
FEED = f"subscription($ids: [ID!], $after: String) {{ segmentChanges(segmentIds: $ids, after: $after) {{ {FIELDS} }} }}"
LOG = f"""query($id: ID!, $after: String) {{ segment(id: $id) {{ changes(first: 1000, after: $after) {{
  edges {{ cursor node {{ {FIELDS.removeprefix("cursor ")} }} }} pageInfo {{ hasNextPage endCursor }} }} }} }}"""
CREATE = "mutation($name: String!, $rule: RuleInput!) { createSegment(name: $name, rule: $rule) { id } }"
CONTACTS = "mutation($c: [ContactInput!]!) { upsertContacts(contacts: $c) { accepted errors { message } } }"
EVENTS = "mutation($e: [EventInput!]!) { recordEvents(events: $e) { accepted errors { message } } }"
HOT = {"leadScore": {"min": 75}}
COLD = {"leadScore": {"max": 20}}
MIDDLE = {"leadScore": {"min": 30, "max": 60}}
RECENT = {"recency": {"activity": "ANY", "withinDays": 7}}


def contact(cid: str, score: int) -> dict:
    return {"id": cid, "email": f"{cid}@x.io", "leadScore": score}


@pytest.fixture(scope="module")
def service(cli_env):
    """The base URL of one `segmentql serve` child on the session's database."""
    with serving({**cli_env, "SEGMENTQL_WEBHOOK_ALLOW_PRIVATE": "1"}) as (base, _proc):
        yield base


class Writer:
    """A workspace's GraphQL over HTTP to the served /graphql (its own connection)."""

    def __init__(self, base: str, key: str):
        self.client = httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30)

    async def post(self, query: str, **variables) -> dict:
        """The whole answer: ``data`` and/or ``errors``."""
        return (await self.client.post("/graphql", json={"query": query, "variables": variables})).json()

    async def graphql(self, query: str, **variables) -> dict:
        """The data of a request that must succeed."""
        body = await self.post(query, **variables)
        assert not body.get("errors"), body["errors"]
        return body["data"]

    async def segment(self, name: str, rule: dict) -> str:
        return (await self.graphql(CREATE, name=name, rule=rule))["createSegment"]["id"]

    async def upsert(self, *contacts: dict) -> None:
        assert (await self.graphql(CONTACTS, c=list(contacts)))["upsertContacts"]["accepted"] == len(contacts)

    async def log(self, *segment_ids: str, after: str | None = None) -> list[dict]:
        """The changes of these segments as `Segment.changes` pages them (those
        past the cursor ``after``), merged into the workspace's log order: the
        position a change cursor holds."""
        changes = []
        for segment_id in segment_ids:
            page_after = None
            while True:
                page = (await self.graphql(LOG, id=segment_id, after=page_after))["segment"]["changes"]
                changes += [{"cursor": edge["cursor"], **edge["node"]} for edge in page["edges"]]
                if not page["pageInfo"]["hasNextPage"]:
                    break
                page_after = page["pageInfo"]["endCursor"]
        changes = [c for c in changes if change_position(c["cursor"]) > change_position(after)]
        return sorted(changes, key=lambda change: change_position(change["cursor"]))

    async def close(self) -> None:
        await self.client.aclose()


@contextlib.asynccontextmanager
async def writing(base: str, key: str):
    writer = Writer(base, key)
    try:
        yield writer
    finally:
        await writer.close()


class Subscriber:
    """A `graphql-transport-ws` client whose connection the service acknowledged."""

    def __init__(self, socket):
        self.socket = socket

    async def subscribe(self, op: str, query: str = FEED, **variables) -> None:
        await self.socket.send(json.dumps({"id": op, "type": "subscribe",
                                           "payload": {"query": query, "variables": variables}}))

    async def receive(self, timeout: float = READ_TIMEOUT) -> dict:
        # Cancelling websockets' recv() loses nothing: the next call returns the message.
        return json.loads(await asyncio.wait_for(self.socket.recv(), timeout))

    async def event(self, op: str, timeout: float = READ_TIMEOUT) -> dict:
        """The next change the subscription ``op`` sends (any other message fails the test)."""
        message = await self.receive(timeout)
        assert message["id"] == op and message["type"] == "next" and "errors" not in message["payload"], message
        return message["payload"]["data"]["segmentChanges"]

    async def events(self, op: str, count: int) -> list[dict]:
        return [await self.event(op) for _ in range(count)]

    async def assert_quiet(self) -> None:
        """Nothing more arrives: no change twice, none that is not logged."""
        with contextlib.suppress(TimeoutError):
            pytest.fail(f"unexpected message {await self.receive(QUIET)}")

    async def ending(self, op: str) -> list[dict]:
        """The messages of ``op`` up to the one that ends it (``complete`` or ``error``)."""
        messages = []
        while not messages or messages[-1]["type"] not in ("complete", "error"):
            message = await self.receive()
            assert message["id"] == op, message
            messages.append(message)
        return messages

    async def refusal(self, op: str) -> list[dict]:
        """The errors ``op`` was refused with, having sent no change: graphql-transport-ws
        ends an operation refused before it ran with an ``error`` message, and one its
        resolver refused with a ``next`` without data, then ``complete``."""
        messages = await self.ending(op)
        if messages[-1]["type"] == "error":
            assert len(messages) == 1, messages
            return messages[0]["payload"]
        assert [m["type"] for m in messages] == ["next", "complete"], messages
        assert messages[0]["payload"]["data"] is None, messages
        return messages[0]["payload"]["errors"]


def socket_url(base: str) -> str:
    return base.replace("http://", "ws://", 1) + "/graphql"


@contextlib.asynccontextmanager
async def subscriber(base: str, key: str):
    """A connection initialised with the key, once the service acknowledged it."""
    async with websockets.connect(socket_url(base), subprotocols=[PROTOCOL]) as socket:
        await socket.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}}))
        assert json.loads(await asyncio.wait_for(socket.recv(), READ_TIMEOUT)) == {"type": "connection_ack"}
        yield Subscriber(socket)


async def subscribe_from_now(sub: Subscriber, writer: Writer, op: str, toggled: str, **variables) -> dict:
    """Subscribe without `after` and return the first change it sends.

    The protocol does not acknowledge a subscription, so a test cannot know
    whether a write came before or after the subscription took its starting
    place: the contact ``toggled`` is moved in and out of HOT, one change a
    write, until a change arrives."""
    await sub.subscribe(op, **variables)
    for score in [90, 10] * 10:
        await writer.upsert(contact(toggled, score))
        with contextlib.suppress(TimeoutError):
            return await sub.event(op, timeout=1)
    pytest.fail("no change arrived after 20 writes that each changed a membership")


def run(scenario) -> None:
    asyncio.run(scenario())


# --- connecting -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("init", [
    {"type": "connection_init", "payload": {"Authorization": "Bearer not-a-key"}},
    {"type": "connection_init", "payload": {"Authorization": "not-a-key"}},
    {"type": "connection_init", "payload": {}},
    {"type": "connection_init"},
])
def test_a_connection_without_a_valid_key_is_closed_with_4401(service, init):
    async def scenario():
        async with websockets.connect(socket_url(service), subprotocols=[PROTOCOL]) as socket:
            await socket.send(json.dumps(init))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(socket.recv(), READ_TIMEOUT)
            assert closed.value.rcvd.code == 4401 and closed.value.rcvd.reason
    run(scenario)


def test_a_subscription_before_connection_init_is_closed_with_4401(service):
    async def scenario():
        async with websockets.connect(socket_url(service), subprotocols=[PROTOCOL]) as socket:
            await Subscriber(socket).subscribe("1")
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(socket.recv(), READ_TIMEOUT)
            assert closed.value.rcvd.code == 4401
    run(scenario)


def test_a_valid_key_is_acknowledged(service, gql):
    async def scenario():
        async with websockets.connect(socket_url(service), subprotocols=[PROTOCOL]) as socket:
            assert socket.subprotocol == PROTOCOL
            await socket.send(json.dumps({"type": "connection_init",
                                          "payload": {"Authorization": f"Bearer {gql.key}"}}))
            assert json.loads(await asyncio.wait_for(socket.recv(), READ_TIMEOUT)) == {"type": "connection_ack"}
    run(scenario)


def test_a_socket_whose_key_is_revoked_is_closed_at_its_next_subscribe(service, gql):
    """An open socket looks its key up again at every subscribe (and every 30 s):
    a revoked key's socket is closed with 4401, as its HTTP requests get 401."""
    async def scenario():
        async with writing(service, gql.key) as admin:
            made = await admin.graphql('mutation { createApiKey(name: "feed", scope: READ) { apiKey { id } secret } }')
            key = made["createApiKey"]
            async with websockets.connect(socket_url(service), subprotocols=[PROTOCOL]) as socket:
                await socket.send(json.dumps({"type": "connection_init",
                                              "payload": {"Authorization": f"Bearer {key['secret']}"}}))
                assert json.loads(await asyncio.wait_for(socket.recv(), READ_TIMEOUT))["type"] == "connection_ack"
                revoke = "mutation($id: ID!) { revokeApiKey(id: $id) }"
                assert (await admin.graphql(revoke, id=key["apiKey"]["id"]))["revokeApiKey"] is True
                await Subscriber(socket).subscribe("1")
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(socket.recv(), READ_TIMEOUT)
                assert closed.value.rcvd.code == 4401
    run(scenario)


# --- what a subscription follows --------------------------------------------------------------------------------


def test_without_segment_ids_every_segment_of_the_workspace_is_followed_in_log_order(service, gql):
    async def scenario():
        async with writing(service, gql.key) as writer:
            hot, cold = await writer.segment("hot", HOT), await writer.segment("cold", COLD)
            await writer.upsert(contact("a", 90))
            start = (await writer.log(hot, cold))[-1]["cursor"]
            async with subscriber(service, gql.key) as sub:
                await sub.subscribe("all", after=start)
                await writer.upsert(contact("b", 5), contact("c", 80))
                await writer.upsert(contact("a", 10), contact("b", 95))  # a: hot -> cold, b: cold -> hot
                later = await writer.segment("later", MIDDLE)  # created after the subscription: followed too
                await writer.upsert(contact("c", 40))
                log = await writer.log(hot, cold, later, after=start)
                assert {c["segmentId"] for c in log} == {hot, cold, later}
                assert {c["change"] for c in log} == {"ENTERED", "LEFT"}
                assert await sub.events("all", len(log)) == log
                await sub.assert_quiet()
    run(scenario)


def test_with_segment_ids_only_those_segments_are_followed(service, gql):
    async def scenario():
        async with writing(service, gql.key) as writer:
            hot, cold, middle = [await writer.segment(n, r) for n, r in
                                 (("hot", HOT), ("cold", COLD), ("middle", MIDDLE))]
            await writer.upsert(contact("a", 50))
            start = (await writer.log(middle))[-1]["cursor"]
            async with subscriber(service, gql.key) as sub:
                await sub.subscribe("some", ids=[hot, middle, hot], after=start)  # a repeated id counts once
                for score in (90, 10, 45, 99, 0):
                    await writer.upsert(contact("a", score), contact("b", 100 - score))
                followed = await writer.log(hot, middle, after=start)
                assert {c["segmentId"] for c in followed} == {hot, middle}
                assert await writer.log(cold), "the writes changed the segment not followed too"
                assert await sub.events("some", len(followed)) == followed
                await sub.assert_quiet()
    run(scenario)


@pytest.mark.parametrize("variables, code", [
    ({"ids": ["no-such-segment"]}, "NOT_FOUND"),
    ({"ids": []}, "BAD_USER_INPUT"),
    ({"after": "not a cursor"}, "BAD_USER_INPUT"),
    ({"after": "Y2hhbmdlOmFiYw=="}, "BAD_USER_INPUT"),  # "change:abc"
    ({"after": "Y29udGFjdDph"}, "BAD_USER_INPUT"),  # a contact cursor, "contact:a"
    ({"after": "Y2hhbmdlOjEwMDA="}, "BAD_USER_INPUT"),  # "change:1000", past the end of a new workspace's log
])
def test_an_unknown_segment_or_a_malformed_cursor_is_refused_with_its_code(service, gql, variables, code):
    async def scenario():
        async with subscriber(service, gql.key) as sub:
            await sub.subscribe("bad", **variables)
            errors = await sub.refusal("bad")
            assert [e["extensions"]["code"] for e in errors] == [code] and errors[0]["message"]
            assert "Traceback" not in json.dumps(errors)
    run(scenario)


def test_without_after_a_subscription_starts_with_the_next_change(service, gql):
    async def scenario():
        async with writing(service, gql.key) as writer:
            hot = await writer.segment("hot", HOT)
            await writer.upsert(contact("a", 90), contact("b", 95))  # before the subscription: not sent
            earlier = await writer.log(hot)
            async with subscriber(service, gql.key) as sub:
                first = await subscribe_from_now(sub, writer, "now", "probe")
                await writer.upsert(contact("a", 10))
                log = await writer.log(hot)
                assert log[:len(earlier)] == earlier and first in log[len(earlier):]
                rest = log[log.index(first) + 1:]
                assert rest and await sub.events("now", len(rest)) == rest
                await sub.assert_quiet()
    run(scenario)


# --- resuming ---------------------------------------------------------------------------------------------------


def test_a_subscriber_that_reconnects_with_its_last_cursor_sees_every_change_exactly_once_in_order(service, gql):
    """The issue's done-criterion: changes made while it was away, and changes
    sent but not handled before it went, all arrive once, in log order."""
    scores = iter([90, 10, 50, 95, 5, 60, 80, 15, 70, 100, 0, 30, 85, 20, 55, 99, 1])

    async def scenario():
        async with writing(service, gql.key) as writer:
            hot, cold = await writer.segment("hot", HOT), await writer.segment("cold", COLD)

            async def writes(count: int) -> None:
                for _ in range(count):
                    score = next(scores)
                    await writer.upsert(contact("a", score), contact("b", 100 - score))

            async with subscriber(service, gql.key) as sub:
                handled = [await subscribe_from_now(sub, writer, "feed", "probe")]
                await writes(2)
                handled += await sub.events("feed", len(await writer.log(hot, cold, after=handled[-1]["cursor"])))
                await writes(1)  # sent, perhaps, but not handled before the subscriber goes
            for _ in range(3):
                await writes(2)  # while it is away
                async with subscriber(service, gql.key) as sub:
                    await sub.subscribe("feed", after=handled[-1]["cursor"])
                    await writes(1)  # while it catches up
                    handled += await sub.events("feed", len(await writer.log(hot, cold, after=handled[-1]["cursor"])))
                    await sub.assert_quiet()
            log = await writer.log(hot, cold)
            from_start = log[log.index(handled[0]):]
            assert [c["cursor"] for c in handled] == [c["cursor"] for c in from_start]
            assert handled == from_start and len({c["cursor"] for c in handled}) == len(handled)
            assert {(c["contactId"], c["change"]) for c in handled} >= {("a", "ENTERED"), ("a", "LEFT"),
                                                                        ("b", "ENTERED"), ("b", "LEFT")}
    run(scenario)


def test_a_cursor_of_segment_changes_resumes_after_that_change(service, gql):
    async def scenario():
        async with writing(service, gql.key) as writer:
            hot = await writer.segment("hot", HOT)
            for score in (90, 10, 95, 5):
                await writer.upsert(contact("a", score))
            log = await writer.log(hot)
            assert len(log) == 4
            async with subscriber(service, gql.key) as sub:
                await sub.subscribe("resume", ids=[hot], after=log[1]["cursor"])
                assert await sub.events("resume", 2) == log[2:]  # replayed first
                await writer.upsert(contact("a", 80))
                (entered,) = (await writer.log(hot))[4:]
                assert await sub.event("resume") == entered  # then live
                assert (entered["contactId"], entered["change"], entered["cause"]) == ("a", "ENTERED", "CONTACT")
                await sub.assert_quiet()
    run(scenario)


# --- who writes -------------------------------------------------------------------------------------------------


def test_changes_made_by_other_processes_reach_the_subscriber(service, cli_workspace, cli_env):
    """The served process learns of another process's writes only from the
    database: this test's own in-process app writes a contact, and
    `segmentql refresh-segments` moves a member out and back in by time."""
    name, gql = cli_workspace

    async def scenario():
        async with writing(service, gql.key) as writer:
            hot, recent = await writer.segment("hot", HOT), await writer.segment("recent", RECENT)
            await writer.upsert(contact("a", 10))
            now = dt.datetime.now(dt.UTC)
            await writer.graphql(EVENTS, e=[{"id": "e1", "contactId": "a", "type": "OPEN",
                                             "at": (now - dt.timedelta(days=2)).isoformat()}])
            start = (await writer.log(recent))[-1]
            assert (start["contactId"], start["change"]) == ("a", "ENTERED")
            async with subscriber(service, gql.key) as sub:
                await sub.subscribe("others", after=start["cursor"])
                gql.graphql(CONTACTS, c=[contact("b", 90)])  # the pytest process's app
                assert (await sub.event("others"))["segmentId"] == hot
                later = now + dt.timedelta(days=20)
                for as_of in (["--as-of", later.isoformat()], []):  # a's event is 22 days old, then 2 again
                    done = await asyncio.to_thread(segmentql, "refresh-segments", "--workspace", name, *as_of,
                                                   env=cli_env)
                    assert done.returncode == 0, done.stderr
                    event = await sub.event("others")
                    assert (event["segmentId"], event["contactId"], event["cause"]) == (recent, "a", "TIME")
                log = await writer.log(hot, recent, after=start["cursor"])
                assert [(c["contactId"], c["change"]) for c in log] == [("b", "ENTERED"), ("a", "LEFT"),
                                                                        ("a", "ENTERED")]
                await sub.assert_quiet()
    run(scenario)


def test_writes_of_two_concurrent_clients_arrive_exactly_as_logged(service, gql):
    async def scenario():
        async with writing(service, gql.key) as setup:
            hot, cold = await setup.segment("hot", HOT), await setup.segment("cold", COLD)
            await setup.upsert(contact("seed", 90))
            start = (await setup.log(hot))[-1]["cursor"]

        async def client(prefix: str) -> None:
            async with writing(service, gql.key) as writer:
                for score in (90, 10, 50, 95, 5, 80, 0, 60):
                    await writer.upsert(*(contact(f"{prefix}{i}", (score + 7 * i) % 101) for i in range(3)))

        async with subscriber(service, gql.key) as sub, writing(service, gql.key) as reader:
            await sub.subscribe("both", after=start)
            await asyncio.gather(client("x"), client("y"))
            log = await reader.log(hot, cold, after=start)
            assert {c["contactId"][0] for c in log} == {"x", "y"}
            assert await sub.events("both", len(log)) == log
            await sub.assert_quiet()
    run(scenario)


def test_a_membership_change_arrives_after_its_write(service, gql, record_property):
    """The time it takes is recorded (benchmarks measure it), not asserted."""
    async def scenario():
        async with writing(service, gql.key) as writer:
            hot = await writer.segment("hot", HOT)
            await writer.upsert(contact("a", 90))
            start = (await writer.log(hot))[-1]["cursor"]
            async with subscriber(service, gql.key) as sub:
                await sub.subscribe("timed", ids=[hot], after=start)
                posted = time.perf_counter()
                await writer.upsert(contact("b", 99))
                event = await sub.event("timed")
                record_property("change_latency_seconds", round(time.perf_counter() - posted, 4))
                assert (event["contactId"], event["change"], event["cause"]) == ("b", "ENTERED", "CONTACT")
    run(scenario)


# --- each operation on its own transport --------------------------------------------------------------------------


@pytest.mark.parametrize("operation", [
    "query { segments(first: 5) { edges { node { id } } } }",
    """mutation { upsertContacts(contacts: [{id: "sneaked", email: "s@x.io", leadScore: 90}]) { accepted } }""",
])
def test_queries_and_mutations_over_the_socket_are_refused_and_do_not_run(service, gql, operation):
    async def scenario():
        async with subscriber(service, gql.key) as sub:
            await sub.subscribe("op", query=operation)
            errors = await sub.refusal("op")
            assert [e["extensions"]["code"] for e in errors] == ["BAD_REQUEST"]
            assert "POST" in errors[0]["message"]
    run(scenario)
    assert gql.graphql('query { contact(id: "sneaked") { id } }')["contact"] is None


def test_a_subscription_posted_over_http_is_refused(service, gql):
    answer = httpx.post(service + "/graphql", json={"query": f"subscription {{ segmentChanges {{ {FIELDS} }} }}"},
                        headers={"Authorization": f"Bearer {gql.key}"}).json()
    assert answer["data"] is None
    assert [e["extensions"]["code"] for e in answer["errors"]] == ["BAD_REQUEST"]
    assert "WebSocket" in answer["errors"][0]["message"]
