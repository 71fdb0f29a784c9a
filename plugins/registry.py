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

from . import hookspecs
from .api import Condition
from .conditions import BUILTIN_MODULES

# The group keys of a rule tree (``{"all": [...]}``, ``{"not": {...}}``): the
# compiler and ``RuleInput`` read them, so no condition may register them.
GROUPS = ("all", "any", "not")
GRAPHQL_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]*$")
BUILTIN_PREFIX = "segmentql.plugins.conditions."


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

    def __init__(self, conditions: dict[str, RegisteredCondition], plugins: list[PluginInfo]):
        self.conditions = conditions
        self.plugins = plugins

    def __contains__(self, field: str) -> bool:
        return field in self.conditions

    def __getitem__(self, field: str) -> RegisteredCondition:
        return self.conditions[field]


def _is_strawberry_input(cls: object) -> bool:
    definition = getattr(cls, "__strawberry_definition__", None)
    return definition is not None and getattr(definition, "is_input", False)


def _checked(condition: object, plugin: str) -> Condition:
    """``condition`` if it is a well-formed Condition; PluginError naming ``plugin`` if not."""
    if not isinstance(condition, Condition):
        raise PluginError(f"plugin {plugin!r} registered {condition!r}, which is not a segmentql.plugins.Condition")
    field = condition.field
    if not isinstance(field, str) or not GRAPHQL_NAME.match(field):
        raise PluginError(f"plugin {plugin!r} registered field {field!r}, which is not a GraphQL name")
    if field in GROUPS:
        raise PluginError(f"plugin {plugin!r} registered field {field!r}, which is reserved for rule groups")
    if not _is_strawberry_input(condition.input_type):
        raise PluginError(f"plugin {plugin!r}: field {field!r} has input_type {condition.input_type!r}, "
                          "which is not a @strawberry.input class")
    for name in ("validate", "compile"):
        if not callable(getattr(condition, name)):
            raise PluginError(f"plugin {plugin!r}: field {field!r} has a {name} that is not callable")
    if condition.observe is not None and not callable(condition.observe):
        raise PluginError(f"plugin {plugin!r}: field {field!r} has an observe that is not callable")
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


def plugin_manager(load_entry_points: bool = True, allow: Iterable[str] | None = None,
                   block: Iterable[str] = (), extra: Iterable[tuple[str, object]] = ()) -> pluggy.PluginManager:
    """A pluggy manager with the built-ins, ``extra`` (name, plugin) pairs, and
    (unless disabled) installed entry points. ``block`` names plugins not to
    load at all; ``allow``, when given, is the list of third-party plugins that
    may load (built-ins always do unless blocked)."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    blocked = set(block)
    for name in blocked:
        pm.set_blocked(name)
    for module_name in BUILTIN_MODULES:
        if module_name not in blocked:
            pm.register(importlib.import_module(BUILTIN_PREFIX + module_name), name=module_name)
    for name, plugin in extra:
        if name not in blocked:
            pm.register(plugin, name=name)
    if load_entry_points:
        allowed = None if allow is None else set(allow)
        for ep in importlib.metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP):
            if ep.name in blocked or (allowed is not None and ep.name not in allowed):
                continue
            if pm.get_plugin(ep.name) is not None:
                raise PluginError(f"two plugins are named {ep.name!r}; uninstall one of them")
            try:
                plugin = ep.load()
            except Exception as exc:  # any import failure names the plugin
                raise PluginError(f"plugin {ep.name!r} failed to import: {type(exc).__name__}: {exc}") from exc
            pm.register(plugin, name=ep.name)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {pm.get_name(exc.plugin)!r} implements an unknown hook: {exc}") from exc
    return pm


def build_registry(pm: pluggy.PluginManager) -> ConditionRegistry:
    dists = _distributions()
    conditions: dict[str, RegisteredCondition] = {}
    plugins: list[PluginInfo] = []
    for impl in pm.hook.segmentql_register_conditions.get_hookimpls():  # in registration order
        name = impl.plugin_name
        builtin = getattr(impl.plugin, "__name__", "").startswith(BUILTIN_PREFIX)
        dist, version = (("segmentql", importlib.metadata.version("segmentql")) if builtin
                         else dists.get(name, (None, None)))
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
    return ConditionRegistry(conditions, plugins)


def load_registry(load_entry_points: bool = True, allow: Iterable[str] | None = None, block: Iterable[str] = (),
                  extra: Iterable[tuple[str, object]] = ()) -> ConditionRegistry:
    return build_registry(plugin_manager(load_entry_points, allow, block, extra))
