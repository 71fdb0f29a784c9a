"""Start-up never crashes with a traceback: a plugin that cannot be used stops
`segmentql serve`, `segmentql schema` and `segmentql plugins` alike with one
line naming the plugin(s) and the name at fault, and a non-zero exit.

The plugins here are real installed packages as far as segmentql can tell: a
module and a ``*.dist-info`` (METADATA and ``entry_points.txt``) in a folder on
PYTHONPATH, found through the ``segmentql.conditions`` entry-point group like
any ``pip install``-ed plugin, by a real child process."""

import enum
import importlib
import json
import os
import re
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import strawberry
from pymongo import MongoClient

from segmentql.plugins import API_VERSION, Condition, hookimpl
from segmentql.plugins.conditions import BUILTIN_MODULES
from segmentql.plugins.registry import BUILTIN_PREFIX, PluginError, load_registry
from segmentql.plugins.version import api_mismatch
from segmentql.schema import build_schema

from .conftest import segmentql
from .distributions import dist_info

HEADER = """\
import enum
import strawberry
from segmentql.plugins import ALWAYS, Comparison, Condition, hookimpl


def register_input(register, field, input_type):
    register(Condition(field=field, input_type=input_type, description="A test condition.",
                       validate=lambda node, ctx: None, compile=lambda node, ctx: ALWAYS))
"""


def install(folder: Path, name: str, body: str) -> None:
    """Plugin ``name``: module ``<name>_plugin`` (HEADER, then ``body``) of the
    distribution ``segmentql-test-<name>`` 0.1, with its entry point."""
    (folder / f"{name}_plugin.py").write_text(HEADER + textwrap.dedent(body))
    dist_info(folder, f"segmentql-test-{name}", "0.1", {"segmentql.conditions": {name: f"{name}_plugin"}})


def run(folder: Path, command: str, *args: str, **settings: str):
    """``segmentql <command>`` with the plugins of ``folder`` installed and no database configured."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MONGODB_URI", "SEGMENTQL_PLUGINS", "SEGMENTQL_DISABLE_PLUGINS")}
    env.update(settings, PYTHONPATH=os.pathsep.join(filter(None, [str(folder), env.get("PYTHONPATH")])))
    extra = ("--data-dir", str(folder / "data"), "--port", "1") if command in ("serve", "demo") else ()
    return segmentql(command, *extra, *args, env=env, timeout=120)


def refused(done, *names: str) -> str:
    """The one line a refused start-up prints; it names every one of ``names``."""
    assert done.returncode != 0, done.stdout[-2000:]
    assert "Traceback" not in done.stderr and done.stdout == "", done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("segmentql: "), done.stderr
    for name in names:
        assert repr(name) in lines[0], (name, lines[0])
    return lines[0]


CLASH_WITH_BUILTIN_INPUT = """
@strawberry.input(name="SetCondition", description="Named like country's and timezone's input.")
class Mine:
    value: str | None = strawberry.UNSET


@hookimpl
def segmentql_register_conditions(register):
    register_input(register, "mine", Mine)
"""


@pytest.mark.parametrize("command", ["serve", "schema", "plugins"])
def test_a_clash_with_a_builtin_input_type_stops_every_command(tmp_path, command):
    install(tmp_path, "clashing", CLASH_WITH_BUILTIN_INPUT)
    line = refused(run(tmp_path, command), "clashing", "country", "SetCondition")
    assert "different classes" in line


SNEAKY = """
from segmentql.plugins import Collection


@hookimpl
def segmentql_register_collections(register):
    register(Collection("contacts"))
"""


@pytest.mark.parametrize("command", [["serve"], ["serve", "--workers", "2"], ["schema"], ["plugins"],
                                     ["demo", "--contacts", "10"]])
def test_storage_no_database_can_take_stops_every_command_before_it_starts(tmp_path, embedded_uri, command):
    """Checked with the schema, in the one process: never in each worker
    (which uvicorn would start again and again), and before the demo
    generates its data."""
    install(tmp_path, "sneaky", SNEAKY)
    done = run(tmp_path, *command, MONGODB_URI=embedded_uri)
    line = refused(done, "sneaky", "contacts")
    assert "one of segmentql's own" in line
    assert not (tmp_path / "data").exists()


ORDERS = """
from segmentql.plugins import Collection, Index


