"""The Replay API client's retry policy (eventreplay/client/replay_api.py), against a real local
HTTP server that answers 503 a set number of times: a GET is retried through a short outage, a
POST is sent exactly once, and what stays broken becomes a readable ApiError."""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from eventreplay.client.replay_api import ApiError, ReplayApiClient


class FlakyServer:
    """Answers each (method, path) with 503 for its first `failures` requests, then 200 + JSON.
    Counts every request it receives."""

    def __init__(self, failures: int):
        self.failures = failures
        self.seen: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                key = (self.command, self.path.split("?")[0])
                with server._lock:
                    server.seen[key] += 1
                    attempt = server.seen[key]
                if attempt <= server.failures:
                    status, body = 503, {"detail": f"briefly away (attempt {attempt})"}
                else:
                    status, body = 200, ([{"event_type": "OrderPlaced", "count": 3}]
                                         if key[1] == "/event-types" else {"matched": 1, "store": "ok"})
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Retry-After", "120")  # must not be obeyed: it would hold a page
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

            def log_message(self, *args) -> None:  # keep the test output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FlakyServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def twice_503() -> Iterator[FlakyServer]:
    with FlakyServer(failures=2) as server:
        yield server


def test_a_get_is_retried_through_two_503s(twice_503):
    with ReplayApiClient(twice_503.url) as client:
        started = time.monotonic()
        assert client.event_types() == [{"event_type": "OrderPlaced", "count": 3}]
        elapsed = time.monotonic() - started
    assert twice_503.seen[("GET", "/event-types")] == 3
    assert elapsed < 3.0, f"the retries took {elapsed:.1f} s (Retry-After must be ignored)"


def test_a_post_is_sent_once_and_its_503_is_the_error(twice_503):
    with ReplayApiClient(twice_503.url) as client:
        with pytest.raises(ApiError) as raised:
            client.dry_run({"event_type": "OrderPlaced"})
    assert twice_503.seen[("POST", "/replay")] == 1
    assert raised.value.status == 503
    assert raised.value.message == "The Replay API cannot serve now: briefly away (attempt 1)"


def test_a_get_that_stays_unavailable_ends_in_bounded_time_with_the_last_answer():
    with FlakyServer(failures=100) as server, ReplayApiClient(server.url) as client:
        started = time.monotonic()
        with pytest.raises(ApiError) as raised:
            client.list_replays()
        elapsed = time.monotonic() - started
    assert server.seen[("GET", "/replays")] == 4  # the call and 3 retries
    assert raised.value.status == 503 and raised.value.message.endswith("(attempt 4)")
    assert elapsed < 3.0


def test_ready_reports_a_503_at_once_as_data(twice_503):
    with ReplayApiClient(twice_503.url) as client:
        answer = client.ready()
    assert twice_503.seen[("GET", "/ready")] == 1
    assert answer == {"store": "briefly away (attempt 1)", "broker": "briefly away (attempt 1)"}


def test_an_unreachable_api_is_a_quick_readable_error(unused_url):
    with ReplayApiClient(unused_url) as client:
        for call in (client.archive, lambda: client.cancel_replay("x")):
            started = time.monotonic()
            with pytest.raises(ApiError) as raised:
                call()
            assert raised.value.unreachable and "is unreachable" in raised.value.message
            assert time.monotonic() - started < 3.0
