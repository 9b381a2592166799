"""A 3-node RabbitMQ cluster on this machine, from the Debian package (`python -m services start_cluster`).

Three private nodes (LocalNode, rabbitmq.py) `rabbit_a@localhost`, `rabbit_b@localhost` and
`rabbit_c@localhost`, each with its own AMQP port (RABBITMQ_CLUSTER_PORT + 0/1/2, default 5681-5683),
management port (+10000: 15681-15683), Erlang distribution port (+20000: 25681-25683) and data folder
under RUN_DIR/cluster/, one Erlang cookie (RUN_DIR/cluster/home) for the three and their rabbitmqctl.
Run as root, they run as the `rabbitmq` user (the package's own), as they would as a system service.

The first start joins b and c to a (`rabbitmqctl stop_app; reset; join_cluster rabbit_a@localhost;
start_app`); later starts start the three at once (a node that was stopped waits for its peers' tables)
and they find each other again from their data. Starting a running cluster says so; stop shuts the
nodes down and keeps their data (`--delete-data` removes it). The layout is recorded in
RUN_DIR/cluster/cluster.json, so that stop and status find the nodes that start started.

The tests start a cluster of their own on free ports (tests/support/cluster.py) with this class.
"""
from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import string
import subprocess
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from . import probe
from .config import Config
from .rabbitmq import LocalNode, ServiceError, chown_tree, ensure_installed, is_root, say

LETTERS = "abc"
CLUSTER_CONFIG = (
    # a node cut off from the majority pauses rather than serve a split cluster (quorum queues keep
    # their own majority rule either way)
    "cluster_partition_handling = pause_minority\n"
)


@dataclass
class ClusterLayout:
    folder: str
    names: list[str]
    amqp_ports: list[int]
    management_ports: list[int]
    dist_ports: list[int]
    user: str | None = None
    host: str = "localhost"  # in the AMQP URLs (the nodes listen on 127.0.0.1)
    management: bool = True  # the management plugin on each node (the tests go without: faster stops)

    @property
    def amqp_url(self) -> str:
        """AMQP_URL for the cluster: its nodes, comma-separated, in order."""
        return ",".join(f"amqp://guest:guest@{self.host}:{port}/%2F" for port in self.amqp_ports)


def default_user() -> str | None:
    """`rabbitmq` when we are root and the package created that user; else None (run as we run)."""
    if not is_root():
        return None
    try:
        pwd.getpwnam("rabbitmq")
    except KeyError:
        return None
    return "rabbitmq"


def services_layout(cfg: Config) -> ClusterLayout:
    """The cluster of `python -m services start_cluster`: the one recorded in RUN_DIR/cluster while
    one of its nodes runs (stop and status find what start started), else the one the settings
    describe (the nodes' data holds their names, not their ports)."""
    folder = cfg.run_dir / "cluster"
    recorded = LocalCluster.read_layout(folder)
    if recorded is not None and LocalCluster(recorded).running_nodes():
        return recorded
    base = cfg.cluster_port
    return ClusterLayout(
        folder=str(folder), names=[f"rabbit_{letter}@localhost" for letter in LETTERS],
        amqp_ports=[base + i for i in range(3)], management_ports=[base + 10_000 + i for i in range(3)],
        dist_ports=[base + 20_000 + i for i in range(3)], user=default_user(),
    )


