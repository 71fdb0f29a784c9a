"""``dateAnniversary``: an anniversary of a DATE custom field falls today, this
week, this month or within the next N days.

An anniversary is the same month and day in a later year (29 February falls
on 28 February in other years). Import stores each DATE's month-day and year
beside it (``dateParts.<key>``), so the compiler turns the window into "one of
these month-days, and a year before the anniversary's" — plain queries, no
per-document date arithmetic.
"""

import calendar
import datetime as dt
import enum
from collections import defaultdict

import strawberry

from .. import NEVER, Condition, Observation, RuleError, hookimpl
from ..api import CompileContext, Node, Query, Register, ValidationContext
from .common import MAX_DAYS, require_days

LAST_DAY = dt.date(9999, 12, 31)


@strawberry.enum(description="When an anniversary must fall.")
class AnniversaryWindow(enum.Enum):
    TODAY = strawberry.enum_value("TODAY", description="today (UTC)")
    THIS_WEEK = strawberry.enum_value("THIS_WEEK", description="this ISO week, Monday to Sunday")
    THIS_MONTH = strawberry.enum_value("THIS_MONTH", description="this calendar month")
    NEXT_DAYS = strawberry.enum_value("NEXT_DAYS", description="today or within the next `days` days")


@strawberry.input(description="An anniversary of a DATE custom field (same month and day in a later year) "
                              "falls in a window around today.")
class DateAnniversaryCondition:
    field: str = strawberry.field(description="Key of a declared DATE custom field.")
    window: AnniversaryWindow = strawberry.field(description="When the anniversary must fall.")
    days: int | None = strawberry.field(
        default=strawberry.UNSET,
        description=f"With NEXT_DAYS: how many days after today the window reaches, 1 to {MAX_DAYS}.")


def validate_date_anniversary(node: Node, ctx: ValidationContext) -> None:
    ctx.custom_field(node.get("field"), ("DATE",))
    if (node["window"] == "NEXT_DAYS") != (node.get("days") is not None):
        raise RuleError("`days` goes with window NEXT_DAYS, and NEXT_DAYS needs `days`")
    require_days(node.get("days"), "`days`", 1)


def window_dates(window: str, today: dt.date, days: int | None) -> tuple[dt.date, dt.date]:
    if window == "TODAY":
        return today, today
    if window == "THIS_WEEK":
        monday = today - dt.timedelta(days=today.isoweekday() - 1)
        return monday, min(monday + dt.timedelta(days=6), LAST_DAY)
    if window == "THIS_MONTH":
        return today.replace(day=1), today.replace(day=calendar.monthrange(today.year, today.month)[1])
    if days is None:  # validation pairs NEXT_DAYS with `days`
        raise RuleError("window NEXT_DAYS needs `days`")
    return today, (today + dt.timedelta(days=days)) if (LAST_DAY - today).days > days else LAST_DAY


def anniversary(month_day: int, year: int) -> dt.date:
    month, day = divmod(month_day, 100)
    if month == 2 and day == 29 and not calendar.isleap(year):
        day = 28
    return dt.date(year, month, day)


MONTH_DAYS = [m * 100 + d for m in range(1, 13) for d in range(1, calendar.monthrange(2024, m)[1] + 1)]
DAY_OF_YEAR = {md: i for i, md in enumerate(MONTH_DAYS)}  # in a leap year


def latest_years(first: dt.date, last: dt.date) -> dict[int, int]:
    """Month-day -> the latest year whose anniversary lies in [first, last].
    A date matches when its own year is before that year. Years before
    ``last.year - 2`` never matter: a window longer than two years already has
    an anniversary of every month-day in one of its last two years."""
    latest: dict[int, int] = {}
    for year in range(max(first.year, last.year - 2), last.year + 1):
        for month_day in MONTH_DAYS:
            if first <= anniversary(month_day, year) <= last:
                latest[month_day] = year
    return latest


def compile_date_anniversary(node: Node, ctx: CompileContext) -> Query:
    key = node["field"]
    ctx.custom_path(key)
    first, last = window_dates(node["window"], ctx.today_date, node.get("days"))
    by_year: dict[int, list[int]] = defaultdict(list)
    for month_day, year in latest_years(first, last).items():
        by_year[year].append(month_day)
    parts = f"dateParts.{key}"
    if not by_year:
        return NEVER
    groups = [{f"{parts}.md": {"$gte": start, "$lte": end} if start != end else start, f"{parts}.y": {"$lt": year}}
              for year, mds in sorted(by_year.items()) for start, end in _runs(sorted(mds))]
    return groups[0] if len(groups) == 1 else {"$or": groups}


def _runs(month_days: list[int]) -> list[tuple[int, int]]:
    """Sorted month-days as (first, last) runs of consecutive calendar days. As
    a numeric range a run holds no other real month-day (only numbers such as
    1132 that no date has), so "this month" is one index-friendly range."""
    runs: list[list[int]] = []
    for md in month_days:
        if runs and DAY_OF_YEAR[md] == DAY_OF_YEAR[runs[-1][1]] + 1:
            runs[-1][1] = md
        else:
            runs.append([md, md])
    return [(start, end) for start, end in runs]


def observe_date_anniversary(node: Node, ctx: CompileContext) -> list[Observation]:
    first, last = window_dates(node["window"], ctx.today_date, node.get("days"))
    return [Observation(f"custom field {node['field']}", f"${ctx.custom_path(node['field'])}",
                        f"an anniversary from {first.isoformat()} to {last.isoformat()}")]


SEGMENTQL_API_VERSION = "1.0"  # the plugin API this module is written for


@hookimpl
def segmentql_register_conditions(register: Register) -> None:
    register(Condition(
        field="dateAnniversary", input_type=DateAnniversaryCondition, validate=validate_date_anniversary,
        compile=compile_date_anniversary, observe=observe_date_anniversary,
        description="An anniversary of a DATE custom field today, this week, this month or in the next N days."))
