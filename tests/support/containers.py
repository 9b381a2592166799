"""Where the suite's EventStoreDB and RabbitMQ come from, decided once per session and printed in
the pytest header (tests/conftest.py, pytest_report_header):

EventStoreDB: ESDB_URL when set (CI's emulator, a server of your own); else, where a Docker engine
answers, a real EventStoreDB started with testcontainers (the image and environment of
docker-compose.yml's `eventstoredb` service, insecure); else none, and the EventStoreDB tests skip.
RabbitMQ: the broker at AMQP_URL when it accepts a connection; else, with Docker, a container of
docker-compose.yml's `rabbitmq` image; else none, and the tests that need a broker fail saying so.

A Docker CLI without a running engine is the common case on developer machines and here: the probe
asks the engine itself (the docker SDK's ping, with a short timeout), so it answers "no" in well
under two seconds rather than waiting for a daemon that is not there.
"""
from __future__ import annotations

import functools
import os
import shutil
import time
from dataclasses import dataclass
from typing import Callable
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import pika
import yaml

from tests.support.processes import ROOT
from tests.support.waiting import wait_for

COMPOSE_FILE = ROOT / "docker-compose.yml"
ENGINE_TIMEOUT_S = 1.0  # a local engine answers a ping in milliseconds; none must not slow every run
START_TIMEOUT_S = 180.0  # a first run pulls the image


@dataclass(frozen=True)
class Engine:
    answers: bool
    reason: str  # why not (or the engine's version when it answers)


@dataclass(frozen=True)
class Choice:
    """Where one service comes from: `source` is "env" (the URL given), "testcontainers" or "none"."""

    source: str
    url: str | None
    detail: str
    reason: str = ""  # with "none": why there is none

    def header(self, service: str) -> str:
        return f"{service}: {self.detail}"


def docker_engine(timeout: float = ENGINE_TIMEOUT_S) -> Engine:
    """Whether a Docker engine answers (the CLI alone is not enough), asked once within `timeout`."""
    try:
        import docker
    except ImportError:
        return Engine(False, "the docker package is not installed")
    try:
        client = docker.from_env(timeout=timeout)
        try:
            client.ping()
            return Engine(True, f"Docker {client.version().get('Version', '?')}")
        finally:
            client.close()
    except Exception as error:  # noqa: BLE001 - whatever the failure, the answer is "no engine"
        where = os.environ.get("DOCKER_HOST") or "the default socket"
        cli = "the docker CLI is installed, " if shutil.which("docker") else ""
        return Engine(False, f"no Docker engine answers at {where} ({cli}{_root_cause(error)})")


@functools.lru_cache(maxsize=None)
def session_engine() -> Engine:
    return docker_engine()


@functools.lru_cache(maxsize=None)
def session_eventstoredb() -> Choice:
    """The session's EventStoreDB choice: the header says it, the fixture follows it."""
    return choose_eventstoredb()


@functools.lru_cache(maxsize=None)
def session_rabbitmq(url: str) -> Choice:
    return choose_rabbitmq(url)


def compose_service(name: str) -> tuple[str, dict[str, str]]:
    """The image and environment of a docker-compose.yml service (its ${VAR:-default}s resolved to
    their defaults): the containers the tests start are the ones `task start_services` runs."""
    service = yaml.safe_load(COMPOSE_FILE.read_text())["services"][name]
    environment = {key: _compose_default(str(value)) for key, value in (service.get("environment") or {}).items()}
    return service["image"], environment


def choose_eventstoredb(env: dict[str, str] | None = None,
                        engine: Callable[[], Engine] = session_engine) -> Choice:
    """ESDB_URL set -> it; else a Docker engine -> testcontainers; else none (tests skip)."""
    env = os.environ if env is None else env
    if env.get("ESDB_URL"):
        return Choice("env", env["ESDB_URL"], f"ESDB_URL {env['ESDB_URL']}")
    found = engine()
    if found.answers:
        image, _ = compose_service("eventstoredb")
        return Choice("testcontainers", None, f"testcontainers {image} (insecure; started when first needed; {found.reason})")
    reason = f"ESDB_URL is not set and {found.reason}"
    return Choice("none", None, f"none (EventStoreDB tests skip: {reason})", reason)


