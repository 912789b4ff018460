"""The durable outbound queue: what domain code calls to send anything.

Every delivery and every generated mail goes through it. Items are written in the same
transaction as whatever caused them, so nothing is sent for work that rolled back, and
nothing committed is lost. The worker's :mod:`app.delivery.runner` sends them.
"""

from __future__ import annotations

from email.message import Message as MimeMessage
from email.policy import SMTP

from app.delivery import dkim_signing
from app.extensions import db
from app.models import OutboundItem, Recipient, Tenant


def queue(message: MimeMessage | bytes, *, tenant: Tenant | None = None,
          recipient: Recipient | None = None, kind: str = "notification",
          route: str = "external", to: str | None = None) -> OutboundItem:
    """Queue generated mail (notifications, reset links, DSNs), sent from the null sender
    to ``to`` (by default the message's To).

    The null envelope sender means no bounce of generated mail is ever answered, so no
    mail loop can start (RFC 3464, RFC 3834).
    """
    item = OutboundItem(kind=kind, route=route, tenant=tenant, recipient=recipient,
                        raw=signed(message, tenant),
                        mail_from="", rcpt_to=to or str(message["To"]))
    db.session.add(item)
    return item


def notify(kind: str, to: str, context: dict, *, tenant: Tenant | None,
           recipient: Recipient | None = None, route: str = "external") -> OutboundItem:
    """Queue notification ``kind`` for ``to``, rendered from the tenant's templates when
    it is sent; ``context`` holds the template's variables (JSON values)."""
    item = OutboundItem(kind="notification", route=route, tenant=tenant, recipient=recipient,
                        notice={"kind": kind, "context": context}, mail_from="", rcpt_to=to)
    db.session.add(item)
    return item


def queue_delivery(recipient: Recipient) -> OutboundItem:
    """Queue a received message for one of its recipients, by their route."""
    message = recipient.message
    item = OutboundItem(kind="delivery", route=recipient.route, tenant=message.tenant,
                        recipient=recipient, mail_from=message.mail_from,
                        rcpt_to=recipient.address)
    db.session.add(item)
    return item


def signed(message: MimeMessage | bytes, tenant: Tenant | None) -> bytes:
    """The message as sent (given as bytes, or written with CRLF), DKIM-signed for the
    tenant."""
    raw = message if isinstance(message, bytes) else message.as_bytes(policy=SMTP)
    return dkim_signing.sign(raw, tenant)

