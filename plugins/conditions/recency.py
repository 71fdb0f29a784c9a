"""``recency``: when the contact last opened / clicked / converted."""

import strawberry

from .. import Activity, Condition, Observation, RuleError, hookimpl, require_exactly_one
from ..api import CompileContext, Node, Query, Register, ValidationContext
from .common import MAX_DAYS, require_days

LAST_PATHS = {"OPENED": "stats.lastOpenAt", "CLICKED": "stats.lastClickAt",
              "CONVERTED": "stats.lastConversionAt", "ANY": "stats.lastActivityAt"}


@strawberry.input(description="When the latest event of an activity happened: within the last N days, or "
                              "more than N days ago. Give exactly one of `withinDays` and `moreThanDaysAgo`.")
class RecencyCondition:
    activity: Activity = strawberry.field(description="Whose latest event is looked at.")
    within_days: int | None = strawberry.field(
        default=strawberry.UNSET,
        description=f"The latest event is on one of the last N UTC days (today and the N-1 days before); "
                    f"1 to {MAX_DAYS}.")
    more_than_days_ago: int | None = strawberry.field(
        default=strawberry.UNSET,
        description=f"The latest event is on a UTC day N or more days before today; 1 to {MAX_DAYS}.")
    include_never: bool = strawberry.field(
        default=True,
        description="With `moreThanDaysAgo`: whether contacts that never had the activity match too.")


def validate_recency(node: Node, _ctx: ValidationContext) -> None:
    require_exactly_one(node, ("withinDays", "moreThanDaysAgo"))
    require_days(node.get("withinDays"), "`withinDays`", 1)
    require_days(node.get("moreThanDaysAgo"), "`moreThanDaysAgo`", 1)
    # includeNever defaults to true, so only an explicit false can be seen as given.
    if node.get("includeNever") is False and node.get("moreThanDaysAgo") is None:
        raise RuleError("`includeNever` only applies with `moreThanDaysAgo`")


def compile_recency(node: Node, ctx: CompileContext) -> Query:
    path = LAST_PATHS[node["activity"]]
    today = ctx.today
    if node.get("withinDays") is not None:
        return {path: {"$gte": ctx.day_start(today - node["withinDays"] + 1), "$lt": ctx.day_start(today + 1)}}
    long_ago = {path: {"$lt": ctx.day_start(today - node["moreThanDaysAgo"] + 1)}}
    if node.get("includeNever", True):
        return {"$or": [long_ago, {path: None}]}
    return long_ago


LABELS = {"OPENED": "latest open", "CLICKED": "latest click", "CONVERTED": "latest conversion",
          "ANY": "latest open, click or conversion"}


def observe_recency(node: Node, ctx: CompileContext) -> list[Observation]:
    today = ctx.today
    if node.get("withinDays") is not None:
        first = ctx.date_of(today - node["withinDays"] + 1)
        needed = f"on or after {first.isoformat()} (the last {node['withinDays']} days)"
    else:
        needed = f"before {ctx.date_of(today - node['moreThanDaysAgo'] + 1).isoformat()}"
        needed += ", or never" if node.get("includeNever", True) else ""
    return [Observation(LABELS[node["activity"]], f"${LAST_PATHS[node['activity']]}", needed)]


SEGMENTQL_API_VERSION = "1.0"  # the plugin API this module is written for


@hookimpl
def segmentql_register_conditions(register: Register) -> None:
    register(Condition(
        field="recency", input_type=RecencyCondition, validate=validate_recency, compile=compile_recency,
        observe=observe_recency,
        description="How long ago the contact last opened, clicked, converted or did any of these."))
