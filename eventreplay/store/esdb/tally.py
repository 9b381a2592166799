"""What the archive holds, kept durably so that no process re-reads `$all` from the start: events
per type, the routing-key streams, and time blocks, all derived from the log (like a projection).

- Counts per type are of the events *appended*; what the retention removed is subtracted by the
  caller (retention.py keeps that beside its rules), so any process may write a checkpoint: every
  checkpoint is true of the log up to its position, whoever computed it.
- Time blocks: the log's positions cut into fixed ranges of 2**BLOCK_BITS (16 MiB of log, some tens
  of thousands of events), each with the smallest and largest event timestamp and the event count.
  A time window or a retention cutoff reads only the blocks that can hold its events. A block is
  closed once an event beyond it was seen; closed blocks are appended to the private stream
  `time-blocks` (never rewritten: the same block written twice by two processes is the same block).
  After pruning, retention.py appends the block's surviving count and timestamps as a
  `TimeBlocksPruned` event with the retention record's version; the newest such version wins.
- The checkpoint (private stream `tally`): position, counts, streams, the open blocks. Appending
  processes write it every CHECKPOINT_EVERY folded events or CHECKPOINT_S seconds, and on close;
  on open a process starts from the newest checkpoint and reads `$all` only after its position.
"""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Iterator

from esdbclient.events import RecordedEvent

from eventreplay.store.base import StoredEvent
from eventreplay.store.esdb.mapping import to_us
from eventreplay.store.esdb.multi_append import Conflict
from eventreplay.store.esdb.records import Records

BLOCK_BITS = 24
CHECKPOINT_EVERY = 2_000
CHECKPOINT_S = 30.0
TALLY, BLOCKS = "tally", "time-blocks"


@dataclass(frozen=True, slots=True)
class Block:
    number: int
    min_us: int
    max_us: int
    events: int
    version: int = -1  # the retention record's version it reflects; -1: as appended

    @property
    def start(self) -> int:
        return self.number << BLOCK_BITS

    @property
    def end(self) -> int:  # last position inside
        return ((self.number + 1) << BLOCK_BITS) - 1


def block_of(position: int) -> int:
    return position >> BLOCK_BITS


