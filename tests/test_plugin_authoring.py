"""Writing a plugin from the docs alone (issue 20): the contact document is a
public, versioned contract that the guide shows exactly, the guide's
engagement example is real code selecting what its words say, built-in
conditions use the plugin API alone, ``segmentql plugin new`` writes a package
whose tests pass as generated, and the test kit is light and describes its
data."""

import ast
import collections
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tomllib
import types
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import segmentql.plugins
from segmentql import authoring, testing
from segmentql.plugins import contact
from segmentql.plugins.contact import FIELDS, SERVICE_FIELDS, day_number
from segmentql.plugins.registry import load_registry

from .conftest import REPO, new_workspace
from .conftest import segmentql as run_cli
from .distributions import dist_info

GUIDE = (REPO / "docs" / "plugins.md").read_text()
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def guide_section(title: str, level: str = "##") -> str:
    """The guide's text under the heading ``title``, up to the next heading of that level."""
    start = GUIDE.index(f"\n{level} {title}")
    end = GUIDE.find(f"\n{level} ", start + 1)
    return GUIDE[start:end if end != -1 else None]


INTERNALS = guide_section("Internals for plugins")


@pytest.fixture(scope="module")
def kit_data(http):
    """A workspace holding the test kit's data set, and the directory it was imported from."""
    client = new_workspace(http)
    return client, client.import_generated()


def stored_contacts(client) -> list[dict]:
    async def find() -> list[dict]:
        return await client.db.db.contacts.find({"workspace_id": client.workspace_id}).to_list()
    return client.call(find)


def opens_by_contact(directory: Path) -> dict[str, list[int]]:
    """Day numbers of each contact's OPEN events, from the raw events of a data set."""
    days = collections.defaultdict(list)
    for line in (directory / "events.ndjson").read_text().splitlines():
        event = json.loads(line)
        if event["type"] == "OPEN":
            days[event["contactId"]].append(day_number(dt.datetime.fromisoformat(event["at"])))
    return days


# -- the contact contract ----------------------------------------------------------

def _pattern(path: str) -> re.Pattern:
    """``stats.activity[].<series>Since`` as a regular expression: ``<...>`` is any key."""
    return re.compile(re.sub(r"<\w+>", r"[^.\\[\\]]+", re.escape(path)))


CONTRACT = {path: _pattern(path) for path in [*FIELDS, *SERVICE_FIELDS]}


def declared(path: str) -> str | None:
    """The entry of FIELDS or SERVICE_FIELDS a concrete path (``stats.activity[].day``) falls under."""
    return next((entry for entry, pattern in CONTRACT.items() if pattern.fullmatch(path)), None)


def leaves(document: dict, prefix: str = "") -> list[tuple[str, object]]:
    """(path, value) of every value of a document the contract must declare:
    objects are walked unless declared themselves, lists of objects also
    element by element (``path[].key``)."""
    found: list[tuple[str, object]] = []
    for key, value in document.items():
        path = prefix + key
        if isinstance(value, dict) and declared(path) is None:
            found += leaves(value, path + ".")
            continue
        found.append((path, value))
        if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            for item in value:
                found += leaves(item, path + "[].")
    return found


_TYPES = {"string": (str,), "int": (int,), "number": (int, float), "bool": (bool,), "datetime": (dt.datetime,),
          "object": (dict,)}


def has_type(value: object, declared_type: str) -> bool:
    """Whether ``value`` is of a Field type: ``int | null``, ``list[string]``, ..."""
    for kind in (part.strip() for part in declared_type.split("|")):
        if kind == "any" or (kind == "null" and value is None):
            return True
        if kind.startswith("list[") and isinstance(value, list) and all(has_type(v, kind[5:-1]) for v in value):
            return True
        if kind in _TYPES and isinstance(value, _TYPES[kind]) and (kind == "bool" or not isinstance(value, bool)):
            return True
    return False


def test_the_contact_contract_is_versioned_with_the_plugin_api():
    """CONTACT_VERSION is the API version the table last changed in: the same major, not newer."""
    contract = tuple(map(int, contact.CONTACT_VERSION.split(".")))
    api = tuple(map(int, segmentql.plugins.API_VERSION.split(".")))
    assert contract[0] == api[0] and contract <= api


def test_no_internal_layout_number_reaches_plugins():
    """The service numbers its stored rollup layouts (to rebuild older ones):
    that number is its own, neither offered to plugins nor mentioned to them."""
    sources = {path: path.read_text() for path in (REPO / "plugins").rglob("*.py")}
    assert [path for path, text in {**sources, "docs/plugins.md": GUIDE}.items()
            if re.search(r"ROLLUP_LAYOUT|rollupLayout", text)] == []
    names = [*dir(contact), *dir(segmentql.plugins), *dir(segmentql.plugins.CompileContext), *FIELDS]
    assert [name for name in names if "layout" in name.lower()] == []


