"""Rule documents as plugins take them, made from the input types alone.

A saved segment keeps its rule exactly as the client sent it, so
``Segment.rule`` gives back what was sent: no default added, no value
rewritten, and a builder that saves a rule and reads it back gets the same
JSON. Plugins, though, have always been given a condition's value as GraphQL
coercion makes it (the ``node`` of ``plugins.api.Condition``): each input
field's default where none was given, null fields left out, a single value
where a list is expected as a list of it (a group's rules too), IDs as
text, instants as UTC text, other scalars (``Date``, a plugin's own) as their
scalar writes them. :func:`coerced_rule` makes that form again when a rule is
checked or compiled, and a preview's rule (:func:`to_document` of GraphQL's
coerced value) passes through it too: one coercion, so a plugin is given the
same node for a preview and for the segment saved from it. It reads only
the condition input types of the registry, because stored rules are
evaluated where no GraphQL schema is at hand (live segments, exports, the
command line); a rule already in that form (a preview's, or one
saved before rules were kept as sent) comes back equal, so every stored
segment evaluates as before.
"""

import dataclasses
import datetime as dt
import enum
from collections.abc import Mapping
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.scalars import JSON
from strawberry.schema.types.scalar import DEFAULT_SCALAR_REGISTRY
from strawberry.types.base import StrawberryList, StrawberryOptional, get_object_definition, has_object_definition
from strawberry.types.scalar import ScalarDefinition
from strawberry.utils.str_converters import to_camel_case

from segmentql.plugins.registry import GROUPS, ConditionRegistry

# Scalars whose JSON value is the value itself (GraphQL's own, ``ID`` and ``JSON``).
PLAIN_SCALARS = frozenset({str, int, float, bool, strawberry.ID, JSON})


def instant_text(value: dt.datetime) -> str:
    """An instant of a rule document: ISO 8601 in UTC with ``Z`` (naive: UTC)."""
    aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    try:
        return aware.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    except OverflowError:  # beyond year 1 or 9999 in UTC: kept as given, for its user to refuse
        return aware.isoformat()


def to_document(value, keep_null: bool = False):
    """A strawberry input value as JSON-compatible data in GraphQL names.

    Fields not given are left out. Fields given as ``null`` are left out of
    rule documents (a null operator is no operator) and kept as ``None`` with
    ``keep_null`` (for data inputs, where null unsets a stored value). Each
    value is written as its field's type writes it (:func:`_scalar_document`),
    and a scalar's value is never looked into: a ``JSON`` value is data, as
    deep as its sender made it, so it goes on as it is, for the compiler's
    limits to refuse. Iterative, for the same reason."""
    return _document(value, None, keep_null)


def _document(value: Any, type_: Any, keep_null: bool = False) -> Any:
    """:func:`to_document` of ``value``, a value of the strawberry type ``type_`` (None: unknown)."""
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any, Any]] = [(root, 0, value, type_)]
    while stack:
        holder, key, item, expected = stack.pop()
        expected = _unwrapped(expected)
        if item is None or item is strawberry.UNSET:
            holder[key] = None
        elif has_object_definition(item):
            out: dict[str, Any] = {}
            for field in item.__strawberry_definition__.fields:
                raw = getattr(item, field.python_name)
                if raw is strawberry.UNSET or (raw is None and not keep_null):
                    continue
                name = field.graphql_name or to_camel_case(field.python_name)
                out[name] = None  # its place, in the type's order
                stack.append((out, name, raw, field.type))
            holder[key] = out
        elif isinstance(item, (list, tuple)) and (expected is None or isinstance(expected, StrawberryList)):
            items: list[Any] = [None] * len(item)
            of = expected.of_type if isinstance(expected, StrawberryList) else None
            stack.extend((items, i, v, of) for i, v in enumerate(item))
            holder[key] = items
        else:
            holder[key] = _scalar_document(item, expected)
    return root[0]


def _unwrapped(type_: Any) -> Any:
    while isinstance(type_, StrawberryOptional):
        type_ = type_.of_type
    return type_


