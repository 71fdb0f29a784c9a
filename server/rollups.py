"""Per-contact engagement rollups, computed from raw events.

Raw events are the source of truth. Segment conditions must not join them per
contact (the embedded server needs seconds for that), so every fact a condition
asks about is kept on the contact document under ``stats`` and recomputed from
the contact's raw events whenever they change. There is exactly one function
that computes it, :func:`compute_stats`, used by ingestion and by
``segmentql rebuild-rollups`` alike, so a rebuilt rollup is the same by
construction.

The layout of ``stats`` (what each field means, and the helpers conditions
query it with) is the contact contract, :mod:`segmentql.plugins.contact`;
this module imports its constants from there. Two fields serve the service
itself: ``stats.events`` only grows, which makes it the guard against stale
writes, and ``stats.timezone`` records the zone the rollup was computed in, so
a write that changed the contact's zone and died before its refresh is
completed by a retry (ingest).

Plugins keep rollups of their own (``segmentql_register_rollups``): each is
computed right after ``stats`` from the same events, in their public shape
(:func:`public_events`), checked (:func:`checked_rollup_value`) and stored
by the same guarded write, under ``plugins.<plugin>.<rollup>``. A plugin's
failure costs its own value only.

Size bounds. A contact document may not pass 16 MB, and an event stream can
be anything, so every part of ``stats`` that grows with the events is bounded
(worst case, all bounds reached, well under 10 MB; see tests/test_poison.py):

- ``urls``: at most URLS_PER_CAMPAIGN (100) per campaign, the first clicked
  ones, and at most URL_BYTES_KEPT (2 MiB) of urls per contact, given to the
  campaigns in the order below. ``urlsDropped`` counts, exactly, the distinct
  clicked urls of the campaign not kept: "clicked a url containing S" is exact
  for kept urls and cannot see dropped ones (only a summary with
  ``urlsDropped`` 0 is complete).
- ``campaigns``: summaries take at most CAMPAIGN_BYTES_KEPT (4 MiB, about
  20,000 summaries of ordinary ids and names), kept in this order: the
  ``latest`` one, then the newest by sentAt (ties: greatest id). A dropped
  campaign reads as one the contact has no events for; ``campaignsDropped``
  says how many.
- ``activity``: at most ACTIVITY_DAYS_KEPT (10,000, 27 years of daily
  engagement) buckets. Beyond that the oldest kept bucket also counts every
  older event, so a window that starts on or before its day counts them too;
  windows starting later are exact, and so is ``eventDays``.
"""

import datetime as dt
from collections.abc import Iterable, Mapping
from zoneinfo import ZoneInfo

import bson

from segmentql.plugins.contact import DAYS_KEPT, DEVICE_SERIES, DEVICES, METRIC_SERIES, UTC, day_number
from segmentql.plugins.storage import EVENT_FIELDS, RegisteredRollup

from .instants import RANGE, OutOfRange, checked

ENGAGEMENT_TYPES = {"OPEN": "opens", "CLICK": "clicks", "CONVERSION": "conversions"}
# The size bounds of the parts that grow (see the module docstring).
URLS_PER_CAMPAIGN = 100
URL_BYTES_KEPT = 2 * 2**20
CAMPAIGN_BYTES_KEPT = 4 * 2**20
ACTIVITY_DAYS_KEPT = 10_000
# What a url or a summary costs in the stored document besides its text
# (type bytes, keys, lengths), counted against the budgets above.
_URL_OVERHEAD = 16
_SUMMARY_OVERHEAD = 160
_NEVER = dt.datetime.min.replace(tzinfo=UTC)  # sorts summaries without a sentAt last
# The shape of ``stats``: bumped whenever compute_stats' output changes, so a
# service starting on older rollups rebuilds them (ingest.upgrade_rollups).
ROLLUP_LAYOUT = 3


def empty_stats() -> dict:
    return compute_stats([], None, {})


class UnusableData(ValueError):
    """A contact's stored data cannot be rolled up (a document written by an
    older version, or by hand); the message names the document and why."""


def _argmax_first(counts: list[int]) -> int | None:
    best = max(counts)
    return counts.index(best) if best else None


def _instant(value, what: str) -> dt.datetime:
    if not isinstance(value, dt.datetime):  # a date beyond Python's reads as bson.DatetimeMS
        raise UnusableData(f"{what} is {value!r}, not a datetime in the supported range {RANGE}")
    try:
        return checked(value)
    except OutOfRange as exc:
        raise UnusableData(f"{what}: {exc}") from None


_EVENT_TYPES = ("SENT", *ENGAGEMENT_TYPES)
_DEVICES_OR_NONE = (None, *DEVICES)
_TEXT_OR_NONE = (str, type(None))


