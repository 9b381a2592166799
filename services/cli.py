"""python -m services {start|stop|status|info|exec|start_cluster|stop_cluster|status_cluster}

start   RabbitMQ (and EventStoreDB) for this project:
          - AMQP_URL points at another host: nothing to start, only checked;
          - a Docker engine answers: `docker compose up -d --wait` (RabbitMQ + EventStoreDB);
          - a broker already answers on AMQP_URL's port: used as it is, nothing started;
          - else a private RabbitMQ node from the Debian package, data under RUN_DIR/rabbitmq/.
        The choice goes to RUN_DIR/services.env (SERVICES_MODE, EVENT_STORE_URL, ...).
        Force a mode with --mode docker|local or SERVICES_MODE=docker|local.
stop    Stops only what start started (our node, or the compose services).
status  What runs, and where.
info    Where to look: UI, API docs, RabbitMQ management, the data.
exec    exec -- CMD [ARGS...]: run CMD with the variables of RUN_DIR/services.env that the user did not
        set (environment or .env), and API_/UI_ host and port resolved from the settings.

start_cluster   a 3-node RabbitMQ cluster on this machine (services/cluster.py): rabbit_a/b/c@localhost
                on AMQP ports RABBITMQ_CLUSTER_PORT + 0..2 (5681-5683), data under RUN_DIR/cluster/;
                prints the AMQP_URL that names its three nodes. Beside start's broker, not instead.
stop_cluster    stops the three nodes (--delete-data: and removes their data).
status_cluster  which nodes run and are members.
"""

from __future__ import annotations

import argparse
import os
import sys

from . import docker, probe
from .config import ESDB_DOCKER_URL, Config, clear_record, load, read_record, user_env_file, write_record
from .cluster import LocalCluster, services_layout
from .rabbitmq import LocalNode, ServiceError, ensure_installed, say


def _summary(cfg: Config, mode: str, store: str) -> None:
    say(f"mode: {mode}")
    say(f"  AMQP broker:          {cfg.display_amqp_url}")
    if mode in ("local", "docker"):
        say(f"  RabbitMQ management:  http://localhost:{cfg.management_port}  "
            f"(user {cfg.amqp_user})")
    say(f"  event store:          {store}")
    if mode == "docker":
        say("  EventStoreDB UI:      http://localhost:2113")
    say(f"  recorded in           {cfg.services_env}")


