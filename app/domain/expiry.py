"""The visibility window: warnings before it ends, and purging content after.

Both work in small batches, each its own transaction, so purging a million messages
never holds a lock long enough to stall the portal.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import Select, and_, exists, select, update

from app import clock
from app.config import SESSION_ABSOLUTE_TIMEOUT
from app.domain import notices
from app.domain.delivery_events import record, record_all
from app.extensions import db
from app.models import (
    AuthSession,
    Message,
    OutboundItem,
    PasswordReset,
    QueueState,
    Recipient,
    RecipientState,
    Route,
    SpentChallenge,
    Tenant,
)

log = logging.getLogger(__name__)

BATCH = 500


def purge_expired(*, batch: int = BATCH, limit: int | None = None) -> int:
    """Purge the content of every message past its window; the number purged.

    A message still waiting for an ordinary delivery keeps its content until that ends
    (delivered or bounced). Tracking rows and events stay, with an ``expired`` event.
    """
    purged = 0
    while limit is None or purged < limit:
        now = clock.utcnow()
        ids = list(db.session.scalars(
            due_for_purge(now, batch if limit is None else min(batch, limit - purged))))
        if not ids:
            break
        # Four statements a batch, whatever its size: no row is loaded into the session.
        public_ids = db.session.scalars(
            update(Message).where(Message.id.in_(ids))
            .values(raw=None, parts=None, purged_at=now).returning(Message.public_id)
            .execution_options(synchronize_session=False)).all()
        db.session.execute(update(Recipient)
                           .where(Recipient.message_id.in_(ids),
                                  Recipient.state == RecipientState.HELD)
                           .values(state=RecipientState.EXPIRED)
                           .execution_options(synchronize_session=False))
        record_all(select(Recipient.id).where(Recipient.message_id.in_(ids)), "expired",
                   "Expired: the visibility window ended and the content was deleted")
        db.session.commit()
        for public_id in public_ids:
            log.info("message %s expired: its content was deleted", public_id,
                     extra={"message_id": public_id})
        purged += len(ids)
    return purged


def due_for_purge(now, size: int) -> Select:
    """The ids of the next ``size`` messages to purge, oldest window first.

    ix_message_unpurged_expires_at serves it: its rows are the messages not purged yet,
    in this order, so each batch starts where the last one ended. A message still to be
    delivered is kept, and so is one the operator set aside or holds (shunted, on hold),
    whose retry or release needs its content.
    """
    unfinished = exists().where(
        OutboundItem.recipient_id == Recipient.id, Recipient.message_id == Message.id,
        OutboundItem.kind == "delivery",
        OutboundItem.state.in_((QueueState.PENDING, QueueState.SENDING, QueueState.SHUNTED,
                                QueueState.ON_HOLD)))
    return (select(Message.id)
            .where(Message.purged_at.is_(None), Message.expires_at <= now, ~unfinished)
            .order_by(Message.expires_at, Message.id)
            .limit(size))


def warn_unopened(*, batch: int = BATCH) -> int:
    """Tell recipients who have not opened a message that it expires soon; once each."""
    warned = 0
    now = clock.utcnow()
    for tenant in db.session.scalars(select(Tenant).where(Tenant.expiry_warning_days > 0)):
        horizon = now + timedelta(days=tenant.expiry_warning_days)
        while due := list(db.session.scalars(
            select(Recipient).join(Recipient.message)
            .where(Message.tenant_id == tenant.id, Recipient.route == Route.CCM,
                   Recipient.state == RecipientState.HELD, Recipient.first_opened_at.is_(None),
                   Recipient.expiry_warned_at.is_(None), Recipient.visible_until > now,
                   Recipient.visible_until <= horizon)
            .order_by(Recipient.visible_until).limit(batch))):
            for recipient in due:
                _warn(recipient, now)
            db.session.commit()
            warned += len(due)
    return warned


def _warn(recipient: Recipient, now) -> None:
    notices.expiry_warning(recipient)
    recipient.expiry_warned_at = now
    record(recipient, "warned", "Expiry warning sent: not opened yet")


def clean_up(*, queue_retention: timedelta = timedelta(days=7)) -> dict[str, int]:
    """Delete what nobody needs any more: used or expired links, ended sessions, old
    finished queue items. (Throttling counters expire in their own store.)"""
    now = clock.utcnow()
    counts = {
        "reset links": db.session.query(PasswordReset).filter(
            (PasswordReset.expires_at < now) | PasswordReset.used_at.isnot(None)
        ).delete(synchronize_session=False),
        "sessions": db.session.query(AuthSession).filter(
            (AuthSession.ended_at.isnot(None))
            | (AuthSession.created_at < now - SESSION_ABSOLUTE_TIMEOUT)
        ).delete(synchronize_session=False),
        "answered passkey challenges": db.session.query(SpentChallenge).filter(
            SpentChallenge.expires_at < now).delete(synchronize_session=False),
        "queue items": db.session.query(OutboundItem).filter(and_(
            OutboundItem.state.in_((QueueState.DONE, QueueState.FAILED)),
            OutboundItem.finished_at < now - queue_retention,
        )).delete(synchronize_session=False),
    }
    db.session.commit()
    return counts
