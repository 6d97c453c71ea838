"""Webhook rules that need no I/O: Standard Webhooks signing, the retry schedule,
``Retry-After``, what an answer means, and which URLs and addresses a webhook may reach.

Pure: no clock (``now`` is a parameter), no randomness (callers pass random bytes and a
uniform number for the jitter), no network.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from functools import lru_cache
from urllib.parse import urlsplit

# ------------------------------------------------------------------------------ secrets

SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES, MAX_SECRET_BYTES = 24, 64
SECRET_BYTES = 32


def format_secret(raw: bytes) -> str:
    """``whsec_`` + base64 of the random key (24 to 64 bytes, per the specification)."""
    if not MIN_SECRET_BYTES <= len(raw) <= MAX_SECRET_BYTES:
        raise ValueError(f"a webhook secret has {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes")
    return SECRET_PREFIX + base64.b64encode(raw).decode("ascii")


@lru_cache(maxsize=1024)
def secret_key(secret: str) -> bytes:
    """The HMAC key: the base64-decoded part after ``whsec_`` (decoded once per secret: a
    burst signs thousands of messages with the same few)."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    try:
        return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise ValueError("a webhook secret is base64 after whsec_") from exc


# ---------------------------------------------------------------------------- signing


def webhook_id(event_id: uuid.UUID) -> str:
    """The ``webhook-id`` of an event: the same for every attempt and redelivery."""
    return f"msg_{event_id.hex}"


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``."""
    signed = msg_id.encode() + b"." + str(timestamp).encode() + b"." + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """Space-separated signatures, one per secret (two during a rotation)."""
    if not secrets:
        raise ValueError("at least one secret signs")
    return " ".join(sign(s, msg_id, timestamp, body) for s in secrets)


def signing_secrets(
    current: str, previous: str | None, previous_until: datetime | None, now: datetime
) -> list[str]:
    """The new secret first, then the previous one while its overlap lasts."""
    if previous is not None and previous_until is not None and now < previous_until:
        return [current, previous]
    return [current]


# ----------------------------------------------------------------------- retry schedule

DEFAULT_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(0),
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
DEFAULT_JITTER = 0.1
DEFAULT_RETRY_AFTER_CAP = timedelta(hours=10)


def delay_before_attempt(
    number: int, schedule: Sequence[timedelta], jitter: float, u: float
) -> timedelta | None:
    """How long to wait before attempt ``number`` (1-based; attempt 1 is the first), with
    ±``jitter`` (a fraction) drawn from ``u`` in [0, 1). None: the schedule is exhausted."""
    if number < 1 or number > len(schedule):
        return None
    base = schedule[number - 1]
    return base * (1 + jitter * (2 * u - 1))


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """``Retry-After`` as delay-seconds or an HTTP date; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # "²".isdigit(), but int("²") fails
        return timedelta(seconds=int(value[:9]))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        return None
    return max(when - now, timedelta(0))


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    RETRY = "retry"
    FAILED = "failed"  # retries exhausted
    GONE = "gone"  # 410: the receiver wants no more; disable the subscription
    # 3xx: redirects are never followed (the target is checked, the Location is not), so
    # asking again on the schedule would get the same answer for 32 hours: fail at once.
    REDIRECTED = "redirected"


@dataclass(frozen=True)
class Step:
    outcome: Outcome
    next_attempt_at: datetime | None = None


def honours_retry_after(status_code: int | None) -> bool:
    return status_code is not None and (status_code == 429 or 500 <= status_code <= 599)