def _checked_event(ev: Mapping) -> tuple[str, dt.datetime]:
    """The type and UTC time of a stored event; UnusableData when it is not one
    ingestion could have stored."""
    kind = ev.get("type")
    if kind not in _EVENT_TYPES:
        raise UnusableData(f"event {ev.get('id')!r}: type {kind!r} is not an event type")
    if ev.get("device") not in _DEVICES_OR_NONE:
        raise UnusableData(f"event {ev.get('id')!r}: device {ev['device']!r} is not a device")
    if not isinstance(ev.get("campaign_id"), _TEXT_OR_NONE) or not isinstance(ev.get("url"), _TEXT_OR_NONE):
        raise UnusableData(f"event {ev.get('id')!r}: campaign_id and url must be strings")
    return kind, _instant(ev.get("at"), f"event {ev.get('id')!r} at")


def _zone(timezone: str | None):
    if not timezone:
        return UTC
    try:
        return ZoneInfo(timezone)
    except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
        raise UnusableData(f"timezone {timezone!r} is not a time zone") from None


def _utf8_size(text: str, exact: bool) -> int:
    """Bytes of ``text`` in UTF-8, or (not ``exact``) at most that: 4 a character."""
    return len(text.encode("utf-8")) if exact else 4 * len(text)


def _bound_campaigns(summaries: list[dict], clicked: Mapping[str, Mapping[str, tuple]]) -> tuple[list[dict], int]:
    """The summaries kept (by id) with their urls filled in within the size
    bounds, and how many summaries were dropped. ``clicked`` maps campaign id
    to {lower-cased url: (time, event id) of its first click}."""
    def priority(s: dict):
        return s["latest"], s["sentAt"] or _NEVER, s["id"]

    def summary_size(s: dict, exact: bool) -> int:
        return _SUMMARY_OVERHEAD + _utf8_size(s["id"], exact) + _utf8_size(s["name"] or "", exact)

    # Exact sizes only for a contact that may be near a bound: the others
    # fit even at 4 bytes a character.
    exact = sum(summary_size(s, False) for s in summaries) > CAMPAIGN_BYTES_KEPT
    kept, size = [], 0
    for summary in sorted(summaries, key=priority, reverse=True):
        size += summary_size(summary, exact)
        if size > CAMPAIGN_BYTES_KEPT:
            break
        kept.append(summary)
    firsts = {s["id"]: sorted(clicked.get(s["id"], {}).items(), key=lambda item: item[1]) for s in kept}
    exact = sum(_URL_OVERHEAD + _utf8_size(url, False)
                for urls in firsts.values() for url, _ in urls[:URLS_PER_CAMPAIGN]) > URL_BYTES_KEPT
    url_budget = URL_BYTES_KEPT
    for summary in kept:
        urls = firsts[summary["id"]]
        for url, _first in urls:
            cost = _URL_OVERHEAD + _utf8_size(url, exact)
            if len(summary["urls"]) < URLS_PER_CAMPAIGN and cost <= url_budget:
                summary["urls"].append(url)
                url_budget -= cost
        summary["urlsDropped"] = len(urls) - len(summary["urls"])
    return sorted(kept, key=lambda s: s["id"]), len(summaries) - len(kept)


def compute_stats(events: Iterable[Mapping], timezone: str | None, campaigns: Mapping[str, Mapping]) -> dict:
    """The ``stats`` sub-document for one contact from all its raw events.

    ``campaigns`` maps campaign id to ``{"name", "sentAt"}`` for every campaign
    the events mention. Raises :class:`UnusableData` when a stored value is
    not one ingestion accepts (an event of an unknown type, an instant
    outside the supported range, ...): the caller skips and reports the
    contact rather than failing the others.
    """
    zone = _zone(timezone)
    totals = {"sends": 0, "opens": 0, "clicks": 0, "conversions": 0}
    by_device = dict.fromkeys(DEVICES, 0)
    per_day: dict[int, dict[str, int]] = {}
    last: dict[str, dt.datetime | None] = dict.fromkeys(("OPEN", "CLICK", "CONVERSION"))
    last_open_key: tuple | None = None
    last_open_device = None
    hours, weekdays = [0] * 24, [0] * 7
    summaries: dict[str, dict] = {}
    clicked: dict[str, dict[str, tuple]] = {}  # campaign id -> url -> (time, event id) of its first click
    count = 0
    for ev in events:
        count += 1
        kind, at = _checked_event(ev)
        campaign_id = ev.get("campaign_id")
        summary = None
        if campaign_id:
            summary = summaries.get(campaign_id)
            if summary is None:
                info = campaigns.get(campaign_id) or {}
                sent_at = info.get("sentAt")
                summary = summaries[campaign_id] = {
                    "id": campaign_id, "name": info.get("name"),
                    "sentAt": None if sent_at is None else _instant(sent_at, f"campaign {campaign_id!r} sentAt"),
                    "received": False, "opens": 0, "clicks": 0, "urls": [], "urlsDropped": 0, "latest": False}
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
        previous = last[kind]
        if previous is None or at > previous:
            last[kind] = at
        if kind == "OPEN":
            device = ev.get("device")
            if device:
                by_device[device] += 1
                bucket[device] += 1
            key = (at, str(ev.get("id")))
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
                first = clicked.setdefault(summary["id"], {})
                lowered, key = url.lower(), (at, str(ev.get("id")))
                if lowered not in first or key < first[lowered]:
                    first[lowered] = key

    series_of = {**{m: m for m in METRIC_SERIES.values()}, **DEVICE_SERIES}  # bucket key -> series
    activity = []
    running = dict.fromkeys(series_of.values(), 0)
    event_days: dict[str, list[int]] = {series: [] for series in series_of.values()}
    for day in sorted(per_day, reverse=True):
        for bucket_key, n in per_day[day].items():
            series = series_of[bucket_key]
            running[series] += n
            days = event_days[series]
            days.extend([day] * min(n, DAYS_KEPT - len(days)))
        activity.append({"day": day, **{f"{series}Since": total for series, total in running.items()}})
    merged_days = max(0, len(activity) - ACTIVITY_DAYS_KEPT)
    if merged_days:  # the oldest kept bucket stands for its day and every older one
        activity = activity[:ACTIVITY_DAYS_KEPT]
        activity[-1] = {"day": activity[-1]["day"], **{f"{series}Since": total for series, total in running.items()}}

    received = [s for s in summaries.values() if s["received"] and s["sentAt"] is not None]
    if received:
        newest = max(received, key=lambda s: (s["sentAt"], s["id"]))
        newest["latest"] = True
    kept_campaigns, dropped_campaigns = _bound_campaigns(list(summaries.values()), clicked)

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
        "campaigns": kept_campaigns,
        "campaignsDropped": dropped_campaigns,
        "activityDaysMerged": merged_days,
        "timezone": timezone,
    }


