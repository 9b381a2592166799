"""The consumer: archive every event of the exchange into the event store (consumer.py), with
triage of each delivery (triage.py), batching (batch.py), the dead-letter queue (dead_letters.py)
counters (stats.py) and Prometheus metrics (metrics.py, fed through the IngestObserver of observer.py).
`main` is the entry point's body (main.py)."""
from eventreplay.ingest.consumer import ArchiveConsumer
from eventreplay.ingest.metrics import IngestMetrics
from eventreplay.ingest.stats import IngestStats

__all__ = ["ArchiveConsumer", "IngestMetrics", "IngestStats"]
