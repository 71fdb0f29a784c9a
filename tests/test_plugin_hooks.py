"""Storage hooks: a plugin's own collections, its indexes on contact fields
(counted against the contacts index budget) and the per-contact rollups it
keeps from each contact's events, under ``plugins.<name>``, at ingest and by
``segmentql rebuild-rollups``.

The plugin below is registered like any test plugin (``extra``) for the app,
and as an installed distribution (an entry point on PYTHONPATH) for the
command line, which loads installed plugins only.
"""

import asyncio
import dataclasses
import logging
import re
from pathlib import Path

import pytest
import strawberry
from starlette.testclient import TestClient

from segmentql.app import create_app
from segmentql.plugins import Collection, Condition, Index, Rollup, hookimpl
from segmentql.plugins.registry import PluginError, load_registry
from segmentql.server import database
from segmentql.server.database import MAX_CONTACT_INDEXES, Database, LimitExceeded

from .conftest import REPO, GraphQLClient, new_workspace, segmentql
from .distributions import dist_info

HOOKS_DATABASE = "segmentql_plugin_hooks"


@strawberry.input(description="Contacts with at least this many clicks (the loyalty plugin's rollup).")
class LoyalClicksCondition:
    at_least: int


def clicks(events: list[dict]) -> dict | None:
    """The loyalty rollup: clicks, the newest click, and the event shape seen."""
    clicked = [ev for ev in events if ev["type"] == "CLICK"]
    if not events:
        return None
    times = [ev["at"] for ev in events]
    return {"total": len(clicked), "lastAt": clicked[-1]["at"] if clicked else None,
            "fields": sorted(events[0]), "oldestFirst": times == sorted(times)}


class Loyalty:
    """A plugin using every storage hook, and a condition reading its rollup."""

    @hookimpl
    def segmentql_register_conditions(self, register):
        register(Condition(field="loyalClicks", input_type=LoyalClicksCondition, validate=lambda n, c: None,
                           compile=lambda n, c: {"plugins.loyalty.clicks.total": {"$gte": n["atLeast"]}},
                           description="Contacts with at least this many clicks."))

    @hookimpl
    def segmentql_register_collections(self, register):
        register(Collection("loyalty_points", (Index((("contact_id", 1), ("at", -1))),
                                               Index((("code", 1),), unique=True)), "Points earned."))

    @hookimpl
    def segmentql_register_indexes(self, register):
        register(Index((("plugins.loyalty.clicks.total", 1),)))
        register(Index((("custom.tier", 1),)))

    @hookimpl
    def segmentql_register_rollups(self, register):
        register(Rollup("clicks", clicks, "Clicks and the newest click."))


def fragile(events: list[dict]) -> dict | None:
    """Fails, each its own way, on contacts whose clicks name a problem."""
    urls = {ev["url"] for ev in events}
    if "https://x/raise" in urls:
        raise ZeroDivisionError("fragile bug")
    if "https://x/huge" in urls:
        return {"blob": "x" * 20_000}
    if "https://x/odd" in urls:
        return {"kinds": {"a", "b"}}
    return {"events": len(events)}


class Fragile:
    @hookimpl
    def segmentql_register_rollups(self, register):
        register(Rollup("seen", fragile, "Events seen."))


PLUGIN = Loyalty()  # the entry point of the installed distribution (see ``installed``)


@pytest.fixture(scope="module")
def hooks_settings(settings):
    return dataclasses.replace(settings, database=HOOKS_DATABASE)


