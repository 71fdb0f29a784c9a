"""A test kit for condition plugin authors (a pytest plugin, loaded
automatically once segmentql is installed; ``pip install 'segmentql[testkit]'``
brings what it needs besides segmentql: pytest, and httpx2 for
starlette's TestClient).

The ``segmentql`` fixture gives each test a real service: the embedded
database (started once per test session), the app with every installed
plugin (your package's entry point included) plus any listed in the
``segmentql_plugins`` fixture, and a fresh workspace::

    def test_my_condition(segmentql):
        segmentql.import_generated()
        ids = segmentql.members({"myCondition": {"in": ["x"]}})
        assert ids == [...]

Override ``segmentql_plugins`` to test a plugin object that is not installed::

    @pytest.fixture
    def segmentql_plugins():
        return [("mine", my_plugin_module)]

The data set. ``import_generated()`` imports a realistic data set made by
segmentql's generator (``segmentql.server.datagen``, the one ``segmentql demo``
uses) from :data:`SEED` (or its ``seed``); the same arguments always give the
same data, so a test may assert exact members:

- as of :data:`AS_OF` (2026-11-28T12:00:00Z): every event lies before it, and
  ``members()`` evaluates rules as of it unless given another ``as_of``;
- :data:`CONTACTS` contacts by default, ids ``c0000000``, ``c0000001``, ...,
  emails ``user<i>@example.com``/``.org``/``.io``, with country, time zone,
  tags and lead score mostly set;
- :data:`CAMPAIGNS` campaigns (``cmp001`` ...), sent up to about 400 days
  before AS_OF, and their SENT, OPEN (with device), CLICK (with url) and
  CONVERSION events;
- the custom fields :data:`DECLARED_FIELDS` (key -> type) declared in the
  workspace, each set on some of the contacts (a DATE field may hold a date
  or an instant).
"""

import itertools
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

_workspaces = itertools.count()
# The generated data set (see the module docstring); tests/test_plugin_authoring.py
# checks each of these against an imported one.
AS_OF = "2026-11-28T12:00:00Z"
CONTACTS = 200
SEED = 7
CAMPAIGNS = 40
DECLARED_FIELDS = {
    "customer_ltv": "NUMBER", "total_revenue": "NUMBER", "lifetime_opens": "NUMBER", "interests": "MULTI_SELECT",
    "bounced": "BOOLEAN", "plan": "TEXT", "trial_end_date": "DATE", "signup_date": "DATE",
}
PREVIEW = """query($rule: RuleInput!, $asOf: DateTime, $after: String) {
  segmentPreview(rule: $rule, asOf: $asOf) { count
    contacts(first: 1000, after: $after) { edges { node { id } } pageInfo { hasNextPage endCursor } } } }"""


class SegmentqlHarness:
    """One workspace on a running app; every call goes through GraphQL over HTTP."""

    def __init__(self, http, key: str, workspace_id: str):
        self.http, self.key, self.workspace_id = http, key, workspace_id

    def request(self, query: str, variables: dict | None = None, headers: dict | None = None):
        """The HTTP response to a GraphQL request with this workspace's key."""
        return self.http.post("/graphql", json={"query": query, "variables": variables or {}},
                              headers={"Authorization": f"Bearer {self.key}", **(headers or {})})

    def post(self, query: str, variables: dict | None = None) -> dict:
        """The JSON body of the response: ``data`` and/or ``errors``."""
        return self.request(query, variables).json()

    def graphql(self, query: str, **variables) -> dict:
        """The data of a query that must succeed (an AssertionError shows the errors)."""
        body = self.post(query, variables)
        assert not body.get("errors"), body["errors"]
        return body["data"]

    def errors(self, query: str, **variables) -> list[dict]:
        body = self.post(query, variables)
        assert body.get("errors"), f"expected errors, got {body}"
        return body["errors"]

    def members(self, rule: dict, as_of: str | None = AS_OF) -> list[str]:
        """Ids of the contacts the rule selects, in id order (checked against its count)."""
        ids, after = [], None
        while True:
            preview = self.graphql(PREVIEW, rule=rule, asOf=as_of, after=after)["segmentPreview"]
            page = preview["contacts"]
            ids += [edge["node"]["id"] for edge in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                assert preview["count"] == len(ids), f"count {preview['count']} but {len(ids)} members"
                return ids
            after = page["pageInfo"]["endCursor"]

    def import_directory(self, directory: Path) -> None:
        from segmentql.server.importer import Progress, import_directory

        state = self.http.app.state.segmentql
        report = self.http.portal.call(import_directory, state.live, self.workspace_id, Path(directory),
                                       state.settings.ingest_batch_size, Progress(quiet=True))
        assert not report.problems, report.problems[:5]

    def import_generated(self, contacts: int = CONTACTS, seed: int = SEED) -> Path:
        """Generate the kit's data set (see the module docstring) and import it; returns its directory."""
        directory = Path(tempfile.mkdtemp(prefix="segmentql-data-"))
        subprocess.run([sys.executable, "-m", "segmentql.server.datagen", str(directory), "--contacts",
                        str(contacts), "--seed", str(seed), "--campaigns", str(CAMPAIGNS), "--as-of", AS_OF],
                       check=True, capture_output=True)
        self.import_directory(directory)
        return directory


@pytest.fixture(scope="session")
def segmentql_database_uri(tmp_path_factory):
    """MONGODB_URI when set, else an embedded SecantusDB for the session."""
    if os.environ.get("MONGODB_URI"):
        yield os.environ["MONGODB_URI"]
        return
    from segmentql.server.embedded import EmbeddedServer

    server = EmbeddedServer(tmp_path_factory.mktemp("segmentql-db"))
    yield server.start()
    server.stop()


@pytest.fixture
def segmentql_plugins() -> list:
    """Extra (name, plugin) pairs to register; installed plugins load anyway."""
    return []


@pytest.fixture
def segmentql(segmentql_database_uri, segmentql_plugins):
    from starlette.testclient import TestClient

    from segmentql.app import create_app
    from segmentql.plugins.registry import load_registry
    from segmentql.server.settings import Settings

    settings = Settings(database="segmentql_plugin_tests")
    registry = load_registry(extra=segmentql_plugins)
    app = create_app(settings, segmentql_database_uri, registry)
    with TestClient(app) as http:
        db = app.state.segmentql.db
        assert http.portal is not None  # the client runs the app's event loop within `with`
        doc, key = http.portal.call(db.create_workspace, f"plugin-test-{os.getpid()}-{next(_workspaces)}")
        yield SegmentqlHarness(http, key, doc["_id"])
