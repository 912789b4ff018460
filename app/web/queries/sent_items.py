"""A sender's view of what they sent: each recipient's route, state and history."""

from __future__ import annotations

from flask_babel import gettext as _
from markupsafe import Markup, escape
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app import clock
from app.domain import delivery_events, mailbox, reading
from app.domain.mailbox import PER_PAGE, Page
from app.extensions import db
from app.models import Message, OutboundItem, QueueState, Recipient, RecipientState, Route, User
from app.web.filters import moment
from app.web.languages import N_, say


def sent(user: User, *, number: int = 1) -> Page:
    """Messages this user sent (from the portal or a mail client), newest first."""
    statement = select(Message).where(Message.tenant_id == user.tenant_id,
                                      func.lower(Message.mail_from) == user.email)
    total = db.session.scalar(select(func.count()).select_from(statement.subquery()))
    number = max(1, min(number, max(1, -(-total // PER_PAGE))))
    messages = db.session.scalars(statement.order_by(Message.received_at.desc(),
                                                     Message.id.desc())
                                  .options(selectinload(Message.recipients))
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


def by_ccm(message: Message) -> bool:
    """Whether any recipient got the message by CCM (the secure portal)."""
    return any(r.route == Route.CCM for r in message.recipients)


def outcomes(message: Message) -> list[str]:
    """What became of the CCM copies that can no longer be read, for the Sent list:
    "Withdrawn", "Expired", or "Withdrawn for 1 of 3" when only some were."""
    copies = [r for r in message.recipients if r.route == Route.CCM]
    fates = [fate for r in copies if (fate := _fate(r)) is not None]
    found = []
    for all_of, some_of, gone in (
            (_("Withdrawn"), N_("Withdrawn for %(count)s of %(total)s"),
             [f for f in fates if f.withdrawn]),
            (_("Expired"), N_("Expired for %(count)s of %(total)s"),
             [f for f in fates if not f.withdrawn])):
        if gone:
            found.append(all_of if len(gone) == len(copies)
                         else _(some_of, count=len(gone), total=len(copies)))
    return found


def _fate(recipient: Recipient) -> mailbox.Fate | None:
    # A copy still queued (a TLS fall-back on its way to CCM) has no window yet.
    if recipient.state not in mailbox.LISTED:
        return None
    return mailbox.fate_of(recipient)


def status(recipient: Recipient) -> str:
    """Where a recipient's copy stands, in a few words."""
    if recipient.state == RecipientState.REVOKED:
        return _said(N_("Withdrawn %(when)s"), recipient.revoked_at).rstrip()
    if recipient.route == Route.CCM:
        if recipient.state == RecipientState.EXPIRED or (
                recipient.visible_until and recipient.visible_until <= clock.utcnow()):
            return _said(N_("Expired %(when)s"), recipient.visible_until).rstrip()
        if recipient.replied_at:
            return _said(N_("Replied %(when)s"), recipient.replied_at)
        if recipient.first_opened_at:
            return _said(N_("Opened %(when)s"), recipient.first_opened_at)
        return {QueueState.DONE: _("Notified"),
                QueueState.FAILED: _("Notification could not be delivered")}.get(
            _notification_state(recipient), _("Held, notification queued"))
    if recipient.state == RecipientState.DELIVERED:
        return say(delivery_events.delivered_how(recipient))
    return {RecipientState.DEFERRED: _("Deferred, will retry"),
            RecipientState.BOUNCED: _("Bounced"),
            RecipientState.QUEUED: _("Queued")}.get(recipient.state, recipient.state)


def _said(words: str, moment_of) -> Markup:
    """``words`` translated, with the moment (a ``<time>`` element) for ``%(when)s``."""
    return escape(_(words)) % {"when": moment(moment_of, "short")}


def _notification_state(recipient: Recipient) -> str | None:
    """The state of the secure message notification (the first one queued)."""
    return db.session.scalar(select(OutboundItem.state).where(
        OutboundItem.recipient_id == recipient.id, OutboundItem.kind == "notification")
        .order_by(OutboundItem.id).limit(1))
