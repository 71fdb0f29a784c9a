"""A pipeline as mongosh code (``explainSegment(format: MONGOSH)``): each BSON
value is written as the mongosh constructor that makes it again. (That node
runs the code and gets the same BSON back is checked in tests/test_formats.py:
this tier starts no process.)"""

import datetime as dt
import re

import pytest
from bson import Decimal128, Int64, ObjectId, Timestamp
from bson.regex import Regex

from segmentql.server.mongosh import aggregate

UTC = dt.UTC


def shown(value: object) -> str:
    """How ``value`` is written as the only stage of a pipeline."""
    code = aggregate("contacts", [value])
    prefix, suffix = 'db.getCollection("contacts").aggregate([\n  ', "\n])"
    assert code.startswith(prefix) and code.endswith(suffix), code
    return code[len(prefix):-len(suffix)]


def test_a_pipeline_is_an_aggregate_call_on_its_collection_indented_like_json():
    code = aggregate("contacts", [{"$match": {"workspace_id": "w", "leadScore": {"$gte": 80}}}, {"$count": "count"}])
    assert code == """db.getCollection("contacts").aggregate([
  {
    "$match": {
      "workspace_id": "w",
      "leadScore": {
        "$gte": 80
      }
    }
  },
  {
    "$count": "count"
  }
])"""
    assert aggregate("contacts", []) == 'db.getCollection("contacts").aggregate([])'


@pytest.mark.parametrize("value, code", [
    (dt.datetime(2026, 11, 28, 12, tzinfo=UTC), 'ISODate("2026-11-28T12:00:00.000Z")'),
    (dt.datetime(2026, 11, 28, 12, 0, 0, 122999, tzinfo=UTC), 'ISODate("2026-11-28T12:00:00.122Z")'),  # as stored
    (dt.datetime(2026, 11, 28, 13, tzinfo=dt.timezone(dt.timedelta(hours=1))), 'ISODate("2026-11-28T12:00:00.000Z")'),
    (dt.datetime(2026, 11, 28, 12), 'ISODate("2026-11-28T12:00:00.000Z")'),  # noqa: DTZ001  naive: UTC
])
def test_instants_are_iso_dates_in_utc_with_milliseconds(value, code):
    assert shown(value) == code


@pytest.mark.parametrize("value, code", [
    (7, "7"), (-(2**31), str(-(2**31))), (2**31 - 1, str(2**31 - 1)),
    (2**31, 'NumberLong("2147483648")'), (-(2**31) - 1, 'NumberLong("-2147483649")'),
    (2**53 + 1, 'NumberLong("9007199254740993")'),  # exact: a JavaScript number would round it
    (Int64(5), 'NumberLong("5")'), (Int64(-(2**63)), 'NumberLong("-9223372036854775808")'),
    (True, "true"), (None, "null"),
    (1.5, "1.5"), (3.0, "Double(3.0)"), (-0.0, "Double(-0.0)"), (1e16, "1e+16"),
    (float("nan"), "NaN"), (float("inf"), "Infinity"), (float("-inf"), "-Infinity"),
])
def test_numbers_keep_their_bson_type(value, code):
    assert shown(value) == code


def test_an_integer_beyond_64_bits_is_refused_as_the_driver_would():
    with pytest.raises(OverflowError):
        aggregate("contacts", [2**63])


@pytest.mark.parametrize("value, code", [
    ('say "hi"\n\tthen\\leave', r'"say \"hi\"\n\tthen\\leave"'),
    ("zoë 東京 🙂", '"zoë 東京 🙂"'),  # kept readable
    ("a\u2028b\u2029c", r'"a\u2028b\u2029c"'),  # line terminators to older JavaScript parsers
    ("</script>", '"</script>"'),
])
def test_strings_are_json_strings(value, code):
    assert shown(value) == code


def test_literals_stay_data_however_deep():
    value = {"$expr": {"$in": [{"$literal": {"$gt": "$email", "at": dt.datetime(2026, 1, 1, tzinfo=UTC)}},
                               {"$literal": [Int64(1), "$$ROOT"]}]}}
    assert shown(value) == """{
    "$expr": {
      "$in": [
        {
          "$literal": {
            "$gt": "$email",
            "at": ISODate("2026-01-01T00:00:00.000Z")
          }
        },
        {
          "$literal": [
            NumberLong("1"),
            "$$ROOT"
          ]
        }
      ]
    }
  }"""


def test_regexes_go_to_the_server_untouched():
    assert shown(Regex("(?-i)AA_/x", "im")) == 'BSONRegExp("(?-i)AA_/x", "im")'
    assert shown(re.compile(r"^a\.b$", re.IGNORECASE)) == r'BSONRegExp("^a\\.b$", "iu")'  # pymongo's flags


def test_other_bson_types():
    assert shown(ObjectId("65e8ba8a4b3c33a76e6cacca")) == 'ObjectId("65e8ba8a4b3c33a76e6cacca")'
    assert shown(Decimal128("0.1")) == 'NumberDecimal("0.1")'
    assert shown(Timestamp(1, 2)) == r'EJSON.parse("{\"$timestamp\": {\"t\": 1, \"i\": 2}}")'


def test_a_field_named_proto_stays_a_field():
    assert shown({"__proto__": 1, "a": 2}) == '{\n    ["__proto__"]: 1,\n    "a": 2\n  }'
