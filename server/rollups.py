"""Per-contact engagement rollups, computed from raw events.

Raw events are the source of truth. Segment conditions must not join them per
contact (the embedded server needs seconds for that), so every fact a condition
asks about is kept on the contact document under ``stats`` and recomputed from
the contact's raw events whenever they change. There is exactly one function
that computes it, :func:`compute_stats`, used by ingestion and by
``segmentql rebuild-rollups`` alike, so a rebuilt rollup is the same by
construction.

The ``stats`` sub-document::

    events            every raw event of the contact (SENT included); it only
                      grows, which makes it the guard against stale writes
    sends, opens, clicks, conversions      totals over all stored events
    opensByDevice     {"MOBILE": n, "DESKTOP": n, "TABLET": n}
    activity          daily buckets of engagement, newest day first, one per UTC
                      day with an OPEN, CLICK or CONVERSION. Counts are
                      *suffix sums* per series (METRIC_SERIES, DEVICE_SERIES): ``opensSince`` is
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
    lastOpenAt, lastClickAt, lastConversionAt, lastActivityAt   datetimes
    lastOpenDevice    device of the latest OPEN (ties: greatest event id)
    openHours         24 counts of opens by hour, in the contact's timezone
    openWeekdays      7 counts of opens by ISO weekday (Monday first)
    topOpenHour       most common hour (ties: earliest), None without opens
    topOpenWeekday    most common ISO weekday 1-7 (ties: earliest)
    campaigns         one summary per campaign the contact has events for:
                      {id, name, sentAt, received, opens, clicks, urls, latest}
                      ``urls``: distinct clicked urls, Unicode lower-cased;
                      ``latest``: the received campaign with the newest sentAt
                      (ties: greatest id)

Day numbers count UTC calendar days since 1970-01-01.
"""

import datetime as dt
from collections.abc import Iterable, Mapping
from zoneinfo import ZoneInfo

UTC = dt.timezone.utc
EPOCH = dt.date(1970, 1, 1)
DEVICES = ("MOBILE", "DESKTOP", "TABLET")
ENGAGEMENT_TYPES = {"OPEN": "opens", "CLICK": "clicks", "CONVERSION": "conversions"}
# The engagement series a window rule can count: each metric, and opens on each device.
METRIC_SERIES = {"OPENS": "opens", "CLICKS": "clicks", "CONVERSIONS": "conversions"}
DEVICE_SERIES = {d: f"opens{d.capitalize()}" for d in DEVICES}
# How many newest event days ``eventDays`` keeps per series: "at least k" with
# a larger k reads the buckets instead.
DAYS_KEPT = 100
# The shape of ``stats``: bumped whenever compute_stats' output changes, so a
# service starting on older rollups rebuilds them (ingest.upgrade_rollups).
ROLLUP_LAYOUT = 2


def at_least_since(series: str, k: int, first_day: int) -> dict:
    """Query: at least ``k`` (>= 1) events of ``series`` on days >= ``first_day``
    (later days included). The k-th newest event's day when it is kept, else
    the bucket whose suffix sum covers the window."""
    if k <= DAYS_KEPT:
        return {f"stats.eventDays.{series}.{k - 1}": {"$gte": first_day}}
    return {"stats.activity": {"$elemMatch": {"day": {"$gte": first_day}, f"{series}Since": {"$gte": k}}}}


def window_count_expression(series: str, first_day: int, last_day: int) -> dict:
    """Aggregation expression over a contact document: its events of ``series``
    on days ``first_day..last_day``, from the suffix sums of ``stats.activity``
    as S(first_day) - S(last_day + 1), where S(d) is the suffix sum of the
    oldest bucket on or after day d (0 when there is none). Conditions,
    explanations and segment analytics all count windows with it."""
    def suffix(day: int) -> dict:
        return {"$ifNull": [{"$max": {"$map": {
            "input": {"$filter": {"input": {"$ifNull": ["$stats.activity", []]}, "as": "b",
                                  "cond": {"$gte": ["$$b.day", day]}}},
            "as": "b", "in": f"$$b.{series}Since"}}}, 0]}
    return {"$subtract": [suffix(first_day), suffix(last_day + 1)]}


def day_number(when: dt.datetime | dt.date) -> int:
    if isinstance(when, dt.datetime):
        when = as_utc(when).date()
    return (when - EPOCH).days


def day_start(day: int) -> dt.datetime:
    return dt.datetime.combine(EPOCH + dt.timedelta(days=day), dt.time(), UTC)


