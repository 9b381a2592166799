"""Copy: every event of one store into another (SQLite -> EventStoreDB when an archive outgrows one
machine), streaming, resumable after a kill, verified at the end (verify.py).

A run fixes its snapshot first (`up_to_position` = the source's last position then) and reads the
source after the checkpoint's position, in batches; after the target has durably stored a batch
(EventStore.append returns only then), the checkpoint (checkpoint.py) moves to that batch's last
source position. A kill between the two makes the next run send that batch again, which the
target skips (appends are idempotent by event_id). Running the same command again later copies what
the source stored since: a catch-up before the consumer switches stores.

The first run wants an empty target: copying an archive into one that holds events already would
make the verification meaningless, and EventStoreDB recognises repeated ids among its last 100,000
events only, so a second full copy into it would store duplicates. A run that finds the pair's
checkpoint continues instead, whatever the target holds.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from eventreplay.archive_io.checkpoint import CopyState, load
from eventreplay.archive_io.stores import GIVE_UP_S, append_retrying, as_new, closing, display_url
from eventreplay.retrying import RetryPolicy, one_line
from eventreplay.store.base import EventQuery, EventRejected, EventStore, StoredEvent, StoreUnavailable

BATCH_SIZE = 2000


class CopyError(Exception):
    """A copy that cannot start or go on; the message says why and what to do."""


@dataclass
class CopyRun:
    up_to_position: int
    resumed_after: int | None  # the checkpoint's position at the start (None: from the beginning)
    earlier: int  # events copied by earlier runs
    copied: int = 0  # this run
    new: int = 0  # of which new in the target
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.copied / self.seconds if self.seconds > 0 else 0.0


def prepare(source_url: str, target_url: str, target: EventStore, state_path: Path, *,
            restart: bool = False) -> CopyState:
    """The pair's state: the checkpoint of an earlier run, or a new one (saved at once, so that a
    run killed after its first batch is continued, not refused for a non-empty target)."""
    if restart:
        state_path.unlink(missing_ok=True)
    state = load(state_path)
    if state is not None:
        return state
    for _ in closing(target.read(EventQuery(limit=1))):
        raise CopyError(
            f"the target {display_url(target_url)} already holds events, and no earlier copy between these stores "
            f"left a checkpoint ({state_path}): copy into an empty store (to merge archives, use export and import)"
        )
    state = CopyState(source=display_url(source_url), target=display_url(target_url), path=state_path)
    state.save()
    return state


def copy_events(source: EventStore, target: EventStore, state: CopyState, *, up_to_position: int,
                batch_size: int = BATCH_SIZE, progress: Callable[[int], None] | None = None,
                say: Callable[[str], None] = print, policy: RetryPolicy | None = None) -> CopyRun:
    """Copy the source's events after the checkpoint up to `up_to_position`, moving the checkpoint
    after each stored batch. An unavailable store is waited out (reading again from the checkpoint)
    for the policy's give-up time."""
    policy = policy or RetryPolicy(give_up_after=GIVE_UP_S)
    run = CopyRun(up_to_position=up_to_position, resumed_after=state.last_position, earlier=state.copied)
    state.runs += 1
    state.completed = False
    state.save()
    started = time.monotonic()

    def commit(batch: list[StoredEvent]) -> None:
        try:
            new = append_retrying(target, [as_new(event) for event in batch], policy, say=say)
        except EventRejected as refused:
            event_id, reason = next(iter(refused.reasons.items()))
            position = next((e.position for e in batch if e.event_id == event_id), "?")
            raise CopyError(
                f"the target refuses event {event_id} (source position {position}) for good: {reason}; "
                f"everything up to source position {state.last_position} is copied"
            ) from None
        state.last_position = batch[-1].position
        state.copied += len(batch)
        state.new += new
        state.save()
        run.copied += len(batch)
        run.new += new
        if progress is not None:
            progress(run.copied)

    while True:
        try:
            query = EventQuery(after_position=state.last_position, up_to_position=up_to_position)
            batch: list[StoredEvent] = []
            for event in closing(source.read(query)):
                batch.append(event)
                if len(batch) >= batch_size:
                    commit(batch)
                    batch = []
            if batch:
                commit(batch)
            break
        except StoreUnavailable as error:
            delay = policy.failed()
            if policy.gives_up_in() <= 0:
                raise
            say(f"a store is unavailable ({one_line(error)}); reading again after source position "
                f"{state.last_position} in {delay:.1f} s")
            policy.sleep(delay)
    state.completed = True
    state.save()
    run.seconds = time.monotonic() - started
    return run
