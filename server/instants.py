"""The instants segmentql accepts: 1900-01-01 to 9000-12-31 (UTC).

Python's datetimes end at years 1 and 9999, so an instant near either end
cannot be converted to UTC (``0001-01-01T00:00:00+14:00``) or to a contact's
local time (``9999-12-31T23:59:59Z`` in Asia/Tokyo) without an
``OverflowError``. Such a value, once stored, would fail every rollup refresh
of its contact. Every instant is therefore checked where it enters (GraphQL
inputs and arguments, import lines) and where stored data is read back to be
rolled up; inside the range every offset (at most 14 hours) and the day
arithmetic of rollups and conditions stay far from the limits.
"""

import datetime as dt

from segmentql.plugins.contact import UTC

EARLIEST = dt.datetime(1900, 1, 1, tzinfo=UTC)
LATEST = dt.datetime(9000, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
RANGE = "1900-01-01 to 9000-12-31"


class OutOfRange(ValueError):
    """An instant outside the supported range; the message names it as given."""


def as_text(when: dt.datetime) -> str:
    """ISO-8601 as given (``Z`` for UTC; a naive value is UTC)."""
    text = when.isoformat()
    return text + "Z" if when.tzinfo is None else text.replace("+00:00", "Z")


def rfc3339(when: dt.datetime) -> str:
    """The one text of an instant segmentql returns: RFC 3339 in UTC with
    milliseconds, ``2026-11-28T12:00:00.000Z`` (a naive value is UTC). MongoDB
    keeps milliseconds, so a stored instant loses nothing; a finer one is
    truncated as the database would. One fixed width sorts as text."""
    utc = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def checked(when: dt.datetime) -> dt.datetime:
    """``when`` as an aware UTC datetime (naive means UTC); :class:`OutOfRange`
    when it lies outside the supported range, or cannot even be converted."""
    try:
        utc = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        raise OutOfRange(f"{as_text(when)} is outside the supported range {RANGE}")
    return utc
