"""What a replay is asked to do: which events, where to, how fast. Validated once, here, so that the
API, the engine and a resumed job after a restart all work from the same checked description."""
from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from eventreplay.schema import as_utc
from eventreplay.store.query import MATCH_EXAMPLE, MAX_MATCH_FIELDS, EventQuery, check_match, check_window

# AMQP short strings are at most 255 bytes; RabbitMQ reserves the `amq.` prefix for its own objects.
MAX_NAME_BYTES = 255
RESERVED_PREFIX = "amq."
# Generous bounds that keep every value inside what the stores and the broker accept (an SQLite
# LIMIT is a signed 64-bit integer).
MAX_LIMIT = 10**12
MAX_RATE = 1_000_000.0
MAX_SPEED = 1e9

def check_amqp_name(value: str, what: str) -> str:
    if value == "":
        raise ValueError(f"{what} must not be empty")
    if len(value.encode("utf-8")) > MAX_NAME_BYTES:
        raise ValueError(f"{what} is longer than {MAX_NAME_BYTES} bytes")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError(f"{what} must not contain control characters")
    if value.lower().startswith(RESERVED_PREFIX):
        raise ValueError(f"{what} must not start with {RESERVED_PREFIX!r} (reserved by RabbitMQ)")
    return value

def check_event_type(value: str) -> str:
    if not value or value != value.strip() or not value.isprintable():
        raise ValueError("event types must be non-empty printable text without surrounding spaces")
    if len(value) > 200:
        raise ValueError("event types are at most 200 characters")
    return value

class ReplaySpec(BaseModel):
    """The fields of `POST /replay` (docs/api.md). Unknown fields are refused so that a typo
    (`target_queu`) is a 422 instead of a replay to nowhere."""

    model_config = ConfigDict(extra="forbid")

    event_type: str | None = Field(None, description="One event type (the prototype's field).")
    event_types: list[str] | None = Field(
        None, max_length=100, description="Several event types (union with `event_type`). No type at all = every type."
    )
    target_queue: str | None = Field(
        None, description="Publish to this queue (default exchange, routing key = the queue name)."
    )
    target_exchange: str | None = Field(None, description="Publish to this exchange instead of a queue.")
    routing_key: str | None = Field(
        None, description="Routing key for `target_exchange`; omitted = each event's original routing key."
    )
    since: datetime | None = Field(None, description="Events with timestamp >= since (ISO 8601; naive = UTC).")
    until: datetime | None = Field(None, description="Events with timestamp < until (ISO 8601; naive = UTC).")
    match: dict[str, Any] | None = Field(
        None, description=f"Equality on top-level payload fields (at most {MAX_MATCH_FIELDS}), e.g. {MATCH_EXAMPLE}."
    )
    limit: int | None = Field(None, gt=0, le=MAX_LIMIT, description="At most this many events.")
    rate: float | None = Field(None, gt=0, le=MAX_RATE, description="At most this many events per second.")
    speed: float | None = Field(
        None, gt=0, le=MAX_SPEED,
        description="Keep the original spacing between events, scaled (1 = real time, 60 = a minute per second).",
    )
    create_queue: bool = Field(False, description="Declare a durable target queue if it is missing.")
    dry_run: bool = Field(False, description="Count and show up to 5 sample events; publish nothing.")

    @field_validator("event_type")
    @classmethod
    def _event_type(cls, value: str | None) -> str | None:
        return None if value is None else check_event_type(value)

    @field_validator("event_types")
    @classmethod
    def _event_types(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [check_event_type(v) for v in value]

    @field_validator("target_queue")
    @classmethod
    def _queue(cls, value: str | None) -> str | None:
        return None if value is None else check_amqp_name(value, "target_queue")

    @field_validator("target_exchange")
    @classmethod
    def _exchange(cls, value: str | None) -> str | None:
        return None if value is None else check_amqp_name(value, "target_exchange")

    @field_validator("routing_key")
    @classmethod
    def _routing_key(cls, value: str | None) -> str | None:
        if value is not None and len(value.encode("utf-8")) > MAX_NAME_BYTES:
            raise ValueError(f"routing_key is longer than {MAX_NAME_BYTES} bytes")
        return value

    # Before pydantic's own coercion, which would read `true` as 1, `"5"` as 5 and report 1e30 as
    # "Unable to parse input string": a count is a JSON integer, a pace a finite JSON number.
    @field_validator("limit", mode="before")
    @classmethod
    def _strict_limit(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool):
            raise ValueError(f"limit must be an integer between 1 and {MAX_LIMIT}, not {str(value).lower()}")
        if not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
            raise ValueError(f"limit must be an integer between 1 and {MAX_LIMIT}")
        return value

    @field_validator("rate", "speed", mode="before")
    @classmethod
    def _finite_pace(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return None
        if isinstance(value, bool):
            raise ValueError(f"{info.field_name} must be a number, not {str(value).lower()}")
        if not isinstance(value, (int, float)):
            raise ValueError(f"{info.field_name} must be a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{info.field_name} must be a finite number")
        return value

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)

    @field_validator("until")
    @classmethod
    def _after_since(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        check_window(info.data.get("since"), value)  # reported on `until`, beside that field in the UI
        return value

    @field_validator("match")
    @classmethod
    def _match(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else check_match(value)

    @model_validator(mode="after")
    def _coherent(self) -> "ReplaySpec":
        if self.rate is not None and self.speed is not None:
            raise ValueError("give either rate or speed, not both")
        if self.target_queue is not None and self.target_exchange is not None:
            raise ValueError("give either target_queue or target_exchange, not both")
        if self.routing_key is not None and self.target_exchange is None:
            raise ValueError("routing_key goes with target_exchange")
        if self.create_queue and self.target_queue is None and not self.dry_run:
            raise ValueError("create_queue goes with target_queue")
        if not self.dry_run and self.target_queue is None and self.target_exchange is None:
            raise ValueError("a target is required: target_queue or target_exchange")
        return self

    # derived views -----------------------------------------------------------------------------
    @property
    def types(self) -> tuple[str, ...] | None:
        """The union of `event_type` and `event_types`, in the order given; None = every type."""
        chosen: list[str] = []
        for name in ([self.event_type] if self.event_type else []) + list(self.event_types or []):
            if name not in chosen:
                chosen.append(name)
        return tuple(chosen) or None

    def query(self, *, after_position: int | None = None, limit: int | None = None,
              up_to_position: int | None = None) -> EventQuery:
        return EventQuery(
            up_to_position=up_to_position,
            event_types=self.types,
            since=self.since,
            until=self.until,
            after_position=after_position,
            limit=self.limit if limit is None else limit,
            match=dict(self.match) if self.match else None,
        )

    @property
    def target_description(self) -> str:
        if self.target_queue is not None:
            return f"queue {self.target_queue!r}"
        if self.target_exchange is not None:
            key = repr(self.routing_key) if self.routing_key is not None else "the original routing key"
            return f"exchange {self.target_exchange!r} with {key}"
        return "none (dry run)"
