"""``dateRange``: a DATE custom field within days relative to today and/or
strictly between two instants."""

import datetime as dt

import strawberry

from .. import Condition, Observation, RuleError, hookimpl, require_some
from ..api import CompileContext, Node, Query, Register, ValidationContext
from .common import MAX_DAYS, require_days

BOUNDS = ("fromDays", "toDays", "after", "before")


@strawberry.input(description="A DATE custom field within a window. Every bound given must hold; give at least "
                              "one. \"Between today and 7 days from now\" is `{fromDays: 0, toDays: 7}`.")
class DateRangeCondition:
    field: str = strawberry.field(description="Key of a declared DATE custom field.")
    from_days: int | None = strawberry.field(
        default=strawberry.UNSET,
        description=f"The date's UTC day is this many days after today or later (negative: before today); "
                    f"{-MAX_DAYS} to {MAX_DAYS}.")
    to_days: int | None = strawberry.field(
        default=strawberry.UNSET,
        description=f"The date's UTC day is at most this many days after today; {-MAX_DAYS} to {MAX_DAYS}.")
    after: dt.datetime | None = strawberry.field(
        default=strawberry.UNSET, description="The date is strictly after this instant.")
    before: dt.datetime | None = strawberry.field(
        default=strawberry.UNSET, description="The date is strictly before this instant.")


def validate_date_range(node: Node, ctx: ValidationContext) -> None:
    ctx.custom_field(node.get("field"), ("DATE",))
    require_some(node, BOUNDS)
    for name in ("fromDays", "toDays"):
        require_days(node.get(name), f"`{name}`", -MAX_DAYS)
    for name in ("after", "before"):
        if node.get(name) is not None:
            try:  # an instant is read as a DATE value is: same format, same supported range
                ctx.coerce("DATE", node[name])
            except ValueError as exc:
                raise RuleError(f"`{name}`: {exc}") from None


def _instant(text: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(text)
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed


def compile_date_range(node: Node, ctx: CompileContext) -> Query:
    # One range predicate (at least one bound is given, and date bounds only
    # match dates), so the compiler can lead with it on the field's index.
    bounds: Query = {}
    if node.get("fromDays") is not None:
        bounds["$gte"] = ctx.day_start(ctx.today + node["fromDays"])
    if node.get("after") is not None:
        bounds["$gt"] = _instant(node["after"])
    ends = [ctx.day_start(ctx.today + node["toDays"] + 1)] if node.get("toDays") is not None else []
    ends += [_instant(node["before"])] if node.get("before") is not None else []
    if ends:
        bounds["$lt"] = min(ends)
    return {ctx.custom_path(node["field"]): bounds}


def observe_date_range(node: Node, ctx: CompileContext) -> list[Observation]:
    parts = []
    if node.get("fromDays") is not None:
        parts.append(f"on or after {ctx.date_of(ctx.today + node['fromDays']).isoformat()}")
    if node.get("toDays") is not None:
        parts.append(f"on or before {ctx.date_of(ctx.today + node['toDays']).isoformat()}")
    if node.get("after") is not None:
        parts.append(f"after {_instant(node['after']).isoformat()}")
    if node.get("before") is not None:
        parts.append(f"before {_instant(node['before']).isoformat()}")
    return [Observation(f"custom field {node['field']}", f"${ctx.custom_path(node['field'])}", " and ".join(parts))]


SEGMENTQL_API_VERSION = "1.0"  # the plugin API this module is written for


@hookimpl
def segmentql_register_conditions(register: Register) -> None:
    register(Condition(
        field="dateRange", input_type=DateRangeCondition, validate=validate_date_range, compile=compile_date_range,
        observe=observe_date_range,
        description="A DATE custom field between days relative to today and/or two instants."))