def next_step(
    *,
    status_code: int | None,
    attempts_made: int,
    now: datetime,
    retry_after: timedelta | None = None,
    schedule: Sequence[timedelta] = DEFAULT_SCHEDULE,
    jitter: float = DEFAULT_JITTER,
    u: float = 0.5,
    retry_after_cap: timedelta = DEFAULT_RETRY_AFTER_CAP,
) -> Step:
    """What follows an attempt. 2xx is success; 410 disables; a 3xx fails the delivery at
    once (redirects are not followed); everything else (other 4xx, 5xx, no answer at all)
    is retried on the schedule, later if a 429/5xx asked for it with ``Retry-After``
    (capped), until the schedule is exhausted."""
    if status_code is not None and 200 <= status_code <= 299:
        return Step(Outcome.SUCCEEDED)
    if status_code == 410:
        return Step(Outcome.GONE)
    if status_code is not None and 300 <= status_code <= 399:
        return Step(Outcome.REDIRECTED)
    delay = delay_before_attempt(attempts_made + 1, schedule, jitter, u)
    if delay is None:
        return Step(Outcome.FAILED)
    if retry_after is not None and honours_retry_after(status_code):
        delay = max(delay, min(retry_after, retry_after_cap))
    return Step(Outcome.RETRY, now + delay)


# ----------------------------------------------------------------- where webhooks may go

# Cloud metadata services: never a webhook target, whatever the settings say.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean…
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.170.23",  # AWS EKS pod identity
        "100.100.100.200",  # Alibaba Cloud
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::23",  # AWS EKS pod identity over IPv6
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SHARED = ipaddress.ip_network("100.64.0.0/10")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def address_refusal(ip: IPAddress, *, allow_private: bool) -> str | None:
    """Why a webhook may not connect to ``ip``, or None if it may.

    Always refused: cloud metadata, unspecified (0.0.0.0, ::) and multicast addresses.
    Refused unless ``allow_private``: private, loopback, link-local, shared (CGNAT),
    reserved and documentation ranges — anything that is not globally routable."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            reason = address_refusal(embedded, allow_private=allow_private)
            return f"{reason} (embedded in {ip})" if reason else None
    if ip in METADATA_ADDRESSES:
        return f"{ip} is a cloud metadata address"
    if ip.is_unspecified:
        return f"{ip} is the unspecified address"
    if ip.is_multicast:
        return f"{ip} is a multicast address"
    if allow_private:
        return None
    for label, test in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        ("shared (carrier-grade NAT)", isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED),
        ("not globally routable", not ip.is_global),
    ):
        if test:
            return f"{ip} is a {label} address"
    return None


class PlainHttpRefused(ValueError):
    """An http:// URL where only https is allowed (the operator may allow http)."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    ip: IPAddress | None  # the host, when it is a literal address


MAX_URL_LENGTH = 2048


def parse_target(url: str, *, allow_http: bool) -> Target:
    """Check a webhook URL's shape; raises ValueError with a message for a person."""
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"at most {MAX_URL_LENGTH} characters")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise ValueError("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    allowed = ("https", "http") if allow_http else ("https",)
    if scheme not in allowed:
        if scheme == "http":
            raise PlainHttpRefused("must use https (plain http is not allowed on this server)")
        raise ValueError("must be an absolute https:// URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials (user:password@); sign-ins are not sent")
    if parts.fragment or url.endswith("#"):
        raise ValueError("must not have a #fragment")
    host = parts.hostname
    if not host:
        raise ValueError("must name a host")
    ip: IPAddress | None
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is None:
        host = _check_host_name(host)
    if port == 0:
        raise ValueError("the port must be between 1 and 65535")
    return Target(scheme, host, port or (443 if scheme == "https" else 80), ip)


def _check_host_name(host: str) -> str:
    if host.endswith(".") and len(host) > 1:
        host = host[:-1]
    try:
        encoded = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError("the host name is not valid") from None
    labels = encoded.split(".")
    if len(encoded) > 253 or any(
        not label or len(label) > 63 or not all(c.isalnum() or c in "-_" for c in label)
        for label in labels
    ):
        raise ValueError("the host name is not valid")
    if labels[-1].isdigit():
        raise ValueError("the host name is not valid (a numeric address in disguise?)")
    return host
