"""The access log: sign-ins, openings, downloads and replies, with time, address, browser."""

from __future__ import annotations

from datetime import timedelta

from flask import has_request_context, request
from sqlalchemy import or_, select

from app import clock
from app.domain.searching import search_text
from app.extensions import db
from app.models import AccessEvent, Message, Tenant, User

#: Opening a message again from the same address and browser within this long (a
#: reload, back to the list and in again) is not logged again: it tells the sender
#: nothing the first line does not, and it would cost a write on every view.
REOPEN_WINDOW = timedelta(minutes=10)


def record(kind: str, *, tenant: Tenant, user: User | None = None, email: str = "",
           message: Message | None = None, detail: str = "") -> None:
    """Log one access, in the current transaction."""
    address, browser = _client()
    db.session.add(AccessEvent(
        tenant_id=tenant.id, user_id=user.id if user else None,
        email=(user.email if user else email)[:320], kind=kind,
        message_id=message.id if message else None, detail=detail[:2000],
        client_address=address, browser=browser))


def _client() -> tuple[str | None, str | None]:
    """The address and browser of the request being served, if any."""
    if not has_request_context():
        return None, None
    return request.remote_addr, request.user_agent.string[:300]


def record_opened(*, tenant: Tenant, user: User, message: Message) -> bool:
    """Log that ``user`` opened ``message``, unless they did so from this browser within
    :data:`REOPEN_WINDOW`; whether a line was added (the caller commits)."""
    address, browser = _client()
    recent = db.session.scalar(select(AccessEvent.id).where(
        AccessEvent.message_id == message.id, AccessEvent.user_id == user.id,
        AccessEvent.kind == "opened", AccessEvent.at > clock.utcnow() - REOPEN_WINDOW,
        AccessEvent.client_address.is_not_distinct_from(address),
        AccessEvent.browser.is_not_distinct_from(browser)).limit(1))
    if recent is not None:
        return False
    record("opened", tenant=tenant, user=user, message=message)
    return True


def sign_ins(user: User, *, limit: int = 20) -> list[AccessEvent]:
    """The user's own recent sign-ins and failed attempts ("was this you?")."""
    return list(db.session.scalars(select(AccessEvent).where(
        AccessEvent.user_id == user.id, AccessEvent.kind.in_(("sign_in", "sign_in_failed")))
        .order_by(AccessEvent.at.desc()).limit(limit)))


def of_message(message: Message) -> list[AccessEvent]:
    """Who opened, downloaded or replied to a message: what its sender may see."""
    return list(db.session.scalars(select(AccessEvent).where(
        AccessEvent.message_id == message.id).order_by(AccessEvent.at.desc())))


def search(tenant: Tenant, query: str = "", *, limit: int = 200) -> list[AccessEvent]:
    statement = select(AccessEvent).where(AccessEvent.tenant_id == tenant.id)
    if query := search_text(query):
        statement = statement.where(or_(
            AccessEvent.email.icontains(query.lower(), autoescape=True),
            AccessEvent.kind.icontains(query, autoescape=True),
            AccessEvent.client_address.icontains(query, autoescape=True)))
    return list(db.session.scalars(statement.order_by(AccessEvent.at.desc()).limit(limit)))
