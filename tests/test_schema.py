"""parse_event and as_utc at the edges: every input that cannot be archived is an InvalidEvent with a
readable reason, never another exception (which would stop the consumer on every redelivery)."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from eventreplay.schema import InvalidEvent, as_utc, parse_event

FAR_OFFSETS = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00", "0001-01-01T00:30:00+23:59"]


def envelope(**fields) -> dict:
    return {"event_id": str(uuid.uuid4()), "event_type": "OrderPlaced", "timestamp": "2024-05-01T12:00:00Z", **fields}


def body(**fields) -> bytes:
    return json.dumps(envelope(**fields)).encode()


def reason_of(raw: bytes) -> str:
    with pytest.raises(InvalidEvent) as raised:
        parse_event(raw)
    reason = raised.value.reason
    assert reason and "\n" not in reason and len(reason) < 400, reason
    return reason


@pytest.mark.parametrize("depth", [2_000, 5_000, 100_000])
def test_a_deeply_nested_body_is_invalid(depth):
    assert "nested too deeply" in reason_of(b"[" * depth + b"]" * depth)
    assert "nested too deeply" in reason_of(b"[" * depth)  # unterminated too


def test_a_deeply_nested_field_of_a_valid_envelope_is_invalid_not_a_crash():
    raw = body()[:-1] + b', "extra": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert "nested too deeply" in reason_of(raw)
    raw = body()[:-1] + b', "items": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert "nested too deeply" in reason_of(raw)


def test_an_integer_beyond_pythons_digit_limit_is_invalid():
    raw = body()[:-1] + b', "quantity": ' + b"7" * 5000 + b"}"
    reason = reason_of(raw)
    assert reason.startswith("body is not usable JSON") and "4300 digits" in reason


@pytest.mark.parametrize("moment", FAR_OFFSETS)
@pytest.mark.parametrize("event_type", ["OrderPlaced", "SomethingNew"])
def test_a_timestamp_whose_utc_time_overflows_is_invalid(moment, event_type):
    reason = reason_of(body(event_type=event_type, timestamp=moment))
    assert "timestamp" in reason and "out of range" in reason, reason


def test_as_utc_raises_value_error_not_overflow():
    for text in FAR_OFFSETS:
        with pytest.raises(ValueError, match="out of range"):
            as_utc(datetime.fromisoformat(text))
    # the ends of the calendar themselves, in UTC or naive, are fine
    assert as_utc(datetime(1, 1, 1)) == datetime(1, 1, 1, tzinfo=timezone.utc)
    assert as_utc(datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)).year == 9999
    assert as_utc(datetime(2024, 5, 1, 14, tzinfo=timezone(timedelta(hours=2)))) == datetime(
        2024, 5, 1, 12, tzinfo=timezone.utc)


def test_the_usual_failures_keep_their_reasons():
    assert reason_of(b"{\"a\": \"\xc3\x28\"}").startswith("body is not UTF-8")
    assert reason_of(b"{nope").startswith("body is not valid JSON")
    assert reason_of(b"[1, 2]") == "body is JSON list, expected an object"
    assert "total_amount" in reason_of(body(total_amount="lots"))
    assert "Value error" not in reason_of(body(timestamp=FAR_OFFSETS[0]))


def test_values_near_the_edges_are_still_valid():
    event = parse_event(body(timestamp="0001-01-01T00:00:00Z", quantity=int("9" * 4000),
                             nested=json.loads("[" * 200 + "]" * 200)))
    assert event.timestamp == datetime(1, 1, 1, tzinfo=timezone.utc)
    event = parse_event(body(timestamp="9999-12-31T23:59:59+05:00"))
    assert event.timestamp == datetime(9999, 12, 31, 18, 59, 59, tzinfo=timezone.utc)
