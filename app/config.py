"""Settings, read from the environment (prefix ``SLADESK_``) and validated at start-up."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app import dburl


class Settings(BaseSettings):
    """Every knob of the service. A bad value stops start-up with one line naming it."""

    model_config = SettingsConfigDict(env_prefix="SLADESK_", extra="ignore", frozen=True)

    database_url: SecretStr | None = Field(
        default=None,
        description="PostgreSQL URL. Unset: a private embedded server in data_dir is used.",
    )
    listen_database_url: SecretStr | None = Field(
        default=None,
        description="A direct PostgreSQL URL for the workers' LISTEN connections (needed "
        "when database_url goes through a transaction pooler such as PgBouncer).",
    )
    db_transaction_pooling: bool = Field(
        default=False,
        description="database_url goes through a transaction pooler (PgBouncer "
        "pool_mode=transaction): no prepared statements outlive a transaction.",
    )
    data_dir: Path = Field(default=Path(".sladesk"), description="Embedded PostgreSQL home.")
    allow_embedded: bool = Field(
        default=True,
        description="Without database_url, start the embedded PostgreSQL in data_dir. The "
        "container image sets it to false: data there dies with the container.",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    run_workers: bool = Field(default=True, description="Run the timer and webhook loops.")

    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_max_overflow: int = Field(default=10, ge=0, le=200)
    db_pool_timeout_seconds: float = Field(default=10.0, gt=0)
    db_connect_timeout_seconds: float = Field(default=10.0, gt=0)
    db_statement_timeout_ms: int = Field(default=30_000, ge=0)

    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="Request body limit.")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated browser origins allowed by CORS."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    webhooks_allow_private: bool = Field(
        default=False, description="Allow webhook URLs on private/loopback addresses."
    )
    webhooks_allow_http: bool = Field(default=False, description="Allow plain-http webhooks.")
    webhook_timeout_seconds: float = Field(default=15.0, gt=0, le=120)
    webhook_secret_overlap_hours: float = Field(default=24.0, ge=0, le=24 * 30)

    stream_max_seconds: float = Field(
        default=300.0,
        gt=0,
        le=86_400,
        description="An event stream ends after this long; clients reconnect with "
        "Last-Event-ID (EventSource does by itself).",
    )
    stream_heartbeat_seconds: float = Field(
        default=15.0, gt=0, le=300, description="A comment line on an idle event stream."
    )
    stream_max_per_key: int = Field(
        default=10, ge=1, le=1000, description="Open event streams per API key (per process)."
    )
    stream_token_ttl_seconds: int = Field(
        default=60, ge=5, le=3600, description="How long a stream token may open streams."
    )
    retention_days: int = Field(
        default=90,
        ge=1,
        le=36_500,
        description="Delivered webhook events and their delivery attempts are pruned after this.",
    )

    bootstrap_admin_key: SecretStr | None = Field(
        default=None,
        description="Create this admin key on first start instead of a random one (containers).",
    )

    @field_validator("database_url", "listen_database_url", mode="after")
    @classmethod
    def _usable_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            dburl.check(value.get_secret_value())
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


def describe_settings_error(error: ValidationError) -> str:
    """One line naming the first bad setting, e.g. for `sladesk serve` to print and exit.
    The value itself is never repeated: it may be a URL with a password."""
    first = error.errors()[0]
    name = "SLADESK_" + "_".join(str(part) for part in first["loc"]).upper()
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"invalid setting {name}: {' '.join(message.split())}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
