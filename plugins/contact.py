"""The contact contract: the document conditions read, and the helpers to read
its engagement rollups.

Conditions compile to queries on one document per contact, so its layout is
what a plugin relies on. :data:`FIELDS` lists every path a plugin may read,
with its type and meaning; ``docs/plugins.md`` ("Internals for plugins") shows
the same table, and a test fails when the two differ. ``segmentql.server``
writes documents of this layout (``server/rollups.py`` computes ``stats`` from
the raw events) and imports the layout's constants from here, so a plugin and
the service cannot disagree on it.

The contract is part of the plugin API and versioned with it.
:data:`CONTACT_VERSION` is the ``segmentql.plugins.API_VERSION`` in which the
table last changed: a path removed or renamed, or one whose type or meaning
changed, comes with a new major API version; a path added, with a new minor
one. A plugin that declares the API version it needs (see ``API_VERSION``)
therefore reads documents it understands. The service keeps its own, internal
numbering of how it stores rollups; that is not part of the contract, and the
paths of :data:`SERVICE_FIELDS` (present on the documents) may change in any
release.

Day numbers count UTC calendar days since 1970-01-01 (EPOCH). The parts of
``stats`` that grow with the events are bounded, so a contact stays under
MongoDB's 16 MB; ``server/rollups.py`` has the bounds and what a query then
sees, ``docs/plugins.md`` a summary.
"""

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = [
    "CONTACT_VERSION", "DAYS_KEPT", "DEVICES", "DEVICE_SERIES", "EPOCH", "FIELDS", "METRIC_SERIES", "SERVICE_FIELDS",
    "UTC", "Field", "as_utc", "at_least_since", "daily_counts_expression", "day_number", "day_start",
    "window_count_expression",
]

CONTACT_VERSION = "1.0"
UTC = dt.UTC
EPOCH = dt.date(1970, 1, 1)
DEVICES = ("MOBILE", "DESKTOP", "TABLET")
# The engagement series a window rule can count: each metric, and opens on each device.
METRIC_SERIES = {"OPENS": "opens", "CLICKS": "clicks", "CONVERSIONS": "conversions"}
DEVICE_SERIES = {d: f"opens{d.capitalize()}" for d in DEVICES}
# How many newest event days ``eventDays`` keeps per series: "at least k" with
# a larger k reads the buckets instead.
DAYS_KEPT = 100


@dataclass(frozen=True)
class Field:
    """One path of the contact document.

    ``type`` is one of ``string``, ``int``, ``number``, ``bool``,
    ``datetime`` (UTC; stored datetimes read back naive, see :func:`as_utc`),
    ``object``, ``list[<type>]`` (``list[object]``: its elements' paths are
    listed as ``<path>[].<key>``), ``any`` (by a declared type), possibly
    ``| null``. ``<key>``-style parts of a path stand for any key.
    """

    type: str
    meaning: str


