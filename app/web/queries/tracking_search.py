"""Message tracking: find a tenant's messages (or, for the platform administrator,
any tenant's) by who, what, when, how they went and where they stand."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time

from sqlalchemy import exists, select

from app.domain.searching import search_text
from app.extensions import db
from app.models import Message, Recipient, Tenant


@dataclass
class Criteria:
    sender: str = ""
    recipient: str = ""
    subject: str = ""
    since: date | None = None
    until: date | None = None
    route: str = ""
    #: a recipient's state (RecipientState): held, deferred, bounced...
    state: str = ""
    message_id: str = ""


def _of(tenant: Tenant | None):
    """Messages of ``tenant``; of every tenant for None (the platform administrator)."""
    statement = select(Message)
    return statement if tenant is None else statement.where(Message.tenant_id == tenant.id)


def search(tenant: Tenant | None, criteria: Criteria, *, limit: int = 100) -> list[Message]:
    statement = _of(tenant)
    sender, subject = search_text(criteria.sender), search_text(criteria.subject)
    recipient = search_text(criteria.recipient)
    if sender:
        statement = statement.where(
            Message.mail_from.icontains(sender.lower(), autoescape=True)
            | Message.header_from.icontains(sender, autoescape=True))
    if subject:
        statement = statement.where(Message.subject.icontains(subject, autoescape=True))
    if message_id := search_text(criteria.message_id).strip("<>"):
        statement = statement.where(
            Message.message_id_header.icontains(message_id, autoescape=True))
    matching = [Recipient.message_id == Message.id]
    if recipient:
        matching.append(Recipient.address.icontains(recipient.lower(), autoescape=True))
    if criteria.route:
        matching.append(Recipient.route == criteria.route)
    if criteria.state:
        matching.append(Recipient.state == criteria.state)
    if len(matching) > 1:
        statement = statement.where(exists().where(*matching))
    if criteria.since:
        statement = statement.where(Message.received_at >= datetime.combine(criteria.since,
                                                                             time.min))
    if criteria.until:
        # the day's last instant, not the next day's first: no day after 9999-12-31
        statement = statement.where(Message.received_at <= datetime.combine(criteria.until,
                                                                            time.max))
    return list(db.session.scalars(statement.order_by(Message.received_at.desc())
                                   .limit(limit)))


def message_of(tenant: Tenant | None, public_id: str) -> Message | None:
    return db.session.scalar(_of(tenant).where(Message.public_id == public_id))
