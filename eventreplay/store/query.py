"""Which events to read (EventQuery), and the rules its parts follow wherever they come from: the
Replay API's request body and query string, the UI's forms (one home for each rule).

- match: equality on top-level payload fields; a JSON object of 1..200-character names to scalar
  values (text, integer, finite number, true/false, null), at most MAX_MATCH_FIELDS of them;
- time window: `since` (inclusive) must be earlier than `until` (exclusive); a naive time is UTC.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Mapping

from eventreplay.schema import read_json

if TYPE_CHECKING:
    from eventreplay.store.base import NewEvent, StoredEvent

MAX_MATCH_FIELDS = 20
MAX_FIELD_NAME = 200
MATCH_EXAMPLE = '{"order_id": "o-1"}'


def check_match(value: Any) -> dict[str, Any]:
    """The match as a dict, or ValueError saying what is wrong with it."""
    if not isinstance(value, dict):
        raise ValueError(f"must be a JSON object of field names to plain values, e.g. {MATCH_EXAMPLE}")
    if len(value) > MAX_MATCH_FIELDS:
        raise ValueError(f"names at most {MAX_MATCH_FIELDS} fields")
    for key, item in value.items():
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_FIELD_NAME:
            raise ValueError(f"field names are 1 to {MAX_FIELD_NAME} characters")
        if not (item is None or isinstance(item, (str, int, float, bool))):
            raise ValueError(f"value for {key!r} must be a plain value (text, number, true/false or null)")
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"value for {key!r} must be a finite number")
    return value


def parse_match(text: str) -> dict[str, Any]:
    """A match given as JSON text (a query string, a form field); ValueError saying why not."""
    try:
        value = read_json(text)
    except ValueError as error:
        raise ValueError(f"{error}; e.g. {MATCH_EXAMPLE}") from None
    return check_match(value)


def check_window(since: datetime | None, until: datetime | None) -> None:
    if since is not None and until is not None and since >= until:
        raise ValueError("since must be earlier than until")


def payload_matches(body: bytes, match: Mapping[Any, Any]) -> bool:
    """The match evaluated in Python on a stored body (a body that is not a JSON object matches
    nothing)."""
    try:
        payload = json.loads(body)
    except ValueError:
        return False
    if not isinstance(payload, dict):
        return False
    return all(key in payload and payload[key] == value for key, value in match.items())


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Which events to read. Every field narrows the result; results come in global order."""

    event_types: tuple[str, ...] | None = None  # None = every type
    since: datetime | None = None  # inclusive, on the event's own timestamp (aware)
    until: datetime | None = None  # exclusive
    after_position: int | None = None  # exclusive
    limit: int | None = None
    match: Mapping[str, Any] | None = None  # equality on top-level payload fields
    up_to_position: int | None = None  # inclusive: only what the store held when this was read

    def __post_init__(self) -> None:
        # Callers (API query strings, the prototype's habits) hand in naive datetimes meaning UTC and
        # lists of types; normalising here keeps every backend's comparisons aware-vs-aware.
        for name in ("since", "until"):
            moment = getattr(self, name)
            if moment is not None:
                aware = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment
                object.__setattr__(self, name, aware.astimezone(timezone.utc))
        if self.event_types is not None and not isinstance(self.event_types, tuple):
            types = (self.event_types,) if isinstance(self.event_types, str) else tuple(self.event_types)
            object.__setattr__(self, "event_types", types)
        if self.limit is not None and self.limit < 0:
            raise ValueError("limit must be >= 0")

    @property
    def selects_nothing(self) -> bool:
        """A query no event can satisfy (limit 0, an empty list of types): no store need look."""
        return self.limit == 0 or self.event_types == ()

    def matches(self, event: StoredEvent | NewEvent) -> bool:
        """The whole query except position and limit, evaluated in Python (for backends that cannot
        filter some part server-side)."""
        if self.event_types is not None and event.event_type not in self.event_types:
            return False
        if self.since is not None and event.timestamp < self.since:
            return False
        if self.until is not None and event.timestamp >= self.until:
            return False
        return not self.match or payload_matches(event.body, self.match)
