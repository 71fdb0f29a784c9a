"""Rollups: one contact's ``stats`` computed from its raw events alone, the
one function ingestion and ``rebuild-rollups`` share (the contact contract,
``segmentql.plugins.contact``, documents every field)."""

import datetime as dt

import pytest

from segmentql.plugins.contact import day_number
from segmentql.server import rollups
from segmentql.server.rollups import UnusableData, compute_stats, empty_stats

LAUNCH = {"name": "Launch", "sentAt": dt.datetime(2026, 11, 1, 10, tzinfo=dt.UTC)}
DIGEST = {"name": "Digest", "sentAt": dt.datetime(2026, 11, 20, 10, tzinfo=dt.UTC)}
NEW_YEAR = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def event(id: str, kind: str, at: str, **extra) -> dict:
    """A stored event as ingestion writes it (``at`` in ISO-8601, UTC)."""
    return {"id": id, "type": kind, "at": dt.datetime.fromisoformat(at), **extra}


def day(text: str) -> int:
    return day_number(dt.date.fromisoformat(text))


def test_no_events_is_the_empty_rollup():
    stats = empty_stats()
    assert stats == compute_stats([], None, {})
    assert (stats["events"], stats["sends"], stats["opens"], stats["clicks"], stats["conversions"]) == (0, 0, 0, 0, 0)
    assert stats["activity"] == [] and stats["campaigns"] == [] and stats["lastEngagedDay"] is None
    assert stats["topOpenHour"] is None and stats["topOpenWeekday"] is None and stats["lastOpenDevice"] is None
    assert stats["openHours"] == [0] * 24 and stats["openWeekdays"] == [0] * 7


def test_totals_count_every_event_and_opens_by_device():
    stats = compute_stats([
        event("s1", "SENT", "2026-11-01T10:00:00+00:00"),
        event("o1", "OPEN", "2026-11-02T01:00:00+00:00", device="MOBILE"),
        event("o2", "OPEN", "2026-11-02T02:00:00+00:00", device="MOBILE"),
        event("o3", "OPEN", "2026-11-03T02:00:00+00:00"),
        event("c1", "CLICK", "2026-11-03T02:01:00+00:00"),
        event("v1", "CONVERSION", "2026-11-04T09:00:00+00:00"),
    ], None, {})
    assert (stats["events"], stats["sends"], stats["opens"], stats["clicks"], stats["conversions"]) == (6, 1, 3, 1, 1)
    assert stats["opensByDevice"] == {"MOBILE": 2, "DESKTOP": 0, "TABLET": 0}
    assert stats["lastOpenAt"] == dt.datetime(2026, 11, 3, 2, tzinfo=dt.UTC)
    assert stats["lastActivityAt"] == dt.datetime(2026, 11, 4, 9, tzinfo=dt.UTC)


def test_activity_is_daily_suffix_sums_newest_first():
    stats = compute_stats([
        event("o1", "OPEN", "2026-11-01T08:00:00+00:00", device="DESKTOP"),
        event("o2", "OPEN", "2026-11-01T09:00:00+00:00"),
        event("s1", "SENT", "2026-11-02T09:00:00+00:00"),  # a send is no engagement: no bucket
        event("c1", "CLICK", "2026-11-03T09:00:00+00:00"),
    ], None, {})
    assert [(b["day"], b["opensSince"], b["clicksSince"], b["opensDesktopSince"]) for b in stats["activity"]] == [
        (day("2026-11-03"), 0, 1, 0), (day("2026-11-01"), 2, 1, 1)]
    assert stats["lastEngagedDay"] == day("2026-11-03")


def test_event_days_hold_the_day_of_each_newest_event():
    stats = compute_stats([event(f"o{i}", "OPEN", f"2026-11-0{d}T0{i}:00:00+00:00")
                           for i, d in enumerate((1, 3, 3, 2))], None, {})
    assert stats["eventDays"]["opens"] == [day("2026-11-03"), day("2026-11-03"), day("2026-11-02"), day("2026-11-01")]
    assert stats["eventDays"]["clicks"] == [] and stats["eventDays"]["opensMobile"] == []


