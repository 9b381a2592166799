"""The confirm bookkeeping alone (eventreplay/broker/confirms.py, and replay/confirms.py for what a
replay trusts): the broker's answers in any order -> the contiguous confirmed prefix, its count, its
last position and its digest."""
from __future__ import annotations

import hashlib
import random
from datetime import timedelta

import pytest

from eventreplay.broker.confirms import ConfirmTracker
from eventreplay.replay.confirms import ReplayConfirms
from eventreplay.store import StoredEvent
from tests.support.events import T0

BODIES = [f'{{"n": {i}}}'.encode() for i in range(100)]


def event(i: int) -> StoredEvent:
    """The i-th event of a replay, at position 10 * i + 3."""
    return StoredEvent(position=10 * i + 3, event_id=f"id-{i}", event_type="OrderPlaced",
                       timestamp=T0 + timedelta(seconds=i), body=BODIES[i], routing_key="order-events",
                       exchange="ecommerce-exchange", received_at=T0)


def send(tracker: ConfirmTracker, indexes) -> list[int]:
    """Publish events by index; returns their delivery tags."""
    return [tracker.sent(event(i), message_id=f"id-{i}", now=0.0) for i in indexes]


def digest_of(indexes) -> str:
    return hashlib.sha256(b"".join(BODIES[i] for i in indexes)).hexdigest()


def test_acks_in_order_advance_the_prefix():
    tracker = ReplayConfirms()
    tags = send(tracker, range(5))
    tracker.acked(tags[0], now=1.0)
    tracker.acked(tags[1], now=1.0)
    assert (tracker.confirmed, tracker.first_position, tracker.last_position, tracker.in_flight) == (2, 3, 13, 3)
    assert tracker.last_timestamp == T0 + timedelta(seconds=1)
    assert tracker.digest == digest_of(range(2))


def test_reordered_and_multiple_acks_count_only_a_contiguous_prefix():
    tracker = ReplayConfirms()
    tags = send(tracker, range(10))
    tracker.acked(tags[4], now=1.0)
    tracker.acked(tags[2], now=1.0)
    assert tracker.confirmed == 0 and tracker.last_position is None  # the first is not confirmed yet
    tracker.acked(tags[1], multiple=True, now=1.0)  # 0 and 1
    assert tracker.confirmed == 3 and tracker.last_position == 23  # 0, 1, 2; 3 is missing before 4
    tracker.acked(tags[9], multiple=True, now=1.0)
    assert tracker.confirmed == 10 and tracker.in_flight == 0 and tracker.awaiting == 0
    assert tracker.digest == digest_of(range(10))


def test_any_order_gives_the_same_result():
    rng = random.Random(7)
    for _ in range(50):
        tracker = ReplayConfirms()
        tags = send(tracker, range(40))
        for tag in rng.sample(tags, len(tags)):
            tracker.acked(tag, multiple=rng.random() < 0.2, now=1.0)
        assert tracker.confirmed == 40 and tracker.digest == digest_of(range(40))


def test_a_nack_leaves_a_hole_that_nothing_after_it_crosses():
    tracker = ReplayConfirms()
    tags = send(tracker, range(6))
    tracker.acked(tags[1], multiple=True, now=1.0)
    tracker.nacked(tags[2])
    tracker.acked(tags[5], multiple=True, now=1.0)
    assert tracker.failure and "nack" in tracker.failure
    assert tracker.confirmed == 2 and tracker.last_position == 13
    assert tracker.awaiting == 0  # every message has its answer


def test_a_return_followed_by_its_ack_is_not_a_delivery():
    # RabbitMQ returns an unroutable mandatory message, then acks it; the others are acked too.
    tracker = ReplayConfirms()
    tags = send(tracker, range(5))
    tracker.acked(tags[1], multiple=True, now=1.0)
    tracker.returned("id-2", "NO_ROUTE")
    tracker.acked(tags[2], now=1.0)
    tracker.acked(tags[4], multiple=True, now=1.0)
    assert tracker.failure == "NO_ROUTE"
    assert tracker.confirmed == 2 and tracker.last_position == 13 and tracker.digest == digest_of(range(2))


def test_a_return_it_cannot_place_stops_all_progress():
    tracker = ReplayConfirms()
    tags = send(tracker, range(3))
    tracker.returned("not-ours", "NO_ROUTE")
    tracker.acked(tags[2], multiple=True, now=1.0)
    assert tracker.confirmed == 0


def test_a_lost_connection_forgets_what_was_in_flight_and_restarts_the_tags():
    tracker = ReplayConfirms()
    tags = send(tracker, range(6))
    tracker.acked(tags[2], multiple=True, now=1.0)
    tracker.acked(tags[4], now=1.0)  # confirmed after a gap: not trusted once the channel is gone
    assert [e.position for e in tracker.connection_lost()] == [33, 43, 53]  # to be sent again
    assert tracker.in_flight == 0 and tracker.confirmed == 3 and tracker.last_position == 23
    # the run sends again after the last confirmed event, on a new channel (tags from 1)
    tags = send(tracker, range(3, 6))
    assert tags == [1, 2, 3]
    tracker.acked(3, multiple=True, now=1.0)
    assert tracker.confirmed == 6 and tracker.digest == digest_of(range(6))


def test_a_resumed_tracker_gives_the_digest_of_an_uninterrupted_run():
    whole = ReplayConfirms()
    tags = send(whole, range(20))
    whole.acked(tags[-1], multiple=True, now=1.0)

    first = ReplayConfirms()
    tags = send(first, range(12))
    first.acked(tags[7], multiple=True, now=1.0)  # 8 confirmed, then the process dies
    # a resume rebuilds the hash over the confirmed events read again, then continues after them
    rebuilt = hashlib.sha256(b"".join(BODIES[i] for i in range(first.confirmed)))
    resumed = ReplayConfirms(confirmed=first.confirmed, first_position=first.first_position,
                             last_position=first.last_position, last_timestamp=first.last_timestamp, digest=rebuilt)
    tags = send(resumed, range(8, 20))
    resumed.acked(tags[-1], multiple=True, now=1.0)
    assert resumed.confirmed == 20 and resumed.first_position == 3 and resumed.last_position == 193
    assert resumed.digest == whole.digest


@pytest.mark.parametrize("every", [1, 4])
def test_latency_is_sampled_from_publish_to_confirm(every):
    tracker = ConfirmTracker(latency_sample_every=every)
    for i in range(8):
        tracker.sent(i, message_id=str(i), now=10.0)
    tracker.acked(8, multiple=True, now=10.5)
    assert tracker.take_latencies() == [0.5] * (8 // every)
    assert tracker.take_latencies() == []


def test_the_plain_tracker_hands_each_confirmed_item_over_in_order():
    confirmed = []
    tracker = ConfirmTracker(on_confirmed=confirmed.append)
    tags = [tracker.sent(f"item-{i}", message_id=f"m{i}", now=0.0) for i in range(4)]
    tracker.acked(tags[2], multiple=True, now=1.0)
    assert confirmed == ["item-0", "item-1", "item-2"] and tracker.confirmed == 3
    assert tracker.connection_lost() == ["item-3"]