FIELDS: Mapping[str, Field] = MappingProxyType({
    "workspace_id": Field("string", "The contact's workspace. The compiler scopes every query to one; "
                                    "a condition need not."),
    "id": Field("string", "The contact's id, unique in its workspace."),
    "email": Field("string", "The email address as imported (not lower-cased)."),
    "country": Field("string | null", "ISO 3166-1 alpha-2 code, upper-case."),
    "timezone": Field("string | null", "IANA time zone name."),
    "tags": Field("list[string]", "Tags, each once, in import order (never missing; [] without tags)."),
    "leadScore": Field("int | null", "0 to 100."),
    "custom.<key>": Field("any", "A declared custom field's value; absent when unset. NUMBER: number, TEXT: string, "
                                 "BOOLEAN: bool, DATE: datetime, MULTI_SELECT: list of strings. Read the type with "
                                 "ctx.custom_field and the path with ctx.custom_path."),
    "dateParts.<key>.md": Field("int", "For a DATE custom field: month * 100 + day of its UTC date (1231: Dec 31)."),
    "dateParts.<key>.y": Field("int", "For a DATE custom field: the year of its UTC date."),
    "plugins.<name>.<rollup>": Field("object", "What rollup <rollup> of plugin <name> computed from the "
                                               "contact's events (segmentql_register_rollups), in that plugin's "
                                               "own layout; absent when it computed None."),
    "stats.sends": Field("int", "SENT events, all stored ones."),
    "stats.opens": Field("int", "OPEN events, all stored ones."),
    "stats.clicks": Field("int", "CLICK events, all stored ones."),
    "stats.conversions": Field("int", "CONVERSION events, all stored ones."),
    "stats.opensByDevice.<device>": Field("int", "Opens on each device: MOBILE, DESKTOP, TABLET (DEVICES)."),
    "stats.activity": Field("list[object]", "One bucket per UTC day with an OPEN, CLICK or CONVERSION, newest day "
                                            "first. Count windows of days with window_count_expression, per-day "
                                            "counts with daily_counts_expression."),
    "stats.activity[].day": Field("int", "The bucket's day number."),
    "stats.activity[].<series>Since": Field("int", "Events of the series (METRIC_SERIES, DEVICE_SERIES) on this "
                                                   "day or later: a suffix sum, so the count of any window of "
                                                   "days is one subtraction."),
    "stats.eventDays.<series>": Field("list[int]", "The day number of each of the newest DAYS_KEPT events of the "
                                                   "series, newest first, a day repeated once per event. At "
                                                   "least k events since day L is one comparison (at_least_since)."),
    "stats.lastEngagedDay": Field("int | null", "Day number of the newest bucket of activity."),
    "stats.lastOpenAt": Field("datetime | null", "The newest OPEN."),
    "stats.lastClickAt": Field("datetime | null", "The newest CLICK."),
    "stats.lastConversionAt": Field("datetime | null", "The newest CONVERSION."),
    "stats.lastActivityAt": Field("datetime | null", "The newest OPEN, CLICK or CONVERSION."),
    "stats.lastOpenDevice": Field("string | null", "Device of the newest OPEN (ties: greatest event id); null "
                                                   "when unknown or without opens."),
    "stats.openHours": Field("list[int]", "24 counts of opens by hour of day, in the contact's time zone (UTC "
                                          "without one)."),
    "stats.openWeekdays": Field("list[int]", "7 counts of opens by ISO weekday, Monday first, in the contact's "
                                             "time zone."),
    "stats.topOpenHour": Field("int | null", "The most common open hour (ties: earliest); null without opens."),
    "stats.topOpenWeekday": Field("int | null", "The most common open ISO weekday 1-7 (ties: earliest)."),
    "stats.campaigns": Field("list[object]", "One summary per campaign the contact has events for, by id."),
    "stats.campaigns[].id": Field("string", "The campaign's id."),
    "stats.campaigns[].name": Field("string | null", "The campaign's name."),
    "stats.campaigns[].sentAt": Field("datetime | null", "When the campaign was sent."),
    "stats.campaigns[].received": Field("bool", "The contact has a SENT event of it."),
    "stats.campaigns[].opens": Field("int", "The contact's opens of it."),
    "stats.campaigns[].clicks": Field("int", "The contact's clicks on it."),
    "stats.campaigns[].urls": Field("list[string]", "Distinct clicked urls, Unicode lower-cased, in the order of "
                                                    "their first click; at most 100 (bounded)."),
    "stats.campaigns[].urlsDropped": Field("int", "Distinct clicked urls left out of urls by the size bounds."),
    "stats.campaigns[].latest": Field("bool", "The received campaign with the newest sentAt (ties: greatest id)."),
    "stats.campaignsDropped": Field("int", "Summaries left out by the size bounds (0 normally)."),
    "stats.activityDaysMerged": Field("int", "Days merged into the oldest activity bucket by the size bounds "
                                             "(0 normally)."),
})

# On the documents, but the service's own: not part of the contract.
SERVICE_FIELDS = ("_id", "createdAt", "updatedAt", "stats.events", "stats.timezone")


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


def daily_counts_expression(series: str) -> dict[str, Any]:
    """Aggregation expression over a contact document: ``[{"day", "count"}]``,
    the events of ``series`` on each day of ``stats.activity`` (newest first;
    0 on a day with other engagement only). A bucket's count is its suffix sum
    less the next newer bucket's, so a condition can weigh days by anything
    computable from a day number (a weekday: ``(day + 3) % 7`` is 0 on
    Monday), then ``$sum`` or ``$filter`` them."""
    buckets = {"$ifNull": ["$stats.activity", []]}
    newer = {"$concatArrays": [[{f"{series}Since": 0}], buckets]}  # each bucket's newer neighbour, 0 for the newest
    return {"$map": {"input": {"$zip": {"inputs": [buckets, newer]}}, "as": "pair", "in": {"$let": {
        "vars": {"bucket": {"$arrayElemAt": ["$$pair", 0]}, "newer": {"$arrayElemAt": ["$$pair", 1]}},
        "in": {"day": "$$bucket.day",
               "count": {"$subtract": [f"$$bucket.{series}Since", f"$$newer.{series}Since"]}}}}}}
