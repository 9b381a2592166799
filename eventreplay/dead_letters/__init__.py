"""The dead-letter queue as something an operator can act on: look at its messages without taking
them (browse), send chosen ones back to be archived (redrive), or drop them (discard).

- letters.py: the wire format of a dead letter (its headers, its id, its view) and of a redriven
  message (what the archive consumer restores from it), with no broker in sight;
- delivery_limit.py: how many returns the dead-letter queue allows each message (a quorum queue
  drops a message returned too often, and browsing returns every message it looks at);
- box.py: DeadLetterBox, the operations on the broker, one at a time.
"""
from eventreplay.dead_letters.box import BoxUnavailable, DeadLetterBox, Selection
from eventreplay.dead_letters.letters import (
    DEAD_LETTERED_AT_HEADER, ID_HEADER, REASON_HEADER, REDRIVEN_AT_HEADER, DeadLetterView, Redriven, redriven_original,
)

__all__ = [
    "DEAD_LETTERED_AT_HEADER", "ID_HEADER", "REASON_HEADER", "REDRIVEN_AT_HEADER", "BoxUnavailable",
    "DeadLetterBox", "DeadLetterView", "Redriven", "Selection", "redriven_original",
]
