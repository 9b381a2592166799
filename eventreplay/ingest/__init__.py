"""The consumer: archive every event of the exchange into the event store (consumer.py), with
triage of each delivery (triage.py), batching (batch.py), the dead-letter queue (dead_letters.py)
and counters (stats.py). `main` is the entry point's body (main.py)."""
from eventreplay.ingest.consumer import ArchiveConsumer
from eventreplay.ingest.stats import IngestStats

__all__ = ["ArchiveConsumer", "IngestStats"]
