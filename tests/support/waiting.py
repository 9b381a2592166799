"""Bounded waiting for a condition: the tests' only way to synchronise with the broker, the store
and the processes they start (never a bare sleep)."""
from __future__ import annotations

import time
from typing import Any, Callable


def wait_for(condition: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.05,
             what: str = "condition"):
    """Poll `condition` until it returns something truthy (returned), or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
