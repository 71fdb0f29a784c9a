"""Custom field types: the one place that says what a valid value of each type
is and how it is stored.

Import uses it to coerce contact values; conditions use it (through their
context's ``coerce``) to coerce rule operands, so ``equals: "2024-02-29"`` on a
DATE field means exactly what importing that value would have stored.
"""

import datetime as dt
import math
import re

from . import instants

FIELD_TYPES = ("NUMBER", "TEXT", "BOOLEAN", "DATE", "MULTI_SELECT")
# Use with fullmatch: ``$`` alone would also accept a trailing newline.
FIELD_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")
_DATE_ONLY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# The numbers a text value may spell: what JSON allows, with an optional sign
# and surrounding spaces. Python's float() and int() also take "1_000",
# "infinity" and digits of other scripts, which no data source means as a number.
_INTEGER_TEXT = re.compile(r"\s*[+-]?[0-9]+\s*")
_NUMBER_TEXT = re.compile(r"\s*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*")


def _describe(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _number(value):
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {_describe(value)}")
    if isinstance(value, (int, float)):
        number = value
    elif isinstance(value, str) and _INTEGER_TEXT.fullmatch(value):
        if len(value.strip().lstrip("+-").lstrip("0")) > 19:  # past 64 bits (and int()'s digit limit)
            raise ValueError(f"number {_describe(value)} is out of range")
        number = int(value)
    elif isinstance(value, str) and _NUMBER_TEXT.fullmatch(value):
        number = float(value)
    else:
        raise ValueError(f"expected a number, got {_describe(value)}")
    if isinstance(number, float) and not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {_describe(value)}")
    if isinstance(number, int) and not -(2**63) <= number < 2**63:
        raise ValueError(f"number {number} is out of range")
    return number


def _text(value):
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {_describe(value)}")
    return value


def _boolean(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"expected true or false, got {_describe(value)}")


def parse_datetime(value) -> dt.datetime:
    """``YYYY-MM-DD`` (midnight UTC) or an ISO-8601 datetime (UTC when it has no
    offset), as an aware UTC datetime truncated to milliseconds like BSON.
    Instants outside :mod:`.instants`' range are refused."""
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            if _DATE_ONLY.fullmatch(text):
                parsed = dt.datetime.combine(dt.date.fromisoformat(text), dt.time())
            else:
                parsed = dt.datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"expected a date (YYYY-MM-DD) or an ISO-8601 datetime, got {_describe(value)}") from None
    else:
        raise ValueError(f"expected a date (YYYY-MM-DD) or an ISO-8601 datetime, got {_describe(value)}")
    parsed = instants.checked(parsed)
    return parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)


def _date(value):
    return parse_datetime(value)


def _multi_select(value):
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a list of strings, got {_describe(value)}")
    return list(dict.fromkeys(value))


_COERCERS = {"NUMBER": _number, "TEXT": _text, "BOOLEAN": _boolean, "DATE": _date, "MULTI_SELECT": _multi_select}


def coerce(field_type: str, value):
    """The stored form of ``value`` for a field of ``field_type``; ``ValueError``
    with a reader-facing reason when it does not fit."""
    return _COERCERS[field_type](value)


def date_parts(stored: dt.datetime) -> dict:
    """Month-day and year of a stored DATE, kept beside it so that anniversary
    rules are plain index-friendly queries instead of per-document $expr."""
    return {"md": stored.month * 100 + stored.day, "y": stored.year}
