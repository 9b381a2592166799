"""Room on the disk that holds the database, its WAL and its shared-memory file.

A full disk: reads still work (ping passes), appends fail with SQLITE_FULL. Whether appending can
work again is told first by the free space of the filesystem (a WAL file that was checkpointed is
reused from its start without growing, so a small write may well succeed on a full disk while the
next checkpoint, or a real batch, cannot), then by a small committed write (the store's probe_write).
"""
from __future__ import annotations

import os
from pathlib import Path

from eventreplay.store.base import StoreUnavailable

# Free space below which the disk counts as full: room for a few batches of typical events in the
# WAL (500 take about 0.7 MB) and for the checkpoint that copies them into the database file.
# Resuming with less would only meet SQLITE_FULL again.
MIN_FREE_BYTES = 4 * 1024 * 1024


def free_bytes(directory: Path) -> int:
    """Bytes this process may still write on the filesystem holding `directory`: root may also use
    the blocks the filesystem reserves for it (ext4's 5%), anyone else only the available ones."""
    stat = os.statvfs(directory)
    blocks = stat.f_bfree if os.geteuid() == 0 else stat.f_bavail
    return blocks * stat.f_frsize


def check_free_space(directory: Path, minimum: int) -> None:
    try:
        free = free_bytes(directory)
    except OSError as error:
        raise StoreUnavailable(f"SQLite store: cannot tell the free space of {directory}: {error}") from None
    if free < minimum:
        raise StoreUnavailable(
            f"SQLite store: disk full: {free} bytes free on the filesystem of {directory} "
            f"(appending needs at least {minimum})"
        )
