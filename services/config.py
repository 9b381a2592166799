"""Settings as the services scripts need them, and the record of what `start` chose.

Every value comes from `eventreplay.settings.get_settings()`: environment variables, then `.env`, then
the project's defaults, read by pydantic-settings. The services code runs with the project's virtualenv
(Taskfile.yml: `.venv/bin/python -m services ...`), so those settings are always importable.

Where the question is not "which value?" but "did the user set NAME?" (`exec` must not override what
the user set; `info` shows the store the run tasks will use), the CLI looks at the environment and at
`user_env_file()`: the same `.env` the settings read, parsed with python-dotenv as pydantic-settings
parses it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from dotenv import dotenv_values

from eventreplay.settings import Settings, get_settings

ROOT = Path(__file__).resolve().parent.parent

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "ip6-localhost", ""}
ESDB_DOCKER_URL = "esdb://localhost:2113?Tls=false"


def _read_env_file(path: Path, *, interpolate: bool = True, encoding: str = "utf-8") -> dict[str, str]:
    """KEY=VALUE pairs of a dotenv file ({} when it is missing); a bare `KEY` line sets nothing."""
    if not path.is_file():
        return {}
    values = dotenv_values(path, interpolate=interpolate, encoding=encoding)
    return {key: value for key, value in values.items() if value is not None}


def user_env_file() -> dict[str, str]:
    """What the user's `.env` sets: the file(s) eventreplay.settings reads (`env_file`, relative to the
    working folder), parsed the way pydantic-settings parses them (later files win)."""
    env_file = Settings.model_config.get("env_file")
    if env_file is None:
        return {}
    files = [env_file] if isinstance(env_file, (str, os.PathLike)) else list(env_file)
    encoding = Settings.model_config.get("env_file_encoding") or "utf-8"
    values: dict[str, str] = {}
    for name in files:
        values.update(_read_env_file(Path(name).expanduser(), encoding=encoding))
    return values


@dataclass
class Config:
    amqp_url: str
    amqp_host: str
    amqp_port: int
    amqp_user: str
    amqp_password: str
    amqp_vhost: str
    management_port: int
    dist_port: int
    run_dir: Path
    run_dir_setting: str
    api_host: str
    api_port: int
    ui_host: str
    ui_port: int
    # AMQP_URL as set: several nodes (a cluster) separated by commas; the fields above are its first
    amqp_url_setting: str = ""
    cluster_port: int = 5681  # RABBITMQ_CLUSTER_PORT: AMQP port of the local cluster's first node

    @property
    def amqp_node_urls(self) -> list[str]:
        return [url.strip() for url in (self.amqp_url_setting or self.amqp_url).split(",")]

    @property
    def amqp_is_local(self) -> bool:
        return self.amqp_host.lower() in LOCAL_HOSTS

    @property
    def services_env(self) -> Path:
        return self.run_dir / "services.env"

    @property
    def sqlite_url(self) -> str:
        """The SQLite store inside RUN_DIR, spelled as the user spelled RUN_DIR (relative stays relative)."""
        return f"sqlite:///{self.run_dir_setting.rstrip('/')}/events.db"

    @property
    def node_name(self) -> str:
        tag = hashlib.sha1(str(self.run_dir).encode()).hexdigest()[:6]
        return f"eventreplay-{tag}-{self.amqp_port}@localhost"

    @property
    def display_amqp_url(self) -> str:
        return ",".join(_hide_password(url) for url in self.amqp_node_urls)


def _hide_password(url: str) -> str:
    parts = urlsplit(url)
    return url.replace(f":{parts.password}@", ":***@") if parts.password else url


def load() -> Config:
    s = get_settings()  # invalid settings end the process with their message (exit code 2)
    amqp_url = s.amqp_url.split(",")[0].strip()  # a single node's services look at the first node
    parts = urlsplit(amqp_url)
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    run_dir_setting = str(s.run_dir)
    run_dir = Path(run_dir_setting)
    if not run_dir.is_absolute():
        run_dir = ROOT / run_dir
    return Config(
        amqp_url=amqp_url,
        amqp_host=parts.hostname or "localhost",
        amqp_port=parts.port or (5671 if parts.scheme == "amqps" else 5672),
        amqp_user=unquote(parts.username) if parts.username else "guest",
        amqp_password=unquote(parts.password) if parts.password else "guest",
        amqp_vhost=vhost,
        management_port=s.rabbitmq_management_port,
        dist_port=s.rabbitmq_dist_port,
        run_dir=run_dir.resolve(),
        run_dir_setting=run_dir_setting,
        api_host=s.api_host,
        api_port=s.api_port,
        ui_host=s.ui_host,
        ui_port=s.ui_port,
        amqp_url_setting=s.amqp_url,
        cluster_port=s.rabbitmq_cluster_port,
    )


# --- the record of what `start` chose ---------------------------------------------------------

def read_record(cfg: Config) -> dict[str, str]:
    # written by write_record below, literally: no ${...} expansion
    return _read_env_file(cfg.services_env, interpolate=False)


def write_record(cfg: Config, mode: str, **values: str) -> None:
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Written by `python -m services start`: which services it chose. The run tasks take the",
        "# variables below unless you set them yourself (environment or .env). Removed by `stop`.",
        f"SERVICES_MODE={mode}",
    ]
    lines += [f"{k}={v}" for k, v in values.items()]
    tmp = cfg.services_env.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(cfg.services_env)


def clear_record(cfg: Config) -> None:
    try:
        cfg.services_env.unlink()
    except FileNotFoundError:
        pass
