"""A 3-node RabbitMQ cluster for the tests marked `cluster`: the project's own services code
(services/cluster.py, as `task start_cluster` runs it) on free ports, data in the session's temp folder,
without the management plugin (its 5 s pause makes every stop_app slower). It runs as the user that runs
the tests: the temp folder is private to that user (services' cluster, under RUN_DIR, runs as `rabbitmq`).

TEST_CLUSTER=running uses the cluster `task start_cluster` runs instead (and leaves it running).

The faults: `stop_node(i)` / `start_node(i)` (rabbitmqctl stop_app / start_app: every connection to that
node drops, its quorum queue replicas go away until it is back), and `node_of(connection_name)`: which
node a client's connection is on (rabbitmqctl list_connections, the server port it connected to).
"""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pika

from services.cluster import ClusterLayout, LocalCluster, services_layout, start_app, stop_app
from tests.support.processes import free_port
from tests.support.waiting import wait_for


class RabbitCluster:
    def __init__(self, cluster: LocalCluster, *, owned: bool):
        self.cluster = cluster
        self.owned = owned  # started by the tests, stopped by them

    @classmethod
    def private(cls, folder: Path) -> "RabbitCluster":
        tag = uuid.uuid4().hex[:6]
        layout = ClusterLayout(
            folder=str(folder), names=[f"t{tag}{letter}@localhost" for letter in "abc"],
            amqp_ports=[free_port() for _ in range(3)], management_ports=[free_port() for _ in range(3)],
            dist_ports=[free_port() for _ in range(3)], user=None, host="127.0.0.1", management=False,
        )
        return cls(LocalCluster(layout), owned=True)

    @classmethod
    def running(cls) -> "RabbitCluster":
        from services.config import load

        return cls(LocalCluster(services_layout(load())), owned=False)

    # --- what the tests use ----------------------------------------------------------------------
    @property
    def amqp_url(self) -> str:
        """The three nodes, comma-separated: AMQP_URL for the programs."""
        return self.cluster.amqp_url

    @property
    def ports(self) -> list[int]:
        """The nodes' AMQP ports, in order."""
        return [node.cfg.amqp_port for node in self.cluster.nodes]

    @property
    def node_urls(self) -> list[str]:
        return self.amqp_url.split(",")

    def url_from(self, first: int) -> str:
        """AMQP_URL with the nodes in another order: node `first`, then the others."""
        urls = self.node_urls
        return ",".join(urls[first:] + urls[:first])

    def start(self) -> "RabbitCluster":
        if self.owned:
            try:
                self.cluster.start()
            except BaseException:
                self.cluster.stop(delete_data=True)  # no node left behind by a start that failed halfway
                raise
        else:
            missing = [node.name for node in self.cluster.nodes if not node.running()]
            assert not missing, f"TEST_CLUSTER=running, but {missing} do not run: `task start_cluster` first"
        return self

    def stop(self) -> None:
        if self.owned:
            self.cluster.stop(delete_data=True)

    def node_up(self, i: int) -> bool:
        try:
            pika.BlockingConnection(pika.URLParameters(self.node_urls[i])).close()
        except Exception:  # noqa: BLE001 - any failure means "not now"
            return False
        return True

    def stop_node(self, i: int) -> None:
        stop_app(self.cluster.nodes[i])

    def start_node(self, i: int) -> None:
        start_app(self.cluster.nodes[i])
        wait_for(lambda: self.node_up(i), timeout=60, interval=0.2, what=f"node {i} to accept AMQP again")

    def heal(self) -> None:
        """Every node running its broker again (after a test that stopped one)."""
        for i in range(len(self.cluster.nodes)):
            if not self.node_up(i):
                self.start_node(i)

    def node_of(self, connection_name: str) -> int | None:
        """Index of the node the client connection of that name is on (None: no such connection)."""
        ports = [node.cfg.amqp_port for node in self.cluster.nodes]
        for i, node in enumerate(self.cluster.nodes):
            if not self.node_up(i):
                continue
            listed = node.ctl("list_connections", "port", "client_properties", "--formatter", "json", "-q",
                              timeout=30)
            if listed.returncode != 0:
                continue
            for connection in json.loads(listed.stdout or "[]"):
                properties = {entry[0]: entry[2] for entry in connection.get("client_properties", [])}
                if properties.get("connection_name") == connection_name and connection.get("port") in ports:
                    return ports.index(connection["port"])
            return None
        return None

    def wait_node_of(self, connection_name: str, *, other_than: int | None = None, timeout: float = 30) -> int:
        """node_of() once the connection is listed (on a node other than `other_than`, if given)."""
        def found():
            node = self.node_of(connection_name)
            return (node,) if node is not None and node != other_than else None

        return wait_for(found, timeout=timeout, interval=0.1,
                        what=f"connection {connection_name!r} on a node" + (f" other than {other_than}"
                                                                             if other_than is not None else ""))[0]

    def quorum_leader(self, queue: str) -> int | None:
        """Index of the node that leads the quorum queue (None when unknown)."""
        names = [node.name for node in self.cluster.nodes]
        for i, node in enumerate(self.cluster.nodes):
            if not self.node_up(i):
                continue
            listed = node.ctl("list_queues", "name", "leader", "--formatter", "json", "-q", timeout=30)
            if listed.returncode != 0:
                continue
            for entry in json.loads(listed.stdout or "[]"):
                if entry.get("name") == queue and entry.get("leader") in names:
                    return names.index(entry["leader"])
            return None
        return None


def session_cluster(folder: Path) -> RabbitCluster:
    """The cluster for this session: TEST_CLUSTER=running reuses `task start_cluster`'s."""
    if os.environ.get("TEST_CLUSTER", "").strip().lower() == "running":
        return RabbitCluster.running().start()
    return RabbitCluster.private(folder).start()