@hookimpl
def segmentql_register_collections(register):
    register(Collection("rev_orders", (Index((("contact_id", 1),)),)))
"""


@pytest.mark.parametrize("workers", ["1", "2"])
def test_storage_this_database_cannot_take_stops_serve_before_it_serves(tmp_path, embedded_uri, workers):
    """An index of the plugin's collection stored with other options: one
    line, before uvicorn starts (no traceback, no worker started)."""
    install(tmp_path, "orders", ORDERS)
    database = f"segmentql_startup_{uuid.uuid4().hex[:8]}"
    with MongoClient(embedded_uri) as client:
        client[database]["rev_orders"].create_index([("workspace_id", 1), ("contact_id", 1)], unique=True)
    done = run(tmp_path, "serve", "--workers", workers, MONGODB_URI=embedded_uri, SEGMENTQL_DATABASE=database)
    line = refused(done, "orders", "rev_orders")
    assert "exists with other options" in line


def test_a_worker_refusing_its_plugins_stops_uvicorn_rather_than_being_restarted(tmp_path, embedded_uri):
    """The ASGI factory's refusal is uvicorn's STARTUP_FAILURE status (3),
    on which its supervisor stops instead of starting the worker again."""
    install(tmp_path, "clashing", CLASH_WITH_BUILTIN_INPUT)
    env = {**os.environ, "MONGODB_URI": embedded_uri, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", "from segmentql.server.app import create_app; create_app()"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("segmentql: ") and "'clashing'" in lines[0], done.stderr


def test_a_clash_with_a_builtin_enum_names_both_plugins_and_the_enum(tmp_path):
    install(tmp_path, "enumed", """
        @strawberry.enum(description="Its own comparison, named like the shared one.")
        class Comparison(enum.Enum):
            ABOVE = "ABOVE"


        @strawberry.input(description="Uses its own Comparison.")
        class EnumedCondition:
            comparison: Comparison | None = strawberry.UNSET


        @hookimpl
        def segmentql_register_conditions(register):
            register_input(register, "enumed", EnumedCondition)
        """)
    refused(run(tmp_path, "schema"), "enumed", "engagement", "Comparison")


def test_a_clash_between_two_third_party_plugins_names_both(tmp_path):
    for name in ("first", "second"):
        install(tmp_path, name, f"""
            @strawberry.input(name="SharedInput", description="Both plugins name their input so.")
            class Own:
                value: int | None = strawberry.UNSET


            @hookimpl
            def segmentql_register_conditions(register):
                register_input(register, "{name}Field", Own)
            """)
    refused(run(tmp_path, "serve"), "first", "second", "SharedInput")


def test_reusing_the_shared_classes_is_no_clash(tmp_path):
    """The very same class in two places (as country and timezone share SetCondition) is one type."""
    install(tmp_path, "reusing", """
        from segmentql.plugins.conditions.common import SetCondition


        @strawberry.input(description="Reuses the shared Comparison enum.")
        class ReusingCondition:
            comparison: Comparison | None = strawberry.UNSET


        @hookimpl
        def segmentql_register_conditions(register):
            register_input(register, "reusingSet", SetCondition)
            register_input(register, "reusingEnum", ReusingCondition)
        """)
    done = run(tmp_path, "schema")
    assert done.returncode == 0, done.stderr
    assert "reusingSet: SetCondition" in done.stdout and "input ReusingCondition" in done.stdout


def test_a_clash_with_a_core_type_names_the_plugin(tmp_path):
    install(tmp_path, "paging", """
        @strawberry.input(name="PageInfo", description="Named like the connections' PageInfo.")
        class Paging:
            page: int | None = strawberry.UNSET


        @hookimpl
        def segmentql_register_conditions(register):
            register_input(register, "paging", Paging)
        """)
    line = refused(run(tmp_path, "plugins"), "paging", "PageInfo")
    assert "segmentql's own schema" in line


def test_a_reserved_field_name_is_refused_naming_the_plugin(tmp_path):
    install(tmp_path, "reserved", """
        @strawberry.input(description="Fine; the field it is registered for is not.")
        class Hidden:
            value: int | None = strawberry.UNSET


        @hookimpl
        def segmentql_register_conditions(register):
            register_input(register, "__hidden", Hidden)
        """)
    line = refused(run(tmp_path, "schema"), "reserved", "__hidden")
    assert "reserved by GraphQL" in line


def test_a_type_strawberry_cannot_build_names_the_plugin(tmp_path):
    install(tmp_path, "broken", """
        @strawberry.type(description="An output type: no input may hold it.")
        class Output:
            value: int


        @strawberry.input(description="Holds an output type.")
        class BrokenCondition:
            nested: Output | None = strawberry.UNSET


        @hookimpl
        def segmentql_register_conditions(register):
            register_input(register, "broken", BrokenCondition)
        """)
    line = refused(run(tmp_path, "schema"), "broken")
    assert "breaks the GraphQL schema" in line and "BrokenCondition.nested" in line


QUIET = """
@strawberry.input(description="Never loaded in these tests: importing it fails.")
class Quiet:
    value: int | None = strawberry.UNSET