def as_utc(when: dt.datetime) -> dt.datetime:
    """Stored datetimes come back naive (UTC) from the driver; inputs may carry any offset."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def empty_stats() -> dict:
    return compute_stats([], None, {})


def _argmax_first(counts: list[int]) -> int | None:
    best = max(counts)
    return counts.index(best) if best else None


def compute_stats(events: Iterable[Mapping], timezone: str | None, campaigns: Mapping[str, Mapping]) -> dict:
    """The ``stats`` sub-document for one contact from all its raw events.

    ``campaigns`` maps campaign id to ``{"name", "sentAt"}`` for every campaign
    the events mention.
    """
    zone = ZoneInfo(timezone) if timezone else UTC
    totals = {"sends": 0, "opens": 0, "clicks": 0, "conversions": 0}
    by_device = dict.fromkeys(DEVICES, 0)
    per_day: dict[int, dict[str, int]] = {}
    last: dict[str, dt.datetime | None] = dict.fromkeys(("OPEN", "CLICK", "CONVERSION"))
    last_open_key: tuple | None = None
    last_open_device = None
    hours, weekdays = [0] * 24, [0] * 7
    summaries: dict[str, dict] = {}
    count = 0
    for ev in events:
        count += 1
        kind, at = ev["type"], as_utc(ev["at"])
        campaign_id = ev.get("campaign_id")
        summary = None
        if campaign_id:
            summary = summaries.get(campaign_id)
            if summary is None:
                info = campaigns.get(campaign_id) or {}
                summary = summaries[campaign_id] = {
                    "id": campaign_id, "name": info.get("name"), "sentAt": info.get("sentAt"),
                    "received": False, "opens": 0, "clicks": 0, "urls": [], "latest": False}
        if kind == "SENT":
            totals["sends"] += 1
            if summary is not None:
                summary["received"] = True
            continue
        metric = ENGAGEMENT_TYPES[kind]
        totals[metric] += 1
        bucket = per_day.setdefault(day_number(at), dict.fromkeys(
            ("opens", "clicks", "conversions", *DEVICES), 0))
        bucket[metric] += 1
        if last[kind] is None or at > last[kind]:
            last[kind] = at
        if kind == "OPEN":
            device = ev.get("device")
            if device:
                by_device[device] += 1
                bucket[device] += 1
            key = (at, ev["id"])
            if last_open_key is None or key > last_open_key:
                last_open_key, last_open_device = key, device
            local = at.astimezone(zone)
            hours[local.hour] += 1
            weekdays[local.isoweekday() - 1] += 1
            if summary is not None:
                summary["opens"] += 1
        elif kind == "CLICK" and summary is not None:
            summary["clicks"] += 1
            url = ev.get("url")
            if url:
                lowered = url.lower()
                if lowered not in summary["urls"]:
                    summary["urls"].append(lowered)

    series_of = {**{m: m for m in METRIC_SERIES.values()}, **DEVICE_SERIES}  # bucket key -> series
    activity = []
    running = dict.fromkeys(series_of.values(), 0)
    event_days: dict[str, list[int]] = {series: [] for series in series_of.values()}
    for day in sorted(per_day, reverse=True):
        for key, n in per_day[day].items():
            series = series_of[key]
            running[series] += n
            days = event_days[series]
            days.extend([day] * min(n, DAYS_KEPT - len(days)))
        activity.append({"day": day, **{f"{series}Since": total for series, total in running.items()}})

    received = [s for s in summaries.values() if s["received"] and s["sentAt"] is not None]
    if received:
        newest = max(received, key=lambda s: (as_utc(s["sentAt"]), s["id"]))
        newest["latest"] = True

    engaged = [t for t in last.values() if t is not None]
    top_weekday = _argmax_first(weekdays)
    return {
        "events": count,
        **totals,
        "opensByDevice": by_device,
        "activity": activity,
        "eventDays": event_days,
        "lastEngagedDay": activity[0]["day"] if activity else None,
        "lastOpenAt": last["OPEN"],
        "lastClickAt": last["CLICK"],
        "lastConversionAt": last["CONVERSION"],
        "lastActivityAt": max(engaged) if engaged else None,
        "lastOpenDevice": last_open_device,
        "openHours": hours,
        "openWeekdays": weekdays,
        "topOpenHour": _argmax_first(hours),
        "topOpenWeekday": None if top_weekday is None else top_weekday + 1,
        "campaigns": sorted(summaries.values(), key=lambda s: s["id"]),
    }
