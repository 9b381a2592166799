"""The EventStoreDB backend (esdbclient), for `esdb://` and `esdb+discover://` URLs: store.py says
what it guarantees, mapping.py how events map to streams."""
from eventreplay.store.esdb.mapping import EXCLUDED_TYPES, MARKER, stream_for, translate
from eventreplay.store.esdb.store import EventStoreDBEventStore

__all__ = ["EXCLUDED_TYPES", "MARKER", "EventStoreDBEventStore", "stream_for", "translate"]
