"""The suite's fixtures (tests/browser/conftest.py adds the browser system's): the real broker, the
real stores, the API and the consumer as the tests use them, with unique names so that tests run in
any order. The helpers they are made of are in tests/support/.

AMQP_URL names the broker to test against (default: the local node `task start_services` runs);
when nothing answers there and a Docker engine does, a RabbitMQ container (testcontainers).
ESDB_URL names an EventStoreDB (CI starts the emulator); without it, a real EventStoreDB container
where a Docker engine answers, else the EventStoreDB tests skip. The header says which
(tests/support/containers.py).
Each EventStoreDB test gets its own stream prefix (`streamPrefix` in the store URL), so tests that
share one server never see each other's events.
"""
from __future__ import annotations

import os
import resource
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pika
import pytest
from fastapi.testclient import TestClient

from eventreplay.api import create_app as create_api
from eventreplay.simulator import EventFactory, SteadyClock
from eventreplay.store import EventStore, open_store
from eventreplay.ui import create_app as create_ui
from tests.support.amqp import declare_queue, declared_archive, delete_queue, delete_topology
from tests.support.api import api_settings
from tests.support.containers import session_eventstoredb, session_rabbitmq, start_eventstoredb, start_rabbitmq
from tests.support.events import T0, new_event
from tests.support.ingest import consumer_env
from tests.support.limited_servers import IDLE_CONNECTIONS, UI_THREADS, start_limited_api, start_limited_ui
from tests.support.names import archive_names, unique
from tests.support.processes import consumer_program, free_port, start_api
from tests.support.seeded_api import API_KEY as SEEDED_API_KEY, start_seeded_api
from tests.support.stores import private_esdb_url, seed

DEFAULT_AMQP_URL = "amqp://guest:guest@localhost:5672/%2F"
BACKENDS = ("sqlite", "esdb")


def configured_amqp_url() -> str:
    return os.environ.get("AMQP_URL", DEFAULT_AMQP_URL).split(",")[0].strip()  # a cluster's: its first node


def pytest_report_header(config) -> list[str]:
    """Where the EventStoreDB and the RabbitMQ of this run come from (tests/support/containers.py)."""
    return [session_eventstoredb().header("eventstoredb"), session_rabbitmq(configured_amqp_url()).header("rabbitmq")]


# -- the broker ------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def amqp_url(request) -> str:
    url = configured_amqp_url()
    choice = session_rabbitmq(url)
    if choice.source == "testcontainers":
        container, url, management_port = start_rabbitmq()
        request.addfinalizer(container.stop)
        # for the programs the tests start and the helpers that use the management API
        os.environ.update(AMQP_URL=url, RABBITMQ_MANAGEMENT_PORT=str(management_port))
    elif choice.source == "none":
        pytest.fail(f"RabbitMQ is not reachable: {choice.reason}; run `task start_services` first", False)
    return url


@pytest.fixture
def amqp(amqp_url):
    """A blocking connection to the test broker, closed after the test."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    yield connection
    if connection.is_open:
        connection.close()


@pytest.fixture
def names():
    """Unique exchange and queue names for one test (see tests/support/names.py)."""
    return archive_names(unique("t"))


@pytest.fixture
def archive(amqp_url, names):
    """The test's unique exchange and queues, not declared (the consumer declares them), removed
    afterwards."""
    yield names
    delete_topology(amqp_url, names)


@pytest.fixture
def bound_archive(amqp_url, names):
    """The test's archive topology declared before the test (the exchange bound to the archive
    queue, so that events published before a consumer starts wait for it), removed afterwards."""
    with declared_archive(amqp_url, names):
        yield names


@pytest.fixture
def target_queue(amqp_url, names):
    """A queue of the test's own to replay into, removed afterwards."""
    queue = names["target_queue"]
    declare_queue(amqp_url, queue)
    yield queue
    delete_queue(amqp_url, queue)


@pytest.fixture(scope="session")
def _private_broker_node(tmp_path_factory):
    from tests.support.brokers import PrivateBroker  # the services code, loaded only where a test needs it

    broker = PrivateBroker(tmp_path_factory.mktemp("private-rabbitmq")).start()
    yield broker
    broker.stop()


@pytest.fixture
def private_broker(_private_broker_node):
    """A RabbitMQ node of the test session's own (tests/support/brokers.py), for tests that stop and
    start their broker for real; running again after each test, whatever the test did to it."""
    yield _private_broker_node
    if not _private_broker_node.accepts_connections():
        _private_broker_node.start_app()


# -- the 3-node cluster (tests marked `cluster`) ---------------------------------------------------

@pytest.fixture(scope="session")
def _rabbit_cluster(tmp_path_factory):
    from tests.support.cluster import session_cluster  # the services code, loaded only where a test needs it

    cluster = session_cluster(tmp_path_factory.mktemp("rabbit-cluster"))
    yield cluster
    cluster.stop()


@pytest.fixture
def rabbit_cluster(_rabbit_cluster):
    """A 3-node RabbitMQ cluster of the session's own (tests/support/cluster.py; TEST_CLUSTER=running:
    the one `task start_cluster` runs), its three nodes running again after each test."""
    yield _rabbit_cluster
    _rabbit_cluster.heal()


# -- the stores ------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def esdb_base_url(request) -> str:
    """ESDB_URL; else a real EventStoreDB in a container (Docker); else the test skips."""
    choice = session_eventstoredb()
    if choice.source == "none":
        pytest.skip(f"no EventStoreDB to test against: {choice.reason} (CI starts the emulator)")
    if choice.source == "testcontainers":
        container, url = start_eventstoredb()
        request.addfinalizer(container.stop)
        return url
    return choice.url


