"""Settings as the services scripts need them, and the record of what `start` chose.

The values come from `eventreplay.settings.get_settings()` (environment variables and `.env`, with the
project's defaults). Where that module cannot be imported (a half-installed checkout), or lacks a field,
the same names are read here: environment first, then `.env`, then the default below.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent

DEFAULTS = {
    "AMQP_URL": "amqp://guest:guest@localhost:5672/%2F",
    "EVENT_STORE_URL": "sqlite:///.run/events.db",
    "API_HOST": "127.0.0.1",
    "API_PORT": "8000",
    "UI_HOST": "127.0.0.1",
    "UI_PORT": "5000",
    "RABBITMQ_MANAGEMENT_PORT": "15672",
    "RABBITMQ_DIST_PORT": "25672",
    "RUN_DIR": ".run",
}

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "ip6-localhost", ""}
ESDB_DOCKER_URL = "esdb://localhost:2113?Tls=false"


def read_env_file(path: Path) -> dict[str, str]:
    """A small `.env` reader: KEY=VALUE lines, `export ` prefix, quotes, `#` comments."""
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return values
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        if line.startswith("export "):
            line = line[len("export ") :].strip()
        key, _, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values


def dotenv() -> dict[str, str]:
    return read_env_file(ROOT / ".env")


def user_value(name: str) -> str | None:
    """The value the user set for NAME (environment, then `.env`), or None when they set none."""
    if name in os.environ:
        return os.environ[name]
    return dotenv().get(name)


def _from_settings() -> object | None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    try:
        from eventreplay.settings import get_settings  # type: ignore[import-not-found]

        return get_settings()
    except ImportError:
        return None
    except Exception as exc:  # a settings error is the user's to see, but do not hide the services
        print(f"services: eventreplay.settings failed ({exc}); reading the environment directly",
              file=sys.stderr)
        return None


def setting(name: str, settings: object | None = None) -> str:
    if settings is not None:
        value = getattr(settings, name.lower(), None)
        if value is not None:
            if hasattr(value, "get_secret_value"):
                value = value.get_secret_value()
            return str(value)
    value = user_value(name)
    return value if value is not None else DEFAULTS[name]


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
        return self.amqp_url.replace(f":{self.amqp_password}@", ":***@") if self.amqp_password else self.amqp_url


def load() -> Config:
    s = _from_settings()
    amqp_url = setting("AMQP_URL", s)
    parts = urlsplit(amqp_url)
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    run_dir_setting = setting("RUN_DIR", s)
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
        management_port=int(setting("RABBITMQ_MANAGEMENT_PORT", s)),
        dist_port=int(setting("RABBITMQ_DIST_PORT", s)),
        run_dir=run_dir.resolve(),
        run_dir_setting=run_dir_setting,
        api_host=setting("API_HOST", s),
        api_port=int(setting("API_PORT", s)),
        ui_host=setting("UI_HOST", s),
        ui_port=int(setting("UI_PORT", s)),
    )


# --- the record of what `start` chose ---------------------------------------------------------

def read_record(cfg: Config) -> dict[str, str]:
    return read_env_file(cfg.services_env)


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
