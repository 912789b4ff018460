"""Message tracking: find a tenant's messages by who, what, when and how they went."""

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


def search(tenant: Tenant, criteria: Criteria, *, limit: int = 100) -> list[Message]:
    statement = select(Message).where(Message.tenant_id == tenant.id)
    sender, subject = search_text(criteria.sender), search_text(criteria.subject)
    recipient = search_text(criteria.recipient)
    if sender:
        statement = statement.where(
            Message.mail_from.icontains(sender.lower(), autoescape=True)
            | Message.header_from.icontains(sender, autoescape=True))
    if subject:
        statement = statement.where(Message.subject.icontains(subject, autoescape=True))
    matching = [Recipient.message_id == Message.id]
    if recipient:
        matching.append(Recipient.address.icontains(recipient.lower(), autoescape=True))
    if criteria.route:
        matching.append(Recipient.route == criteria.route)
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


def message_of(tenant: Tenant, public_id: str) -> Message | None:
    return db.session.scalar(select(Message).where(Message.tenant_id == tenant.id,
                                                   Message.public_id == public_id))
