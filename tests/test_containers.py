"""Where the suite's EventStoreDB and RabbitMQ come from (tests/support/containers.py): ESDB_URL
first, else a real EventStoreDB in a container where a Docker engine answers, else the EventStoreDB
tests skip; the choice in the pytest header. On a machine with a Docker CLI but no engine (this one,
most laptops) the probe must say "no" at once, and quietly."""
from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.support.containers import (
    Engine, choose_eventstoredb, compose_service, docker_engine, elapsed, session_engine,
)
from tests.support.processes import ROOT, program_env

no_engine_here = pytest.mark.skipif(session_engine().answers, reason="a Docker engine answers on this machine")


@no_engine_here
def test_without_an_engine_the_probe_says_no_within_2_seconds_naming_why():
    engine, seconds = elapsed(docker_engine)
    assert not engine.answers
    assert engine.reason.startswith("no Docker engine answers at ")
    assert seconds < 2


def test_an_engine_address_that_accepts_but_never_answers_is_given_up_within_2_seconds(monkeypatch):
    with socket.socket() as hung:  # connections wait in its backlog; nothing ever reads them
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{hung.getsockname()[1]}")
        engine, seconds = elapsed(docker_engine)
    assert not engine.answers and "timed out" in engine.reason
    assert seconds < 2


def test_esdb_url_comes_first_and_docker_is_not_even_asked():
    asked = []
    choice = choose_eventstoredb({"ESDB_URL": "esdb://example:2113?Tls=false"}, lambda: asked.append(1))
    assert (choice.source, choice.url, asked) == ("env", "esdb://example:2113?Tls=false", [])
    assert choice.header("eventstoredb") == "eventstoredb: ESDB_URL esdb://example:2113?Tls=false"


def test_without_esdb_url_docker_decides_between_a_container_and_skipping():
    image, environment = compose_service("eventstoredb")
    assert image == "eventstore/eventstore:24.10"
    assert environment["EVENTSTORE_INSECURE"] == "true" and environment["EVENTSTORE_CLUSTER_SIZE"] == "1"

    with_docker = choose_eventstoredb({}, lambda: Engine(True, "Docker 27.3.1"))
    assert with_docker.source == "testcontainers" and with_docker.detail.startswith(f"testcontainers {image}")

    without = choose_eventstoredb({}, lambda: Engine(False, "no Docker engine answers at the default socket"))
    assert without.source == "none"
    assert without.reason == "ESDB_URL is not set and no Docker engine answers at the default socket"


def header_of(**env: str) -> list[str]:
    """The header lines of a pytest run (collection only) with that environment (ESDB_URL only if
    given there)."""
    environment = {k: v for k, v in program_env(**env).items() if k != "ESDB_URL" or "ESDB_URL" in env}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "tests/test_containers.py"],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return [line for line in done.stdout.splitlines() if line.startswith(("eventstoredb:", "rabbitmq:"))]


def test_the_pytest_header_says_where_each_service_comes_from():
    lines = header_of()  # ESDB_URL unset: the header follows the Docker probe
    if session_engine().answers:
        assert lines[0].startswith("eventstoredb: testcontainers eventstore/eventstore:24.10")
    else:
        assert lines[0].startswith("eventstoredb: none (EventStoreDB tests skip: ESDB_URL is not set and no Docker "
                                   "engine answers at ")
    assert lines[1].startswith(("rabbitmq: AMQP_URL amqp://", "rabbitmq: testcontainers rabbitmq:3.13-management"))
    assert "guest:guest" not in lines[1]  # no password in a log