raise ImportError("a disabled plugin is not imported")
"""


@pytest.mark.parametrize("setting", ["SEGMENTQL_PLUGINS", "SEGMENTQL_DISABLE_PLUGINS"])
def test_an_unknown_plugin_name_in_either_setting_lists_the_known_ones(tmp_path, setting):
    install(tmp_path, "quiet", QUIET)
    line = refused(run(tmp_path, "plugins", **{setting: "email_domain,emial_domain"}), "emial_domain")
    assert line.startswith(f"segmentql: {setting} names an unknown plugin")
    known = line.split("known plugins: ")[1].split(", ")
    assert {*BUILTIN_MODULES, "email_domain", "quiet"} <= set(known)


def test_disabled_plugins_are_listed_as_disabled_and_not_imported(tmp_path):
    install(tmp_path, "quiet", QUIET)
    done = run(tmp_path, "plugins", "--json", SEGMENTQL_DISABLE_PLUGINS="quiet,tags")
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert rows["quiet"] == {"name": "quiet", "version": "0.1", "distribution": "segmentql-test-quiet",
                             "builtin": False, "enabled": False, "fields": []}
    assert rows["tags"]["builtin"] and not rows["tags"]["enabled"] and rows["tags"]["fields"] == []
    assert rows["country"]["enabled"] and rows["country"]["fields"] == ["country"]
    text = run(tmp_path, "plugins", SEGMENTQL_PLUGINS="email_domain")  # an allow-list leaves quiet out
    assert text.returncode == 0, text.stderr
    quiet = next(line for line in text.stdout.splitlines() if line.startswith("quiet "))
    assert quiet.split() == ["quiet", "installed", "segmentql-test-quiet", "0.1", "(disabled)"]


def test_a_plugin_needing_another_api_version_is_refused(tmp_path):
    install(tmp_path, "future", """
        SEGMENTQL_API_VERSION = "2.0"


        @hookimpl
        def segmentql_register_conditions(register):
            raise AssertionError("a refused plugin is never asked for its conditions")
        """)
    line = refused(run(tmp_path, "serve"), "future")
    assert f"needs plugin API 2.0 (or a later 2.x); this segmentql provides {API_VERSION}" in line


# -- the API version in-process: what each declaration means -------------------------

def _declaring(version: object) -> object:
    class Plugin:
        SEGMENTQL_API_VERSION = version

        @hookimpl
        def segmentql_register_conditions(self, register):
            pass
    return Plugin()


def test_the_api_version_is_major_dot_minor():
    major, minor = API_VERSION.split(".")
    assert major.isdigit() and minor.isdigit()


@pytest.mark.parametrize("declared", [API_VERSION, f"{API_VERSION.split('.')[0]}.0", None])
def test_a_plugin_declaring_this_api_or_an_earlier_minor_loads(declared):
    registry = load_registry(load_entry_points=False, extra=[("declared", _declaring(declared))])
    assert "declared" in {p.name for p in registry.plugins}


@pytest.mark.parametrize("declared, message", [
    ("1.9", ("needs plugin API 1.9 (or a later 1.x); this segmentql provides 1.0: upgrade segmentql or install "
             "an older release of the plugin")),
    ("2.0", "needs plugin API 2.0 (or a later 2.x); this segmentql provides 1.0: upgrade segmentql"),
    ("0.9", ("needs plugin API 0.9 (or a later 0.x); this segmentql provides 1.0: install a release of the "
             "plugin written for API 1.x")),
    (">=1.0", "declares SEGMENTQL_API_VERSION = '>=1.0', which is not a MAJOR.MINOR version"),
    (1.0, "declares SEGMENTQL_API_VERSION = 1.0, which is not a MAJOR.MINOR version"),
    ("1", "declares SEGMENTQL_API_VERSION = '1', which is not a MAJOR.MINOR version"),
])
def test_a_plugin_declaring_another_api_is_refused(declared, message):
    assert API_VERSION == "1.0"  # the messages below are written for it
    with pytest.raises(PluginError, match="^" + re.escape(f"plugin 'declared' {message}")):
        load_registry(load_entry_points=False, extra=[("declared", _declaring(declared))])


def test_builtins_and_the_example_declare_an_api_this_segmentql_provides():
    import segmentql_email_domain

    plugins = [importlib.import_module(BUILTIN_PREFIX + name) for name in BUILTIN_MODULES] + [segmentql_email_domain]
    for plugin in plugins:
        assert api_mismatch(plugin.SEGMENTQL_API_VERSION) is None, plugin.__name__


def _registering(input_type: type, field: str = "mine") -> object:
    class Plugin:
        @hookimpl
        def segmentql_register_conditions(self, register):
            register(Condition(field=field, input_type=input_type, description="A test condition.",
                               validate=lambda n, c: None, compile=lambda n, c: {}))
    return Plugin()


@strawberry.input(name="Boolean", description="Named like a GraphQL scalar.")
class Scalarish:
    value: int | None = strawberry.UNSET


@strawberry.input(name="__Input", description="Named for introspection.")
class Dunder:
    value: int | None = strawberry.UNSET


@strawberry.enum(description="A value named for introspection.")
class Peek(enum.Enum):
    OPEN = strawberry.enum_value("OPEN", name="__open")


@strawberry.input(description="Holds a type named for introspection.")
class HoldsDunder:
    dunder: Dunder | None = strawberry.UNSET


@strawberry.input(description="A field named for introspection.")
class Peeking:
    value: int | None = strawberry.field(name="__typename", default=strawberry.UNSET)


@strawberry.input(description="Holds an enum with a value named for introspection.")
class HoldsPeek:
    peek: Peek | None = strawberry.UNSET


@pytest.mark.parametrize("input_type, message", [
    (Scalarish, "plugin 'named': field 'mine' has the input type named 'Boolean': it is one of GraphQL's own scalars"),
    (Dunder, "plugin 'named': field 'mine' has the input type named '__Input': names starting with '__' are"),
])
def test_a_reserved_input_type_name_is_refused_at_registration(input_type, message):
    with pytest.raises(PluginError, match=re.escape(message)):
        load_registry(load_entry_points=False, extra=[("named", _registering(input_type))])


@pytest.mark.parametrize("input_type, message", [
    (HoldsDunder, "plugin 'named' defines the GraphQL type '__Input': names starting with '__' are reserved"),
    (Peeking, "plugin 'named': '__typename' in its GraphQL type 'Peeking': names starting with '__' are reserved"),
    (HoldsPeek, "plugin 'named': '__open' in its GraphQL type 'Peek': names starting with '__' are reserved"),
])
def test_reserved_names_anywhere_in_a_plugins_types_are_refused(input_type, message):
    """Reached through the fields of the input type, checked before the schema is built."""
    registry = load_registry(load_entry_points=False, extra=[("named", _registering(input_type))])
    with pytest.raises(PluginError, match=re.escape(message)):
        build_schema(registry)