def test_stored_contacts_hold_the_contracts_fields_with_their_types(kit_data):
    client, _directory = kit_data
    seen: set[str] = set()
    for document in stored_contacts(client):
        for path, value in leaves(document):
            entry = declared(path)
            assert entry is not None, f"{path} is stored on contacts but neither in FIELDS nor SERVICE_FIELDS"
            if entry in FIELDS:
                assert has_type(value, FIELDS[entry].type), (path, value, FIELDS[entry].type)
            seen.add(entry)
    # plugins.<name>.<rollup> needs a plugin with rollups (tests/test_plugin_hooks.py).
    assert {*FIELDS, *SERVICE_FIELDS} - seen == {"plugins.<name>.<rollup>"}


def test_the_guide_shows_the_contracts_table():
    rows = []
    for path, field in FIELDS.items():
        escaped = field.type.replace("|", "\\|")
        rows.append(f"| `{path}` | {escaped} | {field.meaning} |")
    shown = [line for line in INTERNALS.splitlines() if line.startswith("| `")]
    assert shown == rows, "docs/plugins.md, Internals for plugins: the table of FIELDS is\n" + "\n".join(rows)


def test_the_guide_documents_every_name_of_the_contract_with_examples_that_hold():
    helpers = guide_section("Helpers", "###")
    assert [name for name in contact.__all__ if f"`{name}" not in INTERNALS] == []
    examples = [re.sub(r"\s*\n\s*", " ", span) for span in re.findall(r"`([^`]+)`", helpers) if " == " in span]
    assert len(examples) >= 3
    for example in examples:
        assert eval(example, {**vars(contact), "datetime": dt.datetime}), example


# -- the guide's worked example: real code, selecting what its words say -----------

@pytest.fixture
def worked_example(monkeypatch) -> types.ModuleType:
    """The guide's example as a module (in sys.modules, as an imported one is, for strawberry to read it)."""
    code = re.search(r"```python\n(.*?)```", guide_section("Worked example: opens on weekends", "###"), re.S)[1]
    module = types.ModuleType("weekend_opens")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(code, "docs/plugins.md: worked example", "exec"), module.__dict__)
    return module


@pytest.fixture(scope="session")
def segmentql_database_uri(embedded_uri):
    """The test kit on the session's database (it would start one of its own)."""
    return embedded_uri


@pytest.fixture
def segmentql_plugins(worked_example):
    return [("weekend_opens", worked_example)]


EXPLAIN = """query($id: ID!, $rule: RuleInput!, $asOf: DateTime) {
  explainMembership(contactId: $id, rule: $rule, asOf: $asOf) { nodes { matched values { label value needed } } } }"""


def weekend_count(days: list[int], first_day: int, last_day: int) -> int:
    """How many of ``days`` are Saturdays or Sundays from first_day to last_day."""
    return sum(1 for day in days if first_day <= day <= last_day and (day + 3) % 7 in (5, 6))


def test_the_worked_example_selects_contacts_by_their_weekend_opens(segmentql):
    """Members are the contacts with at least k OPEN events on Saturday or
    Sunday (UTC) among days today-N+1..today, counted from the raw events;
    with an asOf in the past, later opens do not count."""
    opens = opens_by_contact(segmentql.import_generated())
    for as_of in (testing.AS_OF, "2026-10-01T00:00:00Z"):
        today = day_number(dt.datetime.fromisoformat(as_of))
        for days, at_least in ((30, 1), (90, 2), (365, 5)):
            expected = sorted(c for c in opens if weekend_count(opens[c], today - days + 1, today) >= at_least)
            rule = {"weekendOpens": {"atLeast": at_least, "withinDays": days}}
            assert expected and segmentql.members(rule, as_of=as_of) == expected
    node = segmentql.graphql(EXPLAIN, id=expected[0], rule=rule, asOf=as_of)["explainMembership"]["nodes"][0]
    assert node == {"matched": True, "values": [{"label": "weekend opens in the last 365 days",
                                                 "value": weekend_count(opens[expected[0]], today - 364, today),
                                                 "needed": ">= 5"}]}


# -- built-in conditions use the plugin API alone -----------------------------------

