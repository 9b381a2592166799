"""Several `python consumer.py` processes on one archive queue (competing consumers), one of them
killed hard and restarted twice while they share a backlog: the store keeps every event exactly once."""
from __future__ import annotations

import re
import signal

from eventreplay.simulator import EventFactory
from eventreplay.store import EventQuery
from tests.support.amqp import publish, queue_consumers, queue_depth
from tests.support.ingest import consumer_env
from tests.support.processes import consumer_program
from tests.support.waiting import wait_for

EVENTS = 20_000
CONSUMERS = 3


def test_three_consumers_one_killed_twice_store_every_event_exactly_once(amqp_url, store_url, store,
                                                                         bound_archive, tmp_path):
    events = EventFactory(seed=31).take(EVENTS)
    publish(amqp_url, bound_archive["exchange"], events)
    # small batches and prefetch: the backlog is shared out in small pieces, so all three are busy
    env = consumer_env(amqp_url, store_url, bound_archive, BATCH_SIZE="100", PREFETCH="300")
    consumers = [consumer_program(env, tmp_path / f"consumer-{i}.log") for i in range(CONSUMERS)]
    try:
        for consumer in consumers:
            consumer.start()
        queue = bound_archive["archive_queue"]
        wait_for(lambda: queue_consumers(amqp_url, queue) == CONSUMERS, timeout=60, what="three consumers attached")
        victim = consumers[0]
        for stored_before_kill in (EVENTS // 5, EVENTS // 2):
            wait_for(lambda: store.count() >= stored_before_kill, timeout=180, interval=0.02,
                     what=f"{stored_before_kill:,} events stored")
            victim.signal(signal.SIGKILL)
            victim.wait()
            assert store.count() < EVENTS, "the backlog was stored before the kill; the test proves nothing"
            victim.start()
        wait_for(lambda: store.count() >= EVENTS and queue_depth(amqp_url, queue) == 0, timeout=300,
                 interval=0.1, what="every event stored")
        for consumer in consumers:
            consumer.signal(signal.SIGTERM)
        for consumer in consumers:
            assert consumer.wait(timeout=60) == 0, consumer.output()[-3000:]
    finally:
        for consumer in consumers:
            consumer.kill()

    ids = [event.event_id for event in store.read(EventQuery())]
    assert len(ids) == EVENTS == len(set(ids))
    assert set(ids) == {event.event_id for event in events}
    # they competed: the survivors each stored a share (their final summary line says how many)
    shares = [int(found.group(1)) for consumer in consumers[1:]
              for found in re.finditer(r"stopped: stored (\d+) new events", consumer.output())]
    assert len(shares) == CONSUMERS - 1 and all(share > 0 for share in shares), shares
