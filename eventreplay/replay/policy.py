"""How a replay run behaves: its window, how often it records progress, how long it rides out faults,
the type of a target queue it creates (the settings REPLAY_WINDOW, REPLAY_CHECKPOINT_EVERY,
REPLAY_GIVE_UP_S, QUEUE_TYPE)."""
from __future__ import annotations

from dataclasses import dataclass

from eventreplay.broker.topology import DEFAULT_QUEUE_TYPE


@dataclass(frozen=True)
class RunPolicy:
    window: int = 1000  # messages in flight (unconfirmed) at most
    checkpoint_every: int = 1000  # confirmed events the run may get ahead of its recorded progress
    checkpoint_interval: float = 0.5  # seconds between progress records while events are confirmed
    give_up_after: float = 300.0  # seconds of faults without progress before the job fails
    confirm_timeout: float = 30.0  # a broker silent this long counts as a fault
    first_delay: float = 0.5  # reconnect delays double from here ...
    longest_delay: float = 10.0  # ... up to here
    queue_type: str = DEFAULT_QUEUE_TYPE  # of a target queue the run declares (create_queue)

    @property
    def resend_bound(self) -> int:
        """At most this many events are sent again by a resume after a crash."""
        return self.window + self.checkpoint_every
