"""The event stream on the wire (its events are the webhook catalogue's, app/events.py)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from app.schemas.common import ReadModel


class StreamTokenRead(ReadModel):
    token: str = Field(
        description="opens `GET /v1/events/stream?access_token=…` (nothing else) until "
        "`expires_at`; shown only this once"
    )
    expires_at: datetime = Field(description="streams must be opened before this instant")
    url: str = Field(
        description="the stream's path with the token, for `new EventSource(url)`",
        examples=["/v1/events/stream?access_token=sst_…"],
    )
