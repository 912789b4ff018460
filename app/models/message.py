"""Messages, their recipients and each recipient's delivery events.

A message's raw MIME is stored once, in the database (every process on every machine
reaches it); recipients are rows that point at it. Expiry purges the content and keeps
the tracking: the rows, the headers that were shown, and the events.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, Text, event, text
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from app import clock
from app.extensions import db
from app.models.policy import Policy
from app.models.tenant import Tenant
from app.models.user import User
from app.models.vocabulary import RecipientState, Route

#: how a recipient is reached
ROUTES = tuple(Route)


def _without_nul(value):
    # PostgreSQL's text cannot hold NUL, which received mail may carry in a header (SQLite
    # can): it is kept as U+FFFD, which is what a reader shows for it anyway.
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


class MailString(TypeDecorator):
    """A string taken from received mail (a header, an address), storable everywhere."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return _without_nul(value)


class MailText(MailString):
    """Longer text that may quote received mail (a delivery event, a routing reason)."""

    impl = Text
    cache_ok = True


class Message(db.Model):
    """One message as received, stored once whatever its number of recipients."""

    __table_args__ = (
        # The purge's candidates, oldest first: only messages not purged yet are in it,
        # so the purge never walks past the ones it did (SQLite and PostgreSQL alike).
        Index("ix_message_unpurged_expires_at", "expires_at", "id",
              sqlite_where=text("purged_at IS NULL"),
              postgresql_where=text("purged_at IS NULL")),
        # A conversation's messages at a tenant (app/domain/conversations.py).
        Index("ix_message_thread", "tenant_id", "thread"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: what URLs carry: unguessable, unlike the row id
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"),
                                           index=True)
    mail_from: Mapped[str] = mapped_column(MailString(320))
    header_from: Mapped[str] = mapped_column(MailString(998), default="")
    subject: Mapped[str] = mapped_column(MailString(998), default="")
    message_id_header: Mapped[str] = mapped_column(MailString(998), default="")
    #: the conversation it belongs to: the Message-ID that began it, as its References
    #: or In-Reply-To name it (app/mail/threads.py); "" for messages stored before 0014
    thread: Mapped[str] = mapped_column(MailString(998), default="", server_default="")
    received_at: Mapped[datetime] = mapped_column(default=clock.utcnow, index=True)
    client_address: Mapped[str] = mapped_column(String(64), default="")
    received_over_tls: Mapped[bool] = mapped_column(default=False)
    size: Mapped[int] = mapped_column(default=0)
    #: when the content may be purged: the end of the longest visibility window
    expires_at: Mapped[datetime | None]
    #: the message as received, less the headers the gateway strips (X-CCM-Mode, Bcc:
    #: app/mail/mime.py STRIPPED_HEADERS); None once purged
    raw: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    #: where each part's body lies in ``raw`` (app/mail/parts.py), found once at
    #: ingest; None for a message only the full parse may read, or stored before it
    parts: Mapped[dict | None] = deferred(mapped_column(JSON(none_as_null=True)))
    purged_at: Mapped[datetime | None]

    tenant: Mapped[Tenant] = relationship()
    recipients: Mapped[list[Recipient]] = relationship(
        back_populates="message", cascade="all, delete-orphan", order_by="Recipient.id"
    )


class Recipient(db.Model):
    """One recipient of a message: the route chosen for them and where it stands."""

    __table_args__ = (
        # The inbox: a user's copies, newest first, read 21 index entries at a time
        # instead of sorting all of them (see app/domain/mailbox.py).
        Index("ix_recipient_inbox", "user_id", "received_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("message.id", ondelete="CASCADE"),
                                            index=True)
    address: Mapped[str] = mapped_column(MailString(320))
    #: a Side: internal or external to the tenant
    kind: Mapped[str] = mapped_column(String(16))
    #: a Route
    route: Mapped[str] = mapped_column(String(16))
    #: why the route was chosen, in words an administrator reads
    reason: Mapped[str] = mapped_column(MailText, default="")
    policy_id: Mapped[int | None] = mapped_column(ForeignKey("policy.id", ondelete="SET NULL"))
    #: the secure-delivery requirement for this recipient, if any
    tls: Mapped[str | None] = mapped_column(String(10))
    fallback: Mapped[str | None] = mapped_column(String(10))
    #: a RecipientState
    state: Mapped[str] = mapped_column(String(16), default=RecipientState.QUEUED)
    #: the recipient's portal account, for CCM delivery (indexed by ix_recipient_inbox)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    #: the message's received_at, copied here so that the inbox is ordered by its index;
    #: always set (see _copy_received_at), though the schema allows NULL: SQLite could
    #: only add a NOT NULL column to rows that exist by rebuilding the table
    received_at: Mapped[datetime | None]
    visible_until: Mapped[datetime | None]
    first_opened_at: Mapped[datetime | None]
    first_opened_from: Mapped[str | None] = mapped_column(String(64))
    replied_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    expiry_warned_at: Mapped[datetime | None]

    message: Mapped[Message] = relationship(back_populates="recipients")
    policy: Mapped[Policy | None] = relationship()
    user: Mapped[User | None] = relationship()
    events: Mapped[list[DeliveryEvent]] = relationship(
        back_populates="recipient", cascade="all, delete-orphan", order_by="DeliveryEvent.id"
    )


#: verbatim texts administrators look for in delivery events (docs/architecture.md)
DELIVERED_TO_CCM = "Delivered to CCM isolation area"
DELIVERED_VIA_MX = "Email Delivered via MX resolution"
#: a copy written to the maildir outbox (CCM_OUTBOUND=maildir:PATH): never its path, which
#: is the server's business (the operator's log has it)
WRITTEN_TO_OUTBOX = "Written to the outbox (maildir)"


class DeliveryEvent(db.Model):
    """One line of a recipient's delivery history, shown to administrators and senders."""

    __tablename__ = "delivery_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("recipient.id", ondelete="CASCADE"),
                                              index=True)
    at: Mapped[datetime] = mapped_column(default=clock.utcnow)
    kind: Mapped[str] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(MailText)

    recipient: Mapped[Recipient] = relationship(back_populates="events")


@event.listens_for(Recipient, "before_insert")
def _copy_received_at(_mapper, _connection, recipient: Recipient) -> None:
    """Give a new recipient its message's received_at (the message is inserted first)."""
    if recipient.received_at is None:
        recipient.received_at = recipient.message.received_at
