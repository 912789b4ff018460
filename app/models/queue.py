"""The durable outbound queue: every delivery and every generated mail passes through it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from app import clock
from app.extensions import db
from app.models.message import Recipient
from app.models.tenant import Tenant
from app.models.vocabulary import QueueState


class OutboundItem(db.Model):
    """One envelope to one recipient, tried until delivered or bounced."""

    __tablename__ = "outbound_item"
    __table_args__ = (Index("ix_outbound_item_due", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: "delivery" of a received message, "notification" or "dsn" (generated mail)
    kind: Mapped[str] = mapped_column(String(16))
    #: Route.INTERNAL (the internal relay) or Route.EXTERNAL (CCM_OUTBOUND)
    route: Mapped[str] = mapped_column(String(16))
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"))
    recipient_id: Mapped[int | None] = mapped_column(
        ForeignKey("recipient.id", ondelete="CASCADE"), index=True
    )
    #: generated mail carries its own bytes; a delivery reads its message's
    raw: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    #: a notification still to be rendered, ``{"kind": ..., "context": {...}}``: the
    #: worker renders it when it sends it, off the path that answers SMTP or a browser
    notice: Mapped[dict | None] = deferred(mapped_column(JSON(none_as_null=True)))
    mail_from: Mapped[str] = mapped_column(String(320))
    rcpt_to: Mapped[str] = mapped_column(String(320))
    #: a QueueState
    state: Mapped[str] = mapped_column(String(10), default=QueueState.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=clock.utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(default=clock.utcnow)
    #: a worker that took the item holds it until then; after a crash it is retried
    lease_until: Mapped[datetime | None]
    #: drawn afresh by each take: a worker records its attempt only while it still holds
    #: the item under the token it drew, so nothing is recorded twice after a take-over
    lease_token: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None]

    tenant: Mapped[Tenant | None] = relationship()
    recipient: Mapped[Recipient | None] = relationship()
