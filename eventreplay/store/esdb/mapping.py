"""How an archived event is written to EventStoreDB and recognised when read back, and EventStoreDB's
errors in the store's error family.

Stream = stream prefix + routing key (`misc-events` for a routing key that is no usable stream name:
empty, starting with `$`, which EventStoreDB reserves, or with `eventreplay-`, the private records'
namespace); event id = UUID(event_id); type =
event_type; data = the original body bytes; metadata = JSON `{routing_key, exchange, properties,
received_at, timestamp, "eventreplay": 1}`; position = commit position. Only events with the marker
(and, with a prefix, in a stream of that prefix) are archived events; system events (`$...`) and
private records (types `eventreplay.*`) never are.
"""
from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import grpc
from esdbclient import NewEvent as ESDBNewEvent
from esdbclient import exceptions as esdb_errors
from esdbclient.events import RecordedEvent

from eventreplay.schema import dump_json, read_json
from eventreplay.store.base import NewEvent, PersistenceError, StoredEvent, StoreUnavailable

MARKER = "eventreplay"
MISC_STREAM = "misc-events"
PRIVATE_TYPE_PREFIX = "eventreplay."
PRIVATE_STREAM_PREFIX = "eventreplay-"  # after the stream prefix: replay jobs, indexes, tallies
# System types, esdbclient's persistent-subscription config events, and our private records.
EXCLUDED_TYPES = (r"\$.*", r"PersistentConfig\d+", re.escape(PRIVATE_TYPE_PREFIX) + ".*")
_EXCLUDED_TYPE = re.compile("|".join(f"(?:{p})" for p in EXCLUDED_TYPES))
# EventStoreDB refuses appends over 1 MiB (--max-append-size); stay under it with room for framing.
MAX_APPEND_BYTES = 900_000

_TRANSIENT = (
    esdb_errors.ServiceUnavailable,
    esdb_errors.DeadlineExceeded,
    esdb_errors.DiscoveryFailed,
    esdb_errors.NodeIsNotLeader,
    esdb_errors.AbortedByServer,
    esdb_errors.CancelledByClient,
    esdb_errors.GrpcError,  # other transport-level gRPC statuses (UNKNOWN, INTERNAL, ...)
    grpc.RpcError,
)


def translate(error: Exception, doing: str) -> PersistenceError:
    reason = str(error) or type(error).__name__
    message = f"EventStoreDB store: {doing} failed: {type(error).__name__}: {reason}"
    if isinstance(error, _TRANSIENT):
        return StoreUnavailable(message)
    if isinstance(error, ValueError) and "hannel closed" in reason:
        return StoreUnavailable(message)
    return PersistenceError(message)


def _iso(moment: datetime) -> str:
    aware = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment
    return aware.astimezone(timezone.utc).isoformat()


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def stream_for(prefix: str, routing_key: str) -> str:
    usable = (bool(routing_key) and not routing_key.startswith(("$", PRIVATE_STREAM_PREFIX))
              and routing_key.isprintable())
    return prefix + (routing_key if usable else MISC_STREAM)


def private_stream(prefix: str, name: str) -> str:
    return f"{prefix}{PRIVATE_STREAM_PREFIX}{name}"


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def to_us(moment: datetime) -> int:
    aware = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment
    return (aware - _EPOCH) // timedelta(microseconds=1)


def from_us(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def to_esdb(event: NewEvent, event_id: str) -> ESDBNewEvent:
    metadata = {
        "routing_key": event.routing_key, "exchange": event.exchange, "properties": dict(event.properties),
        "received_at": _iso(event.received_at), "timestamp": _iso(event.timestamp), MARKER: 1,
    }
    return ESDBNewEvent(
        type=event.event_type, data=bytes(event.body),
        metadata=dump_json(metadata),
        content_type="application/json", id=uuid.UUID(event_id),
    )


def weight(event: ESDBNewEvent) -> int:
    """What an event counts toward EventStoreDB's append size limit."""
    return len(event.data) + len(event.metadata) + len(event.type) + 100


def archived_event(recorded: RecordedEvent, prefix: str) -> StoredEvent | None:
    """The archived event, or None for events that are not ours (no marker, another prefix, system
    events, private records)."""
    if _EXCLUDED_TYPE.fullmatch(recorded.type) or (prefix and not recorded.stream_name.startswith(prefix)):
        return None
    try:
        metadata = read_json(recorded.metadata) if recorded.metadata else None
    except ValueError:
        return None
    if not isinstance(metadata, dict) or metadata.get(MARKER) != 1:
        return None
    try:
        return StoredEvent(
            position=recorded.commit_position, event_id=str(recorded.id), event_type=recorded.type,
            timestamp=_parse_time(metadata["timestamp"]), body=recorded.data, routing_key=metadata["routing_key"],
            exchange=metadata["exchange"], received_at=_parse_time(metadata["received_at"]),
            properties=metadata.get("properties") or {},
        )
    except (KeyError, TypeError, ValueError):
        return None


def server_filters(prefix: str, event_types: tuple[str, ...] | None) -> dict[str, Any]:
    """The server-side filter of a read of $all: by type, else by the prefix's streams, else
    everything but system events and private records."""
    if event_types is not None:
        # esdbclient joins include patterns as "^a|b$", which anchors only the ends; one group does it.
        pattern = "(?:" + "|".join(re.escape(t) for t in event_types) + ")"
        return {"filter_include": (pattern,), "filter_exclude": (), "filter_by_stream_name": False}
    if prefix:
        # Shared servers hold other prefixes' events, and our private streams (links of the indexes,
        # tallies, jobs) outnumber the archived events: the server drops both before sending.
        pattern = re.escape(prefix) + "(?!" + re.escape(PRIVATE_STREAM_PREFIX) + ").*"
        return {"filter_include": (pattern,), "filter_exclude": (), "filter_by_stream_name": True}
    return {"filter_include": (), "filter_exclude": EXCLUDED_TYPES, "filter_by_stream_name": False}