def choose_rabbitmq(url: str, engine: Callable[[], Engine] = session_engine) -> Choice:
    """The broker at `url` when it accepts a connection; else a Docker engine -> testcontainers;
    else none (the tests that need a broker fail with the reason)."""
    problem = broker_problem(url)
    if problem is None:
        return Choice("env", url, f"AMQP_URL {hide_password(url)}")
    found = engine()
    if found.answers:
        image, _ = compose_service("rabbitmq")
        return Choice("testcontainers", None, f"testcontainers {image} (nothing answers at {hide_password(url)}; "
                                              f"{found.reason})")
    reason = f"nothing answers at {hide_password(url)} ({problem}) and {found.reason}"
    return Choice("none", None, f"none ({reason})", reason)


def broker_problem(url: str) -> str | None:
    """None when RabbitMQ accepts a connection at `url`, else why not."""
    try:
        parameters = pika.URLParameters(url)
        parameters.socket_timeout = parameters.blocked_connection_timeout = 3
        pika.BlockingConnection(parameters).close()
    except Exception as error:  # noqa: BLE001 - any failure means the same thing here
        return _one_line(error) or type(error).__name__
    return None


# -- the containers --------------------------------------------------------------------------------

def start_eventstoredb():
    """A single-node EventStoreDB as docker-compose.yml runs it; returns (container, ESDB URL) once
    its HTTP health answers and it accepts gRPC reads."""
    from testcontainers.core.container import DockerContainer

    image, environment = compose_service("eventstoredb")
    container = DockerContainer(image).with_envs(**environment).with_exposed_ports(2113)
    container.start()
    try:
        host, port = container.get_container_host_ip(), int(container.get_exposed_port(2113))
        wait_for(lambda: _answers(f"http://{host}:{port}/health/live"), timeout=START_TIMEOUT_S, interval=0.5,
                 what=f"EventStoreDB ({image}) to answer on {host}:{port}")
        url = f"esdb://{host}:{port}?Tls=false"
        wait_for(lambda: _reads(url), timeout=START_TIMEOUT_S, interval=0.5, what="EventStoreDB to serve gRPC reads")
    except BaseException:
        container.stop()
        raise
    return container, url


def start_rabbitmq():
    """RabbitMQ as docker-compose.yml runs it; returns (container, AMQP URL, management port) once
    it accepts connections."""
    from testcontainers.core.container import DockerContainer

    image, environment = compose_service("rabbitmq")
    container = DockerContainer(image).with_envs(**environment).with_exposed_ports(5672, 15672)
    container.start()
    try:
        host = container.get_container_host_ip()
        user, password = environment.get("RABBITMQ_DEFAULT_USER", "guest"), environment.get("RABBITMQ_DEFAULT_PASS", "guest")
        vhost = quote(environment.get("RABBITMQ_DEFAULT_VHOST", "/"), safe="")
        url = f"amqp://{user}:{password}@{host}:{container.get_exposed_port(5672)}/{vhost}"
        wait_for(lambda: broker_problem(url) is None, timeout=START_TIMEOUT_S, interval=0.5,
                 what=f"RabbitMQ ({image}) to accept connections")
    except BaseException:
        container.stop()
        raise
    return container, url, int(container.get_exposed_port(15672))


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code in (200, 204)
    except httpx.HTTPError:
        return False


def _reads(url: str) -> bool:
    from esdbclient import EventStoreDBClient

    try:
        client = EventStoreDBClient(url)
    except Exception:  # noqa: BLE001 - not ready yet
        return False
    try:
        client.get_commit_position()
        return True
    except Exception:  # noqa: BLE001 - not ready yet (the node is still electing itself leader)
        return False
    finally:
        client.close()


# -- text ------------------------------------------------------------------------------------------

def hide_password(url: str) -> str:
    parts = urlsplit(url.split(",")[0])
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _compose_default(value: str) -> str:
    # "${NAME:-default}" -> default (compose's interpolation, for the forms docker-compose.yml uses)
    if value.startswith("${") and value.endswith("}") and ":-" in value:
        return value[2:-1].split(":-", 1)[1]
    return value


def _root_cause(error: BaseException) -> str:
    """The innermost error's class and text: the docker SDK wraps a missing socket three times."""
    text = " ".join(str(error).split())
    for name in ("FileNotFoundError", "ConnectionRefusedError", "PermissionError", "timed out"):
        if name in text:
            return name
    return _one_line(error)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:160] if text else type(error).__name__


def elapsed(action: Callable[[], object]) -> tuple[object, float]:
    """`action()`'s result and the seconds it took."""
    started = time.monotonic()
    result = action()
    return result, time.monotonic() - started
