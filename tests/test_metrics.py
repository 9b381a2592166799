"""Prometheus metrics as an operator scrapes them: the consumer's own /metrics (the real
`python consumer.py` after known traffic: exact counts), the Replay API's /metrics after a replay
and with the archive queues in a known state, and `promtool check metrics` clean on both."""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import uuid

import httpx
import pika
import pytest
from prometheus_client.parser import text_string_to_metric_families

from eventreplay.broker import REPLAY_ID_HEADER, ConfirmTracker
from eventreplay.ingest import IngestMetrics
from eventreplay.simulator import EventFactory
from eventreplay.store import open_store
from tests.support.amqp import (
    broker_connection, close_broker_connections, publish, publish_raw, queue_depth,
)
from tests.support.api import api_settings
from tests.support.events import new_event
from tests.support.ingest import consumer_env, consumer_settings, running_consumer
from tests.support.processes import ROOT, consumer_program, free_port
from tests.support.stores import seed
from tests.support.waiting import wait_for

REASON_KINDS = ("not_utf8", "invalid_json", "not_an_object", "missing_field", "invalid_field", "refused_by_store",
                "validation_error", "other")


# -- reading an exposition -------------------------------------------------------------------------

def samples(text: str) -> dict[tuple, float]:
    """Every sample: (name, sorted label pairs) -> value."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(text_or_samples, name: str, **labels) -> float | None:
    found = samples(text_or_samples) if isinstance(text_or_samples, str) else text_or_samples
    return found.get((name, tuple(sorted(labels.items()))))


def _promtool() -> str:
    """promtool comes with Debian's `prometheus` package; .ci/run installs it, so in CI a missing
    one is a failure, not a skip."""
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing (apt-get install prometheus; .ci/run installs it)")
        pytest.skip("promtool is not installed (apt-get install --no-install-recommends prometheus)")
    return promtool


def promtool_check(text: str) -> None:
    """`promtool check metrics` finds nothing to say (exit 0, no lint output)."""
    promtool = _promtool()
    checked = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
    said = (checked.stdout + checked.stderr).decode(errors="replace").strip()
    assert checked.returncode == 0 and not said, f"promtool check metrics (exit {checked.returncode}):\n{said}"


# -- the consumer ----------------------------------------------------------------------------------

def test_consumer_serves_exact_counts_after_known_traffic(amqp_url, bound_archive, tmp_path):
    names = bound_archive
    store_url = f"sqlite:///{tmp_path / 'events.db'}"
    port = free_port()
    consumer = consumer_program(consumer_env(amqp_url, store_url, names, CONSUMER_METRICS_PORT=str(port)),
                                tmp_path / "consumer.log")
    events = EventFactory(seed=12).take(200)
    poison = [
        ("order-events", b"this is not JSON {", pika.BasicProperties(message_id="bad-json-1")),
        ("order-events", b'{"event_id": ', pika.BasicProperties(message_id="bad-json-2")),
        ("order-events", b"{'single': 'quotes'}", pika.BasicProperties(message_id="bad-json-3")),
        ("user-auth", json.dumps({"event_id": str(uuid.uuid4()), "timestamp": "2024-05-01T12:00:00Z"}).encode(),
         pika.BasicProperties(message_id="no-type")),
        ("order-events", json.dumps({"event_type": "OrderPlaced", "order_id": "o1"}).encode(),
         pika.BasicProperties(message_id="no-id")),
    ]
    replayed = [(e.routing_key, e.body, pika.BasicProperties(message_id=e.event_id,
                                                             headers={REPLAY_ID_HEADER: "job-1"}))
                for e in events[:3]]
    try:
        consumer.start()
        url = f"http://127.0.0.1:{port}/metrics"

        def scrape() -> str:
            try:
                return httpx.get(url, timeout=5).text
            except httpx.HTTPError:
                return ""

        def reached(name: str, expected: float, **labels):
            def check():
                if not consumer.running:
                    raise AssertionError(f"the consumer exited:\n{consumer.output()[-3000:]}")
                text = scrape()
                return text if value(text, name, **labels) == expected else None
            return wait_for(check, timeout=60, interval=0.1, what=f"{name}{labels or ''} = {expected}")

        reached("eventreplay_ingest_broker_connected", 1)
        publish(amqp_url, names["exchange"], events)
        reached("eventreplay_ingest_events_stored_total", 200)
        publish(amqp_url, names["exchange"], events[50:57])  # a producer's resend: 7 duplicates
        publish_raw(amqp_url, names["exchange"], poison + replayed)
        reached("eventreplay_ingest_duplicates_total", 7)
        reached("eventreplay_ingest_replays_skipped_total", 3)
        text = reached("eventreplay_ingest_dead_lettered_total", 2, reason="missing_field")
        found = samples(text)
    finally:
        consumer.stop()
    assert consumer.process.returncode == 0, consumer.output()[-3000:]

    assert value(found, "eventreplay_ingest_events_stored_total") == 200
    assert value(found, "eventreplay_ingest_duplicates_total") == 7
    assert value(found, "eventreplay_ingest_replays_skipped_total") == 3
    dead = {kind: value(found, "eventreplay_ingest_dead_lettered_total", reason=kind) for kind in REASON_KINDS}
    assert dead == {**dict.fromkeys(REASON_KINDS, 0.0), "invalid_json": 3.0, "missing_field": 2.0}
    # every delivery is in exactly one acked batch
    assert value(found, "eventreplay_ingest_batch_size_sum") == 200 + 7 + 5 + 3
    assert value(found, "eventreplay_ingest_batch_size_count") >= 2
    assert value(found, "eventreplay_ingest_store_commit_seconds_count") >= 2
    assert value(found, "eventreplay_ingest_store_commit_seconds_sum") > 0
    # every valid event carried an AMQP timestamp; just published, so stored within seconds
    assert value(found, "eventreplay_ingest_publish_to_stored_seconds_count") == 207
    assert value(found, "eventreplay_ingest_publish_to_stored_seconds_bucket", le="10.0") == 207
    assert value(found, "eventreplay_ingest_reconnects_total") == 0
    assert value(found, "eventreplay_ingest_redelivered_total") == 0
    assert value(found, "eventreplay_ingest_broker_connected") == 1
    with open_store(store_url) as store:
        assert store.count() == 200
    assert queue_depth(amqp_url, names["dead_letter_queue"]) == 5
    promtool_check(text)


def test_consumer_metrics_count_a_reconnect_and_the_connection_state(amqp_url, names, archive, tmp_path):
    metrics = IngestMetrics()
    client_name = f"metrics-test-{uuid.uuid4().hex[:8]}"  # only this test's connection is dropped
    store_url = f"sqlite:///{tmp_path / 'events.db'}"
    with open_store(store_url) as store, running_consumer(consumer_settings(amqp_url, store_url, archive), store,
                                                          observer=metrics, client_name=client_name):
        publish(amqp_url, archive["exchange"], EventFactory(seed=5).take(10))
        wait_for(lambda: value(metrics.render().decode(), "eventreplay_ingest_events_stored_total") == 10,
                 timeout=30, what="10 events stored")
        assert close_broker_connections(amqp_url, client_name) == 1
        wait_for(lambda: value(metrics.render().decode(), "eventreplay_ingest_reconnects_total") == 1,
                 timeout=60, what="the reconnect counted")
        wait_for(lambda: value(metrics.render().decode(), "eventreplay_ingest_broker_connected") == 1,
                 timeout=30, what="connected again")
        publish(amqp_url, archive["exchange"], EventFactory(seed=6).take(5))
        wait_for(lambda: value(metrics.render().decode(), "eventreplay_ingest_events_stored_total") == 15,
                 timeout=30, what="5 more events stored after the reconnect")
    # stopped: no longer attached to the broker
    assert value(metrics.render().decode(), "eventreplay_ingest_broker_connected") == 0


def test_consumer_metrics_port_in_use_is_one_clear_line(amqp_url, names, archive, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = consumer_env(amqp_url, f"sqlite:///{tmp_path / 'events.db'}", archive,
                           CONSUMER_METRICS_PORT=str(port))
        consumer = consumer_program(env, tmp_path / "consumer.log").start()
        try:
            code = consumer.wait(timeout=30)
        finally:
            consumer.kill()
    output = consumer.output()
    assert code == 2, output
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines == [f"consumer: cannot serve metrics on 127.0.0.1:{port}: Address already in use "
                     "(set CONSUMER_METRICS_PORT to a free port, or 0 for no metrics)"], output


def test_dead_letter_reasons_are_counted_by_kind_not_by_text():
    from eventreplay.ingest.batch import Batch
    from eventreplay.ingest.triage import DeadLetter, reason_kind

    metrics = IngestMetrics()
    batch = Batch()
    reasons = [f"body is not valid JSON (Expecting value at char {n})" for n in range(50)]
    for tag, reason in enumerate(reasons, 1):
        batch.add(tag, DeadLetter(reason, b"x", {}, "rk", "ex", reason_kind(reason)))
    metrics.batch_acked(batch, 0)
    text = metrics.render().decode()
    dead = [s for s in samples(text) if s[0] == "eventreplay_ingest_dead_lettered_total"]
    assert len(dead) == len(REASON_KINDS)  # a bounded label set, whatever the reasons say
    assert value(text, "eventreplay_ingest_dead_lettered_total", reason="invalid_json") == 50


# -- the Replay API --------------------------------------------------------------------------------

def test_api_metrics_after_a_replay_and_with_known_queues(amqp_url, bound_archive, target_queue, tmp_path):
    from fastapi.testclient import TestClient

    from eventreplay.api import create_app

    names = bound_archive
    app = create_app(api_settings(f"sqlite:///{tmp_path / 'events.db'}", amqp_url,
                                  archive_queue=names["archive_queue"], dead_letter_queue=names["dead_letter_queue"]))
    # the archive queue: 5 events waiting, one of them held by a consumer; 2 dead letters
    publish(amqp_url, names["exchange"], EventFactory(seed=9).take(5))
    publish_raw(amqp_url, "", [(names["dead_letter_queue"], b"bad", None)] * 2)
    with TestClient(app, raise_server_exceptions=False) as api, broker_connection(amqp_url) as holder:
        channel = holder.channel()
        channel.basic_qos(prefetch_count=1)
        channel.basic_consume(names["archive_queue"], lambda *args: None, auto_ack=False)
        wait_for(lambda: (holder.process_data_events(time_limit=0.05) or True)
                 and queue_depth(amqp_url, names["archive_queue"]) == 4, timeout=15, what="one message held")

        seed(api.app.state.services.store(), [new_event("OrderPlaced", order_id=f"o{i}") for i in range(20)])
        job = api.post("/replay?wait=true", json={"event_type": "OrderPlaced", "target_queue": target_queue}).json()
        assert job["state"] == "completed" and job["confirmed"] == 20, job
        text = api.get("/metrics").text

    found = samples(text)
    assert value(found, "eventreplay_events_replayed_total") == 20
    assert value(found, "eventreplay_replay_jobs", state="completed") == 1
    confirms = value(found, "eventreplay_publish_confirm_seconds_count")
    assert 1 <= confirms <= 20  # sampled: the first confirm and every 8th
    assert 0 < value(found, "eventreplay_publish_confirm_seconds_sum") < 30 * confirms
    assert value(found, "eventreplay_broker_up") == 1
    assert value(found, "eventreplay_archive_queue_messages") == 4
    assert value(found, "eventreplay_archive_queue_consumers") == 1
    assert value(found, "eventreplay_dead_letter_queue_messages") == 2
    promtool_check(text)


def test_api_metrics_without_a_broker_say_so_and_still_answer(tmp_path):
    from fastapi.testclient import TestClient

    from eventreplay.api import create_app

    app = create_app(api_settings(f"sqlite:///{tmp_path / 'events.db'}", "amqp://guest:guest@127.0.0.1:1/%2F"))
    with TestClient(app, raise_server_exceptions=False) as api:
        response = api.get("/metrics")
    assert response.status_code == 200
    found = samples(response.text)
    assert value(found, "eventreplay_broker_up") == 0
    assert not [key for key in found if "queue" in key[0]]  # no stale or made-up queue numbers
    assert value(found, "eventreplay_events_replayed_total") == 0
    promtool_check(response.text)


def test_a_short_run_has_its_confirm_latency_sampled():
    # the histogram stayed empty after replays of fewer than 8 events: only every 8th was sampled
    tracker = ConfirmTracker()
    for n in range(3):
        tracker.sent(n, message_id=str(n), now=1.0)
    tracker.acked(3, multiple=True, now=1.25)
    assert tracker.take_latencies() == [0.25]


# -- the Grafana dashboard -------------------------------------------------------------------------

def test_the_grafana_dashboard_queries_metrics_that_exist(tmp_path):
    from eventreplay.api.broker_admin import QueueStats
    from eventreplay.api.metrics import BrokerQueues, ReplayMetrics

    dashboard = json.loads((ROOT / "monitoring" / "grafana-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert exprs
    exposed = set()
    queues = BrokerQueues(True, QueueStats(1, 1), QueueStats(0, 0))
    for text in (IngestMetrics().render().decode(), ReplayMetrics().render(lambda: [], queues).decode()):
        exposed |= {name for name, _labels in samples(text)}
    used = {name for expr in exprs for name in re.findall(r"\beventreplay_\w+", expr)}
    assert used - exposed == set()
    # every query is valid PromQL: promtool checks it as a recording rule
    rules = tmp_path / "rules.yml"
    rules.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{i}", "expr": expr} for i, expr in enumerate(exprs)]}]}))
    promtool = _promtool()
    checked = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
