"""How every part of eventreplay waits out a fault: the one retry policy (on tenacity).

Delays start at `first` and double up to `longest`; a stop request (`interrupt`, a threading.Event)
ends a wait at once. The delays, and the give-up clock when there is one, start over only after
progress (`progressed()`: a batch stored, an event confirmed), never merely because a connection
opened: a broker or store that accepts a connection and fails it at once, over and over, must not be
hammered at full rate.

    policy = RetryPolicy(interrupt=stop)
    for attempt in policy.retrying(CONNECTION_ERRORS, doing="connect to RabbitMQ"):
        with attempt:
            connection = connect(...)

`retrying` raises `Interrupted` when a stop request ends a wait, and re-raises the last error when
the policy gives up (`give_up_after` seconds of faults without progress).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from tenacity import RetryCallState, Retrying, retry_if_exception_type

log = logging.getLogger(__name__)


def one_line(error: BaseException) -> str:
    """An error as one readable log line. pika wraps the cause (AMQPConnectionError(
    AMQPConnectorSocketConnectError(ConnectionRefusedError))) and often has an empty message at the
    top."""
    while not str(error).strip() and error.args and isinstance(error.args[0], BaseException):
        error = error.args[0]
    inner = getattr(error, "exception", None)  # pika's connector errors keep the socket error here
    if isinstance(inner, OSError):
        text = inner.strerror or str(inner)
    elif isinstance(inner, BaseException):
        text = str(inner)
    else:
        text = str(error).strip() or repr(error)
    return text.splitlines()[0][:300] if text else type(error).__name__


class Interrupted(Exception):
    """A stop request ended the wait between two attempts; `last_error` is the fault waited out."""

    def __init__(self, last_error: BaseException | None = None):
        super().__init__("interrupted while waiting to retry" + (f" after: {last_error}" if last_error else ""))
        self.last_error = last_error


class RetryPolicy:
    def __init__(self, *, interrupt: threading.Event | None = None, first: float = 0.5, longest: float = 10.0,
                 give_up_after: float | None = None):
        self.interrupt = interrupt or threading.Event()
        self.first, self.longest, self.give_up_after = first, longest, give_up_after
        self.failures = 0  # since the last progress
        self.failing_since: float | None = None  # monotonic time of the first of them
        self.next_delay = first
        self.last_error: BaseException | None = None

    # progress and faults -------------------------------------------------------------------------
    def progressed(self) -> None:
        """Work got done: the next fault starts with a short delay and a fresh give-up clock."""
        self.failures, self.failing_since, self.next_delay = 0, None, self.first

    def failed(self) -> float:
        """Count a fault; returns the delay to wait before the next attempt."""
        if self.failing_since is None:
            self.failing_since = time.monotonic()
        self.failures += 1
        delay = min(self.first * 2 ** (self.failures - 1), self.longest)
        if self.give_up_after is not None:
            delay = max(min(delay, self.gives_up_in()), 0.0)
        self.next_delay = delay
        return delay

    def gives_up_in(self) -> float:
        """Seconds left before the policy gives up (infinite without a give-up time)."""
        if self.give_up_after is None:
            return float("inf")
        since = self.failing_since if self.failing_since is not None else time.monotonic()
        return since + self.give_up_after - time.monotonic()

    @property
    def interrupted(self) -> bool:
        return self.interrupt.is_set()

    def sleep(self, seconds: float) -> None:
        """Wait, unless a stop request comes first (Interrupted)."""
        if self.interrupt.wait(seconds):
            raise Interrupted(self.last_error)

    # tenacity -------------------------------------------------------------------------------------
    def retrying(self, retry_on: tuple[type[BaseException], ...] | type[BaseException], *,
                 doing: str = "", on_fault: Callable[[BaseException, float], None] | None = None) -> Retrying:
        """Attempts of one operation; a `retry_on` error is waited out, anything else raised at once.
        `on_fault(error, delay)` replaces the default warning line."""

        def before_sleep(state: RetryCallState) -> None:
            error = self.last_error = state.outcome.exception()
            if on_fault is not None:
                on_fault(error, state.upcoming_sleep)
            else:
                log.warning("could not %s (%s); retrying in %.1f s", doing or "do it", one_line(error),
                            state.upcoming_sleep)

        return Retrying(
            retry=retry_if_exception_type(retry_on),
            after=lambda _state: self.failed(),
            wait=lambda _state: self.next_delay,
            stop=lambda _state: self.gives_up_in() <= 0,
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
