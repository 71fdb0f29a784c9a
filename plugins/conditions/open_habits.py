"""``openHabits``: the hour and weekday at which the contact usually opens,
in the contact's own time zone (precomputed in the rollup at ingest)."""

import strawberry

from .. import WEEKDAY_NUMBERS, Condition, Observation, RuleError, Weekday, hookimpl, listing, literal, require_some
from ..api import CompileContext, Node, Query, Register, ValidationContext


@strawberry.input(description="When the contact usually opens emails, in the contact's own time zone "
                              "(UTC when it has none). Parts given together must all hold.")
class OpenHabitsCondition:
    hour_from: int | None = strawberry.field(
        default=strawberry.UNSET,
        description="The most common open hour is at or after this hour (0-24). Alone: up to midnight. "
                    "Greater than `hourTo`: the range wraps midnight.")
    hour_to: int | None = strawberry.field(
        default=strawberry.UNSET,
        description="The most common open hour is before this hour (0-24). Alone: from midnight.")
    weekdays: list[Weekday] | None = strawberry.field(
        default=strawberry.UNSET, description="The most common open weekday (ties: the earliest) is one of these.")


def validate_open_habits(node: Node, _ctx: ValidationContext) -> None:
    require_some(node, ("hourFrom", "hourTo", "weekdays"))
    for name in ("hourFrom", "hourTo"):
        hour = node.get(name)
        if hour is not None and not 0 <= hour <= 24:
            raise RuleError(f"`{name}` must be an hour from 0 to 24, got {hour}")
    if node.get("hourFrom") is not None and node.get("hourFrom") == node.get("hourTo"):
        raise RuleError("`hourFrom` and `hourTo` must differ")


def hours_in_range(hour_from: int | None, hour_to: int | None) -> list[int]:
    start = 0 if hour_from is None else hour_from
    end = 24 if hour_to is None else hour_to
    if start <= end:
        return list(range(start, end))
    return list(range(start, 24)) + list(range(end))


def compile_open_habits(node: Node, _ctx: CompileContext) -> Query:
    clauses = []
    if node.get("hourFrom") is not None or node.get("hourTo") is not None:
        clauses.append({"stats.topOpenHour": {"$in": hours_in_range(node.get("hourFrom"), node.get("hourTo"))}})
    if node.get("weekdays"):
        clauses.append({"stats.topOpenWeekday": {"$in": sorted({WEEKDAY_NUMBERS[d] for d in node["weekdays"]})}})
    return {"$and": clauses}


def observe_open_habits(node: Node, _ctx: CompileContext) -> list[Observation]:
    found = []
    if node.get("hourFrom") is not None or node.get("hourTo") is not None:
        start, end = node.get("hourFrom") or 0, 24 if node.get("hourTo") is None else node["hourTo"]
        found.append(Observation("most common open hour", "$stats.topOpenHour",
                                 f"from {start}:00 to {end}:00 (hours {listing(hours_in_range(start, end))})"))
    if node.get("weekdays"):
        names = literal([None, *Weekday.__members__])  # ISO weekday number -> name
        found.append(Observation("most common open weekday",
                                 {"$arrayElemAt": [names, {"$ifNull": ["$stats.topOpenWeekday", 0]}]},
                                 f"one of {listing(node['weekdays'])}"))
    return found


SEGMENTQL_API_VERSION = "1.0"  # the plugin API this module is written for


@hookimpl
def segmentql_register_conditions(register: Register) -> None:
    register(Condition(
        field="openHabits", input_type=OpenHabitsCondition, validate=validate_open_habits,
        compile=compile_open_habits, observe=observe_open_habits,
        description="The contact's most common open hour (ties: earliest) and weekday, in its own time zone. "
                    "No opens: no match."))
