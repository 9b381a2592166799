"""ConfirmedPublisher with batched writes, for replays.

pika's BlockingChannel.basic_publish flushes after every message: three frames, three socket sends
and an ioloop round per message, which caps a publisher well below what the broker takes. A replay
knows it has many messages to send, so it hands them to the underlying channel and flushes every
`flush_every` messages (and whenever it waits), one send for many frames. Confirms, returns and the
window work exactly as in ConfirmedPublisher, whose bookkeeping this reuses.
"""
from __future__ import annotations

from typing import Hashable

from pika.spec import BasicProperties

from eventreplay.broker import CONNECTION_ERRORS, ConfirmedPublisher


class BatchedConfirmedPublisher(ConfirmedPublisher):
    def __init__(self, connection, *, window: int = 1000, on_confirmed=None, flush_every: int = 64):
        super().__init__(connection, window=window, on_confirmed=on_confirmed)
        self.flush_every = flush_every
        self._impl = self.channel._impl  # see the module docstring

    def flush(self) -> None:
        """Write what is buffered and handle the confirms that have arrived."""
        self._coalesce()
        self.channel._flush_output()  # noqa: SLF001 - BlockingChannel's own "write it all out"

    def _coalesce(self) -> None:
        # pika's transport sends each buffered frame with its own send() call (three per message);
        # joining the buffered frames first makes it one call per batch. Same bytes, same order.
        # pika 1.x internals: if they are not there, flushing frame by frame still works.
        transport = getattr(self.connection._impl, "_transport", None)  # noqa: SLF001
        buffers = getattr(transport, "_tx_buffers", None)
        if buffers is not None and len(buffers) > 1:
            joined = b"".join(buffers)
            buffers.clear()
            buffers.append(joined)

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: BasicProperties,
        *,
        token: Hashable = None,
        mandatory: bool = True,
    ) -> None:
        self._raise_if_failed()
        if len(self._outstanding) >= self.window:
            self.flush()
            self._wait_for_room()
        self._track(token, properties)
        self._impl.basic_publish(exchange, routing_key, body, properties, mandatory)
        self.published += 1
        if self.published % self.flush_every == 0:
            self.flush()

    def wait_for_confirms(self, timeout: float = 30.0) -> None:
        self.flush()
        super().wait_for_confirms(timeout)

    def settle(self, timeout: float = 5.0) -> None:
        try:
            self.flush()
        except CONNECTION_ERRORS:
            return
        super().settle(timeout)
