"""The project's programs as real processes: the Replay API (`python replay_api.py`), the UI
(`python replay_management_ui.py`) and the consumer (`python consumer.py`), run as an operator runs
them, for what an in-process test cannot show: a process killed or signalled, server limits that
live in the bytes on the wire, a browser reaching the UI over HTTP.

Ports come from 18100-18599, the range kept for these tests on shared machines: outside the
system's ephemeral range (32768-60999), so no client connection takes a port between free_port()
finding it free and the server binding it.
"""
from __future__ import annotations

import collections
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
PORTS = range(18100, 18600)
_handed_out: collections.deque[int] = collections.deque(maxlen=50)


def free_port() -> int:
    """A port of the suite's range that nobody listens on now (bind test, with SO_REUSEADDR as the
    servers bind), and not one of the last ones handed out (a caller may take several before it
    binds any). The search starts at a random place in the range, so that two test runs on one
    machine seldom try the same port at the same time."""
    start = random.randrange(len(PORTS))
    for port in [*PORTS[start:], *PORTS[:start]]:
        if port in _handed_out:
            continue
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.append(port)
        return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


def program_env(**overrides: str) -> dict[str, str]:
    """The environment of a program a test starts: this process's, without the settings each test
    chooses itself (EVENT_STORE*, REPLAY_API*, UI_*, API_*: a developer's shell must not leak into
    them), with unbuffered output and LOG_LEVEL=WARNING unless `overrides` say otherwise."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENT_STORE", "REPLAY_API", "UI_", "API_"))}
    env.update(PYTHONUNBUFFERED="1", LOG_LEVEL="WARNING")
    env.update(overrides)
    return env


class ProgramProcess:
    """One program in a process of its own (working folder: the checkout), its output appended to a
    log file. With a `port` and a `ready_path` it is a server: start() returns once it answers 200
    there, and `url` and `client` reach it."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_path: Path, *,
                 port: int | None = None, ready_path: str | None = None):
        self.name, self.command, self.env, self.log_path = name, command, env, log_path
        self.port, self.ready_path = port, ready_path
        self.process: subprocess.Popen | None = None
        self._client: httpx.Client | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def client(self) -> httpx.Client:
        """An HTTP client of the server (closed by stop())."""
        if self._client is None:
            self._client = httpx.Client(base_url=self.url, timeout=30)
        return self._client

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 40.0) -> "ProgramProcess":
        """Start the process (again, after it ended: the log goes on) and, for a server, wait until
        it answers; a server that does not is stopped, and the test fails with its log."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        if self.ready_path is not None:
            try:
                wait_for(self._answers, timeout=timeout, interval=0.15,
                         what=f"{self.name} to answer on {self.url}{self.ready_path}:\n{self.log_path}")
            except BaseException:
                self.stop()
                raise
        return self

    def _answers(self) -> bool:
        if not self.running:
            raise AssertionError(f"{self.name} exited with {self.process.returncode}:\n{self.output()[-4000:]}")
        try:
            return httpx.get(self.url + self.ready_path, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def output(self) -> str:
        """What the process has written so far (stdout and stderr)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash would end it (if it still runs)."""
        if self.running:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, as an operator stops it; SIGKILL if it has not exited 15 s later."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.running:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_api(store_url: str, amqp_url: str, log_path: Path, *, api_key: str | None = None,
              **env: str) -> ProgramProcess:
    """`python replay_api.py` on a free port over the store, publishing to the broker; with
    `api_key`, its mutating endpoints want it (X-API-Key). `env`: more settings (LOG_LEVEL="INFO", ...)."""
    port = free_port()
    keyed = {"REPLAY_API_KEY": api_key} if api_key else {}
    environment = program_env(**{"EVENT_STORE_URL": store_url, "AMQP_URL": amqp_url, "API_HOST": "127.0.0.1",
                                 "API_PORT": str(port), **keyed, **env})
    return ProgramProcess("Replay API", [sys.executable, "replay_api.py"], environment, log_path,
                          port=port, ready_path="/health").start()


def start_ui(api_url: str, log_path: Path, *, api_key: str, secret_key: str, **env: str) -> ProgramProcess:
    """`python replay_management_ui.py` on a free port, over the Replay API at `api_url`."""
    port = free_port()
    # UI_HOST is left unset on purpose: the UI must bind 127.0.0.1 by default
    environment = program_env(**{"REPLAY_API_URL": api_url, "REPLAY_API_KEY": api_key, "UI_PORT": str(port),
                                 "UI_SECRET_KEY": secret_key, **env})
    return ProgramProcess("management UI", [sys.executable, "replay_management_ui.py"], environment, log_path,
                          port=port, ready_path="/static/favicon.svg").start()


def consumer_program(env: dict[str, str], log_path: Path) -> ProgramProcess:
    """`python consumer.py` with that environment (see ingest.consumer_env), not started yet: the
    test starts it when what it should find is in place."""
    return ProgramProcess("consumer", [sys.executable, "consumer.py"], env, log_path)