def start(cfg: Config, forced: str | None) -> int:
    record = read_record(cfg)
    node = LocalNode(cfg)

    if len(cfg.amqp_node_urls) > 1 and forced is None:
        return _several_nodes(cfg)

    if not cfg.amqp_is_local and forced is None:
        state, detail = probe.amqp(cfg.amqp_url)
        if state != probe.UP:
            say(f"AMQP_URL points at {cfg.amqp_host}:{cfg.amqp_port}, which does not accept our "
                f"connection ({detail}). Nothing is started for a remote broker.")
            return 1
        say(f"AMQP_URL points at a remote broker ({detail}); nothing to start")
        write_record(cfg, "external")
        return 0

    if forced != "docker" and node.running():
        node.start()  # says so, and waits until it accepts AMQP
        write_record(cfg, "local", EVENT_STORE_URL=cfg.sqlite_url)
        _summary(cfg, "local", cfg.sqlite_url)
        return 0

    use_docker = forced == "docker" or (forced is None and docker.engine_answers())
    if use_docker:
        if forced == "docker" and not docker.engine_answers():
            say("--mode docker, but no Docker engine answers (`docker info`)")
            return 1
        rc = docker.compose(cfg, "up", "-d", "--wait")
        if rc != 0:
            say(f"docker compose up failed (exit {rc})")
            return rc
        state, detail = probe.amqp(cfg.amqp_url)
        if state != probe.UP:
            say(f"warning: compose is up but {cfg.display_amqp_url} does not accept us yet ({detail})")
        write_record(cfg, "docker", EVENT_STORE_URL=ESDB_DOCKER_URL, ESDB_URL=ESDB_DOCKER_URL)
        _summary(cfg, "docker", ESDB_DOCKER_URL)
        return 0

    if probe.tcp_open("127.0.0.1" if cfg.amqp_host == "localhost" else cfg.amqp_host, cfg.amqp_port):
        state, detail = probe.amqp(cfg.amqp_url)
        if state == probe.UP:
            say(f"a broker already accepts AMQP connections on {cfg.amqp_host}:{cfg.amqp_port} "
                f"({detail}); using it, nothing started")
            mode = record.get("SERVICES_MODE") if record.get("SERVICES_MODE") == "docker" else "existing"
            store = record.get("EVENT_STORE_URL", cfg.sqlite_url) if mode == "docker" else cfg.sqlite_url
            if mode == "docker":
                write_record(cfg, mode, EVENT_STORE_URL=store, ESDB_URL=store)
            else:
                write_record(cfg, mode, EVENT_STORE_URL=store)
            _summary(cfg, mode, store)
            return 0
        say(f"port {cfg.amqp_port} is taken, but not by a broker that accepts AMQP_URL "
            f"({cfg.display_amqp_url}): {detail}\n"
            f"  Stop that program, or choose another port in AMQP_URL.")
        return 1

    try:
        node.start()
    except ServiceError as exc:
        say(f"error: {exc}")
        return 1
    write_record(cfg, "local", EVENT_STORE_URL=cfg.sqlite_url)
    _summary(cfg, "local", cfg.sqlite_url)
    return 0


def _several_nodes(cfg: Config) -> int:
    """AMQP_URL names the nodes of a cluster: nothing to start (a single node would not be that
    cluster), only checked."""
    answers = [(url, *probe.amqp(url, timeout=2)) for url in cfg.amqp_node_urls]
    up = [url for url, state, _detail in answers if state == probe.UP]
    for shown, (_url, state, detail) in zip(cfg.display_amqp_url.split(","), answers):
        say(f"  {shown}: {state} ({detail})")
    if not up:
        say(f"AMQP_URL names {len(answers)} nodes and none accepts our connection. For the local cluster: "
            "`task start_cluster` (python -m services start_cluster); nothing is started here.")
        return 1
    say(f"AMQP_URL names {len(answers)} nodes, {len(up)} of them accept connections; nothing to start")
    write_record(cfg, "existing", EVENT_STORE_URL=cfg.sqlite_url)
    _summary(cfg, "existing", cfg.sqlite_url)
    return 0


def start_cluster(cfg: Config) -> int:
    ensure_installed()  # first: the package creates the `rabbitmq` user the nodes run as
    cluster = LocalCluster(services_layout(cfg))
    cluster.start()
    say(f"data in {cluster.folder}" + (f" (nodes run as user {cluster.layout.user})" if cluster.layout.user else ""))
    say("run the programs against it with:")
    print(f"export AMQP_URL='{cluster.amqp_url}'", flush=True)
    return 0


def stop_cluster(cfg: Config, delete_data: bool) -> int:
    cluster = LocalCluster(services_layout(cfg))
    if not cluster.stop(delete_data=delete_data):
        say("nothing to stop: no node of the cluster is running")
    return 0


def status_cluster(cfg: Config) -> int:
    cluster = LocalCluster(services_layout(cfg))
    for line in cluster.status_lines():
        say(line)
    running = cluster.running_nodes()
    if running:
        print(f"export AMQP_URL='{cluster.amqp_url}'", flush=True)
    return 0 if len(running) == len(cluster.nodes) else 3


