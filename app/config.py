"""Settings, read from the environment (prefix ``SLADESK_``) and validated at start-up."""

from __future__ import annotations

import os
from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app import dburl
from app.domain.vocab import DEFAULT_LOCALE, LOCALE_PATTERN


def cores() -> int:
    """The cores this process may run on (a cpuset or taskset counts; a CPU quota, as
    a container's --cpus sets, does not: set SLADESK_WORKERS there)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


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
    webhook_processes: int = Field(
        default=0,
        ge=0,
        le=16,
        description="With `sladesk serve --workers N` (N > 1): run the webhook dispatcher "
        "in this many processes of its own under the supervisor, beside the API processes, "
        "instead of in the supervising process with the other loops (0).",
    )
    workers: int = Field(
        default_factory=cores,
        ge=1,
        le=256,
        description="API processes of `sladesk serve` on one host:port (default: the number "
        "of cores); the background loops run once, in the process that supervises them.",
    )

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
    # E-mail channel (README "E-mail"): the listener, the relay, limits and loop rules.
    mail_listen: str = Field(
        default="127.0.0.1:2525",
        description="host:port of the SMTP/LMTP listener run by the workers; empty disables.",
    )
    mail_listen_protocol: Literal["smtp", "lmtp"] = Field(
        default="smtp", description="`lmtp` for Postfix's lmtp: transport."
    )
    smtp_url: SecretStr | None = Field(
        default=None,
        description="Outbound relay: smtp://user:pass@host:587 (STARTTLS when offered) or "
        "smtps://… (implicit TLS). Unset: messages are composed and kept as `held`.",
    )
    smtp_timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    mail_from: str = Field(
        default="Support <support@localhost>",
        description="From of every message sladesk sends (its domain names our Message-IDs).",
    )
    mail_addresses: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated addresses that deliver to sladesk (loop protection).",
    )
    mail_locale: str = Field(
        default=DEFAULT_LOCALE,
        pattern=LOCALE_PATTERN,
        description="Language of answers to senders of no known organization.",
    )
    mail_max_message_bytes: int = Field(
        default=25 * 1024 * 1024, ge=64 * 1024, description="Larger messages are refused."
    )
    mail_max_attachment_bytes: int = Field(
        default=10 * 1024 * 1024,
        ge=1024,
        description="A message with a larger attachment is kept and rejected as too_large.",
    )
    mail_trusted_authserv_id: str | None = Field(
        default=None,
        description="authserv-id of the border MTA whose Authentication-Results are trusted; "
        "set, mail that does not pass DMARC (or aligned SPF/DKIM) is rejected.",
    )
    mail_auto_replies_per_hour: int = Field(
        default=3, ge=0, le=1000, description="Automatic answers per sender per hour."
    )
    mail_templates_dir: Path | None = Field(
        default=None, description="Directory of templates overriding the shipped ones."
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

    @field_validator("smtp_url", "mail_trusted_authserv_id", "mail_templates_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("mail_addresses", mode="before")
    @classmethod
    def _split_addresses(cls, value: object) -> object:
        if isinstance(value, str):
            return [a.strip().lower() for a in value.split(",") if a.strip()]
        return value

    @field_validator("mail_listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        if value.strip() == "":
            return ""
        host, sep, port = value.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("give host:port (e.g. 127.0.0.1:2525), or leave it empty")
        return value.strip()

    @field_validator("mail_from")
    @classmethod
    def _one_address(cls, value: str) -> str:
        _, address = parseaddr(value)
        if "@" not in address:
            raise ValueError("give an address, e.g. Support <support@example.com>")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _relay_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("give smtp://[user:pass@]host[:port] or smtps://…")
        try:
            _ = parts.port
        except ValueError:
            raise ValueError("the port is not a number") from None
        return value

    @field_validator("mail_templates_dir")
    @classmethod
    def _templates_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"{value} is not a directory")
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
