"""What the three benchmarks share: the settings, the broker seen from outside, the project's own
entry points run as child processes, waiting on a clock, and the table of runs with their median.

How the broker is watched: a passive `queue.declare` on a connection of the benchmark's own. The
queue process answers it in order with the messages it is handling, so the ready-message count and
the consumer count it returns are exact at that moment, in one round trip (well under 1 ms here).
The management API would be easier to read but its figures are samples a few seconds old.
"""
from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from eventreplay.broker import connect  # noqa: E402
from eventreplay.simulator import EventFactory, OutgoingEvent  # noqa: E402

SEED = 2024  # the same simulated shop in every run: the same bodies, sizes and routing keys
TIMEOUT = 600.0  # seconds any one wait may take before the benchmark gives up
POLL = 0.005  # seconds between looks at a queue or a store while a clock runs
# Seconds of quiet before a clock starts: the broker finishes what the setup gave it (writing a
# backlog to disk, deleting the previous run's queue of persistent messages) outside the clock.
SETTLE = 1.0


def unique(prefix: str) -> str:
    """A fresh name for a queue, an exchange or a stream prefix: runs never share state."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def simulated_events(count: int) -> list[OutgoingEvent]:
    """`count` events of the simulator (bodies, AMQP properties, routing keys), made before any clock
    starts. The same seed every time, so every run and every ceiling sends the same bytes."""
    return EventFactory(seed=SEED).take(count)


def with_stream_prefix(esdb_url: str, prefix: str) -> str:
    """ESDB_URL plus a streamPrefix of its own: an empty store on a shared EventStoreDB."""
    parts = urlsplit(esdb_url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() != "streamprefix"]
    return urlunsplit(parts._replace(query=urlencode(query + [("streamPrefix", prefix)])))


def sqlite_url(folder: str | Path, name: str = "events.db") -> str:
    return f"sqlite:///{Path(folder).resolve() / name}"


# waiting -----------------------------------------------------------------------------------------
def wait_until(done: Callable[[], bool], what: str, *, timeout: float = TIMEOUT, every: float = POLL,
               check: Callable[[], None] | None = None) -> float:
    """Poll `done` every `every` s; return the monotonic time at which it was first seen true (taken
    after the look that saw it, so a clock stopped here is late by at most one interval plus one
    look, never early). `check` is called between looks to fail fast (a child process that died)."""
    deadline = time.monotonic() + timeout
    while True:
        if done():
            return time.monotonic()
        if check is not None:
            check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


# the broker from outside -------------------------------------------------------------------------
class BrokerProbe:
    """A connection of the benchmark's own to declare, watch and delete queues and exchanges. Use it
    from one thread only (pika connections are not thread-safe)."""

    def __init__(self, amqp_url: str, name: str = "bench-probe"):
        self.amqp_url, self.name = amqp_url, name
        self.connection = connect(amqp_url, client_name=name)
        self.channel = self.connection.channel()

    def refresh(self) -> None:
        """A new connection: after a long untimed step (seeding 1M events) the broker has dropped an
        idle one (a blocking connection answers no heartbeats while nobody calls it)."""
        self.close()
        self.connection = connect(self.amqp_url, client_name=self.name)
        self.channel = self.connection.channel()

    def declare_queue(self, queue: str) -> None:
        """A durable queue with no arguments: unbounded, like a user's own target queue."""
        self.channel.queue_declare(queue, durable=True)

    def _stat(self, queue: str):
        return self.channel.queue_declare(queue, passive=True).method

    def depth(self, queue: str) -> int:
        """Messages ready in the queue (delivered but unacked ones are not counted)."""
        return self._stat(queue).message_count

    def consumers(self, queue: str) -> int:
        return self._stat(queue).consumer_count

    def delete(self, queues: Iterable[str] = (), exchanges: Iterable[str] = ()) -> None:
        """Remove what a run made, whether or not it still exists."""
        if not self.channel.is_open:
            self.channel = self.connection.channel()
        for queue in queues:
            self.channel.queue_delete(queue)
        for exchange in exchanges:
            self.channel.exchange_delete(exchange)

    def close(self) -> None:
        try:
            self.connection.close()
        except Exception:  # noqa: BLE001 - closing a probe must never hide the benchmark's own error
            pass


