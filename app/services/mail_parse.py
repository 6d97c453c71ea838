"""Reading a raw message (the standard library's ``email`` package, policy ``default``):
its header facts, its text (and the newest reply in it), its HTML sanitized, its
attachments.

Nothing here trusts the message: a header that does not parse is read raw, a charset
nobody knows is decoded with replacements, NUL characters (which PostgreSQL text cannot
hold) are dropped, and the reply separator only ever sees the first 100,000 characters.
The HTML is sanitized with ``nh3`` (an allowlist: no script, style, event handler or
``javascript:`` link survives) before it is stored, so it is never returned otherwise.
"""

from __future__ import annotations

import email
import hashlib
import html as html_lib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser, HeaderParser

import nh3
from mailparser_reply import EmailReplyParser

from app.domain.mail.facts import Dsn, MessageFacts, message_ids, parse_delivery_status, read_facts

logger = logging.getLogger("sladesk.mail")

REPLY_SCAN_CHARS = 100_000
_LANGUAGES = ["en", "es"]
_BLOCK_END = re.compile(r"(?i)<\s*(br\s*/?|/p|/div|/li|/tr|/h[1-6])\s*>")


@dataclass(frozen=True)
class AttachmentInfo:
    part: int
    filename: str
    content_type: str
    size: int
    sha256: str
    inline: bool


@dataclass(frozen=True)
class ParsedMail:
    facts: MessageFacts
    message_id: str  # the facts' Message-ID, or one made from the content's hash
    text: str
    reply_text: str
    html: str | None
    attachments: list[AttachmentInfo] = field(default_factory=list)


def clean_text(value: str) -> str:
    """Text PostgreSQL can store: no NUL, no lone surrogates."""
    return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _message(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _headers(message: Message) -> dict[str, list[str]]:
    """Header values by lower-cased name, decoded (RFC 2047); a value that does not
    parse is kept as it came."""
    headers: dict[str, list[str]] = {}
    for name, raw_value in message.raw_items():
        try:
            value = str(message.policy.header_fetch_parse(name, raw_value))
        except Exception:
            value = str(raw_value)
        headers.setdefault(name.strip().lower(), []).append(clean_text(value))
    return headers


def _content(part: Message) -> str:
    try:
        content = part.get_content()  # type: ignore[attr-defined]
        if isinstance(content, bytes):
            return clean_text(content.decode("utf-8", "replace"))
        return clean_text(str(content))
    except Exception:
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            charset = part.get_content_charset() or "utf-8"
            try:
                return clean_text(payload.decode(charset, "replace"))
            except LookupError:
                return clean_text(payload.decode("utf-8", "replace"))
        return ""


def _parts(message: Message) -> Iterator[tuple[int, Message]]:
    """Every leaf part in order, numbered; an attached message (message/rfc822) is one
    leaf, not opened (its parts are not ours)."""
    counter = 0

    def walk(part: Message) -> Iterator[tuple[int, Message]]:
        nonlocal counter
        if part.is_multipart() and part.get_content_maintype() != "message":
            for sub in part.get_payload():
                if isinstance(sub, Message):
                    yield from walk(sub)
            return
        index = counter
        counter += 1
        yield index, part

    yield from walk(message)


def _dsn(message: Message) -> Dsn | None:
    """A delivery status notification's first recipient and the Message-ID it is about."""
    if message.get_content_type() != "multipart/report":
        return None
    if str(message.get_param("report-type") or "").lower() != "delivery-status":
        return None
    status_text = ""
    original: str | None = None
    for _, part in _parts(message):
        kind = part.get_content_type()
        if kind == "message/delivery-status":
            payload = part.get_payload()
            if isinstance(payload, list):
                status_text = "\n\n".join(
                    m.as_string() if isinstance(m, Message) else str(m) for m in payload
                )
            else:
                status_text = _content(part)
        elif kind in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message):
                ids = message_ids(str(inner.get("Message-ID", "")))
                original = ids[0] if ids else original
        elif kind in ("text/rfc822-headers", "message/rfc822-headers"):
            headers = HeaderParser().parsestr(_content(part))
            ids = message_ids(str(headers.get("Message-ID", "")))
            original = ids[0] if ids else original
    return parse_delivery_status(status_text, original)


