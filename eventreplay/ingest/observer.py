"""What the archive consumer tells whoever watches it (the Prometheus metrics of ingest/metrics.py),
as the replay engine tells a ReplayObserver. Called from the consumer's connection thread, except
`store_committed` (a thread of the batch writer: its own, or the one reading the writer process's
results)."""
from __future__ import annotations

from typing import Protocol

from eventreplay.ingest.batch import Batch


class IngestObserver(Protocol):
    def broker_connected(self, connected: bool) -> None:
        """The consumer is attached to the archive queue (True) or has lost / left the broker (False)."""

    def reconnected(self) -> None:
        """A connection to the broker was opened again after the first one was lost or failed."""

    def message_redelivered(self) -> None:
        """A delivery the broker flagged as redelivered arrived (after a lost connection, say)."""

    def store_committed(self, seconds: float) -> None:
        """One append of a batch's events was committed by the store, taking `seconds`."""

    def batch_acked(self, batch: Batch, new: int) -> None:
        """A batch was stored (`new` of its events were not in the store yet), its dead letters
        confirmed, and all of it acked."""


class NoObserver:
    def broker_connected(self, connected: bool) -> None:
        pass

    def reconnected(self) -> None:
        pass

    def message_redelivered(self) -> None:
        pass

    def store_committed(self, seconds: float) -> None:
        pass

    def batch_acked(self, batch: Batch, new: int) -> None:
        pass
