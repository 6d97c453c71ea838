"""Webhook rules without I/O: signatures (checked against the standardwebhooks library),
the retry schedule, Retry-After, answers, and where webhooks may connect."""

from __future__ import annotations

import base64
import ipaddress
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from app.domain.webhooks import (
    DEFAULT_SCHEDULE,
    Outcome,
    address_refusal,
    delay_before_attempt,
    format_secret,
    next_step,
    parse_retry_after,
    parse_target,
    sign,
    signature_header,
    signing_secrets,
    webhook_id,
)

NOW = datetime(2026, 3, 9, 9, 0, tzinfo=UTC)
SECRET = format_secret(bytes(range(32)))
OTHER = format_secret(bytes(range(100, 124)))


def test_secret_format() -> None:
    assert SECRET.startswith("whsec_") and len(base64.b64decode(SECRET[6:])) == 32
    for size in (23, 65):
        with pytest.raises(ValueError, match="24 to 64"):
            format_secret(b"x" * size)


def test_signatures_verify_with_the_reference_library() -> None:
    body = b'{"type":"sla.warning","timestamp":"2026-03-09T09:00:00Z","data":{"a":"\xc3\xa9"}}'
    msg = webhook_id(uuid.UUID(int=7))
    ts = int(datetime.now(UTC).timestamp())
    headers = {"webhook-id": msg, "webhook-timestamp": str(ts)}
    reference = Webhook(SECRET).sign(msg, datetime.fromtimestamp(ts, UTC), body.decode())
    assert sign(SECRET, msg, ts, body) == reference
    both = signature_header([SECRET, OTHER], msg, ts, body)
    for secret in (SECRET, OTHER):
        assert Webhook(secret).verify(body, {**headers, "webhook-signature": both})["data"]


def test_webhook_id_is_stable_and_dotless() -> None:
    event = uuid.uuid4()
    assert webhook_id(event) == webhook_id(event) == f"msg_{event.hex}"
    assert "." not in webhook_id(event)


def test_previous_secret_signs_only_during_the_overlap() -> None:
    until = NOW + timedelta(hours=24)
    assert signing_secrets(SECRET, OTHER, until, NOW) == [SECRET, OTHER]
    assert signing_secrets(SECRET, OTHER, until, until) == [SECRET]
    assert signing_secrets(SECRET, None, None, NOW) == [SECRET]


def test_schedule_with_jitter() -> None:
    assert [delay_before_attempt(n, DEFAULT_SCHEDULE, 0.0, 0.5) for n in (1, 2, 3, 8)] == [
        timedelta(0),
        timedelta(seconds=5),
        timedelta(minutes=5),
        timedelta(hours=10),
    ]
    assert delay_before_attempt(9, DEFAULT_SCHEDULE, 0.1, 0.5) is None
    low = delay_before_attempt(4, DEFAULT_SCHEDULE, 0.1, 0.0)
    high = delay_before_attempt(4, DEFAULT_SCHEDULE, 0.1, 0.999999)
    assert low == timedelta(minutes=27) and high is not None
    assert timedelta(minutes=32, seconds=59) < high < timedelta(minutes=33)


def test_retry_after_forms() -> None:
    assert parse_retry_after("120", NOW) == timedelta(seconds=120)
    assert parse_retry_after("Mon, 09 Mar 2026 09:10:00 GMT", NOW) == timedelta(minutes=10)
    assert parse_retry_after("Mon, 09 Mar 2026 08:00:00 GMT", NOW) == timedelta(0)
    for junk in (None, "", "soon", "-5", "1.5", "Mon, 99 Foo 2026", "²", "١٢٠"):
        assert parse_retry_after(junk, NOW) is None


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, Outcome.SUCCEEDED), (204, Outcome.SUCCEEDED), (299, Outcome.SUCCEEDED),
     (301, Outcome.REDIRECTED), (302, Outcome.REDIRECTED), (307, Outcome.REDIRECTED),
     (308, Outcome.REDIRECTED), (400, Outcome.RETRY), (404, Outcome.RETRY),
     (410, Outcome.GONE), (429, Outcome.RETRY), (500, Outcome.RETRY), (None, Outcome.RETRY)],
)  # fmt: skip
def test_answers(status: int | None, outcome: Outcome) -> None:
    assert next_step(status_code=status, attempts_made=1, now=NOW).outcome is outcome


