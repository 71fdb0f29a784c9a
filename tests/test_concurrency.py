"""Several service processes writing one contact at once: every writer keeps
its change. Two real ``segmentql serve`` processes on the session's database,
eight threads released together by a barrier, over real HTTP."""

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from .conftest import new_workspace, running_service

UPSERT = "mutation($c: [ContactInput!]!) { upsertContacts(contacts: $c) { accepted errors { message } } }"
CONTACT = """query($id: ID!) { contact(id: $id) { email country timezone tags leadScore
  customFields } }"""
WRITERS = 8
ROUNDS = 6


@pytest.fixture(scope="module")
def services(cli_env):
    with running_service(cli_env) as first, running_service(cli_env) as second:
        yield first, second


def _changes(n: int) -> list[dict]:
    """Eight inputs for round ``n``, each changing a different field."""
    return [{"country": ["FR", "DE"][n % 2]}, {"timezone": ["Europe/Paris", "Asia/Tokyo"][n % 2]},
            {"tags": [f"t{n}"]}, {"leadScore": n}, {"customFields": {"a": n}}, {"customFields": {"b": f"v{n}"}},
            {"customFields": {"c": f"2026-01-{n + 1:02}"}}, {"customFields": {"d": [f"m{n}"]}}]


def _write_all_at_once(services, key: str, contact_id: str, n: int) -> None:
    barrier = threading.Barrier(WRITERS)

    def write(i: int, change: dict) -> dict:
        with httpx.Client(base_url=services[i % 2], headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
            body = {"query": UPSERT, "variables": {"c": [{"id": contact_id, "email": "x@example.com", **change}]}}
            barrier.wait()
            return c.post("/graphql", json=body).json()

    with ThreadPoolExecutor(WRITERS) as pool:
        answers = list(pool.map(write, range(WRITERS), _changes(n)))
    for answer in answers:
        assert answer["data"]["upsertContacts"] == {"accepted": 1, "errors": []}, answer


def _expected(n: int) -> dict:
    return {"email": "x@example.com", "country": ["FR", "DE"][n % 2], "timezone": ["Europe/Paris", "Asia/Tokyo"][n % 2],
            "tags": [f"t{n}"], "leadScore": n,
            "customFields": {"a": n, "b": f"v{n}", "c": f"2026-01-{n + 1:02}T00:00:00.000Z", "d": [f"m{n}"]}}


@pytest.fixture
def client(http):
    client = new_workspace(http)
    client.define_fields({"a": "NUMBER", "b": "TEXT", "c": "DATE", "d": "MULTI_SELECT"})
    return client


def test_concurrent_writers_of_one_contact_all_keep_their_change(client, services):
    client.graphql(UPSERT, c=[{"id": "c1", "email": "x@example.com"}])
    for n in range(ROUNDS):
        _write_all_at_once(services, client.key, "c1", n)
        assert client.graphql(CONTACT, id="c1")["contact"] == _expected(n), f"round {n}"


def test_concurrent_writers_creating_one_contact_all_keep_their_change(client, services):
    """The writers all find the contact absent; one inserts it, the others'
    inserts collide and become changes of only their own field."""
    for n in range(ROUNDS):
        _write_all_at_once(services, client.key, f"new{n}", n)
        assert client.graphql(CONTACT, id=f"new{n}")["contact"] == _expected(n), f"round {n}"
