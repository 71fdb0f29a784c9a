"""``tags``: which tags the contact has (exact, case-sensitive)."""

import strawberry

from .. import Condition, Observation, hookimpl, listing, require_some
from ..api import CompileContext, Node, Query, Register, ValidationContext


@strawberry.input(description="Tags the contact has or lacks (exact, case-sensitive). "
                              "Every part given must hold.")
class TagCondition:
    includes_any: list[str] | None = strawberry.field(
        default=strawberry.UNSET, description="The contact has at least one of these tags.")
    includes_all: list[str] | None = strawberry.field(
        default=strawberry.UNSET, description="The contact has every one of these tags.")
    excludes: list[str] | None = strawberry.field(
        default=strawberry.UNSET, description="The contact has none of these tags.")


OPERATORS = {"includesAny": "$in", "includesAll": "$all", "excludes": "$nin"}
WORDS = {"includesAny": "includes any of", "includesAll": "includes all of", "excludes": "includes none of"}


def validate_tags(node: Node, _ctx: ValidationContext) -> None:
    require_some(node, OPERATORS)


def compile_tags(node: Node, _ctx: CompileContext) -> Query:
    return {"$and": [{"tags": {op: list(node[name])}} for name, op in OPERATORS.items() if node.get(name)]}


def observe_tags(node: Node, _ctx: CompileContext) -> list[Observation]:
    return [Observation("tags", "$tags", "; ".join(f"{WORDS[n]} {listing(node[n])}" for n in OPERATORS if node.get(n)))]


SEGMENTQL_API_VERSION = "1.0"  # the plugin API this module is written for


@hookimpl
def segmentql_register_conditions(register: Register) -> None:
    register(Condition(field="tags", input_type=TagCondition, validate=validate_tags, compile=compile_tags,
                       observe=observe_tags,
                       description="Tags on the contact: includes any / includes all / excludes."))
