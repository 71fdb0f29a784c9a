"""The GraphQL types plugins bring, checked so that no plugin can stop start-up
with a traceback.

Each condition's input type, and every input type and enum it reaches, becomes
a named type of one shared schema. strawberry refuses two different classes
with one name ("Type SetCondition is defined multiple times in the schema")
and graphql-core refuses names GraphQL reserves, but their errors name a
class, never the plugin, and arrive as a traceback. So before building, every
name a plugin brings is checked: no reserved name, and no name another
plugin defines with a different class (the very same class is fine, as the
built-ins ``country`` and ``timezone`` share ``SetCondition``). When building
still fails, the schema is built again without plugins, to tell a clash with
segmentql's own types (``Segment``, ``PageInfo``...), then once per plugin,
to find the one that breaks it. Either way the result is a
:class:`PluginError` of one line naming the plugin(s).
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import strawberry
from strawberry.types.base import StrawberryContainer, get_object_definition
from strawberry.types.enum import StrawberryEnumDefinition
from strawberry.utils.str_converters import to_camel_case

from segmentql.plugins.registry import RESERVED_PREFIX, ConditionRegistry, PluginError, reserved_name

Build = Callable[[ConditionRegistry], strawberry.Schema]
# How much of a strawberry or graphql-core error a one-line message keeps.
MAX_REASON = 300
NAMING = "@strawberry.input(name=...) or @strawberry.enum(name=...)"


@dataclass
class Owner:
    """The class defining one GraphQL type name, and the plugins using it."""

    origin: object
    plugins: list[str] = field(default_factory=list)


def _types_of(plugin: str, input_type: type) -> dict[str, object]:
    """GraphQL name -> defining class of ``input_type`` and every input type and
    enum it reaches; PluginError for a reserved name or two classes of one name."""
    found: dict[str, object] = {}
    pending: list[object] = [input_type]
    origin: object  # the class that defines the type named ``name``
    while pending:
        kind = pending.pop()
        while isinstance(kind, StrawberryContainer):  # optional, list
            kind = kind.of_type
        if isinstance(kind, StrawberryEnumDefinition):
            name, origin, names = kind.name, kind.wrapped_cls, [value.name for value in kind.values]
        elif (definition := get_object_definition(kind)) is not None:
            if definition.name in found and found[definition.name] is kind:
                continue  # reached again (a type used twice, or recursively)
            name, origin = definition.name, kind
            names = [item.graphql_name or to_camel_case(item.python_name) for item in definition.fields]
            pending.extend(item.type for item in definition.fields)
        else:  # a scalar: strawberry's or segmentql's, or the build names it
            continue
        if reason := reserved_name(name):
            raise PluginError(f"plugin {plugin!r} defines the GraphQL type {name!r}: {reason}")
        if reserved := next((n for n in names if n.startswith(RESERVED_PREFIX)), None):
            raise PluginError(f"plugin {plugin!r}: {reserved!r} in its GraphQL type {name!r}: "
                              f"{reserved_name(reserved)}")
        if found.setdefault(name, origin) is not origin:
            raise PluginError(f"plugin {plugin!r} defines two different GraphQL types named {name!r}; "
                              f"rename one with {NAMING}")
    return found


def plugin_types(registry: ConditionRegistry) -> dict[str, Owner]:
    """Every GraphQL type name the plugins bring, checked (see the module's docstring)."""
    owners: dict[str, Owner] = {}
    for entry in registry.conditions.values():
        try:
            types = _types_of(entry.plugin, entry.condition.input_type)
        except PluginError:
            raise
        except Exception as exc:  # a field type strawberry cannot read: the plugin's to fix
            raise PluginError(f"plugin {entry.plugin!r}: the input type of field {entry.condition.field!r} "
                              f"cannot be read: {_one_line(exc)}") from exc
        for name, origin in types.items():
            owner = owners.setdefault(name, Owner(origin))
            if owner.origin is not origin:
                first = owner.plugins[0]
                who = (f"plugin {first!r} defines two different GraphQL types" if first == entry.plugin
                       else f"plugins {first!r} and {entry.plugin!r} both define a GraphQL type")
                raise PluginError(f"{who} named {name!r} (different classes); rename one with {NAMING}, "
                                  "or disable one of the plugins")
            if entry.plugin not in owner.plugins:
                owner.plugins.append(entry.plugin)
    return owners


def checked_schema(registry: ConditionRegistry, build: Build) -> strawberry.Schema:
    """``build(registry)``, or a one-line PluginError naming the plugin(s) it fails on."""
    owners = plugin_types(registry)
    try:
        return build(registry)
    except Exception as exc:
        raise PluginError(_culprits(registry, build, owners, exc)) from exc


def _culprits(registry: ConditionRegistry, build: Build, owners: dict[str, Owner], failure: Exception) -> str:
    """Why ``build`` failed, naming plugins. Without plugins it must succeed:
    if it does not, segmentql itself is broken, and that error propagates."""
    core = build(ConditionRegistry({}, []))
    clashes = [f"{_plugins(owner.plugins)} the GraphQL type {name!r}, which segmentql's own schema has; "
               f"rename it with {NAMING}"
               for name, owner in owners.items() if _clashes(core.get_type_by_name(name), owner)]
    if clashes:
        return "; ".join(clashes)
    failing = []
    for info in registry.plugins:
        alone = ConditionRegistry({f: e for f, e in registry.conditions.items() if e.plugin == info.name}, [info])
        try:
            build(alone)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a line of the message
            failing.append(f"plugin {info.name!r} breaks the GraphQL schema: {_one_line(exc)}")
    if failing:
        return "; ".join(failing)
    names = ", ".join(repr(info.name) for info in registry.plugins)
    return f"the GraphQL schema cannot be built with the plugins {names} together: {_one_line(failure)}"


def _clashes(definition: object, owner: Owner) -> bool:
    """Whether a core type (None: there is none of that name) is another class than the plugins'."""
    return definition is not None and getattr(definition, "origin", None) is not owner.origin


def _plugins(names: list[str]) -> str:
    return f"plugin {names[0]!r} defines" if len(names) == 1 else f"plugins {', '.join(map(repr, names))} define"


def _one_line(exc: Exception) -> str:
    text = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    return text if len(text) <= MAX_REASON else text[:MAX_REASON - 3] + "..."
