"""The condition registry: every plugin's contributions, checked and recorded
with the plugin that made them.

Built-in conditions are registered exactly like third-party ones (modules with
a hook implementation), then packages of the entry-point group
``segmentql.conditions`` are loaded. The hook is called once per plugin with a
``register`` callback bound to that plugin, so each contribution is checked as
it is made and a clash names both plugins (as tox and devpi do).
"""

import importlib
import importlib.metadata
import re
from collections.abc import Iterable
from dataclasses import dataclass

import pluggy
from strawberry.types.base import get_object_definition

from . import hookspecs
from .api import Condition
from .conditions import BUILTIN_MODULES
from .storage import NO_STORAGE, Storage, StorageError, collect_storage
from .version import DECLARATION, api_mismatch

# The group keys of a rule tree (``{"all": [...]}``, ``{"not": {...}}``): the
# compiler and ``RuleInput`` read them, so no condition may register them.
GROUPS = ("all", "any", "not")
GRAPHQL_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]*$")
BUILTIN_PREFIX = "segmentql.plugins.conditions."
# GraphQL keeps names starting with "__" for introspection and defines these
# scalars itself: a plugin's type or field taking one breaks the schema.
RESERVED_PREFIX = "__"
SPECIFIED_SCALARS = frozenset({"String", "Int", "Float", "Boolean", "ID"})


class PluginError(RuntimeError):
    """A plugin cannot be used; start-up stops with this message."""


@dataclass(frozen=True)
class RegisteredCondition:
    condition: Condition
    plugin: str
    distribution: str | None
    version: str | None


@dataclass(frozen=True)
class PluginInfo:
    name: str
    distribution: str | None
    version: str | None
    fields: tuple[str, ...]
    builtin: bool


class ConditionRegistry:
    """Conditions by ``RuleInput`` field, in registration order."""

    def __init__(self, conditions: dict[str, RegisteredCondition], plugins: list[PluginInfo],
                 storage: Storage = NO_STORAGE, disabled: Iterable[PluginInfo] = ()):
        self.conditions = conditions
        self.plugins = plugins
        self.disabled = list(disabled)  # known but not loaded (blocked, or not allow-listed): no fields
        self.storage = storage  # collections, contact indexes and rollups (plugins/storage.py)

    def __contains__(self, field: str) -> bool:
        return field in self.conditions

    def __getitem__(self, field: str) -> RegisteredCondition:
        return self.conditions[field]


def _is_strawberry_input(cls: object) -> bool:
    definition = getattr(cls, "__strawberry_definition__", None)
    return definition is not None and getattr(definition, "is_input", False)


def reserved_name(name: str) -> str | None:
    """Why GraphQL keeps the type (or field) name ``name`` to itself; None when it does not."""
    if name.startswith(RESERVED_PREFIX):
        return f"names starting with {RESERVED_PREFIX!r} are reserved by GraphQL"
    if name in SPECIFIED_SCALARS:
        return "it is one of GraphQL's own scalars"
    return None


def _checked(condition: object, plugin: str) -> Condition:
    """``condition`` if it is a well-formed Condition; PluginError naming ``plugin`` if not."""
    if not isinstance(condition, Condition):
        raise PluginError(f"plugin {plugin!r} registered {condition!r}, which is not a segmentql.plugins.Condition")
    field = condition.field
    if not isinstance(field, str) or not GRAPHQL_NAME.match(field):
        raise PluginError(f"plugin {plugin!r} registered field {field!r}, which is not a GraphQL name")
    if field in GROUPS:
        raise PluginError(f"plugin {plugin!r} registered field {field!r}, which is reserved for rule groups")
    if field.startswith(RESERVED_PREFIX):
        raise PluginError(f"plugin {plugin!r} registered field {field!r}: {reserved_name(field)}")
    if not _is_strawberry_input(condition.input_type):
        raise PluginError(f"plugin {plugin!r}: field {field!r} has input_type {condition.input_type!r}, "
                          "which is not a @strawberry.input class")
    type_name = get_object_definition(condition.input_type, strict=True).name
    if reason := reserved_name(type_name):
        raise PluginError(f"plugin {plugin!r}: field {field!r} has the input type named {type_name!r}: {reason}")
    for name in ("validate", "compile"):
        if not callable(getattr(condition, name)):
            raise PluginError(f"plugin {plugin!r}: field {field!r} has a {name} that is not callable")
    for name in ("observe", "stages"):  # optional
        if getattr(condition, name) is not None and not callable(getattr(condition, name)):
            raise PluginError(f"plugin {plugin!r}: field {field!r} has optional {name} that is not callable")
    if not isinstance(condition.description, str) or not condition.description.strip():
        raise PluginError(f"plugin {plugin!r}: field {field!r} needs a description")
    return condition


def _distributions() -> dict[str, tuple[str, str]]:
    """Entry-point name -> (distribution, version) for the segmentql group."""
    found = {}
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group == hookspecs.ENTRY_POINT_GROUP:
                found[ep.name] = (dist.metadata["Name"], dist.version)
    return found


