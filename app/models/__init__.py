"""SQLModel tables, one module per aggregate. Importing this package registers them all."""

from app.models.api_key import ApiKey
from app.models.base import Entity, metadata
from app.models.directory import Agent, Contact, Organization

__all__ = ["Agent", "ApiKey", "Contact", "Entity", "Organization", "metadata"]
