"""A sender's view of what they sent: each recipient's route, state and history."""

from __future__ import annotations

from sqlalchemy import func, select

from app import clock
from app.domain import delivery_events, reading
from app.domain.mailbox import PER_PAGE, Page
from app.extensions import db
from app.models import Message, OutboundItem, QueueState, Recipient, RecipientState, Route, User


def sent(user: User, *, number: int = 1) -> Page:
    """Messages this user sent (from the portal or a mail client), newest first."""
    statement = select(Message).where(Message.tenant_id == user.tenant_id,
                                      func.lower(Message.mail_from) == user.email)
    total = db.session.scalar(select(func.count()).select_from(statement.subquery()))
    number = max(1, min(number, max(1, -(-total // PER_PAGE))))
    messages = db.session.scalars(statement.order_by(Message.received_at.desc(),
                                                     Message.id.desc())
                                  .offset((number - 1) * PER_PAGE).limit(PER_PAGE))
    return Page(list(messages), total, number, "")


def sent_message(user: User, public_id: str) -> Message | None:
    """One message this user sent; None for anyone else's."""
    return db.session.scalar(select(Message).where(
        Message.public_id == public_id, Message.tenant_id == user.tenant_id,
        func.lower(Message.mail_from) == user.email))


def blind_copies(message: Message) -> set[str]:
    """The recipients that the message's To and Cc do not name: its Bcc list, which its
    sender sees in Sent and no recipient sees anywhere (the gateway removed the Bcc
    header itself on arrival, app/mail/mime.py). Unknown once the content is purged."""
    headers = reading.headers(message)
    if headers is None:
        return set()
    named = {address for name in ("To", "Cc", "Resent-To", "Resent-Cc")
             for address in reading.addresses(headers, name)}
    return {r.address for r in message.recipients if r.address.lower() not in named}


def status(recipient: Recipient) -> str:
    """Where a recipient's copy stands, in a few words."""
    if recipient.state == RecipientState.REVOKED:
        return "Revoked"
    if recipient.route == Route.CCM:
        if recipient.visible_until and recipient.visible_until <= clock.utcnow():
            return "Expired"
        if recipient.replied_at:
            return f"Replied {recipient.replied_at:%d %b %H:%M} UTC"
        if recipient.first_opened_at:
            return f"Opened {recipient.first_opened_at:%d %b %H:%M} UTC"
        return {QueueState.DONE: "Notified",
                QueueState.FAILED: "Notification could not be delivered"}.get(
            _notification_state(recipient), "Held, notification queued")
    if recipient.state == RecipientState.DELIVERED:
        return delivery_events.delivered_how(recipient)
    return {RecipientState.DEFERRED: "Deferred, will retry",
            RecipientState.BOUNCED: "Bounced",
            RecipientState.QUEUED: "Queued"}.get(recipient.state, recipient.state)


def _notification_state(recipient: Recipient) -> str | None:
    """The state of the secure message notification (the first one queued)."""
    return db.session.scalar(select(OutboundItem.state).where(
        OutboundItem.recipient_id == recipient.id, OutboundItem.kind == "notification")
        .order_by(OutboundItem.id).limit(1))
