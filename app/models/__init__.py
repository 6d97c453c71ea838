"""SQLModel tables, one module per aggregate. Importing this package registers them all."""

from app.models.api_key import ApiKey, StreamToken
from app.models.base import Entity, metadata
from app.models.billing import AfterHoursRequest, TicketAuthorization, Worklog
from app.models.calendar import CalendarRow, CalendarVersion
from app.models.contract import Contract
from app.models.directory import Agent, Contact, Organization
from app.models.mail import InboundMail, MailAttachment, MailAttempt, OutboundMail
from app.models.outbox import OutboxEvent
from app.models.plan import Plan
from app.models.search import TicketSearch
from app.models.secrets import ServerSecret
from app.models.tickets import IdempotencyKey, SlaClock, SlaFiring, Ticket, TicketEvent
from app.models.webhooks import WebhookAttempt, WebhookDelivery, WebhookSubscription

__all__ = [
    "AfterHoursRequest",
    "Agent",
    "ApiKey",
    "CalendarRow",
    "CalendarVersion",
    "Contact",
    "Contract",
    "Entity",
    "IdempotencyKey",
    "InboundMail",
    "MailAttachment",
    "MailAttempt",
    "Organization",
    "OutboundMail",
    "OutboxEvent",
    "Plan",
    "ServerSecret",
    "SlaClock",
    "SlaFiring",
    "StreamToken",
    "Ticket",
    "TicketAuthorization",
    "TicketEvent",
    "TicketSearch",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookSubscription",
    "Worklog",
    "metadata",
]
