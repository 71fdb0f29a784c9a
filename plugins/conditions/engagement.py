"""``engagement``: how many opens / clicks / conversions a contact has, in
total or on the last N days, optionally opens on one device only.

Totals are plain fields of the rollup. A window "at least k on days >= D-N+1"
is one comparison on the rollup's ``eventDays`` (the day of the k-th newest
event; :func:`segmentql.plugins.contact.at_least_since`), for every contact with
no engagement after today. Only contacts with events dated after ``asOf`` (an
``asOf`` in the past) need the exact ``$expr`` that subtracts the later part.
"""

from collections.abc import Callable

import strawberry

from .. import ALWAYS, NEVER, Comparison, Condition, Device, Metric, Observation, RuleError, compare, hookimpl, needs
from ..api import CompileContext, Node, Query, Register, ValidationContext
from ..contact import DEVICE_SERIES, METRIC_SERIES, at_least_since, window_count_expression
from .common import MAX_DAYS, require_days

TOTAL_PATHS = {"OPENS": "stats.opens", "CLICKS": "stats.clicks", "CONVERSIONS": "stats.conversions"}


@strawberry.input(description="Compares the number of engagement events with a value, e.g. "
                              "`{metric: OPENS, comparison: GTE, value: 3, withinDays: 30}`.")
class EngagementCondition:
    metric: Metric = strawberry.field(description="Which events are counted.")
    comparison: Comparison = strawberry.field(description="How the count is compared with `value`.")
    value: int = strawberry.field(description="The number of events to compare the count with.")
    within_days: int | None = strawberry.field(
        default=strawberry.UNSET,
        description=f"Count only events on the last N UTC days (today and the N-1 days before), 1 to {MAX_DAYS}. "
                    "Without it, every stored event counts.")
    device: Device | None = strawberry.field(
        default=strawberry.UNSET, description="Count only opens on this device (metric OPENS only).")


def validate_engagement(node: Node, _ctx: ValidationContext) -> None:
    if node.get("device") is not None and node["metric"] != "OPENS":
        raise RuleError(f"`device` only applies to metric OPENS, not {node['metric']}")
    require_days(node.get("withinDays"), "`withinDays`", 1)


def _negate(query: Query) -> Query:
    if query is ALWAYS:
        return NEVER
    return {"$nor": [query]}


def _at_least(k: int, series: str, first_day: int, ctx: CompileContext) -> Query:
    """At least k events of the series on days first_day..today. "Some
    activity since first_day", which that implies, comes first: it is indexed,
    so a window rule on its own reads only the recently active contacts."""
    if k <= 0:
        return ALWAYS
    implied = {"stats.lastActivityAt": {"$gte": ctx.day_start(first_day)}}
    recent = at_least_since(series, k, first_day)
    if not ctx.events_after_today:
        return {**implied, **recent}
    nothing_later = {"$and": [{"stats.lastEngagedDay": {"$not": {"$gt": ctx.today}}}, recent]}
    some_later = {"$and": [
        {"stats.lastEngagedDay": {"$gt": ctx.today}},
        {"$expr": {"$gte": [window_count_expression(series, first_day, ctx.today), k]}}]}
    return {**implied, "$or": [nothing_later, some_later]}


def _series(node: Node) -> str:
    """The rollup series counting the node's events (see contact.METRIC_SERIES)."""
    return DEVICE_SERIES[node["device"]] if node.get("device") else METRIC_SERIES[node["metric"]]


def _total_path(node: Node) -> str:
    """The rollup field counting every event the node counts, whatever the day."""
    return f"stats.opensByDevice.{node['device']}" if node.get("device") else TOTAL_PATHS[node["metric"]]


def compile_engagement(node: Node, ctx: CompileContext) -> Query:
    comparison, value, days = node["comparison"], node["value"], node.get("withinDays")
    if days is None:
        return compare(_total_path(node), comparison, value)
    series = _series(node)

    def at_least(k: int) -> Query:
        return _at_least(k, series, ctx.today - days + 1, ctx)

    exactly = {"$and": [at_least(value), _negate(at_least(value + 1))]}
    queries: dict[str, Callable[[], Query]] = {
        "GTE": lambda: at_least(value),
        "GT": lambda: at_least(value + 1),
        "LT": lambda: _negate(at_least(value)),
        "LTE": lambda: _negate(at_least(value + 1)),
        "EQ": lambda: exactly,
        "NE": lambda: _negate(exactly),
    }
    return queries[comparison]()


def observe_engagement(node: Node, ctx: CompileContext) -> list[Observation]:
    """The count compile compares, from the same rollup fields: the total, or
    the window's count from the suffix sums (today's bucket on, minus later)."""
    metric, device, days = node["metric"], node.get("device"), node.get("withinDays")
    label = metric.lower() + (f" on {device}" if device else "")
    if days is None:
        total = {"$ifNull": [f"${_total_path(node)}", 0]}
        return [Observation(f"{label} in total", total, needs(node["comparison"], node["value"]))]
    window = window_count_expression(_series(node), ctx.today - days + 1, ctx.today)
    return [Observation(f"{label} on the last {days} days", window, needs(node["comparison"], node["value"]))]


SEGMENTQL_API_VERSION = "1.0"  # the plugin API this module is written for


@hookimpl
def segmentql_register_conditions(register: Register) -> None:
    register(Condition(
        field="engagement", input_type=EngagementCondition, validate=validate_engagement,
        compile=compile_engagement, observe=observe_engagement,
        description="Number of opens, clicks or conversions, in total or on the last N days "
                    "(contacts without events count 0)."))
