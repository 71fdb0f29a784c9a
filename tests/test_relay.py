"""Relay clients page segmentql's connections without friction.

relay-compiler (the npm package, pinned by tests/relay/package-lock.json and
installed by `make install-test`) compiles the documents of tests/relay/src,
which use `@connection` on `Segment.contacts` and `segmentPreview.contacts`,
against the SDL the service serves; the operations it generates then run
against the service and page through every member. Every connection of the
schema has `edges { cursor node }` and the full `PageInfo`.
"""

import dataclasses
import json
import re
import shutil
import subprocess
from pathlib import Path

import graphql
import pytest

from segmentql.schema import build_schema

from .conftest import REPO

RELAY = REPO / "tests" / "relay"
COMPILER = RELAY / "node_modules" / ".bin" / "relay-compiler"
CONTACTS = "mutation($c: [ContactInput!]!) { upsertContacts(contacts: $c) { accepted } }"
RULE = {"country": {"in": ["FR"]}}
MEMBERS = ["c1", "c2", "c3"]


def relay_compile(sdl: str, where: Path) -> subprocess.CompletedProcess:
    """relay-compiler run with tests/relay's config and documents on ``sdl``; artifacts go to ``where``."""
    assert COMPILER.exists(), "relay-compiler is not installed: run `make install-test`"
    shutil.copytree(RELAY / "src", where / "src")
    (where / "schema.graphql").write_text(sdl)
    config = {**json.loads((RELAY / "relay.config.json").read_text()), "schema": "./schema.graphql"}
    (where / "relay.config.json").write_text(json.dumps(config))
    return subprocess.run([str(COMPILER), "relay.config.json"], cwd=where, capture_output=True, text=True,
                          timeout=120)


def without_field(sdl: str, type_name: str, field: str) -> str:
    """``sdl`` with one field of one object type left out."""
    document = graphql.parse(sdl)
    definitions = [dataclasses.replace(d, fields=tuple(f for f in d.fields if f.name.value != field))
                   if isinstance(d, graphql.ObjectTypeDefinitionNode) and d.name.value == type_name else d
                   for d in document.definitions]
    return graphql.print_ast(dataclasses.replace(document, definitions=tuple(definitions)))


def operation_text(artifact: Path) -> str:
    """The GraphQL text of an operation relay-compiler generated."""
    return json.loads(re.search(r'"text": ("(?:[^"\\]|\\.)*")', artifact.read_text()).group(1))


