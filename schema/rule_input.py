"""``RuleInput``, assembled at start-up from the condition registry, and the
conversion of its values into rule documents.

A rule document is the JSON shape of ``RuleInput`` (camelCase keys, enum
names). A saved segment stores it exactly as the client sent it
(:func:`sent_value`), and ``Segment.rule`` gives that back, so a front end
can load a saved rule straight into its editor and find it unchanged.
Plugins take it coerced (``to_document`` of the coerced value, or
``server/coercion.py`` for a stored one): ISO-8601 datetimes in UTC, input
defaults added, null fields left out.
"""

import types
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any

import strawberry
from graphql import ListValueNode, ObjectValueNode, ValueNode, VariableNode, value_from_ast_untyped
from strawberry.extensions import SchemaExtension
from strawberry.types import Info

from segmentql.plugins.registry import GROUPS, ConditionRegistry
from segmentql.server.coercion import to_document

from .arguments import argument_value

__all__ = ["RULE_INPUT", "SentVariables", "build_rule_input", "sent_value", "to_document"]

RULE_INPUT = "RuleInput"

GROUP_DESCRIPTIONS = {
    "all": "Match ALL: every rule in the list matches.",
    "any": "Match ANY: at least one rule in the list matches.",
    "not": "The rule does not match.",
}


def build_rule_input(registry: ConditionRegistry) -> type:
    """A @oneOf input with ``all``/``any``/``not`` and one field per condition."""
    cls = type(RULE_INPUT, (), {"__module__": __name__})
    # ``list[cls]`` spelled as the alias it builds: a class made at run time is
    # no type to mypy, and strawberry reads these annotations at run time.
    rules = types.GenericAlias(list, cls)
    annotations: dict[str, object] = {"all_": rules | None, "any_": rules | None, "not_": cls | None}
    for group in GROUPS:
        setattr(cls, f"{group}_", strawberry.field(name=group, default=strawberry.UNSET,
                                                  description=GROUP_DESCRIPTIONS[group]))
    for field, entry in registry.conditions.items():
        attribute = f"condition_{field}"
        annotations[attribute] = entry.condition.input_type | None
        setattr(cls, attribute, strawberry.field(
            name=field, default=strawberry.UNSET,
            description=f"{entry.condition.description} (plugin: {entry.plugin})"))
    cls.__annotations__ = annotations
    return strawberry.input(
        cls, one_of=True, name=RULE_INPUT,
        description="A segment rule: exactly one of a group (`all`, `any`, `not`) or a condition. "
                    "Conditions are contributed by plugins; see `conditionTypes`.")


# The operation's variables as the request sent them. Resolvers are given
# only coerced values (defaults added, enums as Python values), so
# :class:`SentVariables` keeps these for :func:`sent_value`. A context
# variable: each request runs in its own task, which sees only its own.
SENT_VARIABLES: ContextVar[Mapping[str, Any] | None] = ContextVar("sent_variables", default=None)


class SentVariables(SchemaExtension):
    """Keeps the variables of the operation about to run, as sent (:data:`SENT_VARIABLES`)."""

    def on_execute(self) -> Iterator[None]:
        SENT_VARIABLES.set(self.execution_context.variables or {})
        yield


def sent_value(info: Info, argument: str) -> Any:
    """The value of the field's ``argument`` exactly as the client sent it, as
    JSON: a variable's value as it came in the request, a literal as written
    (enum names, numbers and strings as they are; a variable inside it as it
    came), nothing coerced and no default added. What a saved segment
    stores, and ``Segment.rule`` returns."""
    raw = info._raw_info
    node = argument_value(raw.field_nodes[0], argument)
    assert node is not None, f"called for `{argument}`, which the document does not give"
    sent = SENT_VARIABLES.get() or {}
    defaults = {definition.variable.name.value: definition.default_value
                for definition in raw.operation.variable_definitions or () if definition.default_value is not None}
    return _as_sent(node, sent, defaults)


def _as_sent(node: ValueNode, sent: Mapping[str, Any], defaults: Mapping[str, ValueNode]) -> Any:
    """``node`` as JSON, each variable in it as ``sent`` (as it is: a variable's
    value is never looked into, however deep its sender nested it), else as
    its default in the operation; a field whose variable has neither is left
    out, as GraphQL leaves it out (in a list: null). Iterative: a literal's
    depth costs no stack either."""
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, ValueNode]] = [(root, 0, node)]
    while stack:
        holder, key, item = stack.pop()
        if isinstance(item, VariableNode):
            name = item.name.value
            if name in sent:
                holder[key] = sent[name]
            elif name in defaults:
                stack.append((holder, key, defaults[name]))
            elif isinstance(holder, dict):
                del holder[key]
        elif isinstance(item, ListValueNode):
            items: list[Any] = [None] * len(item.values)
            stack.extend((items, i, value) for i, value in enumerate(item.values))
            holder[key] = items
        elif isinstance(item, ObjectValueNode):
            fields: dict[str, Any] = {field.name.value: None for field in item.fields}  # in the order written
            stack.extend((fields, field.name.value, field.value) for field in item.fields)
            holder[key] = fields
        else:
            holder[key] = value_from_ast_untyped(item)
    return root[0]
