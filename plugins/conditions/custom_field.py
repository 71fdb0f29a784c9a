"""``customField``: equality, set membership or presence of any custom field."""

from typing import Any

import strawberry
from strawberry.scalars import JSON

from .. import Condition, Observation, RuleError, hookimpl, listing, require_exactly_one
from ..api import CompileContext, Node, Query, Register, ValidationContext

OPERATORS = ("equals", "notEquals", "containsAny", "containsAll", "containsNone", "exists")
LIST_OPERATORS = {"containsAny": "$in", "containsAll": "$all", "containsNone": "$nin"}


@strawberry.input(description="One test of a declared custom field; give exactly one operator.")
class CustomFieldCondition:
    field: str = strawberry.field(description="Key of a declared custom field.")
    equals: JSON | None = strawberry.field(
        default=strawberry.UNSET,
        description="Equal to this value, read as the field's type is on import (DATE: same UTC day; "
                    "MULTI_SELECT: same set of options).")
    not_equals: JSON | None = strawberry.field(
        default=strawberry.UNSET, description="Not equal to this value; a contact without the field matches.")
    contains_any: list[str] | None = strawberry.field(
        default=strawberry.UNSET, description="MULTI_SELECT only: has at least one of these options.")
    contains_all: list[str] | None = strawberry.field(
        default=strawberry.UNSET, description="MULTI_SELECT only: has every one of these options.")
    contains_none: list[str] | None = strawberry.field(
        default=strawberry.UNSET,
        description="MULTI_SELECT only: has none of these options (a contact without the field matches).")
    exists: bool | None = strawberry.field(
        default=strawberry.UNSET, description="true: the field is set (an empty list counts); false: it is not.")


def validate_custom_field(node: Node, ctx: ValidationContext) -> None:
    field_type = ctx.custom_field(node.get("field"))
    operator = require_exactly_one(node, OPERATORS)
    if operator in LIST_OPERATORS and field_type != "MULTI_SELECT":
        raise RuleError(f"`{operator}` applies to MULTI_SELECT fields; {node['field']!r} is {field_type}")
    if operator in ("equals", "notEquals"):
        ctx.coerce_value(node["field"], node[operator], f"`{operator}`")


def _equals(path: str, field_type: str, value: Any, ctx: CompileContext) -> Query:
    if field_type == "DATE":
        day = (value.date() - ctx.date_of(0)).days
        return {path: {"$gte": ctx.day_start(day), "$lt": ctx.day_start(day + 1)}}
    if field_type == "MULTI_SELECT":
        # Stored lists hold each option once, so "same set" is "all of them, and no more".
        return {path: {"$size": len(value), "$all": value}} if value else {path: {"$size": 0}}
    return {path: {"$eq": value}}


def compile_custom_field(node: Node, ctx: CompileContext) -> Query:
    key = node["field"]
    path = ctx.custom_path(key)
    field_type = ctx.custom_fields[key]
    operator = next(op for op in OPERATORS if node.get(op) is not None)
    if operator == "exists":
        return {path: {"$exists": node["exists"]}}
    if operator in LIST_OPERATORS:
        return {path: {LIST_OPERATORS[operator]: list(node[operator])}}
    equals = _equals(path, field_type, ctx.coerce(field_type, node[operator]), ctx)
    return equals if operator == "equals" else {"$nor": [equals]}


WORDS = {"equals": "=", "notEquals": "!=", "containsAny": "contains any of", "containsAll": "contains all of",
         "containsNone": "contains none of"}


def observe_custom_field(node: Node, ctx: CompileContext) -> list[Observation]:
    key = node["field"]
    operator = next(op for op in OPERATORS if node.get(op) is not None)
    if operator == "exists":
        needed = "set" if node["exists"] else "not set"
    elif operator in LIST_OPERATORS:
        needed = f"{WORDS[operator]} {listing(node[operator])}"
    else:
        needed = f"{WORDS[operator]} {node[operator]!r}"
    return [Observation(f"custom field {key}", f"${ctx.custom_path(key)}", needed)]


SEGMENTQL_API_VERSION = "1.0"  # the plugin API this module is written for


@hookimpl
def segmentql_register_conditions(register: Register) -> None:
    register(Condition(
        field="customField", input_type=CustomFieldCondition, validate=validate_custom_field,
        compile=compile_custom_field, observe=observe_custom_field,
        description="A custom field equals / does not equal a value, contains options, or is set."))
