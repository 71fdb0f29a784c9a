"""``tags``: which tags the contact has (exact, case-sensitive)."""

from typing import Optional

import strawberry

from .. import Condition, Observation, hookimpl, listing, require_some


@strawberry.input(description="Tags the contact has or lacks (exact, case-sensitive). "
                              "Every part given must hold.")
class TagCondition:
    includes_any: Optional[list[str]] = strawberry.field(
        default=strawberry.UNSET, description="The contact has at least one of these tags.")
    includes_all: Optional[list[str]] = strawberry.field(
        default=strawberry.UNSET, description="The contact has every one of these tags.")
    excludes: Optional[list[str]] = strawberry.field(
        default=strawberry.UNSET, description="The contact has none of these tags.")


OPERATORS = {"includesAny": "$in", "includesAll": "$all", "excludes": "$nin"}
WORDS = {"includesAny": "includes any of", "includesAll": "includes all of", "excludes": "includes none of"}


def validate_tags(node, _ctx) -> None:
    require_some(node, OPERATORS)


def compile_tags(node, _ctx) -> dict:
    return {"$and": [{"tags": {op: list(node[name])}} for name, op in OPERATORS.items() if node.get(name)]}


def observe_tags(node, _ctx) -> list:
    return [Observation("tags", "$tags", "; ".join(f"{WORDS[n]} {listing(node[n])}" for n in OPERATORS if node.get(n)))]


@hookimpl
def segmentql_register_conditions(register):
    register(Condition(field="tags", input_type=TagCondition, validate=validate_tags, compile=compile_tags,
                       observe=observe_tags,
                       description="Tags on the contact: includes any / includes all / excludes."))
