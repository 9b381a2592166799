"""The wire format of dead letters, without a broker: what the archive consumer writes on a dead
letter, how one is shown (its id, reason, time, a preview), and what a redriven message carries so
that the consumer archives it exactly as it would have the first time.

A dead letter is the original body with the original properties (the republishing rule of
eventreplay/broker/properties.py: where it came from in `x-original-*` headers) plus:
- `x-dead-letter-reason`: why the consumer refused it (one line);
- `x-dead-letter-id`: a UUID, its id for browsing and choosing it (older dead letters have none:
  their id is a hash of body and headers, see `letter_id`);
- `x-dead-lettered-at`: when, ISO 8601 UTC.

A redriven message goes to the archive queue alone (default exchange), with the dead-letter headers
dropped and `x-redriven-at` added; the consumer (ingest/triage.py) takes its routing key and exchange
from `x-original-*` and stores the properties without the headers the trip added (`redriven_original`).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

from pika.spec import BasicProperties

from eventreplay.broker.properties import (
    ORIGINAL_EXCHANGE_HEADER, ORIGINAL_ROUTING_KEY_HEADER, ORIGINAL_USER_ID_HEADER, properties_to_dict,
)

REASON_HEADER = "x-dead-letter-reason"
ID_HEADER = "x-dead-letter-id"
DEAD_LETTERED_AT_HEADER = "x-dead-lettered-at"
REDRIVEN_AT_HEADER = "x-redriven-at"
DEAD_LETTER_HEADERS = (REASON_HEADER, ID_HEADER, DEAD_LETTERED_AT_HEADER)
# added by the broker on each delivery of a quorum queue's message: not part of the message
DELIVERY_COUNT_HEADER = "x-delivery-count"

NO_REASON = "(no reason recorded)"  # a message put into the dead-letter queue by something else
PREVIEW_CHARS = 200
_EVENT_TYPE_SCAN_BYTES = 64 * 1024  # a body larger than this is not parsed just to name its type


@dataclass(frozen=True, slots=True)
class DeadLetterView:
    id: str
    reason: str
    dead_lettered_at: str | None
    routing_key: str | None
    exchange: str | None
    message_id: str | None
    event_type: str | None
    content_type: str | None
    size: int
    preview: str


def headers_of(properties: BasicProperties) -> dict[str, Any]:
    return dict(properties.headers or {})


def delivery_count(properties: BasicProperties) -> int:
    """How often the queue has delivered this message before (0 when the header is absent)."""
    try:
        return int(headers_of(properties).get(DELIVERY_COUNT_HEADER) or 0)
    except (TypeError, ValueError):
        return 0


def letter_id(properties: BasicProperties, body: bytes) -> str:
    """The `x-dead-letter-id` header, or, for a dead letter written before that header existed, a
    hash of its body and properties (without the delivery count the broker adds): stable across
    browses, and the same for two dead letters only if they are byte for byte the same message."""
    given = headers_of(properties).get(ID_HEADER)
    if given:
        return _text(given)
    view = properties_to_dict(properties)
    headers = {k: v for k, v in (view.get("headers") or {}).items() if k != DELIVERY_COUNT_HEADER}
    view["headers"] = headers
    digest = hashlib.sha256(json.dumps(view, sort_keys=True, default=str).encode() + b"\0" + body)
    return "sha256-" + digest.hexdigest()[:32]


def view_of(properties: BasicProperties, body: bytes) -> DeadLetterView:
    headers = headers_of(properties)
    at = headers.get(DEAD_LETTERED_AT_HEADER)
    return DeadLetterView(
        id=letter_id(properties, body),
        reason=_text(headers.get(REASON_HEADER)) or NO_REASON,
        dead_lettered_at=_text(at) if at else None,
        routing_key=_optional_text(headers.get(ORIGINAL_ROUTING_KEY_HEADER)),
        exchange=_optional_text(headers.get(ORIGINAL_EXCHANGE_HEADER)),
        message_id=properties.message_id,
        event_type=properties.type or _event_type_in(body),
        content_type=properties.content_type,
        size=len(body),
        preview=preview(body),
    )


def dead_letter_headers(reason: str, letter_uuid: str, now: datetime | None = None) -> dict[str, str]:
    """The headers the consumer adds to a dead letter."""
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return {REASON_HEADER: reason, ID_HEADER: letter_uuid,
            DEAD_LETTERED_AT_HEADER: moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")}


def preview(body: bytes, chars: int = PREVIEW_CHARS) -> str:
    """The start of the body as one line of text: undecodable bytes as U+FFFD, control characters
    (line breaks included) as spaces or U+FFFD, at most `chars` characters (then "…")."""
    text = body[: chars * 4 + 4].decode("utf-8", errors="replace")
    shown = "".join(c if c.isprintable() else (" " if c in "\n\r\t" else "\ufffd") for c in text[:chars])
    return shown + "…" if len(text) > chars or len(body) > chars * 4 + 4 else shown


def redrive_properties(properties: BasicProperties, redriven_at: str) -> BasicProperties:
    """The properties a dead letter is sent back to the archive queue with: as delivered, without
    the dead-letter and delivery-count headers, with `x-redriven-at` (the `x-original-*` headers
    stay: the consumer restores the routing key, the exchange and the user id from them)."""
    headers = {k: v for k, v in headers_of(properties).items()
               if k not in DEAD_LETTER_HEADERS and k != DELIVERY_COUNT_HEADER}
    headers[REDRIVEN_AT_HEADER] = redriven_at
    return _with_headers(properties, headers)


def refreshed_properties(properties: BasicProperties) -> BasicProperties:
    """The same dead letter published again into its queue (a new message, so its delivery count
    starts again): every header but the broker's delivery count."""
    headers = {k: v for k, v in headers_of(properties).items() if k != DELIVERY_COUNT_HEADER}
    return _with_headers(properties, headers)


