"""Sender authentication from ``Authentication-Results`` (RFC 8601) of a trusted MTA.

Anyone can write an ``Authentication-Results`` field; only the ones stamped by the
border MTA we name (its *authserv-id*) count, and that MTA removes forged ones with its
id (RFC 8601 section 5). The topmost such field (the latest added) is read.

A message passes when DMARC passed, or, without a DMARC verdict, when SPF passed for an
envelope domain aligned with the From domain or DKIM passed for an aligned signing
domain. A DMARC ``fail`` is final: DMARC already weighed the aligned SPF and DKIM.
Alignment is relaxed and approximated without the public suffix list: the domains are
equal or one is a subdomain of the other (``mail.example.com`` ~ ``example.com``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["AuthResult", "AuthVerdict", "aligned", "parse", "verdict"]


@dataclass(frozen=True)
class AuthResult:
    method: str  # dmarc, spf, dkim…
    result: str  # pass, fail, none…
    properties: dict[str, str] = field(default_factory=dict)  # e.g. header.d, smtp.mailfrom


@dataclass(frozen=True)
class AuthVerdict:
    passed: bool
    reason: str


def _without_comments(text: str) -> str:
    out: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    for char in text:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(char)
            continue
        if char == "\\":
            escaped = True
            if depth == 0:
                out.append(char)
            continue
        if char == '"' and depth == 0:
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
            continue
        elif not quoted and char == ")" and depth > 0:
            depth -= 1
            continue
        if depth == 0:
            out.append(char)
    return "".join(out)


def _split(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def parse(value: str) -> tuple[str, list[AuthResult]]:
    """(authserv-id lower-cased, results) of one field's value."""
    pieces = _split(_without_comments(value), ";")
    head = pieces[0].split()
    authserv_id = head[0].lower() if head else ""
    results: list[AuthResult] = []
    for piece in pieces[1:]:
        words = piece.split()
        if not words or "=" not in words[0]:
            continue  # "none" (no results) or garbage
        method, _, result = words[0].partition("=")
        properties: dict[str, str] = {}
        for word in words[1:]:
            key, sep, val = word.partition("=")
            if sep and "." in key:
                properties[key.lower()] = val.strip('"').lower()
        results.append(AuthResult(method.lower().split("/")[0], result.lower(), properties))
    return authserv_id, results


def aligned(domain: str | None, from_domain: str) -> bool:
    if not domain:
        return False
    domain = domain.lower().rstrip(".").lstrip("@")
    if "@" in domain:
        domain = domain.rsplit("@", 1)[1]
    return (
        domain == from_domain
        or domain.endswith("." + from_domain)
        or from_domain.endswith("." + domain)
    )


def verdict(fields: Sequence[str], trusted_id: str, from_domain: str | None) -> AuthVerdict:
    """Does the message's From pass, by the trusted MTA's results?"""
    trusted = trusted_id.strip().lower()
    ours = [results for authserv, results in map(parse, fields) if authserv == trusted]
    if not ours:
        return AuthVerdict(False, f"no Authentication-Results from {trusted}")
    if not from_domain:
        return AuthVerdict(False, "no From domain to authenticate")
    results = ours[0]
    dmarc = [r for r in results if r.method == "dmarc"]
    if any(r.result == "pass" for r in dmarc):
        return AuthVerdict(True, "dmarc=pass")
    if any(r.result in ("fail", "quarantine", "reject") for r in dmarc):
        return AuthVerdict(False, "dmarc=fail")
    for r in results:
        if r.method == "dkim" and r.result == "pass":
            signer = r.properties.get("header.d") or r.properties.get("header.i")
            if aligned(signer, from_domain):
                return AuthVerdict(True, f"dkim=pass aligned ({signer})")
        if r.method == "spf" and r.result == "pass":
            envelope = r.properties.get("smtp.mailfrom")
            if aligned(envelope, from_domain):
                return AuthVerdict(True, f"spf=pass aligned ({envelope})")
    summary = ", ".join(f"{r.method}={r.result}" for r in results) or "no results"
    return AuthVerdict(False, f"no aligned pass for {from_domain} ({summary})")