CONDITION_MODULES = sorted(path for path in (REPO / "plugins" / "conditions").glob("*.py"))
THIRD_PARTY_ALLOWED = {"strawberry"}  # the input types are strawberry's
PLUGIN_MACHINERY = ("segmentql.plugins.registry",)  # loads the conditions: not for them to use


def imports_outside_the_plugin_api(source: str, module: str) -> list[str]:
    """What the module ``module`` (of segmentql.plugins.conditions) imports
    besides the standard library, strawberry and segmentql.plugins (its
    submodules and siblings too, relative or not, less the machinery)."""
    package = module.rsplit(".", 1)[0]
    imported: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            base = package.rsplit(".", node.level - 1)[0]
            imported += [f"{base}.{node.module}"] if node.module else [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            imported.append(node.module or "")

    def allowed(name: str) -> bool:
        if name == "segmentql.plugins" or name.startswith("segmentql.plugins."):
            return not any(name == m or name.startswith(m + ".") for m in PLUGIN_MACHINERY)
        top = name.split(".")[0]
        return top != "segmentql" and (top in sys.stdlib_module_names or top in THIRD_PARTY_ALLOWED)

    return [name for name in imported if not allowed(name)]


@pytest.mark.parametrize("path", CONDITION_MODULES, ids=lambda path: path.stem)
def test_a_built_in_condition_imports_only_the_plugin_api(path):
    assert imports_outside_the_plugin_api(path.read_text(), f"segmentql.plugins.conditions.{path.stem}") == []


@pytest.mark.parametrize("line, refused", [
    ("from segmentql.server.rollups import compute_stats", True),
    ("import segmentql.schema", True),
    ("from ... import testing", True),
    ("from ...server import rollups", True),
    ("from segmentql import cli", True),
    ("from ..registry import GROUPS", True),
    ("from .. import registry", True),
    ("def f():\n    import pymongo", True),
    ("from .. import Condition, hookimpl", False),
    ("from ..contact import at_least_since", False),
    ("from segmentql.plugins.contact import DAYS_KEPT", False),
    ("from .common import MAX_DAYS", False),
    ("import strawberry\nfrom collections.abc import Iterable", False),
])
def test_the_import_check_refuses_anything_else(line, refused):
    assert bool(imports_outside_the_plugin_api(line, "segmentql.plugins.conditions.mine")) is refused


# -- segmentql plugin new ----------------------------------------------------------

def test_plugin_new_names_everything_after_the_plugin():
    names = authoring.skeleton("recent-clickers")
    assert (names.distribution, names.package, names.plugin, names.field, names.input_type, names.api_version) == (
        "segmentql-recent-clickers", "segmentql_recent_clickers", "recent_clickers", "recentClickers",
        "RecentClickersCondition", segmentql.plugins.API_VERSION)


@pytest.mark.parametrize("name, reason", [
    ("Clicks", "is not a plugin name"),
    ("9lives", "is not a plugin name"),
    ("a--b", "is not a plugin name"),
    ("opens!", "is not a plugin name"),
    ("x" * 41, "at most 40 characters"),
    ("segmentql-clicks", "without the segmentql prefix"),
])
def test_plugin_new_refuses_a_name_that_names_no_package(name, reason):
    with pytest.raises(authoring.BadName, match=re.escape(reason)):
        authoring.skeleton(name)


@pytest.mark.parametrize("name, reason", [
    ("tags", "a plugin named 'tags' is installed already"),
    ("set", "(input type SetCondition)"),  # the type country and timezone share
    ("all", "reserved for rule groups"),
    ("email-domain", "a plugin named 'email_domain' is installed already"),  # the example, installed editable
])
def test_plugin_new_refuses_a_name_whose_plugin_would_not_load(name, reason):
    assert reason in authoring.clash(authoring.skeleton(name), load_registry())


def test_plugin_new_refuses_with_one_line_and_writes_nothing(tmp_path):
    done = run_cli("plugin", "new", "Bad Name", cwd=tmp_path, timeout=120)
    assert done.returncode == 1 and done.stderr.startswith("segmentql: 'Bad Name' is not a plugin name")
    assert len(done.stderr.splitlines()) == 1 and list(tmp_path.iterdir()) == []
    (tmp_path / "segmentql-clicks").mkdir()
    done = run_cli("plugin", "new", "clicks", cwd=tmp_path, timeout=120)
    assert done.returncode == 1 and done.stderr == (
        "segmentql: segmentql-clicks exists already; pick another name or move it away\n")
    assert list((tmp_path / "segmentql-clicks").iterdir()) == []


def editable_stand_in(project: Path, site: Path) -> None:
    """What ``pip install -e project`` leaves for importlib.metadata to find:
    the distribution's metadata with the entry points its pyproject.toml
    declares (read from it), in ``site``; the package itself is imported from
    ``project`` (PYTHONPATH). The repository's venv stays as it is."""
    config = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    dist_info(site, config["name"], config["version"], config["entry-points"])


def without_the_suites_own_test_dependencies(shadow: Path) -> list[str]:
    """Make what the ``test`` extra adds to ``testkit`` unimportable, as it is
    where only ``segmentql[testkit]`` is installed: a module of the same name
    that raises ModuleNotFoundError, in ``shadow`` (first on PYTHONPATH). Returns
    pytest's options not to load the pytest plugins those packages register."""
    extras = PYPROJECT["project"]["optional-dependencies"]
    kit = {canonicalize_name(Requirement(r).name) for r in extras["testkit"]}
    absent = {canonicalize_name(Requirement(r).name) for r in extras["test"]} - kit
    shadow.mkdir()
    for module, distributions in metadata.packages_distributions().items():
        if {canonicalize_name(d) for d in distributions} & absent:
            (shadow / f"{module}.py").write_text(
                f"raise ModuleNotFoundError('{module} is not part of segmentql[testkit]', name='{module}')\n")
    return [option for name in sorted(absent) for ep in metadata.distribution(name).entry_points
            if ep.group == "pytest11" for option in ("-p", f"no:{ep.name}")]


def test_plugin_new_writes_a_package_whose_tests_pass_as_generated(tmp_path, embedded_uri):
    done = run_cli("plugin", "new", "recent-clickers", cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    project = tmp_path / "segmentql-recent-clickers"
    files = sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file())
    assert files == ["README.md", "pyproject.toml", "segmentql_recent_clickers/__init__.py",
                     "tests/test_recent_clickers.py"]
    assert not [f for f in files if "{{" in (project / f).read_text()]
    config = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert config["entry-points"] == {"segmentql.conditions": {"recent_clickers": "segmentql_recent_clickers"}}
    assert config["dependencies"] == [f"segmentql>={metadata.version('segmentql')}"]
    assert config["optional-dependencies"] == {"test": ["segmentql[testkit]"]}
    source = (project / "segmentql_recent_clickers" / "__init__.py").read_text()
    assert imports_outside_the_plugin_api(source, "segmentql.plugins.conditions.generated") == []
    lint = subprocess.run([Path(sys.executable).parent / "ruff", "check", "--isolated", "--line-length", "120",
                           "--select", "E,F,W,I,B,UP,SIM,RUF,PT", str(project)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout  # clean as the author's own linter sees it (segmentql third-party)

    editable_stand_in(project, tmp_path / "site")
    disabled = without_the_suites_own_test_dependencies(tmp_path / "shadow")
    env = {**os.environ, "MONGODB_URI": embedded_uri,  # the kit's database (it would start one of its own)
           "PYTHONPATH": os.pathsep.join(str(p) for p in (tmp_path / "shadow", tmp_path / "site", project))}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *disabled], cwd=project,
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert re.search(r"\b6 passed\b", run.stdout), run.stdout[-1000:]


# -- the test kit -------------------------------------------------------------------

def test_the_testkit_extra_is_the_kits_own_dependencies_alone():
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert set(extras["testkit"]) <= set(extras["test"])
    # pytest, and starlette's TestClient's HTTP client
    assert {canonicalize_name(Requirement(r).name) for r in extras["testkit"]} == {"pytest", "httpx2"}


def test_the_test_kits_data_set_is_the_one_it_documents(kit_data):
    client, directory = kit_data
    meta = json.loads((directory / "meta.json").read_text())
    assert (meta["asOf"], meta["contacts"], meta["campaigns"], meta["seed"]) == (
        testing.AS_OF, testing.CONTACTS, testing.CAMPAIGNS, testing.SEED)
    assert client.call(client.db.custom_fields, client.workspace_id) == testing.DECLARED_FIELDS
    ids = sorted(document["id"] for document in stored_contacts(client))
    assert ids == [f"c{i:07d}" for i in range(testing.CONTACTS)]
    events = [json.loads(line) for line in (directory / "events.ndjson").read_text().splitlines()]
    assert max(dt.datetime.fromisoformat(e["at"]) for e in events) < dt.datetime.fromisoformat(testing.AS_OF)
    for name in ("AS_OF", "CONTACTS", "CAMPAIGNS", "SEED", "DECLARED_FIELDS"):
        assert f":data:`{name}`" in testing.__doc__ and f"`{name}`" in GUIDE
    assert [key for key in testing.DECLARED_FIELDS if f"`{key}`" not in GUIDE] == []