# the project's entry points as processes -----------------------------------------------------------
# Several consumers run side by side in a benchmark: none serves metrics (one port per host).
QUIET = {"CONSUMER_METRICS_PORT": "0"}


class ProjectProcess:
    """`python <script>` of the project, started as a user starts it (from the project folder, with
    the settings in the environment), its output in a log file for when something goes wrong."""

    def __init__(self, script: str, env: dict[str, str], log_path: Path):
        self.script, self.log_path = script, log_path
        self._log = open(log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, script], cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1", **QUIET, **env},
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def check(self) -> None:
        """Raise, with the end of its log, if the process has exited."""
        code = self.process.poll()
        if code is not None:
            raise RuntimeError(f"{self.script} exited with code {code}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def status_kb(self, field: str) -> int:
        """A `VmRSS`/`VmHWM`-style figure of /proc/PID/status, in kB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM (the consumer finishes its batch, uvicorn shuts down), SIGKILL if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()


def cleanup(*steps: Callable[[], object]) -> None:
    """Run every step (stop a process, delete the queues...) even when an earlier one fails; then
    raise the first failure. A benchmark that stops half-way must not leave queues on the broker."""
    failures = []
    for step in steps:
        try:
            step()
        except Exception as error:  # noqa: BLE001 - re-raised below, after the other steps
            failures.append(error)
    if failures:
        raise failures[0]


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM it when the benchmark dies, however it dies, so that
    no consumer or API process outlives a benchmark that was killed."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def free_port() -> int:
    """A TCP port nobody listens on now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# numbers -----------------------------------------------------------------------------------------
def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, int(-(-fraction * len(sorted_values) // 1)))  # ceil(fraction * n)
    return sorted_values[min(rank, len(sorted_values)) - 1]


def rate(value: float) -> str:
    return f"{value:,.0f}"


def seconds(value: float) -> str:
    return f"{value:.2f}"


def millis(value: float) -> str:
    return f"{value * 1000:.1f}"


def share(value: float) -> str:
    return f"{value:.0%}"


def count(value: float) -> str:
    return f"{value:,.0f}"


@dataclass(frozen=True)
class Column:
    key: str  # the run's dict key
    title: str
    show: Callable[[float], str]


def median_row(runs: Sequence[dict], columns: Sequence[Column]) -> dict:
    """The median of every column over the runs (the median of ratios, not a ratio of medians)."""
    row: dict = {}
    for column in columns:
        values = [run[column.key] for run in runs if isinstance(run.get(column.key), (int, float))]
        if values:
            row[column.key] = statistics.median(values)
    return row


def runs_table(title: str, columns: Sequence[Column], groups: Sequence[tuple[str, Sequence[dict]]],
               caption: str | None = None) -> Table:
    """One row per run and a median row per group (a group: the runs of one setting)."""
    table = Table(title=title, caption=caption, caption_justify="left")
    table.add_column("run", justify="left")
    for column in columns:
        table.add_column(column.title, justify="right")
    for label, runs in groups:
        for number, run in enumerate(runs, 1):
            table.add_row(f"{label}{number}", *(_cell(run, column) for column in columns))
        if len(runs) > 1:
            table.add_row(f"{label}median", *(_cell(median_row(runs, columns), column) for column in columns),
                          style="bold")
        table.add_section()
    return table


def _cell(run: dict, column: Column) -> str:
    value = run.get(column.key)
    return "-" if value is None else column.show(value)


def console() -> Console:
    """Rich output; wide enough for the tables when written to a file or a pipe."""
    return Console() if sys.stdout.isatty() else Console(width=200)
