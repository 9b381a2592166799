"""The RabbitMQ adapter (pika): connecting with retry, declaring the archive topology, and
publishing with pipelined publisher confirms.
"""
from __future__ import annotations

import collections
import itertools
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterable

import pika
import pika.exceptions
from pika.spec import Basic, BasicProperties
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

log = logging.getLogger(__name__)

BrokerUnavailable = pika.exceptions.AMQPConnectionError
# Errors that mean "the connection or channel is gone; reconnect and carry on".
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    pika.exceptions.StreamLostError,
    ConnectionError,
    OSError,
)


class PublishFailed(Exception):
    """The broker refused (nack) or returned (unroutable) a published message."""


def connection_parameters(amqp_url: str, *, client_name: str, heartbeat: int = 30) -> pika.URLParameters:
    params = pika.URLParameters(amqp_url)
    params.heartbeat = heartbeat
    params.blocked_connection_timeout = 60
    params.connection_attempts = 1
    params.socket_timeout = 5
    params.client_properties = {"connection_name": client_name, "product": "eventreplay"}
    return params


def connect(amqp_url: str, *, client_name: str, retry_for: float = 0.0) -> pika.BlockingConnection:
    """Open a blocking connection. With `retry_for` > 0, keep trying (exponential backoff) for that many
    seconds before giving up with the last error."""
    params = connection_parameters(amqp_url, client_name=client_name)
    if retry_for <= 0:
        return pika.BlockingConnection(params)
    for attempt in Retrying(
        retry=retry_if_exception_type(CONNECTION_ERRORS),
        wait=wait_exponential(multiplier=0.2, max=5),
        stop=stop_after_delay(retry_for),
        reraise=True,
        before_sleep=lambda state: log.warning(
            "RabbitMQ not reachable (%s); retrying", state.outcome.exception() if state.outcome else "?"
        ),
    ):
        with attempt:
            return pika.BlockingConnection(params)
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class ArchiveTopology:
    exchange: str
    queue: str
    dead_letter_queue: str

    def declare(self, channel) -> None:
        """Idempotent: the durable topic exchange, the archive queue bound with `#`, and the
        dead-letter queue (fed directly by the consumer with the reason in a header)."""
        channel.exchange_declare(self.exchange, exchange_type="topic", durable=True)
        channel.queue_declare(self.queue, durable=True)
        channel.queue_bind(self.queue, self.exchange, routing_key="#")
        channel.queue_declare(self.dead_letter_queue, durable=True)


def declare_exchange(channel, exchange: str) -> None:
    channel.exchange_declare(exchange, exchange_type="topic", durable=True)


