"""The audit log: every administrator action, who did it, when and from where."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app import clock
from app.extensions import db


class AuditEvent(db.Model):
    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: the tenant acted on; None for platform-wide actions
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"),
                                                  index=True)
    at: Mapped[datetime] = mapped_column(default=clock.utcnow, index=True)
    #: kept as text so the record outlives the account
    actor: Mapped[str] = mapped_column(String(320))
    client_address: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(60))
    detail: Mapped[str] = mapped_column(Text, default="")
