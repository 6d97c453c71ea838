"""Every event type the code writes is in the catalogue subscribers choose from."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.events import CATALOGUE
from app.services import outbox
from app.services.ticket_actions import _KIND

APP = Path(__file__).resolve().parent.parent / "app"
# Event names as the code writes them: outbox_type="…", or a quoted "x.y" passed to emit.
_LITERAL = re.compile(r'(?:outbox_type=|emit\([^)]*?)"([a-z_]+\.[a-z_]+)"', re.S)


def test_every_emitted_type_is_catalogued() -> None:
    found = set()
    for path in APP.rglob("*.py"):
        found |= set(_LITERAL.findall(path.read_text()))
    found |= {t for _, t in _KIND.values() if t is not None}
    assert {"ticket.created", "ticket.closed", "ticket.auto_close_cancelled"} <= found
    assert sorted(found - set(CATALOGUE)) == []


async def test_outbox_refuses_an_uncatalogued_type() -> None:
    with pytest.raises(ValueError, match=r"not in app\.events\.CATALOGUE"):
        await outbox.emit(None, "ticket.exploded", occurred_at=None, data={})  # type: ignore[arg-type]
