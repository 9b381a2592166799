"""Many appends to many streams in one round trip: EventStoreDB's BatchAppend call carries any
number of independent requests (one correlation id each, each atomic on its own stream), which is
how EventStoreDB's own clients pipeline writes. esdbclient 1.1.7 sends one request per call, so this
module builds the requests with esdbclient's own request builder and sends them over the client's
channel together.

It reaches into three esdbclient internals (the streams service's stub, its call metadata and the
request builder); where they are missing (another esdbclient version) it falls back to one
`append_to_stream` per stream on a small thread pool (the client is thread-safe): the same results,
a few times slower (the figures are in the module docstring of store.py).
"""
from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence, Union

import grpc
from esdbclient import EventStoreDBClient, StreamState
from esdbclient import NewEvent as ESDBNewEvent
from esdbclient import exceptions as esdb_errors
from esdbclient.common import handle_rpc_error

try:  # the internals used for one-call appends (present in esdbclient 1.1.x)
    from esdbclient.streams import BaseStreamsService
    from esdbclient.protos.Grpc import shared_pb2

    _BUILD = BaseStreamsService._construct_batch_append_req
except (ImportError, AttributeError):  # pragma: no cover - another esdbclient
    _BUILD = None

Expected = Union[int, StreamState]
POOL_SIZE = 8
POOL = ThreadPoolExecutor(POOL_SIZE, thread_name_prefix="esdb-append")


@dataclass(frozen=True, slots=True)
class Write:
    stream: str
    expected: Expected
    events: Sequence[ESDBNewEvent]


class Conflict(Exception):
    """The stream was not at the expected version (for a claim: the stream exists already)."""


Result = Union[int, Exception]  # the commit position of the write's last event, or why it failed


def append_many(client: EventStoreDBClient, writes: Sequence[Write], timeout: float) -> list[Result]:
    """One result per write, in order: its last event's commit position, Conflict, or the
    esdbclient/gRPC error. A failure of the call itself (connection lost) raises."""
    writes = [w for w in writes]
    if not writes:
        return []
    if _BUILD is not None and hasattr(client, "streams"):
        try:
            return _one_call(client, writes, timeout)
        except AttributeError:  # pragma: no cover - internals changed shape
            pass
    return list(POOL.map(lambda write: _single(client, write, timeout), writes))


def _single(client: EventStoreDBClient, write: Write, timeout: float) -> Result:
    try:
        return client.append_to_stream(write.stream, current_version=write.expected, events=list(write.events),
                                       timeout=timeout)
    except esdb_errors.WrongCurrentVersion as error:
        return Conflict(str(error))
    except Exception as error:  # noqa: BLE001 - returned to the caller, who decides
        return error


def _one_call(client: EventStoreDBClient, writes: list[Write], timeout: float) -> list[Result]:
    service = client.streams
    requests, by_correlation = [], {}
    for index, write in enumerate(writes):
        correlation = uuid.uuid4()
        by_correlation[str(correlation)] = index
        requests.append(_BUILD(stream_name=write.stream, current_version=write.expected, events=list(write.events),
                               correlation_id=correlation, timeout=timeout))
    results: list[Result | None] = [None] * len(writes)
    try:
        responses = service._stub.BatchAppend(
            iter(requests), timeout=timeout,
            metadata=service._metadata(client._call_metadata, requires_leader=True),
            credentials=client._call_credentials,
        )
        for response in responses:
            index = by_correlation.get(response.correlation_id.string)
            if index is None:
                continue
            results[index] = _result(response, writes[index])
            if all(result is not None for result in results):
                responses.cancel()
                break
    except grpc.RpcError as error:
        if all(result is not None for result in results):
            return results  # type: ignore[return-value] - cancelled after the last answer
        raise handle_rpc_error(error) from None
    missing = [writes[i].stream for i, result in enumerate(results) if result is None]
    if missing:
        raise esdb_errors.EventStoreDBClientException(f"no answer for the appends to {missing[:3]}")
    return results  # type: ignore[return-value]


def _result(response, write: Write) -> Result:
    if response.WhichOneof("result") == "success":
        return response.success.position.commit_position
    details = response.error.details
    if details.Is(shared_pb2.WrongExpectedVersion.DESCRIPTOR):
        return Conflict(f"stream {write.stream!r} is not at {write.expected}")
    if details.Is(shared_pb2.StreamDeleted.DESCRIPTOR):
        return esdb_errors.StreamIsDeleted(f"stream {write.stream!r} is deleted")
    if details.Is(shared_pb2.MaximumAppendSizeExceeded.DESCRIPTOR):
        return esdb_errors.EventStoreDBClientException(f"append to {write.stream!r} exceeds the maximum size")
    return esdb_errors.EventStoreDBClientException(
        f"append to {write.stream!r} failed: {response.error.message or response.error.code}")
