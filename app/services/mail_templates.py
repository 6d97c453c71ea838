"""The customer messages' wording: Jinja2 templates shipped in the package
(``app/mail_templates/<language>/<notice>.j2``, English and Spanish), each with three
blocks — ``subject``, ``text`` and ``html`` — chosen by the organization's ``locale``.

``SLADESK_MAIL_TEMPLATES_DIR`` names a directory of the same layout whose files replace
the shipped ones (a company's own wording); a file it lacks comes from the package. An
override that fails to render is logged and the shipped template is used: a customer
is never left without the message.

Dates and times are written with Babel for the locale (``es-MX``: Spanish as in Mexico)
in the customer's calendar time zone, which is named after them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time
from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    pass_eval_context,
)
from jinja2.nodes import EvalContext
from markupsafe import Markup, escape

from app.domain.mail.notices import Notice
from app.domain.vocab import DEFAULT_LOCALE, LANGUAGES, language_of

logger = logging.getLogger("sladesk.mail")

PACKAGE_DIR = "mail_templates"


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def babel_locale(locale: str) -> str:
    """``es-MX`` -> ``es_MX`` (an unknown language falls back to the default)."""
    language = language_of(locale)
    if language not in LANGUAGES:
        return DEFAULT_LOCALE
    return locale.replace("-", "_")


def local_datetime(at: datetime, timezone: str, locale: str) -> str:
    """E.g. ``miércoles, 1 de abril de 2026, 10:30 a.m. (America/Mexico_City)``."""
    local = at.astimezone(ZoneInfo(timezone))
    where = babel_locale(locale)
    day = format_date(local, "full", locale=where)
    time = format_time(local, "short", locale=where)
    return f"{day}, {time} ({timezone})"


def local_date(at: datetime, timezone: str, locale: str) -> str:
    return format_date(at.astimezone(ZoneInfo(timezone)), "full", locale=babel_locale(locale))


@pass_eval_context
def _nl2br(context: EvalContext, value: str) -> Markup | str:
    """Paragraphs of plain text as HTML (escaped first)."""
    escaped = escape(value)
    html = Markup("<br>\n").join(escaped.split("\n"))
    return html if context.autoescape else str(html)


def _environment(loader: BaseLoader) -> Environment:
    env = Environment(
        loader=loader,
        autoescape=True,  # the html block; text blocks turn it off
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["nl2br"] = _nl2br
    return env


@lru_cache(maxsize=8)
def _environments(override: Path | None) -> tuple[Environment, Environment | None]:
    shipped = _environment(PackageLoader("app", PACKAGE_DIR))
    if override is None:
        return shipped, None
    mixed = ChoiceLoader([FileSystemLoader(str(override)), PackageLoader("app", PACKAGE_DIR)])
    return shipped, _environment(mixed)


def template_name(notice: Notice, language: str) -> str:
    return f"{language}/{notice.value}.j2"


def _render_with(env: Environment, name: str, variables: dict[str, Any]) -> Rendered:
    template = env.get_template(name)
    context = template.new_context(variables)
    # Run the top level once (its imports and sets), then each block in that context.
    for _ in template.root_render_func(context):
        pass
    blocks = template.blocks
    subject = " ".join("".join(blocks["subject"](context)).split())
    text = "".join(blocks["text"](context)).strip() + "\n"
    html = "".join(blocks["html"](context)).strip() + "\n"
    return Rendered(subject=subject, text=text, html=html)


def render(
    notice: Notice, locale: str, variables: dict[str, Any], *, override: Path | None = None
) -> Rendered:
    """The notice in the locale's language, from the override directory if it has it."""
    language = language_of(babel_locale(locale).replace("_", "-"))
    name = template_name(notice, language)
    shipped, mixed = _environments(override)
    if mixed is not None:
        try:
            return _render_with(mixed, name, variables)
        except Exception:
            logger.warning(
                "mail template override %s failed; using the shipped one", name, exc_info=True
            )
    return _render_with(shipped, name, variables)
