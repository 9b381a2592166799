"""The archive consumer: RabbitMQ queue -> event store, acked only once stored.

One BlockingConnection, two channels: one consumes the archive queue (manual acks, prefetch), one
publishes dead letters with confirms. Deliveries are triaged as they arrive and gathered in a Batch;
a batch goes to the BatchWriter (writer.py: a child process by default, or a thread; either way the
next batch fills while this one is written) when full, old enough or the writer is idle; once
stored, its dead letters are published and confirmed, then everything up to its last delivery tag
is acked with one multiple-ack.

Failures never ack. When the broker goes away we reconnect (unacked messages come back). When the
store is unavailable (a full disk, EventStoreDB down) the writer retries the batch in place until
the store passes a write probe, while this thread keeps the connection alive and its deliveries
unacked: no redelivery, at most the prefetch held. Any other store failure drops the connection (the
broker redelivers), waits for the store to pass a write probe, and starts again. The store dedups
by event_id, so redeliveries cost nothing but time. The delay between attempts grows across
reconnects and is reset only by progress (a batch stored and acked), not by a connect that succeeds.

One failure is not retried: RabbitMQ refusing the topology itself (403 ACCESS_REFUSED, 406
PRECONDITION_FAILED, e.g. the archive queue exists with other arguments) will refuse it again on
every attempt. run() logs it and returns with `refused` set; `python consumer.py` exits 2. A queue
that exists with the other queue type (QUEUE_TYPE) is not such a refusal: it is used as it is, with
a warning (broker/topology.py).

AMQP_URL may name the nodes of a cluster: each reconnect tries them in turn, so losing the node the
consumer is connected to costs a reconnect (its unacked messages are redelivered, the store dedups).
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone

import pika
import pika.exceptions

from eventreplay.broker import (
    CONNECTION_ERRORS, ArchiveTopology, ConfirmedPublisher, PublishFailed, broker_address, close_quietly, connect,
    connected_node,
)
from eventreplay.ingest.batch import Batch
from eventreplay.ingest.dead_letters import publish_dead_letters
from eventreplay.ingest.observer import IngestObserver, NoObserver
from eventreplay.ingest.stats import IngestStats
from eventreplay.ingest.triage import triage
from eventreplay.ingest.store_process import ProcessBatchWriter
from eventreplay.ingest.writer import BatchWriter, ThreadBatchWriter
from eventreplay.retrying import Interrupted, RetryPolicy, one_line
from eventreplay.settings import Settings
from eventreplay.store import EventStore, PersistenceError

log = logging.getLogger("eventreplay.ingest")

IDLE_POLL = 0.2  # seconds between looks at the stop flag while no batch is open
SUMMARY_EVERY = 10.0  # seconds between INFO summaries


# AMQP reply codes of a channel error on declare that no retry can fix
REFUSED_FOR_GOOD = {403: "ACCESS_REFUSED", 406: "PRECONDITION_FAILED"}


class DeadLetterFailed(Exception):
    """The dead-letter queue did not confirm; the batch is not acked."""


class TopologyRefused(Exception):
    """RabbitMQ refuses to declare the archive's exchange or queues (403/406): a configuration
    error that reconnecting cannot fix."""


class ArchiveConsumer:
    def __init__(self, settings: Settings, store: EventStore, *, client_name: str = "eventreplay-consumer",
                 summary_every: float = SUMMARY_EVERY, observer: IngestObserver | None = None,
                 store_url: str | None = None):
        # store_url: batches are stored by a child process with a store of its own opened from this
        # URL (the same archive as `store`, which then serves only probes); None: by a thread on `store`
        self.settings, self.store, self.store_url = settings, store, store_url
        self.topology = ArchiveTopology(settings.exchange, settings.archive_queue, settings.dead_letter_queue,
                                        settings.queue_type)
        self.client_name, self.summary_every = client_name, summary_every
        self.batch_size = settings.batch_size
        self.max_latency = settings.batch_max_latency_ms / 1000
        self.stats = IngestStats()
        self.observer = observer or NoObserver()  # the metrics (ingest/metrics.py)
        self._connections = 0  # opened so far: every one after the first is a reconnect
        self.consuming = threading.Event()  # set while the consumer is attached to the queue
        self._stop = threading.Event()
        self.refused: TopologyRefused | None = None  # set when run() ended on a configuration error
        self._batch = Batch()  # filling
        self._ready: list[Batch] = []  # full, to be handed to the writer (in delivery order)
        # between sessions: delays grow across reconnects, and start again once a batch is acked
        self._retry = RetryPolicy(interrupt=self._stop)
        self._store_failed = False  # the last session ended on a store failure

    def stop(self) -> None:
        """Ask run() to store and ack the current batch and return. Safe from any thread or a signal
        handler."""
        self._stop.set()

    # the outer loop: connect, consume, recover ---------------------------------------------------
    def run(self) -> None:
        log.info("archiving exchange %r through queue %r", self.topology.exchange, self.topology.queue)
        try:
            for attempt in self._retry.retrying((*CONNECTION_ERRORS, PersistenceError, DeadLetterFailed),
                                                on_fault=self._note_fault):
                with attempt:
                    self._session()
        except Interrupted:
            pass
        except TopologyRefused as error:
            log.error("%s", error)
            self.refused = error
        log.info("stopped: %s", self.stats.final())

    def _session(self) -> None:
        """One connection's life; returns when stopping, raises what ended it otherwise."""
        if self._store_failed:
            self.store.probe_write()  # a read is no proof the store is back: a full disk serves reads
            log.info("the event store takes writes again; resuming")
            self._store_failed = False
        connection = connect(self.settings.amqp_url, client_name=self.client_name)
        self._connections += 1
        if self._connections > 1:
            self.observer.reconnected()
        try:
            self._consume(connection)
        except PersistenceError as error:
            if self._stop.is_set():
                log.warning("stopping while the event store fails (%s): what it did not store stays unacked, "
                            "RabbitMQ will redeliver it", one_line(error))
                return
            self._store_failed = True
            raise
        finally:
            self.consuming.clear()
            self.observer.broker_connected(False)
            self._batch, self._ready = Batch(), []  # what was not acked will be redelivered
            close_quietly(connection)  # unacked messages go back to the queue now

    def _note_fault(self, error: BaseException, delay: float) -> None:
        if isinstance(error, PersistenceError):
            log.warning("the event store failed (%s); nothing unstored is acked, RabbitMQ will redeliver it; "
                        "retrying in %.1f s", one_line(error), delay)
        elif isinstance(error, DeadLetterFailed):
            log.warning("%s; the batch is not acked, retrying in %.1f s", error, delay)
        else:
            log.warning("RabbitMQ at %s: %s; reconnecting in %.1f s", broker_address(self.settings.amqp_url),
                        one_line(error), delay)

    # one connection's life -----------------------------------------------------------------------
    def _consume(self, connection: pika.BlockingConnection) -> None:
        channel = connection.channel()
        self._declare(channel)
        channel.basic_qos(prefetch_count=self.settings.prefetch)
        dead_letters = ConfirmedPublisher(connection)
        # the writer's wake-up makes process_data_events return as soon as a batch is stored
        writer = self._writer(wake=lambda: connection.add_callback_threadsafe(_nothing))
        try:
            consumer_tag = channel.basic_consume(self.topology.queue, self._on_message, auto_ack=False)
            self.consuming.set()
            self.observer.broker_connected(True)
            log.info("consuming from %r on %s (prefetch %d, batches of up to %d or %d ms)", self.topology.queue,
                     connected_node(connection), self.settings.prefetch, self.batch_size,
                     self.settings.batch_max_latency_ms)
            while not self._stop.is_set():
                filling = self._batch
                wait = max(0.0, self.max_latency - filling.age()) if len(filling) else IDLE_POLL
                # returns early on deliveries and on the writer's wake-up
                connection.process_data_events(time_limit=wait)
                self._ack_stored(writer, channel, dead_letters)
                self._hand_over(writer)
                self.stats.report_if_due(self.summary_every)
            # Stopping: no new deliveries (pika requeues those it holds but has not handed to us),
            # the batches in hand are stored and acked; anything else unacked returns to the queue.
            channel.basic_cancel(consumer_tag)
            self._hand_over(writer, everything=True)
            writer.stop_retrying()  # during a store outage: leave it unacked rather than wait
            while writer.pending:
                connection.process_data_events(time_limit=IDLE_POLL)
                self._ack_stored(writer, channel, dead_letters)
        finally:
            self.consuming.clear()
            writer.close()

    def _writer(self, wake) -> BatchWriter:
        if self.store_url is None:
            return ThreadBatchWriter(self.store, wake, on_commit=self.observer.store_committed)
        return ProcessBatchWriter(self.store_url, self.settings.indexed_field_names, wake,
                                  on_commit=self.observer.store_committed, log_level=self.settings.log_level)

    def _declare(self, channel) -> None:
        try:
            self.topology.declare(channel)
        except pika.exceptions.ChannelClosedByBroker as error:
            if error.reply_code not in REFUSED_FOR_GOOD:
                raise
            reply = " ".join(str(error.reply_text).split())[:300]
            topology = self.topology
            raise TopologyRefused(
                f"RabbitMQ refuses the archive topology ({error.reply_code} {reply}); exchange "
                f"{topology.exchange!r}, queues {topology.queue!r} and {topology.dead_letter_queue!r} must "
                "either not exist or have the settings the consumer declares (durable, the type of QUEUE_TYPE, "
                "no other arguments), "
                "and the user needs configure/write/read permission on them: fix EXCHANGE / ARCHIVE_QUEUE / "
                "DEAD_LETTER_QUEUE or the broker, then restart. Not retrying."
            ) from error

    def _on_message(self, _channel, method, properties, body: bytes) -> None:
        # pika hands over every delivery already read from the socket in one go, possibly more than
        # a batch: full batches are set aside here and handed to the writer when pika returns.
        if method.redelivered:
            self.stats.redelivered += 1
            self.observer.message_redelivered()
        if len(self._batch) >= self.batch_size:
            self._ready.append(self._batch)
            self._batch = Batch()
        self._batch.add(method.delivery_tag, triage(method, properties, body, datetime.now(timezone.utc)))

    def _hand_over(self, writer: BatchWriter, *, everything: bool = False) -> None:
        """Give the writer the full batches, and the filling one when full, when the writer has
        nothing to do, when it has waited BATCH_MAX_LATENCY_MS, or when stopping. A group commit:
        at a low rate each delivery is stored at once (latency = one commit, not a timer); under
        load deliveries gather while the writer writes the batch before."""
        filling = self._batch
        writer_idle = writer.pending == 0 and not self._ready
        if len(filling) and (everything or writer_idle or len(filling) >= self.batch_size
                             or filling.age() >= self.max_latency):
            self._ready.append(filling)
            self._batch = Batch()
        for batch in self._ready:
            writer.submit(batch)
        self._ready = []

    def _ack_stored(self, writer: BatchWriter, channel, dead_letters: ConfirmedPublisher) -> None:
        for batch, result in writer.results():
            if isinstance(result, BaseException):
                raise result  # run() drops the connection: nothing of this batch or later is acked
            if batch.dead_letters:
                try:
                    publish_dead_letters(dead_letters, self.topology.dead_letter_queue, batch.dead_letters)
                except (PublishFailed, TimeoutError) as error:
                    raise DeadLetterFailed(f"the dead-letter queue did not take {len(batch.dead_letters)} "
                                           f"messages ({error})") from error
            channel.basic_ack(batch.last_tag, multiple=True)  # only now: stored (and dead letters confirmed)
            self._retry.progressed()  # the next trouble starts with a short delay again
            self._count(batch, result)

    def _count(self, batch: Batch, new: int) -> None:
        stats = self.stats
        stats.stored += new
        stats.duplicates += len(batch.events) - new
        stats.dead_lettered += len(batch.dead_letters)
        stats.replay_skipped += batch.replayed
        self.observer.batch_acked(batch, new)
        log.debug("batch of %d: %d new, %d duplicates, %d dead-lettered, %d replays skipped; acked up to %d",
                  len(batch), new, len(batch.events) - new, len(batch.dead_letters), batch.replayed,
                  batch.last_tag)


def _nothing() -> None:
    pass
