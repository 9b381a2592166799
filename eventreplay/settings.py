"""One settings object for every component, read from the environment and `.env`.

Variable names are part of the contract (README, "Configuration"): the field `amqp_url` is read from
`AMQP_URL`, and so on. Nothing else in the package names a host or a port.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    amqp_url: str = Field(
        "amqp://guest:guest@localhost:5672/%2F",
        description="the RabbitMQ node, or the nodes of a cluster separated by commas (tried in that order)",
    )
    event_store_url: str = "sqlite:///.run/events.db"
    exchange: str = "ecommerce-exchange"
    archive_queue: str = "eventstore-writer-queue"
    dead_letter_queue: str = "eventstore-writer-queue.dead-letter"
    # quorum: RabbitMQ's replicated durable queue (>= 3.8), also right on a single node; README
    # "Quorum queues and clusters" says why it is the default and how an existing queue is kept.
    queue_type: str = Field(
        "quorum", description="type of the queues eventreplay declares (archive, dead-letter, replay targets)",
    )

    batch_size: int = Field(500, ge=1, le=10_000, description="events stored per transaction at most")
    batch_max_latency_ms: int = Field(50, ge=1, le=10_000, description="longest wait to fill a batch")
    prefetch: int = Field(2000, ge=1, le=65_535, description="unacked messages the consumer may hold")
    writer_process: bool = Field(
        True, description="the consumer stores batches in a child process (a second core); false: in a thread",
    )
    consumer_metrics_port: int = Field(
        9464, ge=0, le=65_535, description="port of the consumer's Prometheus /metrics (0: not served)",
    )
    consumer_metrics_host: str = Field("127.0.0.1", description="address the consumer's /metrics listens on")
    log_level: str = "INFO"

    indexed_fields: str = Field(
        "order_id,user_id,product_id",
        description="top-level payload fields indexed at ingest (comma-separated; empty: none)",
    )
    retention: str = Field("", description="keep events this long (e.g. 90d, 12h; empty: forever)")
    retention_by_type: str = Field("", description="per event type, e.g. UserLoggedIn=7d,ProductViewed=30d")
    prune_interval_s: float = Field(3600.0, gt=0, description="how often the consumer applies the retention")

    job_lease_s: float = Field(
        15.0, ge=1, le=3600,
        description="a replay job whose record did not change this long is taken over by another API instance",
    )
    instance_name: str = Field("", description="name of this API instance on its jobs (default: host:pid)")

    replay_queue: str = Field(
        "replayed", description="durable queue the Replay API declares at startup as a ready replay target"
    )
    # A resume after a crash re-sends at most replay_window + replay_checkpoint_every events
    # (docs/api.md, "Guarantees").
    replay_window: int = Field(1000, ge=1, le=100_000, description="unconfirmed messages a replay keeps in flight")
    replay_checkpoint_every: int = Field(
        1000, ge=1, le=1_000_000, description="confirmed events a replay may run ahead of its recorded progress"
    )
    replay_give_up_s: float = Field(
        300.0, gt=0, le=7 * 24 * 3600,
        description="how long a replay keeps reconnecting through broker or store faults before it fails",
    )
    replay_api_url: str = "http://127.0.0.1:8000"
    replay_api_key: SecretStr | None = None
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_max_body_bytes: int = Field(1024 * 1024, ge=1024, le=1024**3, description="larger request bodies get 413")
    api_header_timeout_s: float = Field(10.0, gt=0, le=600, description="time a client has to send a request's headers")
    api_keep_alive_s: int = Field(5, ge=1, le=600, description="idle time before a kept-alive connection is closed")
    api_max_connections: int = Field(10_000, ge=10, le=1_000_000, description="connections served at once, beyond: 503")
    ui_host: str = "127.0.0.1"
    ui_port: int = 5000
    ui_secret_key: SecretStr | None = None
    ui_threads: int = Field(8, ge=1, le=256, description="threads that run the UI's requests")
    ui_max_connections: int = Field(10_000, ge=10, le=1_000_000, description="connections the UI holds at once")
    ui_idle_timeout_s: int = Field(30, ge=1, le=3600, description="a UI connection silent this long is closed")
    ui_trusted_proxy: str | None = Field(
        None, description="address of a TLS-terminating proxy whose X-Forwarded-* headers the UI trusts",
    )

    rabbitmq_management_port: int = 15672
    rabbitmq_dist_port: int = 25672
    # `python -m services start_cluster`: node i (0, 1, 2) listens on AMQP this + i, management
    # this + 10000 + i, Erlang distribution this + 20000 + i
    rabbitmq_cluster_port: int = Field(5681, ge=1024, le=45_533, description="AMQP port of the local cluster's first node")
    run_dir: Path = Path(".run")

    @field_validator("retention")
    @classmethod
    def _retention(cls, value: str) -> str:
        from eventreplay.retention import parse_duration

        if value.strip():
            parse_duration(value)
        return value

    @field_validator("retention_by_type")
    @classmethod
    def _retention_by_type(cls, value: str) -> str:
        from eventreplay.retention import parse_by_type

        parse_by_type(value)
        return value

    @property
    def indexed_field_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(name.strip() for name in self.indexed_fields.split(",") if name.strip()))

    @field_validator("amqp_url")
    @classmethod
    def _amqp_urls(cls, value: str) -> str:
        from eventreplay.broker.connection import amqp_urls

        amqp_urls(value)  # ValueError: one line saying which node and why
        return value.strip()

    @field_validator("queue_type", mode="before")
    @classmethod
    def _queue_type(cls, value):
        from eventreplay.broker.topology import QUEUE_TYPES

        text = str(value).strip().lower()
        if text not in QUEUE_TYPES:
            raise ValueError(f"must be one of {', '.join(QUEUE_TYPES)}")
        return text

    @field_validator("log_level")
    @classmethod
    def _upper_level(cls, value: str) -> str:
        return value.upper()

    @field_validator("replay_api_key", "ui_secret_key", "ui_trusted_proxy", mode="before")
    @classmethod
    def _empty_is_unset(cls, value):
        return None if value in ("", None) else value


class InvalidSettings(SystemExit):
    """Settings that cannot be used. A SystemExit, so that an entry point ends with this one
    readable message (exit code 2) rather than a traceback."""

    def __init__(self, error: ValidationError):
        lines = []
        for item in error.errors():
            name = ".".join(str(part) for part in item["loc"]).upper() or "settings"
            lines.append(f"  {name}={item.get('input')!r}: {item['msg']}")
        self.message = "invalid settings (environment or .env):\n" + "\n".join(lines)
        super().__init__(2)

    def __str__(self) -> str:
        return self.message


@lru_cache
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        import sys

        invalid = InvalidSettings(error)
        print(invalid.message, file=sys.stderr)
        raise invalid from None