def test_open_habits_are_counted_in_the_contacts_time_zone():
    """23:30 and 01:00 UTC are 08:30 (Saturday) and 10:00 (Monday) in Tokyo; ties go to the earliest."""
    events = [event("o1", "OPEN", "2026-10-30T23:30:00+00:00"), event("o2", "OPEN", "2026-11-02T01:00:00+00:00")]
    tokyo = compute_stats(events, "Asia/Tokyo", {})
    assert tokyo["openHours"][8] == tokyo["openHours"][10] == 1 and tokyo["topOpenHour"] == 8
    assert tokyo["openWeekdays"] == [1, 0, 0, 0, 0, 1, 0] and tokyo["topOpenWeekday"] == 1
    assert tokyo["timezone"] == "Asia/Tokyo"
    utc = compute_stats(events, None, {})
    assert utc["topOpenHour"] == 1 and utc["topOpenWeekday"] == 1 and utc["timezone"] is None


def test_the_last_open_device_is_that_of_the_latest_open_ties_by_greatest_id():
    same_time = "2026-11-02T01:00:00+00:00"
    stats = compute_stats([event("b", "OPEN", same_time, device="TABLET"),
                           event("a", "OPEN", same_time, device="MOBILE"),
                           event("z", "OPEN", "2026-11-01T01:00:00+00:00", device="DESKTOP")], None, {})
    assert stats["lastOpenDevice"] == "TABLET"


def test_a_campaign_summary_counts_only_that_campaigns_events():
    stats = compute_stats([
        event("s1", "SENT", "2026-11-01T10:00:00+00:00", campaign_id="k1"),
        event("o1", "OPEN", "2026-11-02T01:00:00+00:00", campaign_id="k1", device="MOBILE"),
        event("o2", "OPEN", "2026-11-02T02:00:00+00:00"),
        event("c2", "CLICK", "2026-11-02T01:06:00+00:00", campaign_id="k1", url="https://example.com/pricing"),
        event("c1", "CLICK", "2026-11-02T01:05:00+00:00", campaign_id="k1", url="https://Example.com/Pricing"),
        event("c3", "CLICK", "2026-11-02T01:07:00+00:00", campaign_id="k1", url="https://example.com/b"),
    ], None, {"k1": LAUNCH})
    assert stats["campaigns"] == [{
        "id": "k1", "name": "Launch", "sentAt": LAUNCH["sentAt"], "received": True, "opens": 1, "clicks": 3,
        "urls": ["https://example.com/pricing", "https://example.com/b"],  # lower-cased, in first-click order
        "urlsDropped": 0, "latest": True}]


def test_the_latest_campaign_is_the_received_one_sent_last():
    stats = compute_stats([
        event("s1", "SENT", "2026-11-01T10:00:00+00:00", campaign_id="k1"),
        event("o2", "OPEN", "2026-11-21T10:00:00+00:00", campaign_id="k2"),  # engaged, never received
    ], None, {"k1": LAUNCH, "k2": DIGEST})
    summaries = {s["id"]: (s["received"], s["latest"]) for s in stats["campaigns"]}
    assert summaries == {"k1": (True, True), "k2": (False, False)}


def test_clicked_urls_are_capped_per_campaign_with_an_exact_count_of_the_rest():
    clicks = [event(f"c{n:03}", "CLICK", f"2026-11-02T01:{n // 60:02}:{n % 60:02}+00:00", campaign_id="k1",
                    url=f"https://x.example/{n:03}") for n in range(rollups.URLS_PER_CAMPAIGN + 5)]
    (summary,) = compute_stats(clicks + clicks[:3], None, {"k1": LAUNCH})["campaigns"]
    assert summary["urls"] == [f"https://x.example/{n:03}" for n in range(rollups.URLS_PER_CAMPAIGN)]
    assert summary["urlsDropped"] == 5 and summary["clicks"] == rollups.URLS_PER_CAMPAIGN + 8


@pytest.mark.parametrize("stored, reason", [
    ({"id": "e1", "type": "BOUNCE", "at": NEW_YEAR}, "type 'BOUNCE' is not an event type"),
    ({"id": "e1", "type": "OPEN", "at": NEW_YEAR, "device": "WATCH"}, "device 'WATCH' is not a device"),
    ({"id": "e1", "type": "CLICK", "at": NEW_YEAR, "url": 7}, "must be strings"),
    ({"id": "e1", "type": "OPEN", "at": "2026-01-01"}, "not a datetime in the supported range"),
    ({"id": "e1", "type": "OPEN", "at": dt.datetime(1899, 12, 31, tzinfo=dt.UTC)}, "outside the supported range"),
])
def test_stored_data_ingestion_could_not_have_written_is_unusable(stored, reason):
    with pytest.raises(UnusableData, match=reason):
        compute_stats([stored], None, {})


def test_an_unknown_time_zone_is_unusable():
    with pytest.raises(UnusableData, match="timezone 'Mars/Olympus' is not a time zone"):
        compute_stats([], "Mars/Olympus", {})