@pytest.fixture(scope="module")
def hooks_http(embedded_uri, hooks_settings):
    registry = load_registry(load_entry_points=False, extra=[("loyalty", PLUGIN), ("fragile", Fragile())])
    with TestClient(create_app(hooks_settings, embedded_uri, registry)) as http:
        yield http


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A directory that, on PYTHONPATH, installs the loyalty plugin (a
    distribution with a ``segmentql.conditions`` entry point)."""
    site = tmp_path_factory.mktemp("site")
    dist_info(site, "segmentql-loyalty", "1.0", {"segmentql.conditions": {"loyalty": "tests.test_plugin_hooks:PLUGIN"}})
    return site


def indexes(http, collection: str) -> dict[str, dict]:
    db = http.app.state.segmentql.db

    async def listed():
        return {spec["name"]: spec async for spec in await db.db[collection].list_indexes()}
    return http.portal.call(listed)


def contact_plugins(client, contact_id: str) -> dict:
    return (client.call(client.db.contact, client.workspace_id, contact_id) or {}).get("plugins", {})


CONTACTS = 'mutation($c: [ContactInput!]!) { upsertContacts(contacts: $c) { accepted errors { message } } }'
EVENTS = 'mutation($e: [EventInput!]!) { recordEvents(events: $e) { accepted errors { message } } }'


def click(eid: str, contact: str, at: str, url: str = "https://x/a") -> dict:
    return {"id": eid, "contactId": contact, "type": "CLICK", "at": at, "url": url}


def test_a_declared_collection_exists_after_startup_with_workspace_led_indexes(hooks_http):
    registry = hooks_http.app.state.segmentql.registry
    assert registry.storage.collections["loyalty_points"].plugin == "loyalty"
    keys = {tuple(spec["key"].items()): spec.get("unique", False)
            for spec in indexes(hooks_http, "loyalty_points").values()}
    assert keys[(("workspace_id", 1), ("contact_id", 1), ("at", -1))] is False
    assert keys[(("workspace_id", 1), ("code", 1))] is True  # unique within a workspace


def test_creating_plugin_storage_again_and_at_once_changes_nothing(hooks_http):
    db = hooks_http.app.state.segmentql.db
    before = (indexes(hooks_http, "loyalty_points"), indexes(hooks_http, "contacts"))

    async def twice():
        await asyncio.gather(db.ensure_indexes(), db.ensure_indexes())
    hooks_http.portal.call(twice)
    assert (indexes(hooks_http, "loyalty_points"), indexes(hooks_http, "contacts")) == before


def test_contact_field_indexes_exist_led_by_workspace(hooks_http):
    specs = indexes(hooks_http, "contacts")
    assert tuple(specs["plugin:workspace_id_1_plugins.loyalty.clicks.total_1"]["key"].items()) == (
        ("workspace_id", 1), ("plugins.loyalty.clicks.total", 1))
    assert tuple(specs["plugin:workspace_id_1_custom.tier_1"]["key"].items()) == (
        ("workspace_id", 1), ("custom.tier", 1))


def test_rollups_are_kept_at_ingest_and_queried_by_the_plugins_condition(hooks_http):
    client = new_workspace(hooks_http)
    client.graphql(CONTACTS, c=[{"id": c, "email": f"{c}@example.com"} for c in ("a", "b", "quiet")])
    done = client.graphql(EVENTS, e=[click("e2", "a", "2026-11-02T10:00:00Z"), click("e1", "a", "2026-11-01T10:00:00Z"),
                                     {"id": "e3", "contactId": "a", "type": "OPEN", "at": "2026-11-03T10:00:00Z"},
                                     click("e4", "b", "2026-11-05T10:00:00Z")])
    assert done["recordEvents"] == {"accepted": 4, "errors": []}
    loyalty = contact_plugins(client, "a")["loyalty"]
    assert loyalty["clicks"]["total"] == 2 and loyalty["clicks"]["lastAt"].isoformat() == "2026-11-02T10:00:00+00:00"
    assert loyalty["clicks"]["fields"] == ["at", "campaignId", "device", "id", "type", "url"]
    assert loyalty["clicks"]["oldestFirst"] is True
    # Created with its rollups; None (no events) is no value.
    assert contact_plugins(client, "quiet") == {"fragile": {"seen": {"events": 0}}}
    assert contact_plugins(client, "b")["fragile"] == {"seen": {"events": 1}}
    assert client.members({"loyalClicks": {"atLeast": 2}}) == ["a"]
    assert client.members({"loyalClicks": {"atLeast": 1}}) == ["a", "b"]


def test_rebuild_rollups_recomputes_plugin_values_changed_behind_its_back(hooks_http, hooks_settings, cli_env,
                                                                          installed):
    name = f"hooks-{id(installed)}"
    env = {**cli_env, "SEGMENTQL_DATABASE": hooks_settings.database, "PYTHONPATH": f"{installed}:{REPO}",
           "SEGMENTQL_PLUGINS": "loyalty"}
    created = segmentql("workspace", "create", name, env=env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    workspace = hooks_http.portal.call(hooks_http.app.state.segmentql.db.workspace_for_key, key)
    client = GraphQLClient(hooks_http, key, workspace.id)
    client.graphql(CONTACTS, c=[{"id": "a", "email": "a@example.com"}])
    client.graphql(EVENTS, e=[click("e1", "a", "2026-11-01T10:00:00Z"), click("e2", "a", "2026-11-02T10:00:00Z")])

    async def tamper():
        await client.db.db.contacts.update_one({"workspace_id": client.workspace_id, "id": "a"},
                                               {"$set": {"plugins.loyalty.clicks.total": 99}})
    hooks_http.portal.call(tamper)
    assert client.members({"loyalClicks": {"atLeast": 99}}) == ["a"]
    rebuilt = segmentql("rebuild-rollups", "--workspace", name, env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert contact_plugins(client, "a")["loyalty"]["clicks"]["total"] == 2
    assert client.members({"loyalClicks": {"atLeast": 99}}) == []


def test_a_failing_compute_skips_its_own_value_only_and_names_the_plugin(hooks_http, caplog):
    client = new_workspace(hooks_http)
    client.graphql(CONTACTS, c=[{"id": c, "email": f"{c}@example.com"} for c in ("fine", "raise", "huge", "odd")])
    client.graphql(EVENTS, e=[click("f1", "fine", "2026-11-01T10:00:00Z")])
    with caplog.at_level(logging.ERROR, logger="segmentql"):
        done = client.graphql(EVENTS, e=[click("f2", "fine", "2026-11-02T10:00:00Z")] + [
            click(f"x-{c}", c, "2026-11-02T10:00:00Z", f"https://x/{c}") for c in ("raise", "huge", "odd")])
    assert done["recordEvents"] == {"accepted": 4, "errors": []}
    assert contact_plugins(client, "fine")["fragile"] == {"seen": {"events": 2}}
    for cid in ("raise", "huge", "odd"):  # left as it was (made with the contact); the other plugin's stored
        assert contact_plugins(client, cid)["fragile"] == {"seen": {"events": 0}}
        assert contact_plugins(client, cid)["loyalty"]["clicks"]["total"] == 1
    assert client.members({"loyalClicks": {"atLeast": 1}}) == ["fine", "huge", "odd", "raise"]
    logged = caplog.text
    assert re.search(r"rollup 'seen' of plugin 'fragile' failed for 3 contact\(s\)", logged), logged
    # A later failure leaves the value computed before as it was.
    client.graphql(EVENTS, e=[click("f3", "fine", "2026-11-03T10:00:00Z", "https://x/raise")])
    assert contact_plugins(client, "fine")["fragile"] == {"seen": {"events": 2}}
    assert contact_plugins(client, "fine")["loyalty"]["clicks"]["total"] == 3


def test_rollup_values_are_checked_before_they_are_stored():
    from segmentql.server.rollups import UnusableRollup, checked_rollup_value
    assert checked_rollup_value(None) is None
    assert checked_rollup_value({"n": 1, "xs": [1.5, "a", None, True]}) == {"n": 1, "xs": [1.5, "a", None, True]}
    for value, reason in [([1], "not a dict"), ({"x": {1, 2}}, "not a JSON value"), ({"a.b": 1}, "keys are"),
                          ({"$x": 1}, "keys are"), ({"x": float("nan")}, "finite"), ({"x": 2**70}, "cannot be stored"),
                          ({"x": "y" * 17_000}, "at most 16384")]:
        with pytest.raises(UnusableRollup, match=reason):
            checked_rollup_value(value)


def _storage_plugin(hook: str, *contributions):
    class Plugin:
        pass

    def implementation(self, register):
        for contribution in contributions:
            register(contribution)
    setattr(Plugin, hook, hookimpl(implementation))
    implementation.__name__ = hook
    return Plugin()


ROLLUP = Rollup("x", lambda events: None, "X.")


@pytest.mark.parametrize("hook, contributions, message", [
    ("segmentql_register_collections", [Collection("Bad-Name")], "collection 'Bad-Name'"),
    ("segmentql_register_collections", [Collection("x", (Index((("a", 2),)),))], "direction other than 1 or -1"),
    ("segmentql_register_collections", [Collection("x", (Index((("a", 1), ("workspace_id", 1))),))],
     "'workspace_id' only first"),
    ("segmentql_register_collections", [Collection("x", (Index((("$a", 1),)),))], "not a field path"),
    ("segmentql_register_collections", [Collection("x", (Index(tuple((f"k{i}", 1) for i in range(32))),))],
     "has 32 keys besides 'workspace_id'; an index has at most 32 keys"),
    ("segmentql_register_collections", [Collection("x", tuple(Index(((f"k{i}", 1),)) for i in range(17)))],
     "collection 'x' declares 17 indexes; a plugin's collection may have at most 16"),
    ("segmentql_register_indexes", [Index(tuple((f"custom.k{i}", 1) for i in range(40)))],
     "has 40 keys besides 'workspace_id'"),
    ("segmentql_register_collections", ["points"], "not a segmentql.plugins.Collection"),
    ("segmentql_register_indexes", [Index((("plugins.other.x", 1),))], "may name only plugins.mine.<field>"),
    ("segmentql_register_indexes", [Index((("email", 1),))], "may name only"),
    ("segmentql_register_indexes", [Index((("custom.tier", 1),), unique=True)], "cannot be unique"),
    ("segmentql_register_rollups", [Rollup("Bad name", lambda e: None, "X.")], "rollup 'Bad name'"),
    ("segmentql_register_rollups", [Rollup("x", "nope", "X.")], "compute that is not callable"),  # type: ignore[arg-type]
    ("segmentql_register_rollups", [Rollup("x", lambda e: None, " ")], "needs a description"),
    ("segmentql_register_rollups", [ROLLUP, ROLLUP], "registers the rollup 'x' twice"),
])
def test_malformed_declarations_stop_startup_naming_the_plugin(hook, contributions, message):
    with pytest.raises(PluginError, match=f"plugin 'mine'.*{re.escape(message)}"):
        load_registry(load_entry_points=False, extra=[("mine", _storage_plugin(hook, *contributions))])


def test_a_collection_claimed_twice_or_named_like_segmentqls_own_stops_startup(embedded_uri, settings):
    with pytest.raises(PluginError, match="plugins 'first' and 'second' both register the collection 'points'"):
        load_registry(load_entry_points=False, extra=[
            (name, _storage_plugin("segmentql_register_collections", Collection("points"))) for name in ("first",
                                                                                                        "second")])
    registry = load_registry(load_entry_points=False, extra=[
        ("sneaky", _storage_plugin("segmentql_register_collections", Collection("api_keys")))])
    with pytest.raises(PluginError, match="plugin 'sneaky' registers the collection 'api_keys', which is one of "
                                          "segmentql's own"):
        create_app(settings, embedded_uri, registry)


def test_core_collections_are_every_collection_the_database_module_names():
    source = Path(database.__file__).read_text()
    assert set(re.findall(r"self\.db\.([a-z_]+)\b(?!\()", source)) - {"codec_options"} <= database.CORE_COLLECTIONS


def test_a_plugin_hook_raising_stops_startup_naming_it():
    class Raising:
        @hookimpl
        def segmentql_register_rollups(self, register):
            raise RuntimeError("boom")
    with pytest.raises(PluginError, match="plugin 'raising' failed while registering rollups: RuntimeError: boom"):
        load_registry(load_entry_points=False, extra=[("raising", Raising())])


def test_plugin_contact_indexes_have_a_share_of_the_budget(embedded_uri, settings):
    registry = load_registry(load_entry_points=False, extra=[("greedy", _storage_plugin(
        "segmentql_register_indexes", *[Index(((f"custom.k{i}", 1),)) for i in range(17)]))])
    with pytest.raises(PluginError, match=r"plugin 'greedy' asks for a contact index past the 16"):
        create_app(settings, embedded_uri, registry)


def test_plugin_contact_indexes_count_against_the_contacts_index_budget(embedded_uri):
    """Custom fields get what plugins leave; a plugin asking for more than
    the collection has left stops start-up, named."""
    def storage(*paths):
        return load_registry(load_entry_points=False, extra=[("budget", _storage_plugin(
            "segmentql_register_indexes", *[Index(((p, 1),)) for p in paths]))]).storage

    async def scenario():
        db = Database(embedded_uri, "segmentql_hooks_budget", 60_000, storage("custom.a", "custom.b"))
        try:
            await db.db.contacts.drop()
            await db.ensure_indexes()
            names = [spec["name"] async for spec in await db.db.contacts.list_indexes()]
            assert sum(n.startswith("plugin:") for n in names) == 2
            room = MAX_CONTACT_INDEXES - len(names)  # what segmentql and the plugin leave custom fields
            for i in range(room):
                await db.ensure_custom_field_indexes(f"w{i // 8}", f"k{i % 8}", "TEXT")
            with pytest.raises(LimitExceeded, match="no index left"):
                await db.ensure_custom_field_indexes("w-last", "k", "TEXT")
            more = Database(embedded_uri, "segmentql_hooks_budget", 60_000, storage("custom.a", "custom.b", "custom.c"))
            try:
                with pytest.raises(PluginError, match=r"plugin\(s\) 'budget' ask for 1 contact index\(es\)"):
                    await more.ensure_indexes()
            finally:
                await more.close()
        finally:
            await db.db.contacts.drop()
            await db.close()
    asyncio.run(scenario())


def test_the_largest_declarations_segmentql_takes_register():
    most = Collection("x", tuple(Index(tuple((f"k{i}-{j}", 1) for i in range(31))) for j in range(16)))
    registry = load_registry(load_entry_points=False, extra=[("mine", _storage_plugin(
        "segmentql_register_collections", most))])
    assert [len(i.keys) for i in registry.storage.collections["x"].collection.indexes] == [32] * 16


def _indexing(*names: str, path: str = "custom.plan"):
    return load_registry(load_entry_points=False, extra=[
        (name, _storage_plugin("segmentql_register_indexes", Index(((path, 1),)))) for name in names]).storage


def test_plugins_asking_for_one_contact_index_share_it_whichever_stay_enabled(embedded_uri):
    """The index is named by its keys: disabling the plugin that asked first
    leaves it to the others, and start-up goes on."""
    async def scenario():
        for storage in (_indexing("a_p", "b_p"), _indexing("b_p"), _indexing("c_p")):
            db = Database(embedded_uri, "segmentql_hooks_shared", 60_000, storage)
            try:
                await db.ensure_indexes()
                yield sorted([spec["name"] async for spec in await db.db.contacts.list_indexes()
                              if spec["name"].startswith("plugin:")])
            finally:
                await db.close()

    async def names():
        return [found async for found in scenario()]
    assert _indexing("a_p", "b_p").contact_indexes[0].plugins == ("a_p", "b_p")
    assert asyncio.run(names()) == [["plugin:workspace_id_1_custom.plan_1"]] * 3


def test_a_contact_index_conflicting_with_a_stored_one_stops_startup_naming_the_plugins(embedded_uri):
    async def scenario():
        db = Database(embedded_uri, "segmentql_hooks_conflict", 60_000, _indexing("a_p", "b_p"))
        try:
            await db.db.contacts.drop()
            await db.db.contacts.create_index([("workspace_id", 1), ("custom.other", 1)],
                                              name="plugin:workspace_id_1_custom.plan_1")
            with pytest.raises(PluginError, match=r"plugin\(s\) 'a_p', 'b_p': a contact index they ask for "
                                                  r"conflicts with one the contacts collection has"):
                await db.ensure_indexes()
        finally:
            await db.db.contacts.drop()
            await db.close()
    asyncio.run(scenario())


def test_a_plugin_installed_on_existing_data_is_named_at_startup_and_filled_by_rebuild(embedded_uri, caplog):
    """Start-up does not hold serving for a full rebuild: it names the
    workspaces lacking an enabled plugin's rollups and the command that
    computes them; the plugin's values come with that command (or with the
    contact's next events)."""
    from segmentql.server import ingest

    async def scenario():
        before = Database(embedded_uri, HOOKS_DATABASE, 60_000)
        try:
            workspace, _key = await before.create_workspace(f"existing {id(before)}")
            await ingest.upsert_contacts(before, workspace["_id"], [{"id": "a", "email": "a@example.com"}])
            await ingest.record_events(before, workspace["_id"], [click("e1", "a", "2026-11-01T10:00:00Z")])
        finally:
            await before.close()
        after = Database(embedded_uri, HOOKS_DATABASE, 60_000, load_registry(
            load_entry_points=False, extra=[("loyalty", PLUGIN)]).storage)
        try:
            with caplog.at_level(logging.WARNING, logger="segmentql"):
                assert workspace["name"] not in dict(await ingest.upgrade_rollups(after))
            assert "plugins" not in await after.contact(workspace["_id"], "a")
            warned = f"workspace {workspace['name']!r} has no values of the plugin rollup(s) plugins.loyalty.clicks"
            assert warned in caplog.text
            assert f"run: segmentql rebuild-rollups --workspace '{workspace['name']}'" in caplog.text
            assert await ingest.rebuild_all_rollups(after, workspace["_id"]) == 1
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="segmentql"):
                await ingest.upgrade_rollups(after)
            assert workspace["name"] not in caplog.text
            return (await after.contact(workspace["_id"], "a"))["plugins"]["loyalty"]["clicks"]["total"]
        finally:
            await after.close()
    assert asyncio.run(scenario()) == 1


def test_a_plugin_command_finds_the_workspace_and_its_collection_through_segmentql(hooks_http, hooks_settings,
                                                                                     embedded_uri, installed,
                                                                                     monkeypatch):
    """``segmentql.cli.workspace_database``: what a plugin's own command
    (an import into its collection) needs, without reading segmentql's
    collections."""
    from segmentql.cli import CommandError, workspace_database
    client = new_workspace(hooks_http)
    name = hooks_http.portal.call(client.db.workspace, client.workspace_id).name
    monkeypatch.setenv("MONGODB_URI", embedded_uri)
    monkeypatch.setenv("SEGMENTQL_DATABASE", hooks_settings.database)
    monkeypatch.syspath_prepend(str(installed))
    with workspace_database(name) as (db, workspace_id):
        assert workspace_id == client.workspace_id
        assert "loyalty_points" in db.list_collection_names()
    with pytest.raises(CommandError, match="no workspace named 'nobody'"), workspace_database("nobody"):
        pass
