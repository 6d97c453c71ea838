"""Server secrets kept in the database, so that every replica signs with the same key."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, func
from sqlmodel import Field, SQLModel

from app.models.base import utcnow


class ServerSecret(SQLModel, table=True):
    """A named random key, made once by the first process that needs it (e.g. the key that
    signs list cursors, app.pagination). Never sent to clients, never logged."""

    __tablename__ = "server_secrets"

    name: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=200)
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_type=DateTime(timezone=True),
        sa_column_kwargs={"server_default": func.now()},
        nullable=False,
    )
