"""Tests with segmentql's test kit: the ``segmentql`` fixture is a real service
on an embedded database with this installed plugin loaded (its ``purchases``
collection created), and the import command runs against that database."""

import datetime as dt
import json
import os
import subprocess
import sys
import uuid

import pytest

NOW = dt.datetime.now(dt.UTC)
# contact -> purchases (sku, amount, days ago); "c" bought after asOf's day only
PURCHASES = {"a": [("TSHIRT-RED", 25.0, 2)], "b": [("MUG", 8.0, 40), ("TSHIRT-RED", 12.5, 60)],
             "c": [("TSHIRT-RED", 30.0, -2)], "d": []}


class Shop:
    """A workspace made by ``segmentql workspace create`` (the import command names workspaces by name)."""

    def __init__(self, segmentql, uri: str):
        self.http, self.name = segmentql.http, f"shop-{uuid.uuid4().hex[:10]}"
        self.env = {**os.environ, "MONGODB_URI": uri,
                    "SEGMENTQL_DATABASE": segmentql.http.app.state.segmentql.settings.database}
        self.key = self.run("segmentql.cli", "workspace", "create", self.name).stdout.strip().splitlines()[-1]

    def run(self, module: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", module, *args], env=self.env, capture_output=True, text=True,
                              timeout=120)

    def post(self, query: str, **variables) -> dict:
        return self.http.post("/graphql", json={"query": query, "variables": variables},
                              headers={"Authorization": f"Bearer {self.key}"}).json()

    def graphql(self, query: str, **variables) -> dict:
        body = self.post(query, **variables)
        assert not body.get("errors"), body["errors"]
        return body["data"]

    def members(self, rule: dict) -> list[str]:
        preview = self.graphql("query($r: RuleInput!) { segmentPreview(rule: $r) { count "
                               "contacts(first: 100) { edges { node { id } } } } }", r=rule)["segmentPreview"]
        ids = [edge["node"]["id"] for edge in preview["contacts"]["edges"]]
        assert preview["count"] == len(ids)
        return ids


@pytest.fixture
def shop(segmentql, segmentql_database_uri, tmp_path) -> Shop:
    """Contacts a..d and their purchases, imported by the command."""
    shop = Shop(segmentql, segmentql_database_uri)
    contacts = ", ".join(f'{{id: "{c}", email: "{c}@example.com"}}' for c in PURCHASES)
    shop.graphql(f"mutation {{ upsertContacts(contacts: [{contacts}]) {{ accepted }} }}")
    shop.segment = shop.graphql('mutation { createSegment(name: "red shirts", rule: {purchased: {sku: "TSHIRT-RED"}}) '
                                "{ id count } }")["createSegment"]
    lines = [json.dumps({"id": f"{c}{n}", "contactId": c, "sku": sku, "amount": amount,
                         "at": (NOW - dt.timedelta(days=days)).isoformat()})
             for c, bought in PURCHASES.items() for n, (sku, amount, days) in enumerate(bought)]
    (tmp_path / "purchases.ndjson").write_text("\n".join(lines) + "\n")
    done = shop.run("segmentql_purchases.cli", "import", str(tmp_path / "purchases.ndjson"), "--workspace", shop.name)
    assert done.returncode == 0, done.stderr
    assert "stored 4 purchases" in done.stdout
    return shop


def test_the_field_and_its_collection_are_registered(segmentql):
    types = segmentql.graphql("{ conditionTypes { field plugin } }")["conditionTypes"]
    assert {"field": "purchased", "plugin": "purchases"} in types


def test_members_by_purchases(shop, segmentql):
    assert shop.members({"purchased": {}}) == ["a", "b"]  # c's purchase is after today
    assert shop.members({"purchased": {"sku": "TSHIRT-RED"}}) == ["a", "b"]
    assert shop.members({"purchased": {"sku": "TSHIRT-RED", "minAmount": 20}}) == ["a"]
    assert shop.members({"purchased": {"withinDays": 30}}) == ["a"]
    assert shop.members({"all": [{"purchased": {"sku": "MUG"}}, {"not": {"purchased": {"withinDays": 30}}}]}) == ["b"]
    node = shop.graphql('{ explainMembership(contactId: "b", rule: {purchased: {sku: "TSHIRT-RED"}}) '
                        "{ nodes { matched values { label value needed } } } }")["explainMembership"]["nodes"][0]
    assert node == {"matched": True, "values": [{"label": "matching purchases", "value": 1, "needed": ">= 1"}]}
    # The test kit's own workspace: contact "a" again, none of the shop's purchases.
    segmentql.graphql('mutation { upsertContacts(contacts: [{id: "a", email: "a@example.com"}]) { accepted } }')
    assert segmentql.members({"purchased": {}}, as_of=None) == []


def test_the_import_brings_saved_segments_up_to_date_and_refuses_bad_lines(shop, tmp_path):
    assert shop.segment["count"] == 0  # saved before the import
    query = "query($id: ID!) { segment(id: $id) { count } }"
    assert shop.graphql(query, id=shop.segment["id"])["segment"]["count"] == 2
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"id": "x1", "contactId": "a", "sku": "X", "amount": 1, "at": "2026-11-20T10:00:00Z"}\n'
                   '{"id": "x2", "contactId": "a", "sku": "X", "amount": -1, "at": "2026-11-20T10:00:00Z"}\n')
    done = shop.run("segmentql_purchases.cli", "import", str(bad), "--workspace", shop.name)
    assert done.returncode == 2
    assert done.stderr.strip() == "segmentql-purchases: line 2: amount must be a number, at least 0"
    assert shop.members({"purchased": {"sku": "X"}}) == []  # nothing of the file was stored


def test_importing_a_file_again_stores_each_purchase_once(shop, tmp_path):
    """As after an import killed part way and run again: purchases are stored by id."""
    done = shop.run("segmentql_purchases.cli", "import", str(tmp_path / "purchases.ndjson"), "--workspace", shop.name)
    assert done.returncode == 0, done.stderr
    assert "stored 0 purchases (4 stored before)" in done.stdout
    node = shop.graphql('{ explainMembership(contactId: "b", rule: {purchased: {}}) '
                        "{ nodes { values { value } } } }")["explainMembership"]["nodes"][0]
    assert node["values"] == [{"value": 2}]  # b's two purchases, not four


def test_a_bad_rule_is_an_invalid_rule(segmentql):
    errors = segmentql.errors("{ segmentPreview(rule: {any: [{purchased: {withinDays: 0}}]}) { count } }")
    assert errors[0]["extensions"]["code"] == "INVALID_RULE"
    assert errors[0]["message"].startswith("any[0].purchased:")
