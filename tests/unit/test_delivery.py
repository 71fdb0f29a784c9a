"""Webhook signatures and retry delays (server/delivery.py), as receivers and operators see them."""

import datetime as dt
import hashlib
import hmac

import pytest

from segmentql.server.cursors import change_position
from segmentql.server.delivery import MAX_RETRY_DELAY, DeliverySettings, change_payload, retry_delay, signature

SETTINGS = DeliverySettings(timeout_seconds=10, first_retry=dt.timedelta(seconds=10),
                            retry_for=dt.timedelta(days=1), allow_private=False, claim_seconds=30)


def test_the_signature_is_the_hmac_sha256_of_the_timestamp_dot_body():
    body = b'{"webhookId":"w","deliveryId":"d","changes":[]}'
    header = signature(["whsec_one"], body, 1_700_000_000)
    expected = hmac.new(b"whsec_one", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"


def test_during_a_rotation_both_secrets_sign():
    header = signature(["new", "old"], b"{}", 5)
    parts = header.split(",")
    assert parts[0] == "t=5"
    assert parts[1:] == [f"v1={hmac.new(k, b'5.{}', hashlib.sha256).hexdigest()}" for k in (b"new", b"old")]


def test_retries_double_from_the_first_delay_with_jitter_up_to_an_hour():
    for attempts in range(1, 12):
        full = min(dt.timedelta(seconds=10) * 2 ** (attempts - 1), MAX_RETRY_DELAY)
        delays = [retry_delay(SETTINGS, attempts) for _ in range(200)]
        assert all(full / 2 <= d <= full for d in delays)
        assert len(set(delays)) > 1  # jittered
    assert retry_delay(SETTINGS, 10_000) <= MAX_RETRY_DELAY


@pytest.mark.parametrize("change", ["ENTERED", "LEFT"])
def test_a_change_is_sent_with_its_cursor_which_identifies_it(change):
    at = dt.datetime(2026, 11, 29, 18, 33, 0, 831000, tzinfo=dt.UTC)
    payload = change_payload({"seq": 41, "segment_id": "s", "contact_id": "c", "change": change, "cause": "EVENT",
                              "at": at})
    assert payload == {"cursor": payload["cursor"], "segmentId": "s", "contactId": "c", "change": change,
                       "cause": "EVENT", "at": "2026-11-29T18:33:00.831Z"}
    assert change_position(payload["cursor"]) == 41
