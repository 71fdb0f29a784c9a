"""``segmentql plugin new NAME``: the skeleton of a condition plugin package.

The skeleton is the files of ``plugin_template/`` (shipped in the package),
whose paths and texts name the package with ``{{placeholder}}`` marks: a
pyproject.toml with the entry point and a ``test`` extra on segmentql's test
kit, one working condition with its hook implementation, a README, and tests
using the kit. The template files end in ``.tmpl`` so that nothing in this
repository (ruff, mypy, pytest) takes them for code of its own.
tests/test_plugin_authoring.py generates a skeleton and runs its tests: they
pass as generated.
"""

import re
from dataclasses import asdict, dataclass
from importlib import metadata, resources
from importlib.resources.abc import Traversable
from pathlib import Path

from strawberry.types.base import get_object_definition

from segmentql.plugins import API_VERSION
from segmentql.plugins.registry import GROUPS, ConditionRegistry

# Lower-case words of letters and digits joined by - or _: a distribution name
# that is also, with _ for -, a Python package and an entry-point name.
NAME = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")
MAX_NAME = 40
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
SUFFIX = ".tmpl"


@dataclass(frozen=True)
class Skeleton:
    """The names a skeleton is written with, from ``segmentql plugin new weekend-opens``."""

    distribution: str  # segmentql-weekend-opens: the directory and the distribution
    package: str  # segmentql_weekend_opens
    plugin: str  # weekend_opens: the entry point's name, the plugin's name in `segmentql plugins`
    field: str  # weekendOpens: the RuleInput field of its condition
    input_type: str  # WeekendOpensCondition: the condition's GraphQL input type
    api_version: str  # the SEGMENTQL_API_VERSION it declares
    segmentql_version: str  # the least segmentql it depends on: the one that wrote it


class BadName(ValueError):
    """``NAME`` cannot name a plugin package; the message says why."""


def skeleton(name: str) -> Skeleton:
    """The names for plugin ``name``; :class:`BadName` when it cannot be one."""
    if name.startswith("segmentql"):
        raise BadName(f"give the plugin's own name, without the segmentql prefix (the package is named "
                         f"segmentql-NAME): {name!r}")
    if len(name) > MAX_NAME or not NAME.fullmatch(name):
        raise BadName(f"{name!r} is not a plugin name: lower-case letters and digits, words joined by - or _, "
                         f"starting with a letter, at most {MAX_NAME} characters (e.g. weekend-opens)")
    words = re.split(r"[-_]", name)
    plugin = "_".join(words)
    return Skeleton(distribution=f"segmentql-{'-'.join(words)}", package=f"segmentql_{plugin}", plugin=plugin,
                    field=words[0] + "".join(w.capitalize() for w in words[1:]),
                    input_type="".join(w.capitalize() for w in words) + "Condition",
                    api_version=API_VERSION, segmentql_version=metadata.version("segmentql"))


def clash(names: Skeleton, registry: ConditionRegistry) -> str | None:
    """Why the skeleton's plugin would not load beside ``registry``'s plugins
    (None when it would), so that its tests pass as generated."""
    if names.field in GROUPS:
        return f"its condition would be named {names.field!r}, which is reserved for rule groups"
    if names.plugin in {p.name for p in [*registry.plugins, *registry.disabled]}:
        return f"a plugin named {names.plugin!r} is installed already"
    for field, registered in registry.conditions.items():
        input_type = get_object_definition(registered.condition.input_type, strict=True).name
        if field == names.field or input_type == names.input_type:
            return (f"plugin {registered.plugin!r} provides the condition {field!r} (input type {input_type}); "
                    f"a second {names.field!r} ({names.input_type}) would clash with it")
    return None


def _render(text: str, values: dict[str, str]) -> str:
    return PLACEHOLDER.sub(lambda mark: values[mark[1]], text)


def _files(folder: Traversable, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Traversable]]:
    """Every template file under ``folder``, with its path parts."""
    found = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.is_dir():
            found += _files(entry, (*prefix, entry.name))
        elif entry.name.endswith(SUFFIX):
            found.append(((*prefix, entry.name.removesuffix(SUFFIX)), entry))
    return found


def write(names: Skeleton, parent: Path) -> Path:
    """Write the skeleton into ``parent / names.distribution`` (which must not
    exist: FileExistsError) and return that directory."""
    target = parent / names.distribution
    target.mkdir()
    values = asdict(names)
    for parts, template in _files(resources.files("segmentql") / "plugin_template"):
        path = target.joinpath(*(_render(part, values) for part in parts))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_render(template.read_text(encoding="utf-8"), values), encoding="utf-8")
    return target