def _check_names(setting: str, names: Iterable[str], known: set[str]) -> None:
    """PluginError listing the known plugins when ``setting`` names others: a
    misspelt name would otherwise load what was meant to stay out, or the
    reverse, without a word."""
    unknown = sorted(set(names) - known)
    if unknown:
        raise PluginError(f"{setting} names {'unknown plugins' if len(unknown) > 1 else 'an unknown plugin'} "
                          f"{', '.join(map(repr, unknown))}; known plugins: {', '.join(sorted(known))}")


def _register(pm: pluggy.PluginManager, name: str, plugin: object) -> None:
    """Register ``plugin`` unless it declares a plugin API this segmentql does not provide."""
    needed = getattr(plugin, DECLARATION, None)
    if needed is not None and (mismatch := api_mismatch(needed)):
        raise PluginError(f"plugin {name!r} {mismatch}")
    pm.register(plugin, name=name)


def plugin_manager(load_entry_points: bool = True, allow: Iterable[str] | None = None,
                   block: Iterable[str] = (), extra: Iterable[tuple[str, object]] = ()) -> pluggy.PluginManager:
    """A pluggy manager with the built-ins, ``extra`` (name, plugin) pairs, and
    (unless disabled) installed entry points. ``block`` names plugins not to
    load at all; ``allow``, when given, is the list of third-party plugins that
    may load (built-ins always do unless blocked). Both may name only known
    plugins: built-ins, extras, installed entry points. A plugin left out is
    recorded as blocked, so that the registry lists it as disabled."""
    extra = list(extra)
    entry_points = list(importlib.metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP))
    known = {*BUILTIN_MODULES, *(name for name, _ in extra), *(ep.name for ep in entry_points)}
    blocked = set(block)
    allowed = None if allow is None else set(allow)
    _check_names("SEGMENTQL_DISABLE_PLUGINS", blocked, known)
    _check_names("SEGMENTQL_PLUGINS", allowed or (), known)
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for name in blocked:
        pm.set_blocked(name)
    for module_name in BUILTIN_MODULES:
        if module_name not in blocked:
            _register(pm, module_name, importlib.import_module(BUILTIN_PREFIX + module_name))
    for name, plugin in extra:
        if name not in blocked:
            _register(pm, name, plugin)
    if load_entry_points:
        for ep in entry_points:
            if ep.name in blocked:
                continue
            if pm.get_plugin(ep.name) is not None:
                raise PluginError(f"two plugins are named {ep.name!r}; uninstall one of them")
            if allowed is not None and ep.name not in allowed:
                pm.set_blocked(ep.name)
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # any import failure names the plugin
                raise PluginError(f"plugin {ep.name!r} failed to import: {type(exc).__name__}: {exc}") from exc
            _register(pm, ep.name, plugin)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {pm.get_name(exc.plugin)!r} implements an unknown hook: {exc}") from exc
    return pm


def _origin(name: str, builtin: bool, dists: dict[str, tuple[str, str]]) -> tuple[str | None, str | None]:
    """The distribution and version a plugin comes from (None, None: not from a package)."""
    return ("segmentql", importlib.metadata.version("segmentql")) if builtin else dists.get(name, (None, None))


def _disabled(pm: pluggy.PluginManager, dists: dict[str, tuple[str, str]]) -> list[PluginInfo]:
    """The blocked plugins, built-ins first (in their order), then by name."""
    order = {name: i for i, name in enumerate(BUILTIN_MODULES)}
    names = sorted((name for name, plugin in pm.list_name_plugin() if plugin is None),
                   key=lambda name: (order.get(name, len(order)), name))
    return [PluginInfo(name, *_origin(name, name in order, dists), (), name in order) for name in names]


def build_registry(pm: pluggy.PluginManager) -> ConditionRegistry:
    dists = _distributions()
    conditions: dict[str, RegisteredCondition] = {}
    plugins: list[PluginInfo] = []
    for impl in pm.hook.segmentql_register_conditions.get_hookimpls():  # in registration order
        name = impl.plugin_name
        builtin = getattr(impl.plugin, "__name__", "").startswith(BUILTIN_PREFIX)
        dist, version = _origin(name, builtin, dists)
        fields: list[str] = []

        def register(condition: object, _plugin: str = name, _fields: list[str] = fields, _dist: str | None = dist,
                     _version: str | None = version) -> None:
            checked = _checked(condition, _plugin)
            if checked.field in conditions:
                other = conditions[checked.field].plugin
                raise PluginError(f"plugins {other!r} and {_plugin!r} both register the RuleInput field "
                                  f"{checked.field!r}; disable one of them")
            conditions[checked.field] = RegisteredCondition(checked, _plugin, _dist, _version)
            _fields.append(checked.field)

        try:
            impl.function(register=register)
        except PluginError:
            raise
        except Exception as exc:  # a failing plugin must name itself
            raise PluginError(f"plugin {name!r} failed while registering conditions: "
                              f"{type(exc).__name__}: {exc}") from exc
        plugins.append(PluginInfo(name, dist, version, tuple(fields), builtin))
    try:
        storage = collect_storage(pm)
    except StorageError as exc:
        raise PluginError(str(exc)) from exc
    return ConditionRegistry(conditions, plugins, storage, _disabled(pm, dists))


def load_registry(load_entry_points: bool = True, allow: Iterable[str] | None = None, block: Iterable[str] = (),
                  extra: Iterable[tuple[str, object]] = ()) -> ConditionRegistry:
    return build_registry(plugin_manager(load_entry_points, allow, block, extra))