class LocalCluster:
    def __init__(self, layout: ClusterLayout):
        self.layout = layout
        self.folder = Path(layout.folder)
        self.home = self.folder / "home"  # one Erlang cookie for the nodes and rabbitmqctl
        self.nodes = [self._node(i) for i in range(len(layout.names))]

    def _node(self, i: int) -> LocalNode:
        layout = self.layout
        url = f"amqp://guest:guest@127.0.0.1:{layout.amqp_ports[i]}/%2F"
        letter = layout.names[i].split("@")[0]
        cfg = Config(
            amqp_url=url, amqp_host="127.0.0.1", amqp_port=layout.amqp_ports[i], amqp_user="guest",
            amqp_password="guest", amqp_vhost="/", management_port=layout.management_ports[i],
            dist_port=layout.dist_ports[i], run_dir=self.folder, run_dir_setting=str(self.folder),
            api_host="127.0.0.1", api_port=0, ui_host="127.0.0.1", ui_port=0,
        )
        return LocalNode(cfg, folder=self.folder / letter, name=layout.names[i], home=self.home, user=layout.user,
                         extra_config=CLUSTER_CONFIG, management=layout.management)

    # --- facts ---------------------------------------------------------------------------------
    @property
    def amqp_url(self) -> str:
        return self.layout.amqp_url

    @staticmethod
    def read_layout(folder: Path) -> ClusterLayout | None:
        try:
            return ClusterLayout(**json.loads((folder / "cluster.json").read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def running_nodes(self) -> list[LocalNode]:
        return [node for node in self.nodes if node.running()]

    def members(self, node: LocalNode | None = None) -> tuple[list[str], list[str]]:
        """(members, running members) of the cluster as `node` sees it (default: the first node whose
        broker answers; a node whose broker application is stopped knows little)."""
        for asked in [node] if node is not None else self.running_nodes():
            result = asked.ctl("cluster_status", "--formatter", "json", timeout=30)
            if result.returncode != 0:
                continue
            try:
                status = json.loads(result.stdout)
            except ValueError:
                continue
            running = list(status.get("running_nodes", []))
            if running:
                return list(status.get("disk_nodes", [])) + list(status.get("ram_nodes", [])), running
        return [], []

    # --- start ---------------------------------------------------------------------------------
    def start(self) -> None:
        ensure_installed()
        waiting = [node for node in self.nodes if not node.running()]
        if not waiting:
            say(f"the cluster is already running: {', '.join(node.name for node in self.nodes)}")
        else:
            for node in waiting:
                ports = [(node.cfg.amqp_port, "AMQP"), (node.cfg.dist_port, "Erlang distribution")]
                if self.layout.management:
                    ports.append((node.cfg.management_port, "management"))
                for port, what in ports:
                    if probe.tcp_open("127.0.0.1", port):
                        raise ServiceError(
                            f"port {port} ({what} port of {node.name}) is taken by another program; choose other "
                            "ports with RABBITMQ_CLUSTER_PORT=... (AMQP on it +0..2, management +10000..10002, "
                            "Erlang distribution +20000..20002)")
            self._prepare()
            launched = [(node, node.launch()) for node in waiting]  # at once: restarted nodes wait for peers
            for node, proc in launched:
                node.wait_ready(proc)
        for node in self.nodes:  # running, but its broker application stopped (rabbitmqctl stop_app)
            if node not in waiting and probe.amqp(node.cfg.amqp_url, timeout=2)[0] == probe.DOWN:
                say(f"the broker application of {node.name} is stopped; starting it")
                start_app(node)
                node.wait_ready()
        self._join()
        members, running = self.members()
        missing = [node.name for node in self.nodes if node.name not in running]
        if missing:
            raise ServiceError(f"the cluster runs without {', '.join(missing)} (members: {members}, running: "
                               f"{running})\n" + "\n".join(node.log_tail(10) for node in self.nodes))
        say(f"cluster of {len(running)} nodes running: " + ", ".join(
            f"{node.name} (AMQP {node.cfg.amqp_port}, management {node.cfg.management_port})" for node in self.nodes))

    def _prepare(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        if not cookie.exists():  # written before any node starts: three nodes starting at once agree
            cookie.write_text("".join(secrets.choice(string.ascii_uppercase) for _ in range(20)))
        os.chmod(cookie, 0o400)
        (self.folder / "cluster.json").write_text(json.dumps(asdict(self.layout), indent=2) + "\n")
        if self.layout.user:
            chown_tree(self.home, self.layout.user)
            entry = pwd.getpwnam(self.layout.user)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)

    def _join(self) -> None:
        """Join to the first node each other node that is still a cluster of its own (never one that
        knows other members: `reset` would wipe what it holds)."""
        first = self.nodes[0]
        for node in self.nodes[1:]:
            members, _running = self.members(node)
            if len(members) > 1 or not members:  # clustered already (or it cannot tell: leave it alone)
                continue
            say(f"joining {node.name} to the cluster of {first.name}")
            for args in (("stop_app",), ("reset",), ("join_cluster", first.name), ("start_app",)):
                result = node.ctl(*args, timeout=120)
                if result.returncode != 0:
                    raise ServiceError(f"rabbitmqctl -n {node.name} {' '.join(args)} failed: "
                                       f"{(result.stderr or result.stdout).strip()[:500]}")
            node.wait_ready()

    # --- stop ----------------------------------------------------------------------------------
    def stop(self, *, delete_data: bool = False) -> bool:
        """Shut the nodes down (at once). False when none was running."""
        running = self.running_nodes()
        threads = [threading.Thread(target=node.stop, name=f"stop-{node.name}") for node in running]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if delete_data and self.folder.exists():
            say(f"deleting the cluster's data: {self.folder}")
            shutil.rmtree(self.folder, ignore_errors=True)
        return bool(running)

    # --- what runs -----------------------------------------------------------------------------
    def status_lines(self) -> list[str]:
        members, running = self.members()
        lines = []
        for node in self.nodes:
            state, detail = probe.amqp(node.cfg.amqp_url, timeout=2) if node.running() else ("stopped", "")
            where = "running" if node.name in running else ("member" if node.name in members else "not a member")
            lines.append(f"{node.name}: AMQP 127.0.0.1:{node.cfg.amqp_port} {state}"
                         + (f" ({detail})" if detail else "") + f", cluster: {where}")
        return lines


def stop_app(node: LocalNode, timeout: float = 120) -> None:
    """The broker application of one node stops (its Erlang VM stays): its client connections drop."""
    _ctl_checked(node, "stop_app", timeout=timeout)


def start_app(node: LocalNode, timeout: float = 120) -> None:
    _ctl_checked(node, "start_app", timeout=timeout)


def _ctl_checked(node: LocalNode, *args: str, timeout: float) -> subprocess.CompletedProcess:
    result = node.ctl(*args, timeout=timeout)
    if result.returncode != 0:
        raise ServiceError(f"rabbitmqctl -n {node.name} {' '.join(args)} failed: "
                           f"{(result.stderr or result.stdout).strip()[:500]}")
    return result
