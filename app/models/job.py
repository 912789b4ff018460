"""Background jobs: when each last ran and how it went; a lease lets one process run it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class Job(db.Model):
    """One scheduled job. ``lease_until`` is taken with a conditional UPDATE, which is
    atomic on SQLite and PostgreSQL alike, so among several workers one runs it."""

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    lease_until: Mapped[datetime | None]
    last_started_at: Mapped[datetime | None]
    last_finished_at: Mapped[datetime | None]
    last_duration_ms: Mapped[int | None]
    last_result: Mapped[str | None] = mapped_column(Text)
    last_ok: Mapped[bool | None]