@pytest.fixture(params=[pytest.param(b, marks=[pytest.mark.esdb] if b == "esdb" else []) for b in BACKENDS])
def store_url(request, tmp_path) -> str:
    """An empty store of each backend, as an EVENT_STORE_URL (for subprocesses and settings)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    return private_esdb_url(request.getfixturevalue("esdb_base_url"))


@pytest.fixture
def store(store_url) -> EventStore:
    opened = open_store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def sqlite_url(tmp_path):
    """An SQLite store URL whose folders do not exist yet."""
    return f"sqlite:///{tmp_path / 'nested' / 'deeper' / 'events.db'}"


@pytest.fixture
def esdb_store_url(esdb_base_url):
    """An empty store on the test EventStoreDB (a stream prefix of the test's own)."""
    return private_esdb_url(esdb_base_url)


TMPFS_SIZE = "16m"  # 5,000 simulated events take about 8 MB (database and WAL) once the filler is gone


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A directory on a tmpfs of its own (TMPFS_SIZE), unmounted afterwards whatever happened."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    if not shutil.which("mount"):
        pytest.skip("no mount command on this machine")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode != 0:
            # something still holds a file open there (a failed test's store): detach it anyway
            subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


# -- the Replay API --------------------------------------------------------------------------------

@pytest.fixture
def api(store_url, amqp_url):
    """The Replay API in process (lifespan run), on an empty store of each backend."""
    app = create_api(api_settings(store_url, amqp_url))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def api_store(api):
    """The store the `api` fixture serves (to seed it)."""
    return api.app.state.services.store()


@pytest.fixture
def sqlite_api(tmp_path, amqp_url, request):
    """The API in process on an SQLite file of its own (`db_path`); settings overrides through
    indirect params."""
    path = tmp_path / "events.db"
    overrides = getattr(request, "param", {})
    app = create_api(api_settings(f"sqlite:///{path}", amqp_url, **overrides))
    with TestClient(app, raise_server_exceptions=False) as client:
        client.db_path = path
        yield client


@pytest.fixture
def served_api(tmp_path, amqp_url):
    """`python replay_api.py` (no API key) over an SQLite store holding a few events."""
    url = f"sqlite:///{tmp_path / 'events.db'}"
    with open_store(url) as store:
        seed(store, [new_event(t, order_id=f"o{i}") for i, t in enumerate(["OrderPlaced", "UserLoggedIn"] * 5)])
    api = start_api(url, amqp_url, tmp_path / "api.log", LOG_LEVEL="INFO")
    yield api
    api.stop()


@pytest.fixture(scope="module")
def seeded_api(amqp_url, tmp_path_factory):
    """The real Replay API over a seeded SQLite store, with an API key required
    (tests/support/seeded_api.py)."""
    server = start_seeded_api(amqp_url, tmp_path_factory.mktemp("ui-routes"))
    yield server
    server.stop()


@pytest.fixture
def ui_app(seeded_api):
    """The management UI (Flask, in process) over the seeded API."""
    return create_ui({"TESTING": True, "REPLAY_API_URL": seeded_api.url, "REPLAY_API_KEY": SEEDED_API_KEY})


@pytest.fixture
def ui_client(ui_app):
    return ui_app.test_client()


@pytest.fixture
def unused_url():
    """An HTTP URL where nothing answers."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def open_file_room():
    """Room for the idle connections in this process and in the servers it starts (they inherit
    the soft limit; the UI raises its own, too)."""
    needed = 2 * IDLE_CONNECTIONS + 500
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"the open-file limit ({hard}) cannot hold {2 * IDLE_CONNECTIONS} connections")
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture(scope="module")
def limited_api(open_file_room, amqp_url, tmp_path_factory):
    """The API as `python replay_api.py` runs it, with an API key; a header timeout long enough for
    the idle connections to stay open while they are measured."""
    server = start_limited_api(tmp_path_factory.mktemp("limits-api"), amqp_url, "api", API_HEADER_TIMEOUT_S="60")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def limited_ui(limited_api, tmp_path_factory):
    """The UI as `python replay_management_ui.py` runs it, with UI_THREADS threads, trusting a TLS
    proxy on 127.0.0.1."""
    # idle timeout: longer than the test holds its idle connections
    server = start_limited_ui(tmp_path_factory.mktemp("limits-ui"), limited_api.url, UI_THREADS=str(UI_THREADS),
                              UI_IDLE_TIMEOUT_S="120", UI_TRUSTED_PROXY="127.0.0.1")
    yield server
    server.stop()


# -- the consumer and the simulator ----------------------------------------------------------------

@pytest.fixture
def consumer_process(amqp_url, store_url, bound_archive, tmp_path):
    """`python consumer.py` for the test's archive and store, not started yet; killed afterwards."""
    # small batches and prefetch: the consumer is still busy when the test interrupts it
    env = consumer_env(amqp_url, store_url, bound_archive, BATCH_SIZE="50", PREFETCH="200")
    process = consumer_program(env, tmp_path / "consumer.log")
    yield process
    process.kill()


@pytest.fixture(scope="module")
def simulated_payloads():
    """The payloads of 5,000 simulated events (seed 42, a steady clock from T0)."""
    return [event.payload() for event in EventFactory(seed=42, clock=SteadyClock(T0)).take(5000)]
