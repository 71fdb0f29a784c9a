"""The contact document conditions read, and the helpers to read its rollups.

Conditions compile to queries on one document per contact, so its layout is
what a plugin relies on: the paths below, their types and meaning, and the
helpers the built-in conditions use to query the engagement rollups (window
counts, "at least k since day D", day numbers). ``segmentql.server`` writes
documents of this layout (``server/rollups.py`` computes ``stats`` from the raw
events) and imports the layout from here, so a plugin and the service cannot
disagree on it. It is the seed of a public, versioned contract (issue 20):
nothing here changes meaning without a version.

The contact document::

    workspace_id, id, email       strings
    country                       ISO 3166-1 alpha-2, upper-case, or null
    timezone                      IANA name or null
    tags                          list of strings (never missing)
    leadScore                     0-100 or null
    custom.<key>                  declared custom fields; absent when unset.
                                  NUMBER: number, TEXT: string, BOOLEAN: bool,
                                  DATE: UTC datetime, MULTI_SELECT: list of strings
    dateParts.<key>               for DATE fields: {"md": month*100+day, "y": year}
    stats                         engagement rollups kept from raw events:

The ``stats`` sub-document::

    events            every raw event of the contact (SENT included)
    sends, opens, clicks, conversions      totals over all stored events
    opensByDevice     {"MOBILE": n, "DESKTOP": n, "TABLET": n} (DEVICES)
    activity          daily buckets of engagement, newest day first, one per UTC
                      day with an OPEN, CLICK or CONVERSION: {"day", and per
                      series "<series>Since"}. Counts are *suffix sums* per
                      series (METRIC_SERIES, DEVICE_SERIES): ``opensSince`` is
                      the number of opens on that day or later, so the count of
                      any window of days is one subtraction
                      (:func:`window_count_expression`).
    eventDays         per series, the UTC day of each of the newest DAYS_KEPT
                      events, newest first, a day repeated once per event. "At
                      least k opens on days >= L" is then the one comparison
                      {"stats.eventDays.opens.<k-1>": {$gte: L}}
                      (:func:`at_least_since`): the matcher reads one array
                      element instead of testing bucket after bucket.
    lastEngagedDay    day number of the newest bucket (None without engagement)
    lastOpenAt, lastClickAt, lastConversionAt, lastActivityAt   UTC datetimes
    lastOpenDevice    device of the latest OPEN (ties: greatest event id)
    openHours         24 counts of opens by hour, in the contact's timezone
    openWeekdays      7 counts of opens by ISO weekday (Monday first)
    topOpenHour       most common hour (ties: earliest), None without opens
    topOpenWeekday    most common ISO weekday 1-7 (ties: earliest)
    campaigns         one summary per campaign the contact has events for:
                      {id, name, sentAt, received, opens, clicks, urls,
                      urlsDropped, latest}
                      ``urls``: distinct clicked urls, Unicode lower-cased, in
                      the order of their first click (time, then event id);
                      ``latest``: the received campaign with the newest sentAt
                      (ties: greatest id)
    timezone          the time zone the rollup was computed in (null: UTC)
    campaignsDropped  summaries left out by the size bounds (0 normally)
    activityDaysMerged  days of ``activity`` merged by the size bounds

The parts that grow with the events are bounded, so a contact stays under
MongoDB's 16 MB: ``server/rollups.py`` documents the bounds and what a query
then sees (``docs/plugins.md`` summarises them).

Day numbers count UTC calendar days since 1970-01-01 (EPOCH).
"""

import datetime as dt
from typing import Any

UTC = dt.UTC
EPOCH = dt.date(1970, 1, 1)
DEVICES = ("MOBILE", "DESKTOP", "TABLET")
# The engagement series a window rule can count: each metric, and opens on each device.
METRIC_SERIES = {"OPENS": "opens", "CLICKS": "clicks", "CONVERSIONS": "conversions"}
DEVICE_SERIES = {d: f"opens{d.capitalize()}" for d in DEVICES}
# How many newest event days ``eventDays`` keeps per series: "at least k" with
# a larger k reads the buckets instead.
DAYS_KEPT = 100


def as_utc(when: dt.datetime) -> dt.datetime:
    """Stored datetimes come back naive (UTC) from the driver; inputs may carry any offset."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def day_number(when: dt.datetime | dt.date) -> int:
    """The day number of an instant's UTC day, or of a calendar date."""
    if isinstance(when, dt.datetime):
        when = as_utc(when).date()
    return (when - EPOCH).days


def day_start(day: int) -> dt.datetime:
    """Midnight UTC at the start of day number ``day``."""
    return dt.datetime.combine(EPOCH + dt.timedelta(days=day), dt.time(), UTC)


def at_least_since(series: str, k: int, first_day: int) -> dict[str, Any]:
    """Query: at least ``k`` (>= 1) events of ``series`` on days >= ``first_day``
    (later days included). The k-th newest event's day when it is kept, else
    the bucket whose suffix sum covers the window."""
    if k <= DAYS_KEPT:
        return {f"stats.eventDays.{series}.{k - 1}": {"$gte": first_day}}
    return {"stats.activity": {"$elemMatch": {"day": {"$gte": first_day}, f"{series}Since": {"$gte": k}}}}


def window_count_expression(series: str, first_day: int, last_day: int) -> dict[str, Any]:
    """Aggregation expression over a contact document: its events of ``series``
    on days ``first_day..last_day``, from the suffix sums of ``stats.activity``
    as S(first_day) - S(last_day + 1), where S(d) is the suffix sum of the
    oldest bucket on or after day d (0 when there is none). Conditions,
    explanations and segment analytics all count windows with it."""
    def suffix(day: int) -> dict[str, Any]:
        return {"$ifNull": [{"$max": {"$map": {
            "input": {"$filter": {"input": {"$ifNull": ["$stats.activity", []]}, "as": "b",
                                  "cond": {"$gte": ["$$b.day", day]}}},
            "as": "b", "in": f"$$b.{series}Since"}}}, 0]}
    return {"$subtract": [suffix(first_day), suffix(last_day + 1)]}
