"""GraphiQL in a real headless Chromium, with every request outside loopback
refused: the page, its scripts, styles and fonts must all come from segmentql,
and a segmentPreview must run through the UI."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from urllib.parse import urlencode, urlparse

import httpx
import pytest

from .conftest import SEED_AS_OF, new_workspace

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

if not os.path.exists(CHROMIUM):
    if os.environ.get("CI"):
        raise RuntimeError("CI must install Debian's chromium (see .ci/run)")
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)


def test_graphiql_assets_are_served_locally(http):
    page = http.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "<title>segmentql GraphiQL</title>" in page.text
    for url in ("https://", "http://", "//unpkg", "//cdn"):
        assert url not in page.text.replace("http://www.w3.org", "")
    for name in ("graphiql.min.js", "graphiql.min.css", "explorer.umd.js", "react.production.min.js"):
        response = http.get(f"/graphiql/assets/{name}")
        assert response.status_code == 200 and len(response.content) > 1000, name
    assert http.get("/graphiql/assets/../../pyproject.toml").status_code == 404


@pytest.fixture(scope="module")
def served(embedded_uri, settings):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MONGODB_URI": embedded_uri, "SEGMENTQL_DATABASE": settings.database}
    proc = subprocess.Popen([sys.executable, "-m", "segmentql.server.cli", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/healthz").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    yield base
    proc.terminate()
    proc.wait(timeout=30)


def test_segment_preview_runs_through_the_ui_offline(http, served, tmp_path):
    from playwright.sync_api import sync_playwright

    client = new_workspace(http)
    client.graphql("""mutation { upsertContacts(contacts: [
        {id: "c1", email: "one@example.com", leadScore: 90}, {id: "c2", email: "two@example.com", leadScore: 10},
        {id: "c3", email: "three@example.com", leadScore: 85}]) { accepted } }""")
    query = "query Hot($rule: RuleInput!) { segmentPreview(rule: $rule, asOf: \"%s\") { count } }" % SEED_AS_OF
    variables = json.dumps({"rule": {"leadScore": {"tier": "HOT"}}})
    refused = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()

            def only_loopback(route):
                host = urlparse(route.request.url).hostname
                if route.request.url.startswith("data:") or host in ("127.0.0.1", "localhost"):
                    route.continue_()
                else:
                    refused.append(route.request.url)
                    route.abort()

            context.route("**/*", only_loopback)
            page = context.new_page()
            page.goto(f"{served}/graphql?" + urlencode({"query": query, "variables": variables}))
            page.wait_for_selector(".graphiql-execute-button", timeout=30_000)
            # The headers editor starts with an Authorization template; put the key there, as a user would.
            headers_editor = page.locator(".graphiql-editor-tool .CodeMirror").last
            page.get_by_text("Headers", exact=True).click()
            assert "Authorization" in headers_editor.inner_text()
            headers_editor.click()
            page.keyboard.press("Control+A")
            page.keyboard.insert_text(json.dumps({"Authorization": f"Bearer {client.key}"}))
            page.locator(".graphiql-execute-button").click()
            page.wait_for_function(
                "() => document.querySelector('.graphiql-response').innerText.includes('count')", timeout=30_000)
            result = page.locator(".graphiql-response").inner_text()
            page.screenshot(path=str(tmp_path / "graphiql.png"))
        finally:
            browser.close()
    assert refused == []
    assert '"count": 2' in result, result