class Tally:
    def __init__(self, records: Records):
        self._records = records
        self.lock = threading.RLock()
        self.loaded = False
        self.position = 0  # every archived event at or before it is folded in
        self.counts: Counter[str] = Counter()
        self.streams: set[str] = set()
        self._blocks: dict[int, list[int]] = {}  # number -> [min_us, max_us, events], as appended
        self._closed: set[int] = set()  # blocks complete in the time-blocks stream
        self._pruned: dict[int, Block] = {}  # the latest TimeBlocksPruned of each block
        self._blocks_read = 0  # next revision of the time-blocks stream to read
        self._unsaved = 0
        self._saved_at = time.monotonic()
        self._checkpoint_position = 0

    # loading ------------------------------------------------------------------------------------
    def load(self) -> None:
        """The newest checkpoint and every block (once); then refresh() and the caller's catch-up."""
        if self.loaded:
            return
        self.refresh_blocks()
        record = self._records.latest(TALLY)
        if record is not None:
            data = record.data
            self.position = self._checkpoint_position = data["position"]
            self.counts = Counter(data["counts"])
            self.streams = set(data["streams"])
            for number, stats in data["open"].items():
                if int(number) not in self._closed:
                    self._blocks[int(number)] = list(stats)
        self.loaded = True

    def refresh_blocks(self) -> None:
        """What other processes added to the time-blocks stream since we looked."""
        for recorded in self._records.events(BLOCKS, start=self._blocks_read):
            self._blocks_read = recorded.stream_position + 1
            data = json.loads(recorded.data)
            if recorded.type.endswith(".TimeBlocksPruned"):
                for number, (low, high, count) in data["blocks"].items():
                    block = Block(int(number), low, high, count, data["version"])
                    known = self._pruned.get(block.number)
                    if known is None or known.version <= block.version:
                        self._pruned[block.number] = block
            else:
                for number, stats in data["blocks"].items():
                    self._blocks[int(number)] = list(stats)
                    self._closed.add(int(number))

    # folding ------------------------------------------------------------------------------------
    def fold(self, recorded: RecordedEvent, stored: StoredEvent | None) -> None:
        at = recorded.commit_position
        if at <= self.position:
            return
        self.position = at
        if stored is None:
            return
        self.counts[stored.event_type] += 1
        self.streams.add(recorded.stream_name)
        self._unsaved += 1
        number = block_of(at)
        if number in self._closed:
            return  # complete already (another process closed it): never counted twice
        stamp = to_us(stored.timestamp)
        stats = self._blocks.get(number)
        if stats is None:
            self._blocks[number] = [stamp, stamp, 1]
        else:
            stats[0], stats[1], stats[2] = min(stats[0], stamp), max(stats[1], stamp), stats[2] + 1
        known = self._pruned.get(number)  # the open block, as the retention left it: grows too
        if known is not None:
            low, high = (min(known.min_us, stamp), max(known.max_us, stamp)) if known.events else (stamp, stamp)
            self._pruned[number] = Block(number, low, high, known.events + 1, known.version)

    def saw(self, position: int) -> None:
        """Nothing of ours up to `position` (a read that found nothing new)."""
        self.position = max(self.position, position)

    # writing ------------------------------------------------------------------------------------
    def save(self, *, force: bool = False) -> None:
        """Close the blocks behind the position, then write a checkpoint when one is due."""
        complete = {n: s for n, s in self._blocks.items() if n not in self._closed and n < block_of(self.position)}
        if complete:
            self._records.add(BLOCKS, "TimeBlocks", {"blocks": {str(n): s for n, s in sorted(complete.items())}})
            self._closed.update(complete)
        due = self._unsaved >= CHECKPOINT_EVERY or time.monotonic() - self._saved_at >= CHECKPOINT_S
        if self._unsaved and (force or due) or force and self.position > self._checkpoint_position:
            record = self._records.latest(TALLY)
            if record is not None and record.data["position"] >= self.position:
                self._unsaved, self._saved_at = 0, time.monotonic()
                return  # someone wrote one at least as new
            open_blocks = {str(n): s for n, s in self._blocks.items() if n not in self._closed}
            data = {"position": self.position, "counts": dict(self.counts), "streams": sorted(self.streams),
                    "open": open_blocks}
            try:
                self._records.put(TALLY, "Tally", data, record.revision if record else None)
            except Conflict:
                pass  # another process wrote one meanwhile: as good as ours, ours comes next time
            self._unsaved, self._saved_at, self._checkpoint_position = 0, time.monotonic(), self.position

    def pruned(self, blocks: list[Block]) -> None:
        """Blocks as the retention left them: kept here, and written for the closed ones (an open
        block's figures are kept in memory only, growing with it, until it closes)."""
        for block in blocks:
            self._pruned[block.number] = block
        closed = [b for b in blocks if b.number in self._closed]
        if closed:
            self._records.add(BLOCKS, "TimeBlocksPruned", {
                "version": closed[0].version,
                "blocks": {str(b.number): [b.min_us, b.max_us, b.events] for b in closed}})

    # reading ------------------------------------------------------------------------------------
    def blocks(self) -> Iterator[Block]:
        """Every block that may hold a live event, in position order: the retention's figures where
        it pruned the block (timestamps there are exact), else as appended (a superset: bounds)."""
        for number in sorted(self._blocks):
            block = self._pruned.get(number)
            if block is None:
                low, high, count = self._blocks[number]
                block = Block(number, low, high, count)
            if block.events > 0:
                yield block

    def is_closed(self, number: int) -> bool:
        return number in self._closed
