"""No denial of service without a key: the Replay API refuses oversized bodies (413) and requests
without the key (401) before it reads the body, closes connections that do not finish their request
head, and API and UI keep answering while thousands of idle connections are held against them.

Real processes (`python replay_api.py`, `python replay_management_ui.py`) and real sockets: the
limits live in the servers and in the bytes on the wire, which an in-process client would not show
(the `limited_api` and `limited_ui` fixtures, tests/support/limited_servers.py).
"""
from __future__ import annotations

import contextlib
import http.client
import os
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from eventreplay.api import create_app as create_api
from eventreplay.settings import Settings
from eventreplay.ui import create_app as create_ui
from tests.support.limited_servers import API_KEY, IDLE_CONNECTIONS, UI_THREADS, start_limited_api
from tests.support.waiting import wait_for

LIMIT = 1024 * 1024  # the default API_MAX_BODY_BYTES


# -- what the tests read of a process and send on a socket ----------------------------------------

def proc_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as status:
        return {key: value.strip() for key, _, value in (line.partition(":") for line in status)}


def rss_mb(pid: int) -> float:
    return int(proc_status(pid)["VmRSS"].split()[0]) / 1024


def threads(pid: int) -> int:
    return int(proc_status(pid)["Threads"])


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def post_streaming(port: int, head: bytes, body: Iterator[bytes]) -> tuple[int, dict[str, str], bytes, float]:
    """Sends the request head, then the body from another thread while the answer is read: a server
    that answers early is heard at once. Returns status, headers, body and the seconds to the
    answer. The sender stops when the server closes the connection."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(head)

    def send_body() -> None:
        try:
            for chunk in body:
                sock.sendall(chunk)
        except OSError:
            pass  # the server has answered and closed: the rest is not wanted

    sender = threading.Thread(target=send_body, daemon=True)
    started = time.monotonic()
    sender.start()
    try:
        response = http.client.HTTPResponse(sock)
        response.begin()
        answer = response.read()
        elapsed = time.monotonic() - started
        return response.status, {k.lower(): v for k, v in response.getheaders()}, answer, elapsed
    finally:
        with contextlib.suppress(OSError):  # already reset by the server
            sock.shutdown(socket.SHUT_RDWR)  # ends a sendall still blocked in the other thread
        sender.join(timeout=10)
        sock.close()


def zeros(total: int, chunk: int = 64 * 1024) -> Iterator[bytes]:
    block = b"0" * chunk
    for _ in range(total // chunk):
        yield block


def chunked(pieces: Iterator[bytes]) -> Iterator[bytes]:
    for piece in pieces:
        yield b"%x\r\n%s\r\n" % (len(piece), piece)
    yield b"0\r\n\r\n"


def head(*lines: str) -> bytes:
    return ("\r\n".join(["POST /replay HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json", *lines])
            + "\r\n\r\n").encode()


# -- body limit and API key, before the body is read ----------------------------------------------

@pytest.mark.slow
def test_a_100_mb_body_without_the_key_is_refused_at_once_and_never_buffered(limited_api):
    pid = limited_api.process.pid
    before = rss_mb(pid)
    size = 100 * 1024 * 1024
    status, headers, body, elapsed = post_streaming(limited_api.port, head(f"Content-Length: {size}"),
                                                    zeros(size))
    assert status == 413 and elapsed < 1.0, (status, elapsed)
    assert headers["content-type"] == "application/json"
    assert "API_MAX_BODY_BYTES" in httpx.Response(413, content=body).json()["detail"]
    assert rss_mb(pid) < before + 30, (before, rss_mb(pid))


def test_a_chunked_body_over_the_limit_is_413_even_with_the_key(limited_api):
    status, headers, body, _ = post_streaming(
        limited_api.port, head(f"X-API-Key: {API_KEY}", "Transfer-Encoding: chunked"), chunked(zeros(4 * LIMIT)))
    assert status == 413, body
    assert httpx.Response(status, content=body).json()["detail"].startswith("request body too large")
    assert headers["connection"] == "close"


def test_a_wrong_key_is_401_before_the_body_is_sent(limited_api):
    # a Content-Length within the limit, and a small part of that body: the rest is never sent
    status, headers, body, elapsed = post_streaming(
        limited_api.port, head("X-API-Key: wrong", f"Content-Length: {LIMIT - 1}"), iter([b'{"event_type": "']))
    assert status == 401, body
    assert headers["www-authenticate"] == "X-API-Key"
    assert httpx.Response(status, content=body).json()["detail"] == "missing or wrong X-API-Key header"


def test_a_small_post_with_the_key_still_works(limited_api):
    response = httpx.post(f"{limited_api.url}/replay", json={"dry_run": True}, headers={"X-API-Key": API_KEY},
                          timeout=10)
    assert response.status_code == 200 and response.json()["dry_run"] is True, response.text
    # reading needs no key, and a body within the limit is read and validated as before
    assert httpx.get(f"{limited_api.url}/replays", timeout=10).status_code == 200
    response = httpx.post(f"{limited_api.url}/replay", content=b"[" * 1000, headers={"X-API-Key": API_KEY},
                          timeout=10)
    assert response.status_code == 422, response.text


def test_the_key_header_stays_documented_in_openapi():
    app = create_api(Settings(_env_file=None, replay_api_key="k"))
    schema = app.openapi()
    (scheme_name, scheme), = schema["components"]["securitySchemes"].items()
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "X-API-Key")
    for path in ("/replay", "/replays/{job_id}/cancel", "/replays/{job_id}/resume"):
        assert schema["paths"][path]["post"]["security"] == [{scheme_name: []}], path
    assert "security" not in schema["paths"]["/replays"]["get"]


# -- header timeout ------------------------------------------------------------------------------

def test_a_connection_that_does_not_finish_its_request_head_is_closed(amqp_url, tmp_path):
    server = start_limited_api(tmp_path, amqp_url, "api-header-timeout", API_HEADER_TIMEOUT_S="1")
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            # a complete request on a kept-alive connection, then only half of the next head
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            response = http.client.HTTPResponse(sock)
            response.begin()
            assert response.status == 200 and response.read() == b'{"status":"ok"}'
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            started = time.monotonic()
            assert sock.recv(1024) == b""  # closed by the server, without an answer
            assert time.monotonic() - started < 4
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET /hea")
            started = time.monotonic()
            assert sock.recv(1024) == b""
            assert 0.5 < time.monotonic() - started < 4
    finally:
        server.stop()


# -- idle connections -----------------------------------------------------------------------------

def hold_idle_connections(port: int, count: int) -> list[socket.socket]:
    """`count` connections that each sent part of a request head, and nothing more."""
    held = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Idle: ")
        held.append(sock)
    return held


def timed_get(url: str) -> tuple[int, float]:
    started = time.monotonic()
    response = httpx.get(url, timeout=10)
    return response.status_code, time.monotonic() - started


@pytest.mark.slow
def test_api_and_ui_answer_while_thousands_of_idle_connections_are_held(limited_api, limited_ui):
    held: list[socket.socket] = []
    try:
        api_files, ui_files = open_files(limited_api.process.pid), open_files(limited_ui.process.pid)
        held += hold_idle_connections(limited_ui.port, IDLE_CONNECTIONS)
        held += hold_idle_connections(limited_api.port, IDLE_CONNECTIONS)
        # both servers have accepted them (a socket each). A few spare: the counts taken before may
        # include a socket of the readiness check, closing since. waitress accepts one connection
        # per pass of its loop, which takes longer with each open connection: seconds for the UI.
        wait_for(lambda: open_files(limited_api.process.pid) >= api_files + IDLE_CONNECTIONS - 5, timeout=30,
                 what="the API to accept the idle connections")
        wait_for(lambda: open_files(limited_ui.process.pid) >= ui_files + IDLE_CONNECTIONS - 5, timeout=30,
                 what="the UI to accept the idle connections")
        for _ in range(3):
            status, seconds = timed_get(f"{limited_api.url}/health")
            assert status == 200 and seconds < 1.0, ("API /health", status, seconds)
            status, seconds = timed_get(f"{limited_ui.url}/")
            assert status in (200, 502) and seconds < 1.0, ("UI /", status, seconds)
        # a fixed pool of threads serves the UI, however many connections are open
        assert threads(limited_ui.process.pid) <= UI_THREADS + 3, threads(limited_ui.process.pid)
    finally:
        for sock in held:
            sock.close()


# -- the session cookie ---------------------------------------------------------------------------

def set_cookie(response) -> str:
    cookie = response.headers.get("Set-Cookie", "")
    assert cookie.startswith("session="), response.headers
    return cookie


def test_the_session_cookie_is_secure_over_https_only():
    # an unreachable API: the overview still renders its form, whose CSRF token starts a session
    app = create_ui({"TESTING": True, "REPLAY_API_URL": "http://127.0.0.1:9"})
    assert "Secure" in set_cookie(app.test_client().get("/", base_url="https://localhost"))
    assert "Secure" not in set_cookie(app.test_client().get("/", base_url="http://localhost"))
    forced = create_ui({"TESTING": True, "REPLAY_API_URL": "http://127.0.0.1:9", "SESSION_COOKIE_SECURE": True})
    assert "Secure" in set_cookie(forced.test_client().get("/", base_url="http://localhost"))


def test_a_trusted_tls_proxy_makes_the_served_cookie_secure(limited_ui):
    behind_tls = httpx.get(f"{limited_ui.url}/", headers={"X-Forwarded-Proto": "https"}, timeout=10)
    plain = httpx.get(f"{limited_ui.url}/", timeout=10)
    assert "Secure" in behind_tls.headers["set-cookie"]
    assert "Secure" not in plain.headers["set-cookie"]
