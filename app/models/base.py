"""Table conventions shared by every aggregate: UUID keys, timestamptz, constraint names."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, func
from sqlmodel import Field, SQLModel

from app.models import construct_speed

construct_speed.install()

# Named constraints from day one, so migrations can refer to them (polar's convention).
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata: MetaData = SQLModel.metadata


def utcnow() -> datetime:
    return datetime.now(UTC)


def timestamptz(*, nullable: bool = False, index: bool = False, **kwargs: Any) -> Any:
    """A ``timestamptz`` column (rule 3: every instant is timezone-aware UTC)."""
    return Field(
        sa_type=DateTime(timezone=True),
        nullable=nullable,
        index=index,
        **kwargs,
    )


class Entity(SQLModel):
    """UUID primary key plus creation/update instants."""

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_type=DateTime(timezone=True),
        sa_column_kwargs={"server_default": func.now()},
        nullable=False,
    )
    updated_at: datetime = Field(
        default_factory=utcnow,
        sa_type=DateTime(timezone=True),
        sa_column_kwargs={"server_default": func.now(), "onupdate": utcnow},
        nullable=False,
    )
