"""GraphQL arguments several fields share, and the checks whose messages
name an argument: a refusal names what the client sent (`first`,
`withinDays`), so it is worded here and not by the services, which take
plain values and know nothing of GraphQL."""

import datetime as dt
from typing import Annotated

import strawberry
from graphql import FieldNode, ValueNode, VariableNode
from strawberry.types import Info

from segmentql.server.errors import BadArgument


def described(description: str):
    """An argument's annotation carrying its description (shown in the SDL and GraphiQL)."""
    return strawberry.argument(description=description)


AsOf = Annotated[dt.datetime | None, described(
    "Evaluate as of this instant (default: now). Today is its UTC calendar day; stored events are not hidden.")]
Id = Annotated[strawberry.ID, described("The id.")]


def in_range(name: str, value: int, low: int, high: int) -> int:
    """``value``, given as the argument ``name``, when it lies from ``low`` to ``high``."""
    if not low <= value <= high:
        raise BadArgument(f"`{name}` must be between {low} and {high}, got {value}")
    return value


def argument_value(field: FieldNode, name: str) -> ValueNode | None:
    """The value the document gives the field's argument ``name`` (a literal or
    a variable), None when it gives none."""
    return next((a.value for a in field.arguments or () if a.name.value == name), None)


def sent(info: Info, name: str) -> bool:
    """Whether the request gave the field's argument ``name`` (written in the
    document, or a variable the request sent): an argument with a default
    arrives with a value either way."""
    raw = info._raw_info
    value = argument_value(raw.field_nodes[0], name)
    if isinstance(value, VariableNode):
        return value.name.value in raw.variable_values
    return value is not None
