"""``numericRange``: a NUMBER custom field compared with a value or within bounds."""

import strawberry

from .. import COMPARISON_OPERATORS, Comparison, Condition, Observation, RuleError, hookimpl, needs, require_some
from ..api import CompileContext, Node, Query, Register, ValidationContext
from .common import within


@strawberry.input(description="A NUMBER custom field, either compared with `value` (`comparison` and `value` "
                              "together) or within `[min, max]`. A contact without the field never matches.")
class NumericRangeCondition:
    field: str = strawberry.field(description="Key of a declared NUMBER custom field.")
    comparison: Comparison | None = strawberry.field(
        default=strawberry.UNSET, description="How the field is compared with `value`.")
    value: float | None = strawberry.field(default=strawberry.UNSET, description="The number to compare with.")
    min: float | None = strawberry.field(default=strawberry.UNSET, description="Lowest matching value, inclusive.")
    max: float | None = strawberry.field(default=strawberry.UNSET, description="Highest matching value, inclusive.")


def validate_numeric_range(node: Node, ctx: ValidationContext) -> None:
    ctx.custom_field(node.get("field"), ("NUMBER",))
    compared = [n for n in ("comparison", "value") if node.get(n) is not None]
    bounded = [n for n in ("min", "max") if node.get(n) is not None]
    if compared and bounded:
        raise RuleError("give either `comparison` with `value`, or `min`/`max`, not both")
    if len(compared) == 1:
        raise RuleError("`comparison` and `value` go together")
    require_some(node, ("comparison", "min", "max"))


def compile_numeric_range(node: Node, ctx: CompileContext) -> Query:
    path = ctx.custom_path(node["field"])
    # Comparison operators only match values of the operand's type (numbers),
    # which keeps the predicate index-friendly; NE also needs $type, or it
    # would match contacts without the field.
    bounds: Query = {}
    if node.get("comparison") is not None:
        if node["comparison"] == "NE":
            bounds["$type"] = "number"
        bounds[COMPARISON_OPERATORS[node["comparison"]]] = node["value"]
    else:
        if node.get("min") is not None:
            bounds["$gte"] = node["min"]
        if node.get("max") is not None:
            bounds["$lte"] = node["max"]
    return {path: bounds}


def observe_numeric_range(node: Node, ctx: CompileContext) -> list[Observation]:
    path = ctx.custom_path(node["field"])
    if node.get("comparison") is not None:
        needed = needs(node["comparison"], node["value"])
    else:
        needed = within(node.get("min"), node.get("max"))
    return [Observation(f"custom field {node['field']}", f"${path}", needed)]


SEGMENTQL_API_VERSION = "1.0"  # the plugin API this module is written for


@hookimpl
def segmentql_register_conditions(register: Register) -> None:
    register(Condition(
        field="numericRange", input_type=NumericRangeCondition, validate=validate_numeric_range,
        compile=compile_numeric_range, observe=observe_numeric_range,
        description="A NUMBER custom field compared with a value, or between two bounds."))
