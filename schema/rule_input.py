"""``RuleInput``, assembled at start-up from the condition registry, and the
conversion of its values into rule documents.

A rule document is the JSON shape of ``RuleInput`` (camelCase keys, enum
names, ISO-8601 datetimes, unset fields left out). It is what plugins see,
what a saved segment stores, and what ``Segment.rule`` gives back, so a front
end can load a saved rule straight into its editor.
"""

import datetime as dt
import enum
import types

import strawberry
from strawberry.types.base import has_object_definition
from strawberry.utils.str_converters import to_camel_case

from segmentql.plugins.registry import GROUPS, ConditionRegistry

GROUP_DESCRIPTIONS = {
    "all": "Match ALL: every rule in the list matches.",
    "any": "Match ANY: at least one rule in the list matches.",
    "not": "The rule does not match.",
}


def build_rule_input(registry: ConditionRegistry) -> type:
    """A @oneOf input with ``all``/``any``/``not`` and one field per condition."""
    cls = type("RuleInput", (), {"__module__": __name__})
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
        cls, one_of=True, name="RuleInput",
        description="A segment rule: exactly one of a group (`all`, `any`, `not`) or a condition. "
                    "Conditions are contributed by plugins; see `conditionTypes`.")


def to_document(value, keep_null: bool = False):
    """A strawberry input value as JSON-compatible data in GraphQL names.

    Fields not given are left out. Fields given as ``null`` are left out of
    rule documents (a null operator is no operator) and kept as ``None`` with
    ``keep_null`` (for data inputs, where null unsets a stored value)."""
    if value is None or value is strawberry.UNSET:
        return None
    if has_object_definition(value):
        out = {}
        for field in value.__strawberry_definition__.fields:
            raw = getattr(value, field.python_name)
            if raw is strawberry.UNSET or (raw is None and not keep_null):
                continue
            out[field.graphql_name or to_camel_case(field.python_name)] = to_document(raw, keep_null)
        return out
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        try:
            return aware.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        except OverflowError:  # beyond year 1 or 9999 in UTC: kept as given, for its user to refuse
            return aware.isoformat()
    if isinstance(value, (list, tuple)):
        return [to_document(v, keep_null) for v in value]
    return value