def test_retry_after_is_the_later_of_schedule_and_header_and_is_capped() -> None:
    def after(status: int, retry_after: timedelta, attempts: int = 1) -> timedelta:
        step = next_step(
            status_code=status, attempts_made=attempts, now=NOW, retry_after=retry_after,
            jitter=0.0,
        )  # fmt: skip
        assert step.next_attempt_at is not None
        return step.next_attempt_at - NOW

    assert after(503, timedelta(minutes=2)) == timedelta(minutes=2)  # schedule: 5 s
    assert after(429, timedelta(seconds=1)) == timedelta(seconds=5)  # schedule is later
    assert after(503, timedelta(days=30)) == timedelta(hours=10)  # capped
    assert after(400, timedelta(minutes=2)) == timedelta(seconds=5)  # only 429 and 5xx
    assert after(404, timedelta(minutes=2)) == timedelta(seconds=5)


def test_schedule_exhausted_after_eight_attempts() -> None:
    assert next_step(status_code=500, attempts_made=7, now=NOW).outcome is Outcome.RETRY
    assert next_step(status_code=500, attempts_made=8, now=NOW).outcome is Outcome.FAILED
    assert next_step(status_code=200, attempts_made=8, now=NOW).outcome is Outcome.SUCCEEDED


@pytest.mark.parametrize(
    ("address", "always"),
    [
        ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False),
        ("192.168.1.1", False), ("169.254.1.1", False), ("100.64.0.1", False),
        ("192.0.2.1", False), ("240.0.0.1", False), ("::1", False), ("fe80::1", False),
        ("fc00::1", False), ("::ffff:10.0.0.1", False), ("64:ff9b::a00:1", False),
        ("2002:a00:1::", False),
        ("169.254.169.254", True), ("fd00:ec2::254", True), ("100.100.100.200", True),
        ("::ffff:169.254.169.254", True), ("0.0.0.0", True), ("::", True),
        ("224.0.0.1", True), ("ff02::1", True),
    ],
)  # fmt: skip
def test_forbidden_addresses(address: str, always: bool) -> None:
    ip = ipaddress.ip_address(address)
    assert address_refusal(ip, allow_private=False) is not None
    assert (address_refusal(ip, allow_private=True) is not None) is always


@pytest.mark.parametrize("address", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address), allow_private=False) is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/x", "https"),
        ("http://example.com/x", "plain http"),
        ("example.com/x", "https"),
        ("https://user:pw@example.com/", "credentials"),
        ("https://example.com/x#frag", "fragment"),
        ("https:///x", "host"),
        ("https://exa mple.com/", "spaces"),
        ("https://example.com:99999/", "valid URL"),
        ("https://example.com:0/", "port"),
        ("https://2130706433/", "numeric"),
        ("https://127.1/", "numeric"),
        ("https://bad_label!.com/", "host name"),
        ("https://" + "a" * 64 + ".com/", "host name"),
        ("https://example.com/" + "x" * 2100, "2048"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_target(url, allow_http=False)


def test_good_urls() -> None:
    target = parse_target("https://Hooks.Example.com/in?x=1", allow_http=False)
    assert (target.host, target.port, target.ip) == ("hooks.example.com", 443, None)
    target = parse_target("http://[::1]:8080/x", allow_http=True)
    assert target.port == 8080 and target.ip == ipaddress.ip_address("::1")
    assert parse_target("https://bücher.example/", allow_http=False).host == "bücher.example"
