"""The operator's tools for the outbound queue, as Postfix's ``postqueue`` and
``postsuper``: list, show, retry now, hold and release, delete (with a bounce report to
the sender if asked).

An item a worker is sending now (``sending``, under its lease) is left alone: the
worker records its outcome, and a change here would be overwritten or would race it.
Each function changes rows in the caller's transaction and returns what it changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Row, Select, bindparam, func, null, select

from app import clock
from app.delivery import dsn
from app.domain import audit
from app.domain.delivery_events import record, record_rows
from app.extensions import db
from app.models import OutboundItem, QueueState, Recipient, RecipientState, Tenant

#: what `retry` puts back: items waiting for their next try, set aside, or on hold
RETRIED = (QueueState.PENDING, QueueState.SHUNTED, QueueState.ON_HOLD)
#: what `hold` and `delete` take: anything not finished and not being sent now
UNFINISHED = (QueueState.PENDING, QueueState.SHUNTED, QueueState.ON_HOLD)
#: the states an item waits in: what the queue's depth counts
WAITING = (QueueState.PENDING, QueueState.SENDING, QueueState.SHUNTED, QueueState.ON_HOLD)


def listing(*, state: str | None = None, tenant: Tenant | None = None,
            limit: int = 500) -> list[OutboundItem]:
    """Items not finished (or in ``state``), oldest first, as ``postqueue -p`` lists."""
    query = select(OutboundItem).order_by(OutboundItem.id).limit(limit)
    if state is not None:
        query = query.where(OutboundItem.state == state)
    else:
        query = query.where(OutboundItem.state.not_in((QueueState.DONE, QueueState.FAILED)))
    if tenant is not None:
        query = query.where(OutboundItem.tenant_id == tenant.id)
    return list(db.session.scalars(query))


def depth() -> dict[str, tuple[int, datetime | None]]:
    """For each waiting state, how many items are in it and when the oldest was created;
    one query, for the metrics a monitoring system reads every few seconds."""
    rows = db.session.execute(
        select(OutboundItem.state, func.count(), func.min(OutboundItem.created_at))
        .where(OutboundItem.state.in_(WAITING)).group_by(OutboundItem.state))
    found: dict[str, tuple[int, datetime | None]] = dict.fromkeys(WAITING, (0, None))
    found.update({state: (count, oldest) for state, count, oldest in rows})
    return found


def _chosen(item_ids: Iterable[int] | None, states: Iterable[str]) -> Select:
    query = select(OutboundItem).where(OutboundItem.state.in_(list(states)))
    if item_ids is not None:
        query = query.where(OutboundItem.id.in_(list(item_ids)))
    return query.order_by(OutboundItem.id).with_for_update(skip_locked=True)


def retry(item_ids: Iterable[int] | None = None, *, by: str) -> list[OutboundItem]:
    """Make items due now (``postqueue -f``): those of ``item_ids``, or every one
    waiting for its next try or set aside after an unexpected error (not those on hold,
    which ``release`` lets go)."""
    states = RETRIED if item_ids is not None else (QueueState.PENDING, QueueState.SHUNTED)
    return _change(item_ids, states, QueueState.PENDING, "retry",
                   f"Retried now by {by}", by)


def hold(item_ids: Iterable[int], *, by: str) -> list[OutboundItem]:
    """Keep items from being sent until released (``postsuper -h``)."""
    return _change(item_ids, (QueueState.PENDING, QueueState.SHUNTED), QueueState.ON_HOLD,
                   "hold", f"Put on hold by {by}", by)


def release(item_ids: Iterable[int], *, by: str) -> list[OutboundItem]:
    """Let items on hold go, due now (``postsuper -H``)."""
    return _change(item_ids, (QueueState.ON_HOLD,), QueueState.PENDING, "release",
                   f"Released from hold by {by}", by)


def finish(item: OutboundItem, state: str, event: str | None) -> None:
    """End an item (done or failed), by the worker or the operator: its lease let go, a
    generated mail's content dropped, and ``event`` in its recipient's history."""
    item.state = state
    item.lease_until = item.lease_token = None
    item.finished_at = clock.utcnow()
    if item.kind != "delivery":
        # a password notification must not outlive its sending
        item.raw = item.notice = None
    if item.recipient is not None and event:
        record(item.recipient, "delivered" if state == QueueState.DONE else "bounced", event)


_items, _recipients = OutboundItem.__table__.c, Recipient.__table__.c
#: the statements recording a delivery, built once: the worker runs them for every
#: message, and a statement built afresh is compiled (or its cache key made) each time
_SENT = (
    OutboundItem.__table__.update()
    .where(_items.id.in_(bindparam("ids", expanding=True)),
           _items.state == QueueState.SENDING, _items.lease_token == bindparam("token"))
    .values(state=QueueState.DONE, attempts=_items.attempts + 1, lease_until=null(),
            lease_token=null(), finished_at=bindparam("now", type_=_items.finished_at.type),
            raw=null(), notice=null())  # generated mail must not outlive its sending
    .returning(_items.id, _items.kind, _items.route, _items.rcpt_to, _items.recipient_id,
               _items.created_at, _items.attempts))
_DELIVERED = (Recipient.__table__.update()
              .where(_recipients.id.in_(bindparam("ids", expanding=True)))
              .values(state=RecipientState.DELIVERED))


def finish_sent(item_ids: Iterable[int], token: str) -> list[Row]:
    """End as delivered, one more try counted, the items of ``item_ids`` still leased
    under ``token``, as :func:`finish` ends an item, in one UPDATE (the worker's
    commonest outcome, recorded while it holds the process's one writer); the rows
    ended. Their recipients' part is :func:`sent_to`'s."""
    return list(db.session.execute(
        _SENT, {"ids": list(item_ids), "token": token, "now": clock.utcnow()}))


def sent_to(ended: list[tuple[Row, str]]) -> None:
    """For items :func:`finish_sent` ended, each with its event: a delivery's recipient
    delivered, and the event in each recipient's history (one UPDATE, one INSERT)."""
    delivered = [row.recipient_id for row, _ in ended
                 if row.kind == "delivery" and row.recipient_id is not None]
    if delivered:
        db.session.execute(_DELIVERED, {"ids": delivered})
    record_rows([(row.recipient_id, "delivered", event) for row, event in ended
                 if row.recipient_id is not None and event])


def delete(item_ids: Iterable[int], *, by: str, bounce: bool = False) -> list[OutboundItem]:
    """End items unsent (``postsuper -d``); with ``bounce``, a delivery's sender gets a
    report saying the operator deleted it."""
    reason = f"5.0.0 Deleted from the queue by {by}"
    items = list(db.session.scalars(_chosen(item_ids, UNFINISHED)))
    for item in items:
        item.last_error = reason
        finish(item, QueueState.FAILED, f"Deleted from the queue by {by}"
               + ("; the sender was told" if bounce and item.kind == "delivery" else ""))
        if item.recipient is not None and item.kind == "delivery":
            item.recipient.state = RecipientState.BOUNCED
            if bounce:
                dsn.queue_failure_report(item.recipient, reason)
        _audit("delete", item, by)
    return items


def _change(item_ids, states, to: str, action: str, event: str, by: str
            ) -> list[OutboundItem]:
    items = list(db.session.scalars(_chosen(item_ids, states)))
    now = clock.utcnow()
    for item in items:
        item.state = to
        if to == QueueState.PENDING:
            item.next_attempt_at = now
        if item.recipient is not None:
            record(item.recipient, "queue", event)
        _audit(action, item, by)
    return items


def _audit(action: str, item: OutboundItem, by: str) -> None:
    audit.record(f"queue {action}", f"item {item.id} ({item.kind}) to {item.rcpt_to}",
                 tenant=item.tenant, actor=by)
