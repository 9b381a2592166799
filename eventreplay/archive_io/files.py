"""Where the lines go and come from: a file or stdout/stdin, gzip or not.

Writing a file is atomic: the lines go to `NAME.partial` beside it, which replaces NAME (synced to
disk) only once everything is written; an interrupted export leaves no truncated NAME behind.
Reading detects gzip by its magic bytes, whatever the file is called.
"""
from __future__ import annotations

import gzip
import io
import os
import sys
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

STDIO = "-"
GZIP_MAGIC = b"\x1f\x8b"
BUFFER = 1 << 20
GZIP_LEVEL = 6  # gzip's own default: nearly the size of level 9 at a fraction of its time
MAX_LINE = 64 << 20  # a longer line is reported as bad (and skipped) instead of filling the memory
TOO_LONG = None  # what `Input.lines` yields for such a line


class ArchiveFileError(Exception):
    """A file that cannot be opened, read or written; the message names it and says why."""


def wants_gzip(path: str, flag: bool | None) -> bool:
    """The flag when given, else by the name (`.gz`)."""
    return flag if flag is not None else path.lower().endswith(".gz")


@dataclass
class Output:
    """What `open_output` yields: the stream to write lines to and, once closed, the bytes written
    (compressed, when gzip)."""

    stream: BinaryIO
    name: str
    written: int | None = None


@contextmanager
def open_output(path: str, *, compress: bool) -> Iterator[Output]:
    if path == STDIO:
        raw: BinaryIO = sys.stdout.buffer
        target = None
        partial = None
    else:
        target = Path(path)
        partial = target.with_name(target.name + ".partial")
        try:
            raw = open(partial, "wb")
        except OSError as error:
            raise ArchiveFileError(f"cannot write {path}: {error.strerror or error}") from None
    counted = _Counting(raw)
    # mtime=0: the same events give the same file, byte for byte
    compressor = gzip.GzipFile(fileobj=counted, mode="wb", compresslevel=GZIP_LEVEL, mtime=0) if compress else None
    stream = io.BufferedWriter(compressor or counted, buffer_size=BUFFER)
    output = Output(stream, "stdout" if target is None else str(target))
    try:
        yield output
        stream.flush()
        if compressor is not None:
            compressor.close()
        counted.flush()
        if target is not None:
            os.fsync(raw.fileno())
            raw.close()
            os.replace(partial, target)
            _sync_folder(target.parent)
        output.written = counted.count
    except BrokenPipeError:
        _discard(raw, partial)
        # `export - | head`: the reader has gone. Point stdout at /dev/null so that the interpreter's
        # own flush at exit does not complain a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise ArchiveFileError(f"{output.name} was closed by its reader before the export ended") from None
    except OSError as error:
        _discard(raw, partial)
        raise ArchiveFileError(f"cannot write {output.name}: {error.strerror or error}") from None
    except BaseException:
        _discard(raw, partial)
        raise


def _discard(raw: BinaryIO, partial: Path | None) -> None:
    if partial is None:
        return
    try:
        raw.close()
    except OSError:
        pass
    partial.unlink(missing_ok=True)


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Counting(io.RawIOBase):
    """A write-only stream that counts the bytes passing to another."""

    def __init__(self, inner: BinaryIO):
        self.inner, self.count = inner, 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.inner.write(data)
        size = len(data)
        self.count += size
        return size

    def flush(self) -> None:
        self.inner.flush()


@dataclass
class Input:
    """What `open_input` yields: its lines (bytes, newline included; TOO_LONG for a line over
    MAX_LINE bytes), its size in bytes when known, and `tell()`: how far into those bytes reading
    has got (compressed bytes for a gzip file: the measure of progress)."""

    lines: Iterator[bytes | None]
    name: str
    compressed: bool
    size: int | None
    tell: Callable[[], int]


@contextmanager
def open_input(path: str) -> Iterator[Input]:
    if path == STDIO:
        raw = sys.stdin.buffer
        name, size = "stdin", None
    else:
        try:
            raw = open(path, "rb", buffering=BUFFER)
            size = os.fstat(raw.fileno()).st_size
        except OSError as error:
            raise ArchiveFileError(f"cannot read {path}: {error.strerror or error}") from None
        name = path
    try:
        if not isinstance(raw, io.BufferedReader):
            raw = io.BufferedReader(raw, buffer_size=BUFFER)  # peek needs a buffered reader
        try:
            compressed = raw.peek(2)[:2] == GZIP_MAGIC
        except OSError as error:
            raise ArchiveFileError(f"cannot read {name}: {error.strerror or error}") from None
        stream = io.BufferedReader(gzip.GzipFile(fileobj=raw, mode="rb"), BUFFER) if compressed else raw
        yield Input(_lines(stream, name), name, compressed, size, raw.tell if size is not None else lambda: 0)
    finally:
        if path != STDIO:
            raw.close()


def _lines(stream: BinaryIO, name: str) -> Iterator[bytes | None]:
    """The lines (TOO_LONG for one over MAX_LINE bytes), with a damaged or cut gzip stream and
    read errors as ArchiveFileError."""
    try:
        while line := stream.readline(MAX_LINE):
            if len(line) == MAX_LINE and not line.endswith(b"\n"):
                while (rest := stream.readline(MAX_LINE)) and not rest.endswith(b"\n"):
                    pass
                yield TOO_LONG
                continue
            yield line
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise ArchiveFileError(f"{name}: the gzip data is damaged or cut short ({error})") from None
    except OSError as error:
        raise ArchiveFileError(f"cannot read {name}: {error.strerror or error}") from None
