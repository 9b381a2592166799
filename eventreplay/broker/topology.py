"""The archive's exchange and queues, declared idempotently by whoever needs them first."""
from __future__ import annotations

from dataclasses import dataclass


def declare_exchange(channel, exchange: str) -> None:
    channel.exchange_declare(exchange, exchange_type="topic", durable=True)


@dataclass(frozen=True)
class ArchiveTopology:
    exchange: str
    queue: str
    dead_letter_queue: str

    def declare(self, channel) -> None:
        """The durable topic exchange, the archive queue bound with `#`, and the dead-letter queue
        (fed directly by the consumer with the reason in a header)."""
        declare_exchange(channel, self.exchange)
        channel.queue_declare(self.queue, durable=True)
        channel.queue_bind(self.queue, self.exchange, routing_key="#")
        channel.queue_declare(self.dead_letter_queue, durable=True)
