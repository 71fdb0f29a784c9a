"""Custom field types: what a valid value of each type is and how it is
stored, the same for imported values and for rule operands."""

import datetime as dt

import pytest

from segmentql.server.fieldtypes import FIELD_KEY, FIELD_TYPES, coerce, date_parts, parse_datetime


def utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=dt.UTC)


def refusal(field_type: str, value) -> str:
    """Why ``value`` is not a value of ``field_type``."""
    try:
        coerce(field_type, value)
    except ValueError as refused:
        return str(refused)
    raise AssertionError(f"{value!r} was taken as {field_type}")


def test_the_five_types():
    assert FIELD_TYPES == ("NUMBER", "TEXT", "BOOLEAN", "DATE", "MULTI_SELECT")


@pytest.mark.parametrize("text, number", [
    (" 42 ", 42), ("-0.5", -0.5), ("1e3", 1000.0), ("+7", 7), (".5", 0.5), ("007", 7),
    ("9223372036854775807", 2**63 - 1), ("-9223372036854775808", -(2**63)), (3, 3), (2.5, 2.5),
])
def test_numbers_are_numbers_or_texts_spelling_them_as_json_does(text, number):
    assert coerce("NUMBER", text) == number and type(coerce("NUMBER", text)) is type(number)


@pytest.mark.parametrize("value", [
    "1_000", "\u0663", "\uff11", "infinity", "nan", "0x10", "12 34", "", True, None, [1],
])
def test_anything_else_is_not_a_number(value):
    assert refusal("NUMBER", value).startswith("expected a number, got ")


@pytest.mark.parametrize("value, reason", [
    ("1e400", "expected a finite number"), (float("inf"), "expected a finite number"),
    ("9" * 25, "is out of range"), (2**63, "is out of range"), (-(2**63) - 1, "is out of range"),
])
def test_numbers_are_finite_and_fit_64_bits(value, reason):
    assert reason in refusal("NUMBER", value)


def test_text_is_a_string_as_given():
    assert coerce("TEXT", " Pro ") == " Pro "
    assert refusal("TEXT", 1) == "expected text, got 1"


def test_a_long_value_is_shortened_in_the_reason():
    assert refusal("TEXT", 10**80).endswith("...") and len(refusal("TEXT", 10**80)) < 90


def test_booleans_are_booleans_or_the_words_true_and_false():
    assert coerce("BOOLEAN", False) is False and coerce("BOOLEAN", " TRUE ") is True
    assert coerce("BOOLEAN", "false") is False
    for value in ("yes", 1, None):
        assert refusal("BOOLEAN", value).startswith("expected true or false")


def test_multi_select_is_a_list_of_strings_without_repeats_in_first_order():
    assert coerce("MULTI_SELECT", ["sms", "email", "sms"]) == ["sms", "email"]
    for value in ("sms", ["sms", 1], None):
        assert refusal("MULTI_SELECT", value).startswith("expected a list of strings")


@pytest.mark.parametrize("text, stored", [
    ("2024-02-29", utc(2024, 2, 29)),
    (" 2024-02-29 ", utc(2024, 2, 29)),
    ("2024-02-29T10:00:00+02:00", utc(2024, 2, 29, 8)),
    ("2024-02-29T10:00:00", utc(2024, 2, 29, 10)),  # no offset: UTC
    ("2024-02-29t10:00:00z", utc(2024, 2, 29, 10)),
    ("2024-02-29T10:00:00.123456Z", utc(2024, 2, 29, 10, 0, 0, 123000)),  # milliseconds, like BSON
    (dt.datetime(2024, 2, 29, 10, tzinfo=dt.timezone(dt.timedelta(hours=-5))), utc(2024, 2, 29, 15)),
])
def test_dates_are_stored_as_utc_instants_to_the_millisecond(text, stored):
    assert parse_datetime(text) == stored and coerce("DATE", text) == stored
    assert parse_datetime(text).tzinfo == dt.UTC


@pytest.mark.parametrize("value", ["yesterday", "2024-02-30", "29/02/2024", 5, None])
def test_anything_else_is_not_a_date(value):
    assert refusal("DATE", value).startswith("expected a date (YYYY-MM-DD) or an ISO-8601 datetime")


def test_dates_lie_from_1900_to_9000():
    assert parse_datetime("1900-01-01") == utc(1900, 1, 1)
    assert parse_datetime("9000-12-31T23:59:59.999Z") == utc(9000, 12, 31, 23, 59, 59, 999000)
    for outside in ("1899-12-31T23:59:59Z", "9001-01-01", "0001-01-01T00:00:00+14:00"):
        assert "outside the supported range 1900-01-01 to 9000-12-31" in refusal("DATE", outside)


def test_date_parts_are_month_day_and_year_for_anniversaries():
    assert date_parts(utc(2024, 2, 29)) == {"md": 229, "y": 2024}
    assert date_parts(utc(1999, 12, 31, 23, 59)) == {"md": 1231, "y": 1999}


@pytest.mark.parametrize("key, valid", [
    ("ltv", True), ("a", True), ("plan_2", True), ("a" * 64, True),
    ("Ltv", False), ("1ltv", False), ("ltv-x", False), ("a.b", False), ("$where", False), ("a" * 65, False),
    ("plan\n", False), ("", False),
])
def test_field_keys_are_lower_case_names_matched_whole(key, valid):
    assert (FIELD_KEY.fullmatch(key) is not None) == valid
