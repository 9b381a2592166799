"""Publishing with publisher confirms, for everything that publishes (the simulator, the consumer's
dead letters, replays): one channel in confirm mode, a window of messages in flight, many frames
per socket write. The broker's answers go to a ConfirmTracker (confirms.py).

pika's BlockingChannel.basic_publish flushes after every message (three frames, three socket sends
and an ioloop round each), and BlockingChannel.confirm_delivery() waits for each confirm inside
basic_publish. So this publishes on the underlying channel object with its own confirm and return
callbacks (pika calls them from process_data_events, in this same thread), and writes out what is
buffered every `flush_every` messages and before every wait (`serve`, a full window, the final
confirms): a paced publisher's message goes out when it waits for the next one's moment.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import pika
from pika.spec import Basic, BasicProperties

from eventreplay.broker.confirms import ConfirmTracker
from eventreplay.broker.connection import CONNECTION_ERRORS


class PublishFailed(Exception):
    """The broker refused (nack) or returned (unroutable) a published message."""


class ConfirmedPublisher:
    def __init__(self, connection: pika.BlockingConnection, tracker: ConfirmTracker | None = None, *,
                 window: int = 1000, confirm_timeout: float = 30.0, flush_every: int = 64):
        self.connection = connection
        self.tracker = tracker if tracker is not None else ConfirmTracker()
        self.window = window
        self.confirm_timeout = confirm_timeout
        self.flush_every = flush_every
        self.channel = connection.channel()
        self._impl = self.channel._impl  # noqa: SLF001 - see the module docstring
        self._impl.confirm_delivery(ack_nack_callback=self._on_ack_nack)
        self._impl.add_on_return_callback(self._on_return)
        self._unflushed = 0

    # broker callbacks (called inside process_data_events, in the publishing thread) ------------
    def _on_ack_nack(self, frame) -> None:
        method = frame.method
        if isinstance(method, Basic.Nack):
            self.tracker.nacked(method.delivery_tag, multiple=method.multiple)
        else:
            self.tracker.acked(method.delivery_tag, multiple=method.multiple, now=time.monotonic())

    def _on_return(self, _channel, method, properties, _body) -> None:
        self.tracker.returned(
            properties.message_id,
            f"message returned by the broker: {method.reply_text} (exchange {method.exchange!r}, "
            f"routing key {method.routing_key!r}); no queue is bound for it",
        )

    # publishing -------------------------------------------------------------------------------
    def _raise_if_failed(self) -> None:
        if self.tracker.failure:
            raise PublishFailed(self.tracker.failure)

    def publish(self, exchange: str, routing_key: str, body: bytes, properties: BasicProperties, *,
                item: Any = None, mandatory: bool = True) -> None:
        """Send one message; `item` is what the tracker reports once it is confirmed. Waits while
        the window is full. With `mandatory` an unroutable message comes back and fails the
        publisher (PublishFailed)."""
        self._raise_if_failed()
        if self.tracker.in_flight >= self.window:
            self.flush()
            self._wait(lambda: self.tracker.in_flight < self.window, "the window to have room")
        self.tracker.sent(item, message_id=properties.message_id, now=time.monotonic())
        self._impl.basic_publish(exchange, routing_key, body, properties, mandatory)
        self._unflushed += 1
        if self._unflushed >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Write out what is buffered (one socket send) and handle the answers that have arrived."""
        self._unflushed = 0
        self._coalesce()
        self.channel._flush_output()  # noqa: SLF001 - BlockingChannel's own "write it all out"

    def _coalesce(self) -> None:
        # pika's transport sends each buffered frame with its own send() call; joining them first
        # makes it one call per batch (same bytes, same order). pika 1.x internals: without them,
        # frame-by-frame still works.
        transport = getattr(self.connection._impl, "_transport", None)  # noqa: SLF001
        buffers = getattr(transport, "_tx_buffers", None)
        if buffers is not None and len(buffers) > 1:
            joined = b"".join(buffers)
            buffers.clear()
            buffers.append(joined)

    def serve(self, seconds: float = 0.0) -> None:
        """Send what is buffered, then handle the broker's traffic (confirms, heartbeats) for up to
        `seconds`."""
        if self._unflushed:
            self.flush()
        self.connection.process_data_events(time_limit=seconds)

    def wait_for_confirms(self) -> None:
        """Until every message sent is confirmed; PublishFailed on a nack or return, TimeoutError
        when the broker withholds confirms for `confirm_timeout` (a memory alarm, a quorum queue
        without its majority)."""
        self.flush()
        self._wait(lambda: self.tracker.in_flight == 0, "every message to be confirmed")
        self._raise_if_failed()

    def settle(self, timeout: float = 5.0) -> None:
        """Collect the answers still in flight for at most `timeout` s (after a failure, or when
        stopping); never raises."""
        try:
            self.flush()
            self._serve_until(lambda: not self.tracker.awaiting, timeout)
        except CONNECTION_ERRORS:
            pass

    def _wait(self, done: Callable[[], bool], what: str) -> None:
        if not self._serve_until(lambda: done() or bool(self.tracker.failure), self.confirm_timeout):
            raise TimeoutError(f"{self.tracker.in_flight} messages not confirmed after "
                               f"{self.confirm_timeout:.0f} s (waiting for {what})")
        self._raise_if_failed()

    def _serve_until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Handle the broker's traffic until `done()` (True) or `timeout` s pass (False). pika's own
        I/O loop runs until the condition holds, so each ack is looked at as it arrives, with no
        polling interval (confirms are handled below BlockingConnection's event queue, which
        process_data_events would wait on)."""
        if done():
            return True
        timed_out = []
        timer = self.connection.call_later(timeout, lambda: timed_out.append(True))
        try:
            self.channel._flush_output(lambda: done() or bool(timed_out))  # noqa: SLF001
        finally:
            self.connection.remove_timeout(timer)
        return done()
    def close(self) -> None:
        try:
            if self.channel.is_open:
                self.channel.close()
        except CONNECTION_ERRORS:
            pass
