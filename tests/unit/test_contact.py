"""The contact contract (``segmentql.plugins.contact``): what it documents is
what rollups compute, and its helpers are the queries conditions build."""

import datetime as dt

from segmentql.plugins import CompileContext, contact
from segmentql.plugins.contact import DAYS_KEPT, at_least_since, day_number, day_start
from segmentql.server.rollups import empty_stats


def test_the_contracts_stats_fields_are_those_rollups_compute():
    """Every key of ``stats`` is in the contract (FIELDS) or the service's own (SERVICE_FIELDS)."""
    documented = {path.split(".")[1].split("[")[0] for path in [*contact.FIELDS, *contact.SERVICE_FIELDS]
                  if path.startswith("stats.")}
    assert documented == set(empty_stats())


def test_the_series_and_devices_are_those_of_the_stored_rollups():
    stats = empty_stats()
    series = {*contact.METRIC_SERIES.values(), *contact.DEVICE_SERIES.values()}
    assert set(stats["eventDays"]) == series
    assert set(stats["opensByDevice"]) == set(contact.DEVICES)


def test_day_numbers_count_utc_days_since_1970():
    assert day_number(dt.date(1970, 1, 2)) == 1
    assert day_number(dt.datetime(2026, 11, 2, 1, tzinfo=dt.timezone(dt.timedelta(hours=9)))) == day_number(
        dt.date(2026, 11, 1))
    stored = dt.datetime(2026, 11, 2, 1)  # noqa: DTZ001 - the driver gives stored datetimes back naive, in UTC
    assert day_number(stored) == day_number(dt.date(2026, 11, 2))
    assert day_start(day_number(dt.date(2026, 11, 2))) == dt.datetime(2026, 11, 2, tzinfo=dt.UTC)


def test_a_compile_context_counts_days_as_the_contract_does():
    ctx = CompileContext(as_of=dt.datetime(2026, 11, 28, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
                         custom_fields={}, coerce=lambda _type, value: value)
    assert ctx.today == day_number(dt.date(2026, 11, 29))
    assert ctx.day_start(ctx.today) == dt.datetime(2026, 11, 29, tzinfo=dt.UTC)


def test_at_least_k_since_a_day_reads_the_kth_newest_event_day_or_the_buckets():
    assert at_least_since("opens", 3, 100) == {"stats.eventDays.opens.2": {"$gte": 100}}
    assert at_least_since("opens", DAYS_KEPT, 100) == {f"stats.eventDays.opens.{DAYS_KEPT - 1}": {"$gte": 100}}
    assert at_least_since("clicks", DAYS_KEPT + 1, 100) == {
        "stats.activity": {"$elemMatch": {"day": {"$gte": 100}, "clicksSince": {"$gte": DAYS_KEPT + 1}}}}
