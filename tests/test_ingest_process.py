"""`python consumer.py` as a process: killed hard and restarted, stopped with SIGTERM, misconfigured."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from eventreplay.simulator import EventFactory
from eventreplay.store import EventQuery
from tests.ingest_support import declared_archive, drain, publish, queue_depth, wait_for

ROOT = Path(__file__).resolve().parents[1]
EVENTS = 5000


@pytest.fixture
def archive(amqp_url, names):
    with declared_archive(amqp_url, names):
        yield names


class ConsumerProcess:
    def __init__(self, env: dict[str, str], log: Path):
        self.env, self.log = env, log
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "consumer.py"], cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        return self.process.wait(timeout=timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill_if_running(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def consumer_process(amqp_url, store_url, archive, tmp_path):
    env = dict(os.environ)
    env.update(
        AMQP_URL=amqp_url, EVENT_STORE_URL=store_url, EXCHANGE=archive["exchange"],
        ARCHIVE_QUEUE=archive["archive_queue"], DEAD_LETTER_QUEUE=archive["dead_letter_queue"],
        # small batches and prefetch: the consumer is still busy when the test interrupts it
        BATCH_SIZE="50", PREFETCH="200", LOG_LEVEL="INFO", PYTHONUNBUFFERED="1",
    )
    process = ConsumerProcess(env, tmp_path / "consumer.log")
    yield process
    process.kill_if_running()


def test_killed_and_restarted_consumer_stores_every_event_exactly_once(amqp_url, store, archive, consumer_process):
    events = EventFactory(seed=21).take(EVENTS)
    publish(amqp_url, archive["exchange"], events)

    consumer_process.start()
    wait_for(lambda: store.count() >= 1000, timeout=60, interval=0.02, what="1,000 events stored")
    consumer_process.signal(signal.SIGKILL)
    consumer_process.wait()
    stored_when_killed = store.count()
    assert stored_when_killed < EVENTS, "the consumer finished before it was killed; the test proves nothing"

    consumer_process.start()
    wait_for(lambda: store.count() >= EVENTS and queue_depth(amqp_url, archive["archive_queue"]) == 0,
             timeout=120, what="every event stored after the restart", interval=0.1)
    consumer_process.signal(signal.SIGTERM)
    assert consumer_process.wait() == 0, consumer_process.output()

    ids = [event.event_id for event in store.read(EventQuery())]
    assert len(ids) == EVENTS == len(set(ids))
    assert set(ids) == {event.event_id for event in events}


def test_sigterm_stores_the_batch_in_hand_acks_nothing_else_and_exits_0(amqp_url, store, archive, consumer_process):
    events = EventFactory(seed=22).take(EVENTS)
    publish(amqp_url, archive["exchange"], events)

    consumer_process.start()
    wait_for(lambda: store.count() >= 500, timeout=60, interval=0.02, what="500 events stored")
    consumer_process.signal(signal.SIGTERM)
    assert consumer_process.wait() == 0, consumer_process.output()
    assert "Traceback" not in consumer_process.output()

    stored = {event.event_id for event in store.read(EventQuery())}
    assert 0 < len(stored) < EVENTS, "the consumer finished before it was stopped; the test proves nothing"
    left = EVENTS - len(stored)
    # unacked messages are back in the queue once the consumer's connection is closed
    wait_for(lambda: queue_depth(amqp_url, archive["archive_queue"]) == left, timeout=15,
             what=f"{left} messages back in the queue")
    queued = {json.loads(body)["event_id"] for _m, _p, body in
              drain(amqp_url, archive["archive_queue"], expected=left)}
    assert stored | queued == {event.event_id for event in events}
    assert not stored & queued


@pytest.mark.parametrize("store_url", ["mysql://localhost/events", "sqlite://"], ids=["unknown", "no-path"])
def test_a_bad_event_store_url_is_one_line_and_exit_code_2(store_url, consumer_process):
    consumer_process.start()
    assert consumer_process.wait() == 2
    lines = [line for line in consumer_process.output().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("consumer: cannot use EVENT_STORE_URL"), lines
