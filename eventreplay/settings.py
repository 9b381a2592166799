"""One settings object for every component, read from the environment and `.env`.

Variable names are part of the contract (DESIGN.md "Settings"): the field `amqp_url` is read from
`AMQP_URL`, and so on. Nothing else in the package names a host or a port.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    amqp_url: str = "amqp://guest:guest@localhost:5672/%2F"
    event_store_url: str = "sqlite:///.run/events.db"
    exchange: str = "ecommerce-exchange"
    archive_queue: str = "eventstore-writer-queue"
    dead_letter_queue: str = "eventstore-writer-queue.dead-letter"

    batch_size: int = Field(500, ge=1, le=10_000, description="events stored per transaction at most")
    batch_max_latency_ms: int = Field(50, ge=1, le=10_000, description="longest wait to fill a batch")
    prefetch: int = Field(2000, ge=1, le=65_535, description="unacked messages the consumer may hold")
    log_level: str = "INFO"

    replay_queue: str = Field(
        "replayed", description="durable queue the Replay API declares at startup as a ready replay target"
    )
    replay_api_url: str = "http://127.0.0.1:8000"
    replay_api_key: SecretStr | None = None
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    ui_host: str = "127.0.0.1"
    ui_port: int = 5000
    ui_secret_key: SecretStr | None = None

    rabbitmq_management_port: int = 15672
    rabbitmq_dist_port: int = 25672
    run_dir: Path = Path(".run")

    @field_validator("log_level")
    @classmethod
    def _upper_level(cls, value: str) -> str:
        return value.upper()

    @field_validator("replay_api_key", "ui_secret_key", mode="before")
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
