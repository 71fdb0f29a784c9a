"""Pages in a real headless Chromium (Debian's) that may reach loopback only:
every request elsewhere is refused and recorded, and Content-Security-Policy
violations and uncaught page errors are collected, so a test can assert that
a page works offline and within its policy (GraphiQL, the builder)."""

import contextlib
import os
import shutil
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def require_chromium() -> None:
    """Skip the calling test module without Chromium; CI must have it."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            raise RuntimeError("CI must install Debian's chromium (see .ci/run)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)


@contextlib.contextmanager
def chromium() -> Iterator:
    """A running headless Chromium (playwright's Browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def loopback_page(browser, **context_options) -> Iterator[tuple[object, list[str], list[str]]]:
    """A page of a fresh context of ``browser``; yields (page, urls refused,
    CSP violations and uncaught errors reported)."""
    refused: list[str] = []
    violations: list[str] = []
    context = browser.new_context(**context_options)
    try:
        def only_loopback(route):
            url = route.request.url
            if url.startswith("data:") or urlparse(url).hostname in ("127.0.0.1", "localhost"):
                route.continue_()
            else:
                refused.append(url)
                route.abort()

        context.route("**/*", only_loopback)
        page = context.new_page()
        page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
        page.on("pageerror", lambda error: violations.append(f"uncaught: {error}"))
        yield page, refused, violations
    finally:
        context.close()
