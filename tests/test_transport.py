"""GraphQL over HTTP, end to end: every request refused before GraphQL runs
is a JSON GraphQL response (``{"errors": [{"message", "extensions": {"code"}}]}``)
with the status that fits, never strawberry's or starlette's ``text/plain``;
and automatic persisted queries (Apollo's protocol) work over GET and POST."""

import hashlib
import json

import httpx
import pytest
from starlette.requests import Request
from starlette.routing import Route

from segmentql.persisted import PersistedQueries
from segmentql.server.errors import BadRequest, PersistedQueryNotFound

from .conftest import new_workspace

COUNT = "query Count($r: RuleInput!) { segmentPreview(rule: $r) { count } }"
CREATE = "mutation Create($n: String!) { createSegment(name: $n, rule: {leadScore: {min: 1}}) { name } }"
NAMES = "{ segments { edges { node { name } } } }"
NOT_FOUND = {"errors": [{"message": "PersistedQueryNotFound", "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}]}


def sha256(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def by_hash(document: str) -> dict:
    """The ``extensions`` of a request sending ``document`` by its hash."""
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256(document)}}


def send(client, method: str, *, key: str | None = None, content_type: str | None = "application/json", **kw):
    headers = {"Accept": "application/json", "Authorization": f"Bearer {key or client.key}"}
    if content_type:
        headers["Content-Type"] = content_type
    return client.http.request(method, "/graphql", headers=headers, **kw)


def post(client, body: dict, **kw):
    return send(client, "POST", content=json.dumps(body).encode(), **kw)


def get(client, params: dict, **kw):
    """A GET whose JSON parts (``variables``, ``extensions``) are encoded as the protocol sends them."""
    encoded = {name: json.dumps(value) if isinstance(value, dict) else value for name, value in params.items()}
    return send(client, "GET", params=encoded, content_type=None, **kw)


def refused(response, status: int, code: str) -> str:
    """The message of a JSON GraphQL refusal with this status and code, and nothing else in the body."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["content-type"] == "application/json"
    [error] = response.json()["errors"]
    assert set(response.json()) == {"errors"} and set(error) == {"message", "extensions"}
    assert error["extensions"] == {"code": code}
    return error["message"]


def segment_names(client) -> list[str]:
    return [edge["node"]["name"] for edge in client.graphql(NAMES)["segments"]["edges"]]


# -- transport errors ------------------------------------------------------------

def too_large(settings) -> bytes:
    return json.dumps({"query": "{ __typename }", "variables": {"pad": "x" * settings.max_body_bytes}}).encode()


REFUSALS = {  # name: (method, request, status, code, what the message says)
    "a body that is not JSON": ("POST", {"content": b"{query: 1}"}, 400, "BAD_REQUEST", "not JSON"),
    "an empty body": ("POST", {"content": b""}, 400, "BAD_REQUEST", "not JSON"),
    "a body that is not an object": ("POST", {"content": b'"{ __typename }"'}, 400, "BAD_REQUEST", "JSON object"),
    "a body without query": ("POST", {"content": b'{"variables": {}}'}, 400, "BAD_REQUEST", "`query`"),
    "a batch": ("POST", {"content": json.dumps([{"query": "{ __typename }"}] * 2).encode()}, 400, "BAD_REQUEST",
                "batching is off"),
    "a GET without query": ("GET", {"params": {"variables": "{}"}, "content_type": None}, 400, "BAD_REQUEST",
                            "`query`"),
    "a GET with variables that are not JSON": ("GET", {"params": {"query": COUNT, "variables": "{r"},
                                                       "content_type": None}, 400, "BAD_REQUEST", "not JSON"),
    "a mutation by GET": ("GET", {"params": {"query": CREATE}, "content_type": None}, 405, "METHOD_NOT_ALLOWED",
                          "POST"),
    "a form": ("POST", {"content": b"query=%7B+__typename+%7D", "content_type": "application/x-www-form-urlencoded"},
               415, "UNSUPPORTED_MEDIA_TYPE", "application/json"),
    "no content type": ("POST", {"content": b'{"query": "{ __typename }"}', "content_type": None}, 415,
                        "UNSUPPORTED_MEDIA_TYPE", "application/json"),
    **{method: (method, {"content": b'{"query": "{ __typename }"}'}, 405, "METHOD_NOT_ALLOWED", "GET")
       for method in ("PUT", "DELETE", "PATCH", "OPTIONS")},
}


@pytest.mark.parametrize("method, request_, status, code, says", REFUSALS.values(), ids=REFUSALS.keys())
def test_each_transport_error_is_json_with_a_code(gql, method, request_, status, code, says):
    response = send(gql, method, **request_)
    assert says in refused(response, status, code)
    if status == 405:
        assert response.headers["Allow"] == ("POST" if method == "GET" else "GET, POST")


def test_a_head_request_is_405_with_allow(gql):
    response = send(gql, "HEAD", params={"query": "{ __typename }"}, content_type=None)
    assert response.status_code == 405 and response.headers["Allow"] == "GET, POST"
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize("chunked", [False, True], ids=["with Content-Length", "chunked"])
def test_a_body_past_the_limit_is_413(gql, settings, chunked):
    body = too_large(settings)
    content = iter([body[:1000], body[1000:]]) if chunked else body
    response = send(gql, "POST", content=content)
    assert "exceeds" in refused(response, 413, "PAYLOAD_TOO_LARGE")


def test_a_request_without_key_is_refused_before_its_content_is_read(gql):
    response = get(gql, {"variables": "[1]"}, key="sq_not-a-key")
    refused(response, 401, "UNAUTHENTICATED")


def test_strawberrys_own_refusals_are_json_too(gql):
    """The gate refuses first whatever strawberry would; strawberry behind it,
    asked directly, still answers its refusals as JSON with a code."""
    gate = next(route.endpoint for route in gql.http.app.routes
                if isinstance(route, Route) and route.path == "/graphql")

    async def strawberry_after_the_key(scope, receive, send):
        assert await gate._authenticate(Request(scope), scope) is None
        await gate.app(scope, receive, send)

    async def ask(method: str, content: bytes = b"", content_type: str = "application/json") -> httpx.Response:
        transport = httpx.ASGITransport(app=strawberry_after_the_key)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return await client.request(method, "/graphql", content=content, headers={
                "Authorization": f"Bearer {gql.key}", "Content-Type": content_type})

    response = gql.http.portal.call(lambda: ask("PUT"))
    assert "GET and POST" in refused(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["Allow"] == "GET, POST"
    response = gql.http.portal.call(lambda: ask("POST", b"x", "text/plain"))
    refused(response, 400, "BAD_REQUEST")


# -- automatic persisted queries -------------------------------------------------

def test_an_unknown_hash_is_persisted_query_not_found_with_status_200(gql):
    assert post(gql, {"extensions": by_hash(COUNT), "variables": {"r": {}}}).json() == NOT_FOUND
    response = get(gql, {"extensions": by_hash(COUNT), "variables": {"r": {}}})
    assert (response.status_code, response.json()) == (200, NOT_FOUND)


@pytest.mark.parametrize("transport", [post, get])
def test_a_client_registers_a_document_once_then_sends_its_hash(gql, transport):
    """Apollo's flow: the hash alone; on PERSISTED_QUERY_NOT_FOUND, the hash
    and the document; from then on the hash alone."""
    gql.graphql('mutation { upsertContacts(contacts: [{id: "a", email: "a@example.com", leadScore: 5}]) { accepted } }')
    first = {"extensions": by_hash(COUNT), "variables": {"r": {"leadScore": {"min": 1}}}, "operationName": "Count"}
    assert transport(gql, first).json() == NOT_FOUND
    registered = transport(gql, {**first, "query": COUNT})
    assert registered.json() == {"data": {"segmentPreview": {"count": 1}}}
    later = transport(gql, {**first, "variables": {"r": {"leadScore": {"min": 9}}}})
    assert (later.status_code, later.json()) == (200, {"data": {"segmentPreview": {"count": 0}}})


def test_a_hash_that_does_not_match_the_document_is_refused_and_not_kept(gql):
    wrong = {"persistedQuery": {"version": 1, "sha256Hash": sha256(NAMES)}}
    response = post(gql, {"query": COUNT, "variables": {"r": {}}, "extensions": wrong})
    assert refused(response, 400, "BAD_REQUEST") == "provided sha does not match query"
    assert post(gql, {"extensions": wrong}).json() == NOT_FOUND


@pytest.mark.parametrize("persisted_query", [
    "x", {"version": 2, "sha256Hash": sha256(NAMES)}, {"version": True, "sha256Hash": sha256(NAMES)},
    {"sha256Hash": sha256(NAMES)}, {"version": 1}, {"version": 1, "sha256Hash": "abc"},
    {"version": 1, "sha256Hash": 12},
], ids=["no object", "version 2", "version true", "no version", "no hash", "a short hash", "a number"])
def test_a_malformed_persisted_query_is_bad_request(gql, persisted_query):
    for sent in (post(gql, {"query": NAMES, "extensions": {"persistedQuery": persisted_query}}),
                 get(gql, {"extensions": {"persistedQuery": persisted_query}})):
        assert "persistedQuery" in refused(sent, 400, "BAD_REQUEST")


def test_a_persisted_mutation_runs_by_post_but_never_by_get(gql):
    assert post(gql, {"query": CREATE, "variables": {"n": "one"}, "extensions": by_hash(CREATE)}).json() == {
        "data": {"createSegment": {"name": "one"}}}
    response = get(gql, {"extensions": by_hash(CREATE), "variables": {"n": "two"}})
    assert "POST" in refused(response, 405, "METHOD_NOT_ALLOWED")
    assert segment_names(gql) == ["one"]
    assert post(gql, {"extensions": by_hash(CREATE), "variables": {"n": "three"}}).json() == {
        "data": {"createSegment": {"name": "three"}}}
    assert sorted(segment_names(gql)) == ["one", "three"]


def test_a_persisted_document_meets_the_same_limits_as_any(gql):
    deep = "{ segments { edges { node { " + "contacts { edges { node { " * 4 + "id" + " } } }" * 4 + " } } } }"
    for body in ({"query": deep, "extensions": by_hash(deep)}, {"extensions": by_hash(deep)}):
        [error] = post(gql, body).json()["errors"]
        assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED" and "depth" in error["message"]
    two = "query A { __typename } query B { __typename }"
    for body in ({"query": two, "extensions": by_hash(two)}, {"extensions": by_hash(two)}):
        assert "operationName" in refused(post(gql, body), 400, "BAD_REQUEST")
    assert post(gql, {"extensions": by_hash(two), "operationName": "B"}).json() == {"data": {"__typename": "Query"}}


def test_workspaces_do_not_share_persisted_documents(gql):
    assert post(gql, {"query": NAMES, "extensions": by_hash(NAMES)}).json() == {"data": {"segments": {"edges": []}}}
    other = new_workspace(gql.http)
    assert post(other, {"extensions": by_hash(NAMES)}).json() == NOT_FOUND
    refused(post(gql, {"extensions": by_hash(NAMES)}, key="sq_not-a-key"), 401, "UNAUTHENTICATED")


def test_the_store_forgets_the_least_recently_used_documents_first():
    store = PersistedQueries(max_documents=2, max_bytes=40)

    def register(document: str) -> object:
        return store.query("w", document, by_hash(document))

    def known(document: str) -> bool:
        try:
            return store.query("w", None, by_hash(document)) == document
        except PersistedQueryNotFound:
            return False

    for document in ("{ a }", "{ b }"):
        assert register(document) == document
    assert known("{ a }")  # now used more recently than { b }
    register("{ c }")
    assert [known(d) for d in ("{ a }", "{ b }", "{ c }")] == [True, False, True]
    with pytest.raises(PersistedQueryNotFound):  # documents are kept by workspace
        store.query("other", None, by_hash("{ a }"))
    big = "{ " + "x " * 20 + "}"  # 43 bytes: more than the whole store holds
    assert register(big) == big and not known(big)
    assert known("{ a }")  # { c } is now the least recently used
    register("{ " + "y " * 15 + "}")  # 33 bytes: with { a } and { c }, past the 40 the store holds
    assert [known(d) for d in ("{ a }", "{ c }")] == [True, False]
    with pytest.raises(BadRequest, match="does not match"):
        store.query("w", "{ d }", by_hash("{ e }"))
