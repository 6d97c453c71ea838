"""The e-mail settings: a bad value stops start-up with one line naming it; the relay URL
is read as documented and its password never shown."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config import Settings, describe_settings_error
from app.workers.mail_sender import Relay


@pytest.mark.parametrize(
    ("field", "value", "name"),
    [
        ("smtp_url", "http://relay.example", "SLADESK_SMTP_URL"),
        ("smtp_url", "smtp://relay.example:port", "SLADESK_SMTP_URL"),
        ("mail_listen", "2525", "SLADESK_MAIL_LISTEN"),
        ("mail_listen", "host:99999", "SLADESK_MAIL_LISTEN"),
        ("mail_from", "support", "SLADESK_MAIL_FROM"),
        ("mail_locale", "fr", "SLADESK_MAIL_LOCALE"),
        ("mail_templates_dir", "/no/such/dir", "SLADESK_MAIL_TEMPLATES_DIR"),
        ("mail_max_attachment_bytes", "0", "SLADESK_MAIL_MAX_ATTACHMENT_BYTES"),
    ],
)
def test_a_bad_mail_setting_is_one_line(field: str, value: str, name: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(**{field: value})  # type: ignore[arg-type]
    line = describe_settings_error(caught.value)
    assert line.startswith(f"invalid setting {name}:") and "\n" not in line


def test_mail_settings_defaults_and_empties(tmp_path: Path) -> None:
    settings = Settings(
        mail_listen="", smtp_url="", mail_addresses="A@x.example, b@y.example",
        mail_templates_dir=str(tmp_path),
    )  # fmt: skip
    assert settings.mail_listen == "" and settings.smtp_url is None
    assert settings.mail_addresses == ["a@x.example", "b@y.example"]
    assert Settings().mail_listen == "127.0.0.1:2525"


def test_relay_urls() -> None:
    implicit = Relay.parse("smtps://desk%40example.com:p%40ss@smtp.example.com")
    assert (implicit.host, implicit.port, implicit.implicit_tls) == ("smtp.example.com", 465, True)
    assert (implicit.username, implicit.password) == ("desk@example.com", "p@ss")
    assert "p@ss" not in repr(implicit) and implicit.start_tls is False
    opportunistic = Relay.parse("smtp://relay.example:2525")
    assert (opportunistic.port, opportunistic.username, opportunistic.start_tls) == (
        2525,
        None,
        None,
    )
    # With a login, STARTTLS is required: the password never goes in clear.
    assert Relay.parse("smtp://u:p@relay.example").start_tls is True
    assert Relay.parse("smtp://relay.example").port == 587