@dataclass(frozen=True, slots=True)
class Redriven:
    """A redriven message as first published: where it was sent and its stored properties view."""
    routing_key: str
    exchange: str
    properties: dict[str, Any]


def redriven_original(properties: BasicProperties) -> Redriven | None:
    """For a message a redrive sent (`x-redriven-at` with `x-original-routing-key`), the routing key,
    exchange and stored properties of the original, as its first delivery would have had them; None
    for any other message."""
    headers = headers_of(properties)
    if REDRIVEN_AT_HEADER not in headers or ORIGINAL_ROUTING_KEY_HEADER not in headers:
        return None
    stored = properties_to_dict(properties)
    kept = {k: v for k, v in (stored.get("headers") or {}).items() if k not in _TRIP_HEADERS}
    if kept:
        stored["headers"] = kept
    else:
        stored.pop("headers", None)
    user_id = headers.get(ORIGINAL_USER_ID_HEADER)
    if user_id:
        stored["user_id"] = _text(user_id)
    return Redriven(_text(headers[ORIGINAL_ROUTING_KEY_HEADER]), _text(headers.get(ORIGINAL_EXCHANGE_HEADER)),
                    stored)


_TRIP_HEADERS = frozenset({*DEAD_LETTER_HEADERS, DELIVERY_COUNT_HEADER, REDRIVEN_AT_HEADER, ORIGINAL_ROUTING_KEY_HEADER,
                           ORIGINAL_EXCHANGE_HEADER, ORIGINAL_USER_ID_HEADER})


def _with_headers(properties: BasicProperties, headers: Mapping[str, Any]) -> BasicProperties:
    fields = {name: getattr(properties, name) for name in (
        "content_type", "content_encoding", "delivery_mode", "priority", "correlation_id", "reply_to",
        "expiration", "message_id", "timestamp", "type", "user_id", "app_id", "cluster_id")}
    fields["user_id"] = None  # the broker refuses a user_id that is not the publishing connection's
    return BasicProperties(**fields, headers=dict(headers))


def _event_type_in(body: bytes) -> str | None:
    if len(body) > _EVENT_TYPE_SCAN_BYTES:
        return None
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return None
    event_type = payload.get("event_type") if isinstance(payload, dict) else None
    return event_type if isinstance(event_type, str) else None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)