@pytest.fixture(scope="module")
def artifacts(registry, tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("relay")
    done = relay_compile(build_schema(registry).as_str(), where)
    assert done.returncode == 0, done.stdout + done.stderr
    return where / "src" / "__generated__"


@pytest.fixture
def ws(gql):
    gql.graphql(CONTACTS, c=[{"id": i, "email": f"{i}@example.com", "country": "FR"} for i in MEMBERS]
                + [{"id": "c4", "email": "c4@example.com", "country": "DE"}])
    return gql


def test_relay_compiler_accepts_connection_on_segment_and_preview_contacts(artifacts):
    assert {p.name for p in artifacts.iterdir()} == {
        "PreviewContactsQuery.graphql.js", "SegmentContactsQuery.graphql.js", "SegmentContacts_segment.graphql.js"}


@pytest.mark.parametrize("field", ["hasPreviousPage", "startCursor", "endCursor", "hasNextPage"])
def test_relay_compiler_refuses_a_page_info_without_a_field(registry, tmp_path, field):
    done = relay_compile(without_field(build_schema(registry).as_str(), "PageInfo", field), tmp_path)
    assert done.returncode != 0
    assert f"to expose a 'pageInfo {{ {field} }}' field" in done.stdout + done.stderr


def test_the_generated_preview_query_pages_through_every_member(artifacts, ws):
    query = operation_text(artifacts / "PreviewContactsQuery.graphql.js")
    seen, cursor = [], None
    while True:
        preview = ws.graphql(query, rule=RULE, count=2, cursor=cursor)["segmentPreview"]
        page = preview["contacts"]
        seen += [edge["node"]["id"] for edge in page["edges"]]
        assert all(edge["node"]["__typename"] == "Contact" and edge["cursor"] for edge in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        cursor = page["pageInfo"]["endCursor"]
    assert seen == MEMBERS and preview["count"] == 3


def test_the_generated_segment_query_reads_a_saved_segment(artifacts, ws):
    segment_id = ws.graphql("mutation($r: RuleInput!) { createSegment(name: \"fr\", rule: $r) { id } }",
                            r=RULE)["createSegment"]["id"]
    segment = ws.graphql(operation_text(artifacts / "SegmentContactsQuery.graphql.js"), id=segment_id)["segment"]
    assert segment["id"] == segment_id and segment["name"] == "fr"
    assert [e["node"]["id"] for e in segment["contacts"]["edges"]] == MEMBERS[:2]
    assert segment["contacts"]["pageInfo"]["hasNextPage"] is True


INTROSPECT = """{ __schema { types { name fields { name type { ...Type } } } } }
fragment Type on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }"""


def _shown(type_: dict) -> str:
    """An introspected type as SDL writes it (``[ContactEdge!]!``)."""
    if type_["kind"] == "NON_NULL":
        return _shown(type_["ofType"]) + "!"
    if type_["kind"] == "LIST":
        return f"[{_shown(type_['ofType'])}]"
    return type_["name"]


def test_every_connection_has_edges_with_cursor_and_node_and_the_full_page_info(gql):
    types = {t["name"]: {f["name"]: _shown(f["type"]) for f in t["fields"] or []}
             for t in gql.graphql(INTROSPECT)["__schema"]["types"]}
    connections = sorted(name for name in types if name.endswith("Connection"))
    assert connections == ["ContactConnection", "ContactIdConnection", "SegmentChangeConnection",
                           "SegmentConnection", "WebhookDeliveryConnection"]
    for name in connections:
        assert types[name]["pageInfo"] == "PageInfo!", name
        edge = re.fullmatch(r"\[(\w+)!\]!", types[name]["edges"]).group(1)
        assert types[edge]["cursor"] == "String!" and types[edge]["node"].endswith("!"), name
    assert types["ContactIdConnection"]["ids"] == "[ID!]!" and types["ContactIdEdge"]["node"] == "ID!"
    assert types["PageInfo"] == {"hasNextPage": "Boolean!", "hasPreviousPage": "Boolean!",
                                 "startCursor": "String", "endCursor": "String"}


PAGES = """query($r: RuleInput!, $id: ID!, $after: String) {
  segmentPreview(rule: $r) { contacts(first: 2, after: $after) { edges { cursor } pageInfo { ...Info } } }
  snapshot(id: $id) { memberIds(first: 2, after: $after) { ids edges { cursor node } pageInfo { ...Info } } } }
fragment Info on PageInfo { hasNextPage hasPreviousPage startCursor endCursor }"""


def test_page_info_tells_where_a_page_is(ws):
    segment_id = ws.graphql("mutation($r: RuleInput!) { createSegment(name: \"fr\", rule: $r) { id } }",
                            r=RULE)["createSegment"]["id"]
    snapshot_id = ws.graphql("mutation($id: ID!) { snapshotSegment(id: $id, label: \"now\") { id } }",
                             id=segment_id)["snapshotSegment"]["id"]
    first = ws.graphql(PAGES, r=RULE, id=snapshot_id, after=None)
    contacts, ids = first["segmentPreview"]["contacts"], first["snapshot"]["memberIds"]
    # Contact ids and contacts share their cursors: the same position.
    assert contacts["pageInfo"] == ids["pageInfo"] == {
        "hasNextPage": True, "hasPreviousPage": False,
        "startCursor": contacts["edges"][0]["cursor"], "endCursor": contacts["edges"][1]["cursor"]}
    assert ids["edges"] == [{"cursor": edge["cursor"], "node": member}
                            for edge, member in zip(contacts["edges"], MEMBERS[:2], strict=True)]
    assert ids["ids"] == MEMBERS[:2]
    second = ws.graphql(PAGES, r=RULE, id=snapshot_id, after=contacts["pageInfo"]["endCursor"])
    contacts, ids = second["segmentPreview"]["contacts"], second["snapshot"]["memberIds"]
    assert contacts["pageInfo"] == ids["pageInfo"] == {
        "hasNextPage": False, "hasPreviousPage": True,
        "startCursor": contacts["edges"][0]["cursor"], "endCursor": contacts["edges"][0]["cursor"]}
    assert ids["ids"] == [e["node"] for e in ids["edges"]] == MEMBERS[2:]