def stop(cfg: Config) -> int:
    record = read_record(cfg)
    mode = record.get("SERVICES_MODE", "")
    node = LocalNode(cfg)
    rc = 0
    if mode == "docker":
        if docker.engine_answers():
            rc = docker.compose(cfg, "down")
        else:
            say("the services were started with Docker, but no Docker engine answers now")
    stopped = node.stop()
    if mode in ("existing", "external") and not stopped:
        say("nothing to stop: start found a broker it had not started, and left it alone")
    elif mode != "docker" and not stopped:
        say("nothing to stop: no services of ours are running")
    if rc == 0:
        clear_record(cfg)
    return rc


def status(cfg: Config) -> int:
    record = read_record(cfg)
    node = LocalNode(cfg)
    mode = record.get("SERVICES_MODE", "(not started)")
    say(f"recorded mode: {mode}  ({cfg.services_env})")
    if node.running():
        say(f"our RabbitMQ node {node.name} runs (launcher pid {node.launcher_pid()}), "
            f"data in {node.dir}")
    state, detail = probe.amqp(cfg.amqp_url)
    say(f"AMQP {cfg.display_amqp_url}: {state} ({detail})")
    if record.get("EVENT_STORE_URL"):
        say(f"event store for the run tasks: {record['EVENT_STORE_URL']}")
    if mode == "docker" and docker.engine_answers():
        docker.compose(cfg, "ps")
    return 0 if state == probe.UP else 3


def info(cfg: Config) -> int:
    record = read_record(cfg)
    store = os.environ.get("EVENT_STORE_URL") or user_env_file().get("EVENT_STORE_URL") \
        or record.get("EVENT_STORE_URL") or cfg.sqlite_url
    print(f"""
  Management UI        http://localhost:{cfg.ui_port}
  Replay API docs      http://localhost:{cfg.api_port}/docs
  RabbitMQ management  http://localhost:{cfg.management_port}  ({cfg.amqp_user}/{'guest' if cfg.amqp_password == 'guest' else '***'})
  AMQP broker          {cfg.display_amqp_url}
  Event store          {store}""" + ("""
  EventStoreDB UI      http://localhost:2113""" if store.startswith("esdb") else "") + f"""
  Service data         {cfg.run_dir}  (the processes log to this terminal)
  Ctrl-C stops the processes started here; `./run stop_services` stops a broker that
  start_services started (one it found running is left alone).
""", flush=True)
    return 0


def exec_(cfg: Config, argv: list[str]) -> int:
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print("usage: python -m services exec -- CMD [ARGS...]", file=sys.stderr)
        return 2
    env_file = user_env_file()
    for key, value in read_record(cfg).items():
        if key == "SERVICES_MODE" or key in os.environ:
            continue
        os.environ[key] = env_file.get(key, value)
    for key, value in (("API_HOST", cfg.api_host), ("API_PORT", cfg.api_port),
                       ("UI_HOST", cfg.ui_host), ("UI_PORT", cfg.ui_port)):
        os.environ.setdefault(key, str(value))
    sys.stdout.flush()
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        print(f"services exec: cannot run {argv[0]}: {exc}", file=sys.stderr)
        return 127
    return 0  # not reached


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "exec":
        return exec_(load(), argv[1:])
    parser = argparse.ArgumentParser(prog="python -m services", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["start", "stop", "status", "info", "start_cluster", "stop_cluster",
                                            "status_cluster"])
    parser.add_argument("--mode", choices=["docker", "local"], default=os.environ.get("SERVICES_MODE") or None,
                        help="force Docker Compose or the private local node")
    parser.add_argument("--delete-data", action="store_true", help="stop_cluster: also remove the nodes' data")
    args = parser.parse_args(argv)
    cfg = load()
    try:
        if args.command == "start":
            return start(cfg, args.mode)
        if args.command == "stop":
            return stop(cfg)
        if args.command == "status":
            return status(cfg)
        if args.command == "start_cluster":
            return start_cluster(cfg)
        if args.command == "stop_cluster":
            return stop_cluster(cfg, args.delete_data)
        if args.command == "status_cluster":
            return status_cluster(cfg)
        return info(cfg)
    except ServiceError as exc:
        say(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
