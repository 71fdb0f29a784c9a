"""``engagement``: how many opens / clicks / conversions a contact has, in
total or on the last N days, optionally opens on one device only.

Totals are plain fields of the rollup. A window uses the rollup's daily
buckets, whose counts are suffix sums ("opens on this day or later"): for a
contact with no engagement after today, "at least k in the last N days" is the
index-friendly ``$elemMatch {day >= D-N+1, opensSince >= k}``. Only contacts
with events dated after ``asOf`` (an ``asOf`` in the past) need the exact
``$expr`` that subtracts the later part.
"""

from typing import Optional

import strawberry

from .. import (ALWAYS, NEVER, CompileContext, Comparison, Condition, Device, Metric, Observation, RuleError,
                compare, hookimpl, needs, require_positive)
from ...server.rollups import DEVICE_SINCE, SINCE_FIELDS, window_count_expression

TOTAL_PATHS = {"OPENS": "stats.opens", "CLICKS": "stats.clicks", "CONVERSIONS": "stats.conversions"}


@strawberry.input(description="Compares the number of engagement events with a value, e.g. "
                              "`{metric: OPENS, comparison: GTE, value: 3, withinDays: 30}`.")
class EngagementCondition:
    metric: Metric = strawberry.field(description="Which events are counted.")
    comparison: Comparison = strawberry.field(description="How the count is compared with `value`.")
    value: int = strawberry.field(description="The number of events to compare the count with.")
    within_days: Optional[int] = strawberry.field(
        default=strawberry.UNSET,
        description="Count only events on the last N UTC days (today and the N-1 days before). "
                    "Without it, every stored event counts.")
    device: Optional[Device] = strawberry.field(
        default=strawberry.UNSET, description="Count only opens on this device (metric OPENS only).")


def validate_engagement(node, _ctx) -> None:
    if node.get("device") is not None and node["metric"] != "OPENS":
        raise RuleError(f"`device` only applies to metric OPENS, not {node['metric']}")
    require_positive(node, "withinDays")


def _negate(query: dict) -> dict:
    if query is ALWAYS:
        return NEVER
    return {"$nor": [query]}


def _at_least(k: int, since: str, total: str, first_day: int, ctx: CompileContext) -> dict:
    """At least k events on days first_day..today. Two plain scalar tests that
    the bucket test implies come first, so most contacts are decided without
    reading their bucket array: some activity since first_day (indexed) and at
    least k such events in total."""
    if k <= 0:
        return ALWAYS
    implied = {"stats.lastActivityAt": {"$gte": ctx.day_start(first_day)}, total: {"$gte": k}}
    recent = {"stats.activity": {"$elemMatch": {"day": {"$gte": first_day}, since: {"$gte": k}}}}
    if not ctx.events_after_today:
        return {**implied, **recent}
    nothing_later = {"$and": [{"stats.lastEngagedDay": {"$not": {"$gt": ctx.today}}}, recent]}
    some_later = {"$and": [
        {"stats.lastEngagedDay": {"$gt": ctx.today}},
        {"$expr": {"$gte": [window_count_expression(since, first_day, ctx.today), k]}}]}
    return {**implied, "$or": [nothing_later, some_later]}


def _since_field(node) -> str:
    """The suffix-sum field of ``stats.activity`` buckets counting the node's events."""
    return DEVICE_SINCE[node["device"]] if node.get("device") else SINCE_FIELDS[node["metric"]]


def _total_path(node) -> str:
    """The rollup field counting every event the node counts, whatever the day."""
    return f"stats.opensByDevice.{node['device']}" if node.get("device") else TOTAL_PATHS[node["metric"]]


def compile_engagement(node, ctx: CompileContext) -> dict:
    comparison, value, days = node["comparison"], node["value"], node.get("withinDays")
    total = _total_path(node)
    if days is None:
        return compare(total, comparison, value)
    since = _since_field(node)

    def at_least(k: int) -> dict:
        return _at_least(k, since, total, ctx.today - days + 1, ctx)

    exactly = {"$and": [at_least(value), _negate(at_least(value + 1))]}
    return {
        "GTE": lambda: at_least(value),
        "GT": lambda: at_least(value + 1),
        "LT": lambda: _negate(at_least(value)),
        "LTE": lambda: _negate(at_least(value + 1)),
        "EQ": lambda: exactly,
        "NE": lambda: _negate(exactly),
    }[comparison]()


def observe_engagement(node, ctx: CompileContext) -> list[Observation]:
    """The count compile compares, from the same rollup fields: the total, or
    the window's count from the suffix sums (today's bucket on, minus later)."""
    metric, device, days = node["metric"], node.get("device"), node.get("withinDays")
    label = metric.lower() + (f" on {device}" if device else "")
    if days is None:
        total = {"$ifNull": [f"${_total_path(node)}", 0]}
        return [Observation(f"{label} in total", total, needs(node["comparison"], node["value"]))]
    since = _since_field(node)
    window = window_count_expression(since, ctx.today - days + 1, ctx.today)
    return [Observation(f"{label} on the last {days} days", window, needs(node["comparison"], node["value"]))]


@hookimpl
def segmentql_register_conditions(register):
    register(Condition(
        field="engagement", input_type=EngagementCondition, validate=validate_engagement,
        compile=compile_engagement, observe=observe_engagement,
        description="Number of opens, clicks or conversions, in total or on the last N days "
                    "(contacts without events count 0)."))
