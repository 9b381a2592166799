"""Where a copy between two stores has got: a small JSON state file, rewritten durably after every
batch the target has stored, so that the same command run again after a kill continues there.

The file is `RUN_DIR/copies/<first 16 hex digits of SHA-256 of "SOURCE\\nTARGET">.json` (both URLs as
given, so one pair of stores has one file), unless the command names another. It holds the URLs
without passwords, the source position of the last event the target has durably stored, and the
counts. Written as a new file, synced, then renamed over the old one (and the folder synced): a kill
at any moment leaves the previous state or the new one, never half of one.

A lock (`flock` on `<state>.lock`, released by the kernel when the process dies) keeps two copies
of the same pair from running at once.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

VERSION = 1


class CheckpointError(Exception):
    """A state file that cannot be read, written or locked; the message says which and why."""


def default_path(run_dir: Path, source_url: str, target_url: str) -> Path:
    key = hashlib.sha256(f"{source_url}\n{target_url}".encode()).hexdigest()[:16]
    return Path(run_dir) / "copies" / f"{key}.json"


@dataclass
class CopyState:
    source: str  # URLs without passwords, for the operator who finds the file
    target: str
    last_position: int | None = None  # the source position of the last event the target has stored
    copied: int = 0  # source events appended to the target so far, over all runs
    new: int = 0  # of which the target said they were new
    runs: int = 0
    completed: bool = False  # the last run copied everything up to its snapshot
    verified: dict[str, Any] | None = None  # the last verification's result
    updated_at: str = ""
    version: int = VERSION
    path: Path = field(default=Path(), repr=False, compare=False)

    def save(self) -> None:
        self.updated_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        record = {k: v for k, v in asdict(self).items() if k != "path"}
        _write_durably(self.path, json.dumps(record, indent=1).encode() + b"\n")


def load(path: Path) -> CopyState | None:
    """The state of an earlier copy, or None when there is none."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise CheckpointError(f"cannot read the copy state {path}: {error.strerror or error}") from None
    try:
        record = json.loads(text)
        if record.get("version") != VERSION:
            raise ValueError(f"version {record.get('version')!r}, expected {VERSION}")
        state = CopyState(**{k: v for k, v in record.items() if k in CopyState.__dataclass_fields__})
        if state.last_position is not None and not isinstance(state.last_position, int):
            raise ValueError("last_position is no integer")
    except (ValueError, TypeError, AttributeError) as error:
        raise CheckpointError(
            f"the copy state {path} is damaged ({error}); delete it, or run with --restart"
        ) from None
    state.path = path
    return state


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the pair's lock while the body runs; CheckpointError when another process holds it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path.with_name(path.name + ".lock"), "a+")
    except OSError as error:
        raise CheckpointError(f"cannot create the copy state beside {path}: {error.strerror or error}") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CheckpointError(f"another copy between these stores is running (it holds {handle.name})") from None
        yield
    finally:
        handle.close()


def _write_durably(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    try:
        with open(partial, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except OSError as error:
        raise CheckpointError(f"cannot write the copy state {path}: {error.strerror or error}") from None