# -- plugins' rollups ---------------------------------------------------------
# A plugin's Rollup (segmentql.plugins.Rollup) is computed from the same events
# as ``stats``, right after them, and stored by the same guarded write (see
# Database.write_stats) at ``plugins.<plugin>.<rollup>``. A plugin's failure
# is its own: that value is left as it was, nothing else is.

# What one plugin rollup value may take as BSON: plugin values share the
# contact document (16 MB) with its fields and ``stats``.
PLUGIN_ROLLUP_BYTES = 16 * 1024
PluginValues = dict[str, object]  # path ``plugins.<plugin>.<rollup>`` -> value (None: removed)


class UnusableRollup(ValueError):
    """A plugin's compute returned a value segmentql does not store."""


# Where the stored layout keeps a public event field under another name.
STORED_EVENT_FIELDS = {"campaignId": "campaign_id"}


def public_events(events: Iterable[Mapping]) -> list[dict]:
    """A contact's stored events (checked by :func:`compute_stats`) in the
    shape the hook documents (``segmentql_register_rollups``), oldest first:
    the stored layout (``campaign_id``, ``workspace_id``) stays private."""
    public = [{field: ev.get(STORED_EVENT_FIELDS.get(field, field)) for field in EVENT_FIELDS} for ev in events]
    return sorted(public, key=lambda ev: (ev["at"], str(ev["id"])))


def _storable(value: object, where: str) -> None:
    """UnusableRollup unless ``value`` is a JSON value or an aware datetime, at any depth."""
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise UnusableRollup(f"{where} is {value!r}, not a finite number")
        return
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise UnusableRollup(f"{where} is a datetime without a time zone")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _storable(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not key or key.startswith("$") or "." in key or "\0" in key:
                raise UnusableRollup(f"{where} has the key {key!r}; keys are strings without '.' or a leading '$'")
            _storable(item, f"{where}.{key}")
        return
    raise UnusableRollup(f"{where} is a {type(value).__name__}, not a JSON value")


def checked_rollup_value(value: object) -> dict | None:
    """``value`` if segmentql stores it as a plugin rollup: None, or a dict of
    JSON values (and aware datetimes) within PLUGIN_ROLLUP_BYTES."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise UnusableRollup(f"compute returned a {type(value).__name__}, not a dict or None")
    _storable(value, "the value")
    try:
        size = len(bson.encode(value))
    except (bson.errors.BSONError, OverflowError, UnicodeEncodeError) as exc:
        raise UnusableRollup(f"the value cannot be stored: {type(exc).__name__}: {exc}") from None
    if size > PLUGIN_ROLLUP_BYTES:
        raise UnusableRollup(f"the value takes {size} bytes; at most {PLUGIN_ROLLUP_BYTES} are stored")
    return value


def compute_plugin_rollups(events: list[dict], rollups: Iterable[RegisteredRollup]
                           ) -> tuple[PluginValues, dict[RegisteredRollup, str]]:
    """Each plugin rollup's value from one contact's public events (each
    compute gets its own copy), and why those that failed did."""
    values: PluginValues = {}
    failures: dict[RegisteredRollup, str] = {}
    for registered in rollups:
        try:
            values[registered.path] = checked_rollup_value(registered.rollup.compute([dict(ev) for ev in events]))
        except Exception as exc:  # noqa: BLE001 - a plugin's bug fails its own value only
            failures[registered] = f"{type(exc).__name__}: {exc}"
    return values, failures


def plugin_document(values: PluginValues) -> dict:
    """The ``plugins`` sub-document a new contact starts with (None values left out)."""
    document: dict[str, dict] = {}
    for path, value in values.items():
        if value is not None:
            _plugins, plugin, name = path.split(".")
            document.setdefault(plugin, {})[name] = value
    return document