def html_to_text(value: str) -> str:
    marked = _BLOCK_END.sub("\n", value)
    stripped = nh3.clean(marked, tags=set(), clean_content_tags={"script", "style", "head"})
    lines = [line.strip() for line in html_lib.unescape(stripped).splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def sanitize_html(value: str) -> str:
    return nh3.clean(value)


def reply_part(text: str) -> str:
    """The newest reply of a text body: quoted history and the lines introducing it cut
    (mail-parser-reply, English and Spanish markers; then a trailing block of ``>``
    lines and the "… wrote:" line before it, in any language)."""
    head = text[:REPLY_SCAN_CHARS]
    try:
        latest = EmailReplyParser(languages=_LANGUAGES).read(head).latest_reply
    except Exception:  # a library bug must not lose the message
        logger.warning("reply separation failed; keeping the whole text", exc_info=True)
        latest = None
    return _without_trailing_quote((latest or head).strip()) or head.strip()


def _without_trailing_quote(text: str) -> str:
    lines = text.splitlines()
    cut = len(lines)
    for index in range(len(lines) - 1, -1, -1):
        line = lines[index].strip()
        if line.startswith(">"):
            cut = index
        elif line:
            break
    if cut == len(lines):
        return text
    intro = cut - 1
    while intro >= 0 and not lines[intro].strip():
        intro -= 1
    if intro >= 0 and lines[intro].rstrip().endswith(":"):
        cut = intro
    return "\n".join(lines[:cut]).strip()


def synthetic_message_id(raw: bytes) -> str:
    return f"<sha256.{hashlib.sha256(raw).hexdigest()[:40]}@sladesk.invalid>"


def parse(raw: bytes, *, envelope_from: str | None = None) -> ParsedMail:
    message = _message(raw)
    headers = _headers(message)
    facts = read_facts(headers, envelope_from=envelope_from, dsn=_dsn(message))
    message_id = facts.message_id
    if message_id is None or len(message_id) > 998:
        message_id = synthetic_message_id(raw)
    text_part = html_part = None
    try:
        text_part = message.get_body(preferencelist=("plain",))
        html_part = message.get_body(preferencelist=("html",))
    except Exception:
        logger.info("message structure not readable; no body", exc_info=True)
    html = sanitize_html(_content(html_part)) if html_part is not None else None
    if text_part is not None:
        text = _content(text_part)
    elif html_part is not None:
        text = html_to_text(_content(html_part))
    else:
        text = ""
    attachments: list[AttachmentInfo] = []
    if facts.dsn is None:
        for index, part in _parts(message):
            if part is text_part or part is html_part:
                continue
            info = _attachment(index, part)
            if info is not None:
                attachments.append(info)
    return ParsedMail(
        facts=facts,
        message_id=message_id,
        text=text.strip(),
        reply_text=reply_part(text),
        html=clean_text(html) if html else None,
        attachments=attachments,
    )


def _payload_bytes(part: Message) -> bytes:
    if part.get_content_maintype() == "message":
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        return inner.as_bytes() if isinstance(inner, Message) else b""
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _filename(part: Message, index: int) -> str:
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if not name:
        kind = part.get_content_type()
        extension = {"message/rfc822": ".eml", "text/plain": ".txt", "text/html": ".html"}
        name = f"part-{index}{extension.get(kind, '')}"
    # A name, not a path; at most 255 characters.
    name = clean_text(name).replace("\\", "/").rsplit("/", 1)[-1].strip() or f"part-{index}"
    return name[:255]


def _attachment(index: int, part: Message) -> AttachmentInfo | None:
    disposition = (part.get_content_disposition() or "").lower()
    kind = part.get_content_type()
    if kind.startswith("text/") and disposition != "attachment" and not part.get_filename():
        return None  # another text alternative of the body, not a file
    data = _payload_bytes(part)
    return AttachmentInfo(
        part=index,
        filename=_filename(part, index),
        content_type=clean_text(kind)[:255],
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        inline=disposition == "inline",
    )


def attachment(raw: bytes, part: int) -> tuple[bytes, str, str] | None:
    """The bytes, file name and content type of part number ``part`` of a message."""
    for index, leaf in _parts(_message(raw)):
        if index == part:
            return _payload_bytes(leaf), _filename(leaf, index), leaf.get_content_type()
    return None


def header_facts(raw: bytes, *, envelope_from: str | None = None) -> MessageFacts:
    """The header facts alone (the loop checks of an answer), without reading bodies."""
    parsed = BytesHeaderParser(policy=policy.default).parsebytes(raw)
    return read_facts(_headers(parsed), envelope_from=envelope_from)
