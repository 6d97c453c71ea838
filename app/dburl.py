"""PostgreSQL URLs as people are handed them, checked once and connected to by asyncpg.

Managed providers hand out libpq URLs: ``postgresql://u:p@host:5432/db?sslmode=require``.
SQLAlchemy's asyncpg dialect would pass every query parameter to ``asyncpg.connect`` as a
keyword (``sslmode`` is not one), so sladesk hands asyncpg the URL itself as its ``dsn``:
asyncpg parses the libpq parameters (``sslmode`` … ``verify-full``, ``sslrootcert``, unix
socket hosts, percent-encoded passwords) exactly as its own documentation says.

:func:`check` is what start-up runs on a setting: anything asyncpg would misread or the
server would refuse is one line naming the parameter, never a traceback at connect time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError

SCHEMES = ("postgres", "postgresql", "postgresql+asyncpg")
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# Files that must exist: a typo here would otherwise surface as a TLS error much later.
FILE_PARAMETERS = ("sslrootcert", "sslcert", "sslkey", "sslcrl", "passfile")
# What asyncpg reads from a DSN, plus two startup parameters PostgreSQL itself takes.
SUPPORTED = (
    "host",
    "port",
    "user",
    "password",
    "dbname",
    "sslmode",
    *FILE_PARAMETERS,
    "sslpassword",
    "sslnegotiation",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "target_session_attrs",
    "krbsrvname",
    "gsslib",
    "options",
    "application_name",
)
# libpq parameters with a sladesk setting of their own.
REPLACED = {"connect_timeout": "SLADESK_DB_CONNECT_TIMEOUT_SECONDS"}


def parse(raw: str) -> URL:
    """The URL with asyncpg as its driver; ValueError (one line, no password) if it is not
    a PostgreSQL URL sladesk can use."""
    try:
        url = make_url(raw.strip())
    except (ArgumentError, ValueError):
        raise ValueError(
            "not a URL; expected postgresql://user:password@host:5432/database"
        ) from None
    if url.drivername not in SCHEMES:
        raise ValueError(
            f"{url.drivername}:// is not PostgreSQL; expected "
            "postgresql://user:password@host:5432/database"
        )
    for name, value in url.query.items():
        if name in REPLACED:
            raise ValueError(f"{name} is not read from the URL; set {REPLACED[name]} instead")
        if name not in SUPPORTED:
            raise ValueError(
                f"the parameter {name!r} is not supported (supported: {', '.join(SUPPORTED)})"
            )
        if not isinstance(value, str):
            raise ValueError(f"the parameter {name!r} is given more than once")
        if name == "sslmode" and value not in SSLMODES:
            raise ValueError(f"sslmode={value!r} is not one of {', '.join(SSLMODES)}")
        if name in FILE_PARAMETERS and not Path(value).expanduser().is_file():
            raise ValueError(f"{name}: no such file {value!r}")
    if url.port is not None and not 0 < url.port < 65536:
        raise ValueError("the port must be between 1 and 65535")
    return url.set(drivername="postgresql+asyncpg")


def check(raw: str) -> str:
    """For a settings validator: the URL as given, once :func:`parse` accepts it."""
    parse(raw)
    return raw


def dsn(url: str | URL) -> str:
    """The libpq form of a URL, for asyncpg's ``dsn`` (password included: never log it)."""
    parsed = parse(url) if isinstance(url, str) else url
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def display(url: str | URL) -> str:
    """The URL for a person to read: the password masked."""
    parsed = parse(url) if isinstance(url, str) else url
    return parsed.set(drivername="postgresql").render_as_string(hide_password=True)


def dsn_connect_args(url: URL, server_settings: dict[str, str]) -> dict[str, Any]:
    """``asyncpg.connect`` keywords for ``url``: its ``dsn``, and the server settings that
    the URL does not set itself (its own ``application_name`` or ``options`` win)."""
    own = {k: v for k, v in server_settings.items() if k not in url.query}
    return {"dsn": dsn(url), "server_settings": own}