def _scalar(type_: Any) -> ScalarDefinition | None:
    """The definition of the scalar ``type_`` (strawberry's own or a plugin's), None for another type.
    The schema's scalars parse as strawberry's do (``schema/scalars.py`` changes how some are written)."""
    if type_ is None or isinstance(type_, (StrawberryList, StrawberryOptional)):
        return None
    definition = getattr(type_, "_scalar_definition", None)
    return definition if isinstance(definition, ScalarDefinition) else DEFAULT_SCALAR_REGISTRY.get(type_)


def _scalar_document(value: Any, type_: Any) -> Any:
    """A parsed leaf value as JSON: an enum value by its name, an instant as
    :func:`instant_text`, another scalar's value (a ``Date``, a ``Decimal``,
    a plugin's own scalar) as its scalar writes it; plain JSON as it is."""
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, dt.datetime):
        return instant_text(value)
    definition = _scalar(type_)
    if definition is None or type_ in PLAIN_SCALARS or definition.serialize is None:
        return value
    return definition.serialize(value)


def coerced_rule(rule: object, registry: ConditionRegistry) -> object:
    """``rule`` (a rule document as sent, or anything JSON holds) with every
    condition's value coerced by its input type (:func:`coerced_input`).
    Whatever is not a well-formed node is left as it is, for validation to
    name. Iterative, as validation is: a deep ``not`` chain costs no stack."""
    root: list[object] = [rule]
    stack: list[tuple[list[object] | dict[str, object], Any, object]] = [(root, 0, rule)]
    while stack:
        holder, key, node = stack.pop()
        if not isinstance(node, Mapping) or len(node) != 1:
            continue
        ((kind, value),) = node.items()
        if kind == "not":
            copy: dict[str, object] = {kind: value}
            stack.append((copy, kind, value))
        elif kind in GROUPS and isinstance(value, (list, Mapping)):
            items = list(value) if isinstance(value, list) else [value]  # one rule where a list goes, as GraphQL
            copy = {kind: items}
            stack.extend((items, i, item) for i, item in enumerate(items))
        elif kind in registry and isinstance(value, Mapping):
            copy = {kind: coerced_input(value, registry[kind].condition.input_type)}
        else:
            continue
        holder[key] = copy
    return root[0]


def coerced_input(value: Mapping[str, Any], input_type: type) -> dict[str, Any]:
    """A value of the strawberry input type ``input_type`` in the form
    :func:`to_document` gives its coerced value: defaults added (a
    ``default_factory``'s too; a ``None`` default is no value, as a null
    field is none), nulls left out. Names the type does not have are kept,
    for validation to refuse."""
    given = dict(value)
    out: dict[str, Any] = {}
    for field in get_object_definition(input_type, strict=True).fields:
        name = field.graphql_name or to_camel_case(field.python_name)
        if name in given:
            sent = given.pop(name)
            if sent is not None:
                out[name] = _coerced(sent, field.type)
            continue
        default = field.default
        if default is dataclasses.MISSING and field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        if default is not None and default is not strawberry.UNSET and default is not dataclasses.MISSING:
            out[name] = _document(default, field.type)
    return {**out, **given}


def _coerced(value: Any, type_: Any) -> Any:
    """One given value as GraphQL coerces it to ``type_`` (a strawberry type), in document form.
    A scalar's value is parsed by its scalar and written again (:func:`_scalar_document`), as a
    preview's value is parsed by GraphQL and written by :func:`to_document`: both give a plugin
    the same node. A value its scalar refuses is kept, for validation to name."""
    type_ = _unwrapped(type_)
    if value is None:
        return None
    if isinstance(type_, StrawberryList):
        return [_coerced(item, type_.of_type) for item in (value if isinstance(value, list) else [value])]
    if has_object_definition(type_) and isinstance(value, Mapping):
        return coerced_input(value, type_)
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if type_ is float and number:
        return float(value)
    if type_ is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if type_ is strawberry.ID and number:
        return str(value)
    definition = _scalar(type_)
    if definition is None or type_ in PLAIN_SCALARS or definition.parse_value is None:
        return value
    try:
        return _scalar_document(definition.parse_value(value), type_)
    except (GraphQLError, ValueError, TypeError):
        return value
