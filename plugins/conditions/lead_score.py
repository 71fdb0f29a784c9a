"""``leadScore``: the contact's lead score, by range or tier."""

import enum

import strawberry

from .. import Condition, Observation, RuleError, hookimpl, require_some
from ..api import CompileContext, Node, Query, Register, ValidationContext
from .common import within


@strawberry.enum(description="Named lead score ranges.")
class LeadTier(enum.Enum):
    HOT = strawberry.enum_value("HOT", description="lead score 80-100")
    WARM = strawberry.enum_value("WARM", description="lead score 50-79")
    COLD = strawberry.enum_value("COLD", description="lead score 0-49")


TIERS = {"HOT": (80, 100), "WARM": (50, 79), "COLD": (0, 49)}


@strawberry.input(description="The contact's lead score (0-100): either a `tier` or `min`/`max`. "
                              "Contacts without a lead score never match.")
class LeadScoreCondition:
    min: int | None = strawberry.field(default=strawberry.UNSET, description="Lowest matching score, inclusive.")
    max: int | None = strawberry.field(default=strawberry.UNSET, description="Highest matching score, inclusive.")
    tier: LeadTier | None = strawberry.field(default=strawberry.UNSET, description="A named range of scores.")


def validate_lead_score(node: Node, _ctx: ValidationContext) -> None:
    require_some(node, ("min", "max", "tier"))
    if node.get("tier") is not None and (node.get("min") is not None or node.get("max") is not None):
        raise RuleError("give either `tier` or `min`/`max`, not both")


def compile_lead_score(node: Node, _ctx: CompileContext) -> Query:
    low, high = TIERS[node["tier"]] if node.get("tier") else (node.get("min"), node.get("max"))
    bounds: Query = {}  # a null lead score never compares with a number
    if low is not None:
        bounds["$gte"] = low
    if high is not None:
        bounds["$lte"] = high
    return {"leadScore": bounds}


def observe_lead_score(node: Node, _ctx: CompileContext) -> list[Observation]:
    low, high = TIERS[node["tier"]] if node.get("tier") else (node.get("min"), node.get("max"))
    tier = f" ({node['tier']})" if node.get("tier") else ""
    return [Observation("lead score", "$leadScore", within(low, high) + tier)]


SEGMENTQL_API_VERSION = "1.0"  # the plugin API this module is written for


@hookimpl
def segmentql_register_conditions(register: Register) -> None:
    register(Condition(
        field="leadScore", input_type=LeadScoreCondition, validate=validate_lead_score, compile=compile_lead_score,
        observe=observe_lead_score,
        description="Lead score within a range or tier (HOT 80-100, WARM 50-79, COLD 0-49)."))
