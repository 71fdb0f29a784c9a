"""The condition registry: built-ins are ordinary plugins, contributions are
checked at start-up with errors naming the plugin, and a plugin that fails on
one rule fails that request only."""

import inspect
import json
from pathlib import Path

import pytest
import strawberry
from starlette.testclient import TestClient

from segmentql.app import create_app
from segmentql.plugins import Condition, Observation, RuleError, hookimpl, hookspecs
from segmentql.plugins.registry import PluginError, load_registry

from .conftest import new_workspace


@strawberry.input(description="Test input.")
class FlagCondition:
    on: bool | None = strawberry.UNSET


def _plugin(field="flag", input_type=FlagCondition, validate=lambda n, c: None,
            compile=lambda n, c: {"tags": {"$in": ["flagged"]}}, description="A test flag.", observe=None):
    class Plugin:
        @hookimpl
        def segmentql_register_conditions(self, register):
            register(Condition(field=field, input_type=input_type, validate=validate, compile=compile,
                               description=description, observe=observe))
    return Plugin()


def test_builtins_are_plugins_one_module_each():
    registry = load_registry(load_entry_points=False)
    assert [p.name for p in registry.plugins] == [
        "country", "timezone", "tags", "engagement", "recency", "last_open_device", "open_habits", "campaign",
        "lead_score", "numeric_range", "custom_field", "date_range", "date_anniversary"]
    assert all(p.builtin and len(p.fields) == 1 for p in registry.plugins)


def test_an_extra_plugin_adds_a_field():
    registry = load_registry(load_entry_points=False, extra=[("flagger", _plugin())])
    assert registry["flag"].plugin == "flagger"


def test_two_plugins_claiming_one_field_stop_startup_naming_both():
    with pytest.raises(PluginError, match="plugins 'country' and 'mine' both register the RuleInput field 'country'"):
        load_registry(load_entry_points=False, extra=[("mine", _plugin(field="country"))])


@pytest.mark.parametrize("kwargs, message", [
    ({"field": "all"}, "reserved"),
    ({"field": "not"}, "reserved"),
    ({"field": "bad-name"}, "not a GraphQL name"),
    ({"input_type": dict}, "not a @strawberry.input class"),
    ({"input_type": None}, "not a @strawberry.input class"),
    ({"compile": "nope"}, "compile that is not callable"),
    ({"validate": None}, "validate that is not callable"),
    ({"observe": "tags"}, "observe that is not callable"),
    ({"description": " "}, "needs a description"),
])
def test_malformed_contributions_stop_startup_naming_the_plugin(kwargs, message):
    with pytest.raises(PluginError, match=f"plugin 'broken'.*{message}"):
        load_registry(load_entry_points=False, extra=[("broken", _plugin(**kwargs))])


def test_a_plugin_raising_during_registration_stops_startup():
    class Raising:
        @hookimpl
        def segmentql_register_conditions(self, register):
            raise RuntimeError("boom")
    with pytest.raises(PluginError, match="plugin 'raising' failed while registering conditions: RuntimeError: boom"):
        load_registry(load_entry_points=False, extra=[("raising", Raising())])


def test_unknown_hook_names_fail():
    class Typo:
        @hookimpl
        def segmentql_register_condition(self, register):  # missing "s"
            pass
    with pytest.raises(PluginError, match="plugin 'typo' implements an unknown hook"):
        load_registry(load_entry_points=False, extra=[("typo", Typo())])


def test_a_blocked_plugin_is_not_loaded():
    registry = load_registry(load_entry_points=False, block=["tags"])
    assert "tags" not in registry and "country" in registry


def test_a_plugin_failing_on_one_rule_fails_that_request_only(embedded_uri, settings):
    def explode(node, ctx):
        raise ZeroDivisionError("secret internals")
    registry = load_registry(load_entry_points=False, extra=[("exploding", _plugin(compile=explode))])
    with TestClient(create_app(settings, embedded_uri, registry)) as http:
        client = new_workspace(http)
        errors = client.errors("{ segmentPreview(rule: {any: [{tags: {excludes: [\"x\"]}}, {flag: {on: true}}]}) "
                               "{ count } }")
        assert errors[0]["extensions"]["code"] == "CONDITION_FAILED"
        assert "any[1].flag" in errors[0]["message"] and "'exploding'" in errors[0]["message"]
        assert "secret internals" not in errors[0]["message"]
        assert client.graphql("{ segmentPreview(rule: {tags: {excludes: [\"x\"]}}) { count } }")["segmentPreview"] == {
            "count": 0}


