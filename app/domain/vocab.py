"""The fixed vocabularies every layer shares (seed words mapped to ours, see DESIGN.md)."""

from __future__ import annotations

from enum import StrEnum


class Severity(StrEnum):
    """Seed 003's severity 1-4, seed 002's tier 3/2/1, seed 004's critical/high/average/low."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class Category(StrEnum):
    """Incident types and out-of-scope services named by the seeds."""

    HOW_TO = "how_to"
    TECHNICAL = "technical"
    TECHNICAL_URGENT = "technical_urgent"
    MAINTENANCE = "maintenance"
    RESEARCH_DEBUGGING = "research_debugging"
    BUG = "bug"
    INSTALLATION = "installation"
    UPGRADE = "upgrade"
    CUSTOMIZATION = "customization"
    TRAINING = "training"
    PRE_SALES = "pre_sales"
    OTHER = "other"


class Channel(StrEnum):
    PHONE = "phone"
    VOICEMAIL = "voicemail"
    EMAIL = "email"
    WEB = "web"
    CHAT = "chat"
    API = "api"


class Metric(StrEnum):
    FIRST_RESPONSE = "first_response"
    RESOLUTION = "resolution"
    CALLBACK = "callback"


class ClockKind(StrEnum):
    """Which calendar counts a target: the plan's business calendar or around the clock."""

    BUSINESS = "business"
    ALWAYS = "24x7"


class ContactRole(StrEnum):
    AUTHORIZED = "authorized"
    END_USER = "end_user"


class TicketStatus(StrEnum):
    NEW = "new"
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    WAITING_ON_CUSTOMER = "waiting_on_customer"
    WAITING_ON_VENDOR = "waiting_on_vendor"
    RESOLVED = "resolved"
    CLOSED = "closed"


# Languages the desk speaks to customers in (e-mail templates) and searches in (text-search
# configurations). An organization's ``locale`` is one of these, optionally with a region
# (``es-MX``), which formats dates and numbers.
LANGUAGES = ("en", "es")
DEFAULT_LOCALE = "en"
LOCALE_PATTERN = r"^(en|es)(-[A-Z]{2})?$"


def language_of(locale: str) -> str:
    """``es-MX`` -> ``es``."""
    return locale.split("-", 1)[0]
