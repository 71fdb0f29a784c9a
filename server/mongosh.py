"""A pipeline as mongosh code: ``db.getCollection("contacts").aggregate([...])``,
to paste into mongosh and run as it is (``explainSegment(format: MONGOSH)``).

Relaxed Extended JSON (the default format) is JSON: mongosh would take its
``{"$date": ...}`` as a query for a field named ``$date`` and read a 64-bit
integer as a double. Here each BSON value is written as the mongosh
constructor that makes the same BSON value again:

- instants: ``ISODate("2026-11-28T12:00:00.000Z")`` (milliseconds, as stored);
- integers: plain when they fit 32 bits, else ``NumberLong("...")`` (the text
  form, exact beyond 2^53) - the types pymongo sends; ``Int64`` always long;
- doubles: JavaScript numbers (``NaN``, ``Infinity`` included), and
  ``Double(3.0)`` for a whole one mongosh would otherwise send as an Int32;
- regexes: ``BSONRegExp("pattern", "flags")``, which passes the pattern to the
  server untouched: the server's regexes are PCRE, and a JavaScript ``/.../``
  literal would refuse some of them (``(?i)``) or read others differently;
- ``ObjectId("...")``, ``NumberDecimal("...")``; any other BSON type through
  ``EJSON.parse`` of its canonical Extended JSON (mongosh's own reader);
- strings as JSON strings (valid JavaScript), non-ASCII text kept readable.
"""

import datetime as dt
import json
import math
import re
from collections.abc import Mapping

from bson import Decimal128, Int64, ObjectId, json_util
from bson.regex import Regex

from .instants import rfc3339

INT32 = range(-(2**31), 2**31)
INT64 = range(-(2**63), 2**63)
INDENT = "  "
REGEX_FLAGS = (("i", re.IGNORECASE), ("l", re.LOCALE), ("m", re.MULTILINE), ("s", re.DOTALL),
               ("u", re.UNICODE), ("x", re.VERBOSE))


def aggregate(collection: str, pipeline: list) -> str:
    """mongosh code running ``pipeline`` on ``collection``."""
    return f"db.getCollection({_string(collection)}).aggregate({_value(pipeline, 0)})"


def _string(text: str) -> str:
    # U+2028/U+2029 are escaped for JavaScript parsers older than ES2019.
    return json.dumps(text, ensure_ascii=False).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _key(key: str) -> str:
    # In an object literal ``"__proto__": v`` sets the prototype; the computed
    # form makes it an ordinary field, as in the BSON document.
    return f"[{_string(key)}]" if key == "__proto__" else _string(key)


def _value(value: object, depth: int) -> str:
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, Int64):
        return f'NumberLong("{int(value)}")'
    if isinstance(value, int):
        if value in INT32:
            return str(value)
        if value in INT64:
            return f'NumberLong("{value}")'
        raise OverflowError(f"{value} does not fit a BSON integer")  # as pymongo would refuse it
    if isinstance(value, float):
        return _double(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, dt.datetime):
        return f"ISODate({_string(rfc3339(value))})"
    if isinstance(value, (Regex, re.Pattern)):
        regex = Regex.from_native(value) if isinstance(value, re.Pattern) else value
        return f"BSONRegExp({_string(regex.pattern)}, {_string(_flags(regex.flags))})"
    if isinstance(value, ObjectId):
        return f'ObjectId("{value}")'
    if isinstance(value, Decimal128):
        return f'NumberDecimal("{value}")'
    if isinstance(value, Mapping):
        return _container("{", "}", [f"{_key(str(k))}: {_value(v, depth + 1)}" for k, v in value.items()], depth)
    if isinstance(value, (list, tuple)):
        return _container("[", "]", [_value(v, depth + 1) for v in value], depth)
    canonical = json_util.dumps(value, json_options=json_util.CANONICAL_JSON_OPTIONS)
    return f"EJSON.parse({_string(canonical)})"


def _double(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value.is_integer() and int(value) in INT32:
        return f"Double({value!r})"  # a bare 3 or 3.0 would be sent as a 32-bit integer
    return repr(value)


def _flags(flags: int) -> str:
    """Regex flags as the letters pymongo sends for them."""
    return "".join(letter for letter, bit in REGEX_FLAGS if flags & bit)


def _container(open_: str, close: str, items: list[str], depth: int) -> str:
    if not items:
        return open_ + close
    inner = INDENT * (depth + 1)
    return open_ + "\n" + ",\n".join(inner + item for item in items) + "\n" + INDENT * depth + close
