"""RabbitMQ and EventStoreDB with Docker Compose, where a Docker engine answers."""

from __future__ import annotations

import os
import shutil
import subprocess

from .config import ROOT, Config

COMPOSE_FILE = ROOT / "docker-compose.yml"


def engine_answers(timeout: float = 3.0) -> bool:
    """True when a Docker engine answers `docker info` within the timeout (the CLI alone is not enough)."""
    if not shutil.which("docker"):
        return False
    try:
        r = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                           text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    except (subprocess.TimeoutExpired, OSError):
        return False
    return r.returncode == 0 and bool(r.stdout.strip())


def compose_command() -> list[str] | None:
    if shutil.which("docker"):
        r = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, check=False)
        if r.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def compose_env(cfg: Config) -> dict[str, str]:
    """Ports and credentials for docker-compose.yml's ${...} interpolation, from the settings."""
    return {
        **os.environ,
        "RABBITMQ_AMQP_PORT": str(cfg.amqp_port),
        "RABBITMQ_MANAGEMENT_PORT": str(cfg.management_port),
        "RABBITMQ_DEFAULT_USER": cfg.amqp_user,
        "RABBITMQ_DEFAULT_PASS": cfg.amqp_password,
        "RABBITMQ_DEFAULT_VHOST": cfg.amqp_vhost,
    }


def compose(cfg: Config, *args: str) -> int:
    cmd = compose_command()
    if cmd is None:
        raise RuntimeError("a Docker engine answers but neither `docker compose` nor `docker-compose` "
                           "is installed")
    full = [*cmd, "-f", str(COMPOSE_FILE), *args]
    print("services: $ " + " ".join(full), flush=True)
    return subprocess.run(full, env=compose_env(cfg), cwd=ROOT, stdin=subprocess.DEVNULL,
                          check=False).returncode
