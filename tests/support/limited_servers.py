"""The servers the request-limit tests (tests/test_request_limits.py) send oversized bodies and
hold idle connections against: the API as `python replay_api.py` serves it, with API_KEY, and the
UI with a pool of UI_THREADS threads. Both share this module's numbers with the tests that
measure them."""
from __future__ import annotations

import uuid
from pathlib import Path

from tests.support.processes import ProgramProcess, start_api, start_ui

API_KEY = "limits-test-" + uuid.uuid4().hex
IDLE_CONNECTIONS = 2000
UI_THREADS = 4


def start_limited_api(folder: Path, amqp_url: str, name: str, **env: str) -> ProgramProcess:
    """The API over an empty SQLite store in `folder`, its log `folder/<name>.log`."""
    return start_api(f"sqlite:///{folder / 'events.db'}", amqp_url, folder / f"{name}.log", api_key=API_KEY, **env)


def start_limited_ui(folder: Path, api_url: str, **env: str) -> ProgramProcess:
    return start_ui(api_url, folder / "ui.log", api_key=API_KEY, secret_key="limits-test-secret", **env)
