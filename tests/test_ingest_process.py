"""`python consumer.py` as a process: killed hard and restarted, stopped with SIGTERM, misconfigured;
its writer process (WRITER_PROCESS) killed, and never left behind."""
from __future__ import annotations

import json
import os
import re
import signal

import pytest

from eventreplay.simulator import EventFactory
from eventreplay.store import EventQuery
from tests.support.amqp import drain, publish, queue_depth
from tests.support.waiting import wait_for

EVENTS = 5000


def start_on_a_backlog(amqp_url, names, consumer_process, store, *, seed: int, until_stored: int) -> list:
    """EVENTS simulated events queued in the archive, then the consumer started and left to store
    `until_stored` of them; returns the events."""
    events = EventFactory(seed=seed).take(EVENTS)
    publish(amqp_url, names["exchange"], events)

    consumer_process.start()
    wait_for(lambda: store.count() >= until_stored, timeout=60, interval=0.02,
             what=f"{until_stored:,} events stored")
    return events


def writer_pids(consumer_process) -> list[int]:
    """The writer processes the consumer started so far, as its log names them."""
    return [int(pid) for pid in re.findall(r"storing batches in writer process (\d+)", consumer_process.output())]


def is_running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


def all_stored_exactly_once(store, events) -> None:
    ids = [event.event_id for event in store.read(EventQuery())]
    assert len(ids) == EVENTS == len(set(ids))
    assert set(ids) == {event.event_id for event in events}


def test_killed_and_restarted_consumer_stores_every_event_exactly_once(
        amqp_url, store, bound_archive, consumer_process):
    events = start_on_a_backlog(amqp_url, bound_archive, consumer_process, store, seed=21, until_stored=1000)
    [writer] = writer_pids(consumer_process)
    consumer_process.signal(signal.SIGKILL)
    consumer_process.wait()
    stored_when_killed = store.count()
    assert stored_when_killed < EVENTS, "the consumer finished before it was killed; the test proves nothing"
    # its writer process finishes the append in hand and ends: nothing is left behind
    wait_for(lambda: not is_running(writer), timeout=30, what=f"writer process {writer} ended")

    consumer_process.start()
    wait_for(lambda: store.count() >= EVENTS and queue_depth(amqp_url, bound_archive["archive_queue"]) == 0,
             timeout=120, what="every event stored after the restart", interval=0.1)
    consumer_process.signal(signal.SIGTERM)
    assert consumer_process.wait() == 0, consumer_process.output()
    all_stored_exactly_once(store, events)


def test_a_killed_writer_process_costs_a_reconnect_and_no_event(amqp_url, store, bound_archive, consumer_process):
    events = start_on_a_backlog(amqp_url, bound_archive, consumer_process, store, seed=23, until_stored=1000)
    [writer] = writer_pids(consumer_process)
    os.kill(writer, signal.SIGKILL)
    assert store.count() < EVENTS, "the consumer finished before its writer was killed; the test proves nothing"

    # the batches it held are not acked: RabbitMQ redelivers them to the consumer's next session,
    # which stores through a new writer process
    wait_for(lambda: store.count() >= EVENTS and queue_depth(amqp_url, bound_archive["archive_queue"]) == 0,
             timeout=120, what="every event stored after the writer was killed", interval=0.1)
    output = consumer_process.output()
    assert "the store's writer process ended (exit code -9)" in output, output
    assert len(writer_pids(consumer_process)) == 2, output
    consumer_process.signal(signal.SIGTERM)
    assert consumer_process.wait() == 0, output
    assert "Traceback" not in consumer_process.output()
    all_stored_exactly_once(store, events)
    assert not any(is_running(pid) for pid in writer_pids(consumer_process))


def test_sigterm_stores_the_batch_in_hand_acks_nothing_else_and_exits_0(
        amqp_url, store, bound_archive, consumer_process):
    events = start_on_a_backlog(amqp_url, bound_archive, consumer_process, store, seed=22, until_stored=500)
    consumer_process.signal(signal.SIGTERM)
    assert consumer_process.wait() == 0, consumer_process.output()
    assert "Traceback" not in consumer_process.output()
    assert not any(is_running(pid) for pid in writer_pids(consumer_process))

    stored = {event.event_id for event in store.read(EventQuery())}
    assert 0 < len(stored) < EVENTS, "the consumer finished before it was stopped; the test proves nothing"
    left = EVENTS - len(stored)
    # unacked messages are back in the queue once the consumer's connection is closed
    wait_for(lambda: queue_depth(amqp_url, bound_archive["archive_queue"]) == left, timeout=15,
             what=f"{left} messages back in the queue")
    queued = {json.loads(body)["event_id"] for _m, _p, body in
              drain(amqp_url, bound_archive["archive_queue"], expected=left)}
    assert stored | queued == {event.event_id for event in events}
    assert not stored & queued


@pytest.mark.parametrize("store_url", ["mysql://localhost/events", "sqlite://"], ids=["unknown", "no-path"])
def test_a_bad_event_store_url_is_one_line_and_exit_code_2(store_url, consumer_process):
    consumer_process.start()
    assert consumer_process.wait() == 2
    lines = [line for line in consumer_process.output().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("consumer: cannot use EVENT_STORE_URL"), lines
