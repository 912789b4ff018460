"""Second-factor recovery codes, and the access log."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app import clock
from app.extensions import db


class RecoveryCode(db.Model):
    """A single-use code that stands in for the authenticator app; stored as a digest."""

    __tablename__ = "recovery_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_digest: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None]


class AccessEvent(db.Model):
    """Who signed in (or tried), opened, downloaded or replied: when, from where, how."""

    __tablename__ = "access_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"),
                                           index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"),
                                                index=True)
    #: the address used, kept even when no account matched or it was deleted
    email: Mapped[str] = mapped_column(String(320))
    #: sign_in, sign_in_failed, opened, downloaded, replied
    kind: Mapped[str] = mapped_column(String(20))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("message.id", ondelete="CASCADE"),
                                                   index=True)
    at: Mapped[datetime] = mapped_column(default=clock.utcnow, index=True)
    client_address: Mapped[str | None] = mapped_column(String(64))
    browser: Mapped[str | None] = mapped_column(String(300))
    detail: Mapped[str] = mapped_column(Text, default="")
