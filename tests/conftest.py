"""Test fixtures: one real embedded SecantusDB per test session, the app on it,
and GraphQL clients bound to fresh workspaces.

Nothing is mocked: requests go through starlette, strawberry, the compiler
and pymongo to the same server ``segmentql serve`` starts.
"""

import contextlib
import itertools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from starlette.testclient import TestClient

from segmentql.app import create_app
from segmentql.plugins.registry import load_registry
from segmentql.server.embedded import EmbeddedServer
from segmentql.server.importer import Progress, import_directory
from segmentql.server.settings import Settings
from segmentql.testing import SegmentqlHarness

from .shard_check import CHECK as SHARD_CHECK

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SEED_AS_OF = "2026-11-28T12:00:00Z"
_names = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{next(_names)}"


@pytest.fixture(scope="session")
def embedded_uri(tmp_path_factory):
    server = EmbeddedServer(tmp_path_factory.mktemp("embedded-db"))
    uri = server.start()
    yield uri
    server.stop()


@pytest.fixture(scope="session")
def settings():
    # Webhook receivers of tests listen on loopback, and fail fast. No rate
    # limit: tests send far faster than clients (tests/test_operations.py checks it).
    return Settings(database="segmentql_test", max_time_ms=60_000, webhook_allow_private=True,
                    webhook_first_retry_ms=100, webhook_timeout_seconds=2, rate_limit=0)


@pytest.fixture(scope="session")
def registry():
    return load_registry(load_entry_points=False)


@pytest.fixture(scope="session")
def http(embedded_uri, settings, registry):
    """A TestClient running the app (and its lifespan) for the whole session."""
    app = create_app(settings, embedded_uri, registry)
    with TestClient(app) as client:
        yield client


class GraphQLClient(SegmentqlHarness):
    """The plugin authors' harness (one workspace, GraphQL over HTTP) with what
    segmentql's own tests need besides: custom field declarations and direct
    calls into the app's database."""

    def __repr__(self) -> str:
        return f"GraphQLClient(workspace_id={self.workspace_id!r})"

    def define_fields(self, fields: dict[str, str]) -> None:
        """Declare custom fields: key -> CustomFieldType name."""
        for key, kind in fields.items():
            self.graphql("mutation($k: String!, $t: CustomFieldType!) { defineCustomField(key: $k, type: $t) { key } }",
                     k=key, t=kind)

    def call(self, fn, *args):
        """Run a coroutine function of the app's Database on the app's event loop."""
        return self.http.portal.call(fn, *args)

    @property
    def db(self):
        return self.http.app.state.segmentql.db

    @property
    def live(self):
        return self.http.app.state.segmentql.live


def free_port() -> int:
    """A loopback port nothing listens on (for a child process to take)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(env: dict) -> Iterator[tuple[str, subprocess.Popen]]:
    """A ``segmentql serve`` child process on a free loopback port; yields its base URL and the process."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "segmentql.cli", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "segmentql serve did not start"
            time.sleep(0.2)
        yield base, proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextlib.contextmanager
def running_service(env: dict) -> Iterator[str]:
    """A ``segmentql serve`` child process on a free loopback port; yields its base URL."""
    with serving(env) as (base, _proc):
        yield base


class LoopStall:
    """The longest the app's event loop went without running a 10 ms ticker
    (beyond the 10 ms) while in the ``with`` block: how long any other request
    would have waited for the loop."""

    TICK = 0.01

    def __init__(self, portal):
        self.portal, self.longest, self.running = portal, 0.0, True

    async def _tick(self) -> None:
        last = time.perf_counter()
        while self.running:
            await anyio.sleep(self.TICK)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last - self.TICK)
            last = now

    def __enter__(self) -> "LoopStall":
        self.ticker = self.portal.start_task_soon(self._tick)
        return self

    def __exit__(self, *exc) -> None:
        self.running = False
        self.ticker.result(timeout=10)


def segmentql(*args, env=None, timeout=600, **kw) -> subprocess.CompletedProcess:
    """Run the ``segmentql`` command line in a child process."""
    return subprocess.run([sys.executable, "-m", "segmentql.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, **kw)


@pytest.fixture(scope="session")
def cli_env(embedded_uri, settings):
    """Environment for command-line runs against the session's database."""
    return {**os.environ, "MONGODB_URI": embedded_uri, "SEGMENTQL_DATABASE": settings.database}


def new_workspace(http: TestClient) -> GraphQLClient:
    db = http.app.state.segmentql.db
    doc, key = http.portal.call(db.create_workspace, unique("ws"))
    return GraphQLClient(http, key, doc["_id"])


@pytest.fixture
def cli_workspace(http, cli_env) -> tuple[str, GraphQLClient]:
    """A workspace made by the command line (its name, for commands), and a GraphQL client of it."""
    name = unique("cli")
    done = segmentql("workspace", "create", name, env=cli_env)
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip().splitlines()[-1]
    workspace = http.portal.call(http.app.state.segmentql.db.workspace_for_key, key)
    return name, GraphQLClient(http, key, workspace.id)


@pytest.fixture
def gql(http) -> GraphQLClient:
    """A client of a fresh, empty workspace."""
    return new_workspace(http)


@pytest.fixture(scope="session")
def seed_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("seed7")
    subprocess.run([sys.executable, str(SHARED / "datagen.py"), str(out), "--contacts", "2000", "--seed", "7"],
                   check=True, capture_output=True)
    return out


@pytest.fixture(scope="session")
def seed(http, seed_dir, settings) -> GraphQLClient:
    """A workspace holding the seed-7, 2000-contact data set of seed-segments.json."""
    client = new_workspace(http)
    report = client.call(import_directory, client.live, client.workspace_id, seed_dir, settings.ingest_batch_size,
                         Progress(quiet=True))
    assert not report.problems, report.problems[:5]
    return client


def pytest_sessionfinish(session, exitstatus):
    """Every command the suite sent to contacts and events named its workspace
    (tests/shard_check.py); otherwise the run fails, listing the first ones."""
    if SHARD_CHECK.violations:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        reporter.write_line(f"{len(SHARD_CHECK.violations)} commands a sharded cluster could not route:", red=True)
        for line in SHARD_CHECK.violations[:10]:
            reporter.write_line("  " + line)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
