"""GraphiQL in a real headless Chromium, with every request outside loopback
refused: the page, its scripts, styles and fonts must all come from segmentql,
a segmentPreview must run through the UI, a subscription too (over the page's
own graphql-transport-ws client), and the page must keep a user's key from
other sites (no headers from a link, none kept in storage, no framing)."""

import contextlib
import json
from urllib.parse import urlencode

import httpx
import pytest

from segmentql.graphiql import ASSETS, OWN_ASSETS

from .browser import chromium, loopback_page, require_chromium
from .conftest import SEED_AS_OF, new_workspace, running_service

require_chromium()


def test_graphiql_assets_are_served_locally(http):
    page = http.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "<title>segmentql GraphiQL</title>" in page.text
    for url in ("https://", "http://", "//unpkg", "//cdn"):
        assert url not in page.text.replace("http://www.w3.org", "")
    for name in ("graphiql.min.js", "graphiql.min.css", "explorer.umd.js", "react.production.min.js"):
        response = http.get(f"/graphiql/assets/{name}")
        assert response.status_code == 200 and len(response.content) > 1000, name
    assert http.get("/graphiql/assets/../../pyproject.toml").status_code == 404


def test_the_page_and_its_assets_may_not_be_framed_or_load_from_elsewhere(http):
    responses = [http.get("/graphql", headers={"Accept": "text/html"})]
    responses += [http.get(f"/graphiql/assets/{name}") for name in (*ASSETS, *OWN_ASSETS)]
    for response in responses:
        assert response.status_code == 200, response.url
        assert response.headers["X-Frame-Options"] == "DENY"
        policy = dict(part.strip().split(" ", 1) for part in response.headers["Content-Security-Policy"].split(";"))
        assert policy["default-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
        assert policy["script-src"] == "'self'"  # no inline script, no eval
        assert policy["connect-src"] == "'self'"
    # the page runs no inline script (the default document is data, not code)
    html = responses[0].text
    assert html.count("<script") == html.count("<script src=") + html.count('type="application/json"')


@pytest.fixture(scope="module")
def served(cli_env):
    with running_service(cli_env) as base:
        yield base


@contextlib.contextmanager
def browser_page():
    """A page of a fresh headless Chromium that may reach loopback only; yields
    (page, urls refused, Content-Security-Policy violations and page errors)."""
    with chromium() as browser, loopback_page(browser) as opened:
        yield opened


def run_with_key(page, key: str, shows: str = "count") -> str:
    """Put ``key`` in the headers editor as a user would, run, and return the
    response pane's text once it shows ``shows``."""
    page.wait_for_selector(".graphiql-execute-button", timeout=30_000)
    headers_editor = page.locator(".graphiql-editor-tool .CodeMirror").last
    page.get_by_text("Headers", exact=True).click()
    assert "Authorization" in headers_editor.inner_text()
    headers_editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(json.dumps({"Authorization": f"Bearer {key}"}))
    page.locator(".graphiql-execute-button").click()
    return response_showing(page, shows)


def response_showing(page, text: str) -> str:
    """The response pane's text (its indentation as plain spaces), once it shows ``text``."""
    page.wait_for_function("text => document.querySelector('.graphiql-response').innerText.includes(text)",
                           arg=text, timeout=30_000)
    return page.locator(".graphiql-response").inner_text().replace("\xa0", " ")


def post(base: str, key: str, query: str, **variables) -> dict:
    """One GraphQL request to the served service over real HTTP; its data (errors fail the test)."""
    answer = httpx.post(f"{base}/graphql", json={"query": query, "variables": variables},
                        headers={"Authorization": f"Bearer {key}"}, timeout=30).json()
    assert "errors" not in answer, answer
    return answer["data"]


def test_segment_preview_runs_through_the_ui_offline(http, served, tmp_path):
    client = new_workspace(http)
    client.graphql("""mutation { upsertContacts(contacts: [
        {id: "c1", email: "one@example.com", leadScore: 90}, {id: "c2", email: "two@example.com", leadScore: 10},
        {id: "c3", email: "three@example.com", leadScore: 85}]) { accepted } }""")
    query = f'query Hot($rule: RuleInput!) {{ segmentPreview(rule: $rule, asOf: "{SEED_AS_OF}") {{ count }} }}'
    variables = json.dumps({"rule": {"leadScore": {"tier": "HOT"}}})
    with browser_page() as (page, refused, violations):
        page.goto(f"{served}/graphql?" + urlencode({"query": query, "variables": variables}))
        result = run_with_key(page, client.key)
        page.screenshot(path=str(tmp_path / "graphiql.png"))
    assert refused == [] and violations == []
    assert '"count": 2' in result, result


def test_a_link_cannot_set_headers_and_no_key_is_kept(http, served):
    """A link's `headers=` is ignored (its query and variables prefill the
    editors); the key a user types is sent, and not kept in localStorage."""
    client = new_workspace(http)
    query = "query Any { segmentPreview(rule: {leadScore: {min: 0}}) { count } }"
    link = urlencode({"query": query, "headers": json.dumps({"Authorization": "Bearer attacker"})})
    with browser_page() as (page, refused, violations):
        sent = []
        page.on("request", lambda r: sent.append(r.headers.get("authorization")) if r.method == "POST" else None)
        page.goto(f"{served}/graphql?{link}")
        result = run_with_key(page, client.key)
        page.wait_for_timeout(1500)  # GraphiQL saves its editors half a second after their last change
        stored = page.evaluate("() => Object.entries(window.localStorage)")
    assert refused == [] and violations == []
    assert '"count": 0' in result, result
    assert "Bearer attacker" not in sent and f"Bearer {client.key}" in sent
    assert stored, "GraphiQL keeps its editors' state in localStorage"
    assert not [k for k, v in stored if client.key in v or "attacker" in v], stored


def test_headers_are_kept_when_the_user_turns_that_on(http, served):
    client = new_workspace(http)
    query = "query Any { segmentPreview(rule: {leadScore: {min: 0}}) { count } }"
    with browser_page() as (page, refused, _violations):
        page.goto(f"{served}/graphql?" + urlencode({"query": query}))
        page.wait_for_selector(".graphiql-execute-button", timeout=30_000)
        page.get_by_label("Open settings dialog").click()
        page.locator(".graphiql-dialog-section", has_text="Persist headers").get_by_role("button", name="On").click()
        page.keyboard.press("Escape")
        run_with_key(page, client.key)
        # the headers editor is saved a moment after its last change
        page.wait_for_function("key => (localStorage.getItem('graphiql:headers') || '').includes(key)",
                               arg=client.key, timeout=10_000)
        history = page.evaluate("() => localStorage.getItem('graphiql:queries')")
    assert refused == []
    assert client.key in history


def test_another_site_cannot_frame_the_page(served):
    with browser_page() as (page, _refused, _violations):
        page.set_content(f'<iframe id="f" src="{served}/graphql"></iframe>')
        page.wait_for_timeout(2000)
        framed = [f for f in page.frames if f != page.main_frame]
        assert all("segmentql GraphiQL" not in f.content() for f in framed)


UPSERT = "mutation($c: [ContactInput!]!) { upsertContacts(contacts: $c) { accepted } }"
CHANGES = "subscription Changes($after: String) { segmentChanges(after: $after) { cursor segmentId contactId change } }"


def test_a_subscription_runs_through_the_ui(http, served):
    """A subscription runs over the page's WebSocket with the key of the
    headers editor in connection_init; a write made while it runs shows in the
    result pane; the stop button completes it and closes the socket. (It
    resumes after a cursor, so the write cannot slip in before it started.)"""
    key = new_workspace(http).key
    segment = post(served, key, 'mutation { createSegment(name: "hot", rule: {leadScore: {min: 50}}) { id } }'
                   )["createSegment"]["id"]
    post(served, key, UPSERT, c=[{"id": "earlier", "email": "earlier@example.com", "leadScore": 90}])
    logged = post(served, key, "query($id: ID!) { segment(id: $id) { changes { edges { cursor } } } }", id=segment)
    after = logged["segment"]["changes"]["edges"][-1]["cursor"]
    with browser_page() as (page, refused, violations):
        sockets, frames = [], []
        page.on("websocket", lambda socket: (sockets.append(socket), socket.on(
            "framesent", lambda payload: frames.append(json.loads(payload)))))
        page.goto(f"{served}/graphql?" + urlencode({"query": CHANGES, "variables": json.dumps({"after": after})}))
        run_with_key(page, key, shows="")
        post(served, key, UPSERT, c=[{"id": "live-one", "email": "live@example.com", "leadScore": 95}])
        result = response_showing(page, "live-one")
        page.locator(".graphiql-execute-button").click()  # while subscribed, it is the stop button
        [socket] = sockets
        if not socket.is_closed():
            socket.wait_for_event("close", timeout=10_000)
    assert refused == [] and violations == []  # connect-src 'self' allows the page's own ws:
    assert socket.url == served.replace("http:", "ws:") + "/graphql"
    event = json.loads(result)["data"]["segmentChanges"]
    assert event["contactId"] == "live-one" and event["segmentId"] == segment and event["change"] == "ENTERED"
    assert frames == [
        {"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}},
        {"type": "subscribe", "id": "1",
         "payload": {"query": CHANGES, "variables": {"after": after}, "operationName": "Changes"}},
        {"type": "complete", "id": "1"}]


def test_a_subscription_with_a_bad_key_shows_why_the_socket_closed(served):
    with browser_page() as (page, refused, violations):
        page.goto(f"{served}/graphql?" + urlencode({"query": CHANGES}))
        result = run_with_key(page, "not-a-key", shows="socket closed")
    assert refused == [] and violations == []
    assert json.loads(result) == {"errors": [{"message": "the API key is not valid (socket closed 4401)"}]}


def test_a_subscription_the_service_refuses_shows_its_errors(http, served):
    key = new_workspace(http).key
    with browser_page() as (page, _refused, _violations):
        page.goto(f"{served}/graphql?" + urlencode({"query": "subscription { segmentChanges { nope } }"}))
        result = run_with_key(page, key, shows="errors")
    [error] = json.loads(result)["errors"]
    assert "Cannot query field 'nope'" in error["message"], error