class ConfirmedPublisher:
    """Publishes on one channel in confirm mode with a window of unconfirmed messages, so the broker's
    confirms overlap with further publishing instead of costing one round trip per message.

    Each publish carries a `token` (for example a store position); `on_confirmed` is called with the
    tokens of confirmed messages, in publish order. A nack or a returned (unroutable, with
    `mandatory`) message makes the next `publish` or `wait_for_confirms` raise PublishFailed; that
    message is never reported as confirmed, while the confirms of the others keep being reported
    (`settle` collects those still in flight). A returned message is told apart by its message_id;
    one without a message_id makes every later confirm unreliable, so none is reported after it.

    pika's BlockingChannel.confirm_delivery() waits for each message's confirm inside basic_publish.
    To pipeline we enable confirms on the underlying channel object instead, with our own callback;
    pika calls it from process_data_events in this same thread, so no locking is needed.
    """

    def __init__(
        self,
        connection: pika.BlockingConnection,
        *,
        window: int = 1000,
        on_confirmed: Callable[[list[Hashable]], None] | None = None,
        confirm_timeout: float = 30.0,
    ):
        self.connection = connection
        self.channel = connection.channel()
        self.window = window
        self.on_confirmed = on_confirmed
        self.confirm_timeout = confirm_timeout
        self._next_tag = 1
        # delivery tag -> (token, message_id), in publish order
        self._outstanding: collections.OrderedDict[int, tuple[Hashable, str | None]] = collections.OrderedDict()
        self._returned: set[int] = set()
        self._acks_reliable = True
        self._failure: str | None = None
        self.published = 0
        self.confirmed = 0
        impl = self.channel._impl  # see class docstring
        impl.confirm_delivery(ack_nack_callback=self._on_ack_nack)
        impl.add_on_return_callback(self._on_return)

    # broker callbacks -------------------------------------------------------------------------
    def _on_ack_nack(self, frame) -> None:
        method = frame.method
        tag, multiple = method.delivery_tag, method.multiple
        if multiple:
            settled = list(itertools.takewhile(lambda t: t <= tag, self._outstanding))
        else:
            settled = [tag] if tag in self._outstanding else []
        entries = [(t, self._outstanding.pop(t)) for t in settled]
        if isinstance(method, Basic.Nack):
            self._failure = self._failure or "the broker refused a message (basic.nack)"
            self._returned.difference_update(settled)
            return
        done = [token for t, (token, _message_id) in entries if t not in self._returned]
        self._returned.difference_update(settled)
        if not self._acks_reliable:
            return
        self.confirmed += len(done)
        if self.on_confirmed and done:
            self.on_confirmed(done)

    def _on_return(self, _channel, method, properties, _body) -> None:
        self._failure = self._failure or (
            f"message returned by the broker: {method.reply_text} (exchange {method.exchange!r}, "
            f"routing key {method.routing_key!r}); no queue is bound for it"
        )
        # The broker acks a returned message too (right after the return): find which one it is, so
        # that its ack is not taken for a delivery. Returns come in publish order: the oldest
        # unreturned message with that id is the one.
        message_id = properties.message_id
        returned = next((t for t, (_token, m) in self._outstanding.items()
                         if message_id is not None and m == message_id and t not in self._returned), None)
        if returned is None:
            self._acks_reliable = False
        else:
            self._returned.add(returned)

    # publishing -------------------------------------------------------------------------------
    def _raise_if_failed(self) -> None:
        if self._failure:
            raise PublishFailed(self._failure)

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
            self._wait_for_room()
        self._track(token, properties)
        self.channel.basic_publish(exchange, routing_key, body, properties, mandatory=mandatory)
        self.published += 1
        # Let confirms that have already arrived be handled without waiting.
        if self.published % 64 == 0:
            self.connection.process_data_events(time_limit=0)

    def _track(self, token: Hashable, properties: BasicProperties) -> None:
        self._outstanding[self._next_tag] = (token, properties.message_id)
        self._next_tag += 1

    def _wait_for_room(self) -> None:
        """Until the window has room again; a broker that withholds confirms (a memory alarm, a
        quorum queue without its majority) ends the wait after `confirm_timeout`."""
        deadline = time.monotonic() + self.confirm_timeout
        while len(self._outstanding) >= self.window:
            # Confirms are handled below the BlockingConnection's own event queue, so it would sleep
            # out the whole time limit: poll in short steps instead.
            self.connection.process_data_events(time_limit=0.002)
            self._raise_if_failed()
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{len(self._outstanding)} messages not confirmed after {self.confirm_timeout:.0f} s"
                )

    def settle(self, timeout: float = 5.0) -> None:
        """After a failure: collect the confirms still in flight (so they are reported), for at
        most `timeout` seconds. Never raises for the failure itself."""
        deadline = time.monotonic() + timeout
        try:
            while self._outstanding and time.monotonic() < deadline:
                self.connection.process_data_events(time_limit=0.005)
        except CONNECTION_ERRORS:
            pass

    def wait_for_confirms(self, timeout: float = 30.0) -> None:
        """Block until every published message is confirmed; raises PublishFailed or TimeoutError."""
        deadline = time.monotonic() + timeout
        while self._outstanding:
            self._raise_if_failed()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(self._outstanding)} messages not confirmed after {timeout:.0f} s")
            self.connection.process_data_events(time_limit=min(remaining, 0.005))
        self._raise_if_failed()

    @property
    def unconfirmed(self) -> int:
        return len(self._outstanding)

    def close(self) -> None:
        try:
            if self.channel.is_open:
                self.channel.close()
        except CONNECTION_ERRORS:
            pass


def event_properties(
    *, event_id: str, event_type: str, timestamp: float | None, headers: dict[str, Any] | None = None,
    content_type: str = "application/json",
) -> BasicProperties:
    """The AMQP properties our publishers set on every event (DESIGN.md "Messages on the wire")."""
    return BasicProperties(
        message_id=event_id,
        type=event_type,
        timestamp=int(timestamp) if timestamp is not None else None,
        delivery_mode=pika.DeliveryMode.Persistent,
        content_type=content_type,
        headers=headers,
    )


def properties_to_dict(properties: BasicProperties) -> dict[str, Any]:
    """JSON-able view of AMQP properties (for the store's metadata)."""
    out: dict[str, Any] = {}
    for name in (
        "content_type", "content_encoding", "headers", "delivery_mode", "priority", "correlation_id",
        "reply_to", "expiration", "message_id", "timestamp", "type", "user_id", "app_id",
    ):
        value = getattr(properties, name, None)
        if value is not None:
            out[name] = _jsonable(value)
    return out


def properties_from_dict(data: dict[str, Any], *, headers: dict[str, Any] | None = None) -> BasicProperties:
    """Rebuild AMQP properties from the stored view; `headers` are merged over the stored ones."""
    fields = {k: v for k, v in data.items() if k != "headers"}
    merged = dict(data.get("headers") or {})
    if headers:
        merged.update(headers)
    return BasicProperties(headers=merged or None, **fields)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.hex()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)  # Decimal, datetime in headers
