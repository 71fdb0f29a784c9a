"""Segment analytics: how a segment's members engaged over the last N days,
from the engagement rollups in one pass (no raw events are read).

Counts over the window use the same suffix-sum expression as the engagement
condition (:func:`segmentql.plugins.contact.window_count_expression`), so
"opens on the last 30 days" means the same thing in a rule, in an
explanation and here. Emails received in the window are the contact's
received campaigns whose ``sentAt`` falls in it.
"""

import datetime as dt
from dataclasses import dataclass

from segmentql.plugins.contact import METRIC_SERIES, day_number, day_start, window_count_expression

from .compiler import CompiledRule
from .database import Database
from .segments import aggregate

MAX_WINDOW_DAYS = 3660
METRICS = tuple(METRIC_SERIES.values())  # opens, clicks, conversions


@dataclass(frozen=True)
class Analytics:
    members: int
    first_day: dt.date
    last_day: dt.date
    received: int
    opens: int
    clicks: int
    conversions: int
    openers: int
    clickers: int
    converters: int


def _received_in(first_day: int, last_day: int) -> dict:
    window = {"$and": [{"$eq": ["$$c.received", True]}, {"$gte": ["$$c.sentAt", day_start(first_day)]},
                       {"$lt": ["$$c.sentAt", day_start(last_day + 1)]}]}
    return {"$size": {"$filter": {"input": {"$ifNull": ["$stats.campaigns", []]}, "as": "c", "cond": window}}}


def analytics_pipeline(compiled: CompiledRule, first_day: int, last_day: int) -> list[dict]:
    per_contact = {"_id": 0, "received": _received_in(first_day, last_day),
                   **{m: window_count_expression(m, first_day, last_day) for m in METRICS}}
    totals: dict = {"_id": None, "members": {"$sum": 1}, "received": {"$sum": "$received"}}
    for m in METRICS:
        totals[m] = {"$sum": f"${m}"}
        totals[f"{m}Contacts"] = {"$sum": {"$cond": [{"$gt": [f"${m}", 0]}, 1, 0]}}
    return compiled.members_then({"$project": per_contact}, {"$group": totals})


async def analytics(db: Database, compiled: CompiledRule, within_days: int) -> Analytics:
    """Engagement of the members on the last ``within_days`` (1 to
    MAX_WINDOW_DAYS) UTC days up to the day of the rule's ``asOf`` (as the
    engagement condition counts them)."""
    last_day = day_number(compiled.as_of)
    first_day = last_day - within_days + 1
    result = (await aggregate(db, compiled, analytics_pipeline(compiled, first_day, last_day)) or [{}])[0]
    return Analytics(
        members=result.get("members", 0), first_day=day_start(first_day).date(), last_day=day_start(last_day).date(),
        received=result.get("received", 0), opens=result.get("opens", 0), clicks=result.get("clicks", 0),
        conversions=result.get("conversions", 0), openers=result.get("opensContacts", 0),
        clickers=result.get("clicksContacts", 0), converters=result.get("conversionsContacts", 0))
