"""A RabbitMQ node of the test session's own, for tests that restart or stop the broker for real.

The shared node (`task start_services`, AMQP_URL) serves every other test; a test that stops its
broker must not take that one away from them. `PrivateBroker` starts another node of the Debian
package with the project's own services code (services/rabbitmq.py), on free ports, with its data
in a temporary folder, and offers the faults: `stop_app()` / `start_app()` (the node restarts its
broker application: every connection drops, durable queues and persistent messages survive).
"""
from __future__ import annotations

from pathlib import Path

import pika

from services.config import Config
from services.rabbitmq import LocalNode
from tests.support.processes import free_port
from tests.support.waiting import wait_for


class PrivateBroker:
    def __init__(self, run_dir: Path):
        amqp_port = free_port()
        self.amqp_url = f"amqp://guest:guest@127.0.0.1:{amqp_port}/%2F"
        self.management_port = free_port()
        config = Config(
            amqp_url=self.amqp_url, amqp_host="127.0.0.1", amqp_port=amqp_port, amqp_user="guest",
            amqp_password="guest", amqp_vhost="/", management_port=self.management_port,
            dist_port=free_port(), run_dir=run_dir, run_dir_setting=str(run_dir),
            api_host="127.0.0.1", api_port=0, ui_host="127.0.0.1", ui_port=0,
        )
        self.node = LocalNode(config)

    def start(self) -> "PrivateBroker":
        self.node.start()
        return self

    def stop(self) -> None:
        self.node.stop()

    def _ctl(self, *args: str) -> None:
        result = self.node.ctl(*args, timeout=120)
        assert result.returncode == 0, f"rabbitmqctl {' '.join(args)} failed: {result.stderr or result.stdout}"

    def stop_app(self) -> None:
        """The broker application stops (the Erlang node stays): every client connection drops and
        new ones are refused until start_app()."""
        self._ctl("stop_app")

    def start_app(self) -> None:
        self._ctl("start_app")
        wait_for(self.accepts_connections, timeout=60, interval=0.2, what="the private broker to accept AMQP again")

    def accepts_connections(self) -> bool:
        try:
            pika.BlockingConnection(pika.URLParameters(self.amqp_url)).close()
        except Exception:  # noqa: BLE001 - any failure means "not yet"
            return False
        return True
