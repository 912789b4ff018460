"""The durable outbound queue: every delivery and every generated mail goes through it.

Items are written in the same transaction as whatever caused them, so nothing is sent
for work that rolled back, and nothing committed is lost. ``run_due`` (the worker's job)
takes due items under a lease, hands each to the transport in a transaction of its own,
and records what happened: delivered, deferred with growing back-off, bounced with a
delivery status notification to the sender, or sent by CCM after a TLS failure.

Several workers on PostgreSQL take disjoint items (``FOR UPDATE SKIP LOCKED``); on
SQLite, one worker is the supported setup. A worker that dies mid-delivery leaves its
lease to run out, and the item is tried again: the one window in which a recipient can
get a message twice is between the remote server's 250 and our commit of it.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from email.message import Message as MimeMessage
from email.policy import SMTP

from flask import current_app
from sqlalchemy import or_, select

from . import dkim_signing, notifications
from .clock import utcnow
from .extensions import db
from .gateway import mime, transport
from .gateway.tracking import record
from .models import OutboundItem, Recipient, Tenant

log = logging.getLogger(__name__)

#: how long a worker may hold an item before another may take it
LEASE = timedelta(minutes=10)


def queue(message: MimeMessage, *, tenant: Tenant | None = None,
          recipient: Recipient | None = None, kind: str = "notification",
          route: str = "external") -> OutboundItem:
    """Queue generated mail (notifications, reset links, DSNs), sent from the null sender.

    The null envelope sender means no bounce of generated mail is ever answered, so no
    mail loop can start (RFC 3464, RFC 3834).
    """
    raw = dkim_signing.sign(message.as_bytes(policy=SMTP), tenant)
    item = OutboundItem(kind=kind, route=route, tenant=tenant, recipient=recipient, raw=raw,
                        mail_from="", rcpt_to=str(message["To"]))
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


def target_of(item: OutboundItem) -> str:
    """Where an item goes: the tenant's internal relay, or CCM_OUTBOUND."""
    config = current_app.config
    if item.route == "internal":
        return (item.tenant and item.tenant.internal_relay) or config["INTERNAL_RELAY"]
    return config["OUTBOUND"]


# --- the worker ----------------------------------------------------------------------


def run_due(limit: int = 100) -> int:
    """Deliver what is due now; the number of items handled."""
    taken = _take(limit)
    for item_id in taken:
        try:
            _attempt(item_id)
        except Exception:
            # One item's bug must not stop the queue; its lease lets it be tried again.
            db.session.rollback()
            log.exception("outbound item %s failed unexpectedly", item_id)
    return len(taken)


def _take(limit: int) -> list[int]:
    now = utcnow()
    due = (
        select(OutboundItem)
        .where(
            or_(
                (OutboundItem.state == "pending") & (OutboundItem.next_attempt_at <= now),
                (OutboundItem.state == "sending") & (OutboundItem.lease_until < now),
            )
        )
        .order_by(OutboundItem.next_attempt_at, OutboundItem.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    items = list(db.session.scalars(due))
    for item in items:
        item.state = "sending"
        item.lease_until = now + LEASE
    ids = [item.id for item in items]
    db.session.commit()
    return ids


def _attempt(item_id: int) -> None:
    item = db.session.get(OutboundItem, item_id)
    recipient = item.recipient
    raw = _content(item)
    if raw is None:
        _finish(item, "done", "Not sent: the message was withdrawn or has expired")
        db.session.commit()
        return
    tls = recipient.tls if item.kind == "delivery" and recipient is not None else None
    item.attempts += 1
    try:
        event = transport.send(target_of(item), raw, item.mail_from, item.rcpt_to, tls=tls,
                               options=transport.Options.from_config(current_app.config))
    except transport.TlsUnavailable as problem:
        _tls_failed(item, str(problem))
    except transport.DeliveryFailed as failure:
        if failure.permanent:
            _bounce(item, failure.reply)
        else:
            _defer(item, failure.reply)
    else:
        _finish(item, "done", event if item.kind == "delivery" else _generated_event(item, raw))
        if item.kind == "delivery":
            recipient.state = "delivered"
    db.session.commit()


def _content(item: OutboundItem) -> bytes | None:
    """The bytes to send: the message itself, or the generated mail (rendered now)."""
    if item.kind == "delivery":
        return item.recipient.message.raw
    if item.notice is not None:
        mail = notifications.build(item.notice["kind"], item.rcpt_to, item.tenant,
                                   **item.notice["context"])
        return dkim_signing.sign(mail.as_bytes(policy=SMTP), item.tenant)
    return item.raw


def _generated_event(item: OutboundItem, raw: bytes) -> str:
    """Which notification went out, by its subject (which never carries the content)."""
    subject = mime.header(mime.parse_message(raw), "Subject")
    return f"Notification “{subject}” delivered to {item.rcpt_to}"


def _finish(item: OutboundItem, state: str, event: str | None) -> None:
    item.state = state
    item.lease_until = None
    item.finished_at = utcnow()
    if item.kind != "delivery":
        # a password notification must not outlive its sending
        item.raw = item.notice = None
    if item.recipient is not None and event:
        record(item.recipient, "delivered" if state == "done" else "bounced", event)


def _defer(item: OutboundItem, reply: str) -> None:
    config = current_app.config
    now = utcnow()
    if now - item.created_at >= timedelta(seconds=config["RETRY_GIVE_UP_SECONDS"]):
        _bounce(item, f"4.4.7 Gave up after {item.attempts} tries; last reply: {reply}")
        return
    wait = min(config["RETRY_FIRST_SECONDS"] * 2 ** (item.attempts - 1),
               config["RETRY_MAX_SECONDS"])
    item.state = "pending"
    item.lease_until = None
    item.last_error = reply
    item.next_attempt_at = now + timedelta(seconds=wait)
    if item.recipient is not None:
        if item.kind == "delivery":
            item.recipient.state = "deferred"
        record(item.recipient, "deferred",
               f"Deferred: {reply}; next try at {item.next_attempt_at:%Y-%m-%d %H:%M} UTC")


def _bounce(item: OutboundItem, reply: str) -> None:
    from .gateway import dsn  # dsn queues through this module

    item.last_error = reply
    what = "Bounced" if item.kind == "delivery" else "Notification could not be delivered"
    _finish(item, "failed", f"{what}: {reply}")
    if item.kind == "delivery":
        item.recipient.state = "bounced"
        dsn.queue_failure_report(item.recipient, reply)


def _tls_failed(item: OutboundItem, problem: str) -> None:
    from .gateway import isolation  # isolation queues notifications through this module

    recipient = item.recipient
    if recipient.fallback == "ccm":
        _finish(item, "done", None)
        record(recipient, "tls_fallback",
               f"TLS could not be negotiated ({problem}); fell back to CCM")
        recipient.route = "ccm"
        isolation.hold(recipient)
    else:
        _bounce(item, f"5.7.10 TLS is required for this recipient and could not be "
                      f"negotiated: {problem}")