def test_a_plugin_emitting_forbidden_operators_is_refused(embedded_uri, settings):
    registry = load_registry(load_entry_points=False, extra=[
        ("sneaky", _plugin(compile=lambda n, c: {"$where": "sleep(1000)"}))])
    with TestClient(create_app(settings, embedded_uri, registry)) as http:
        errors = new_workspace(http).errors("{ segmentPreview(rule: {flag: {on: true}}) { count } }")
        assert errors[0]["extensions"]["code"] == "CONDITION_FAILED"


EXPLAIN_FLAG = ('{ explainMembership(contactId: "c1", rule: {all: [{flag: {on: true}}]}) '
                '{ member nodes { path matched values { label value needed } } } }')


def test_a_plugin_observation_is_shown_beside_the_compiled_answer(embedded_uri, settings):
    observe = lambda n, c: [Observation("tag count", {"$size": "$tags"}, "any")]  # noqa: E731
    registry = load_registry(load_entry_points=False, extra=[("observant", _plugin(observe=observe))])
    with TestClient(create_app(settings, embedded_uri, registry)) as http:
        client = new_workspace(http)
        client.graphql('mutation { upsertContacts(contacts: [{id: "c1", email: "c1@example.com", '
                       'tags: ["flagged", "x"]}]) { accepted } }')
        nodes = client.graphql(EXPLAIN_FLAG)["explainMembership"]["nodes"]
        assert nodes[1] == {"path": "all[0].flag", "matched": True,
                            "values": [{"label": "tag count", "value": 2, "needed": "any"}]}


@pytest.mark.parametrize("observe", [
    lambda n, c: 1 / 0,
    lambda n, c: {"label": "not a list"},
    lambda n, c: ["not an Observation"],
    lambda n, c: [Observation("x", {"$function": {"body": "return 1", "args": [], "lang": "js"}}, "")],
])
def test_a_failing_or_forbidden_observation_fails_the_explanation_only(embedded_uri, settings, observe):
    registry = load_registry(load_entry_points=False, extra=[("observant", _plugin(observe=observe))])
    with TestClient(create_app(settings, embedded_uri, registry)) as http:
        client = new_workspace(http)
        client.graphql('mutation { upsertContacts(contacts: [{id: "c1", email: "c1@example.com"}]) { accepted } }')
        errors = client.errors(EXPLAIN_FLAG)
        assert errors[0]["extensions"]["code"] == "CONDITION_FAILED"
        assert "all[0].flag" in errors[0]["message"] and "'observant'" in errors[0]["message"]
        preview = client.graphql("{ segmentPreview(rule: {flag: {on: true}}) { count } }")["segmentPreview"]
        assert preview == {"count": 0}


def test_plugin_rule_errors_become_invalid_rule(embedded_uri, settings):
    def strict(node, ctx):
        if not node.get("on"):
            raise RuleError("`on` must be true")
    registry = load_registry(load_entry_points=False, extra=[("strict", _plugin(validate=strict))])
    with TestClient(create_app(settings, embedded_uri, registry)) as http:
        errors = new_workspace(http).errors("{ segmentPreview(rule: {not: {flag: {on: false}}}) { count } }")
        assert errors[0]["extensions"]["code"] == "INVALID_RULE"
        assert errors[0]["message"] == "not.flag: `on` must be true"


def test_every_hook_is_documented_and_tested():
    """Like datasette's meta-tests: a hook without a docstring or a test fails."""
    hooks = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
             if name.startswith("segmentql_")]
    assert hooks
    tests = "".join((Path(__file__).parent / name).read_text() for name in ("test_plugins.py", "test_plugin_hooks.py"))
    for name in hooks:
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert "When it is called" in doc and "What it returns" in doc, name
        assert tests.count(name) >= 2, f"no test exercises {name}"


class Unencodable:
    """Not a BSON value: the driver refuses a query holding it, with its repr in the message."""

    def __repr__(self):
        return "unknownOperator secret"


def test_unexpected_errors_are_masked_and_logged(embedded_uri, settings, caplog):
    registry = load_registry(load_entry_points=False, extra=[
        ("odd", _plugin(compile=lambda n, c: {"tags": {"$in": [Unencodable()]}}))])
    with TestClient(create_app(settings, embedded_uri, registry)) as http:
        client = new_workspace(http)
        client.graphql('mutation { upsertContacts(contacts: [{id: "c", email: "c@example.com", tags: ["x"]}]) '
                   '{ accepted } }')
        errors = client.errors("{ segmentPreview(rule: {flag: {on: true}}) { count } }")
        assert errors[0]["extensions"]["code"] == "INTERNAL_ERROR"
        assert errors[0]["message"] == "internal error; it has been logged"
        assert "unknownOperator" not in json.dumps(errors)
        assert client.graphql("{ conditionTypes { field } }")["conditionTypes"]
    assert "unexpected error" in caplog.text
