"""The access log: sign-ins, openings, downloads and replies, with time, address, browser."""

from __future__ import annotations

from flask import has_request_context, request
from sqlalchemy import or_, select

from .extensions import db
from .models import AccessEvent, Message, Tenant, User


def record(kind: str, *, tenant: Tenant, user: User | None = None, email: str = "",
           message: Message | None = None, detail: str = "") -> None:
    """Log one access, in the current transaction."""
    db.session.add(AccessEvent(
        tenant_id=tenant.id, user_id=user.id if user else None,
        email=(user.email if user else email)[:320], kind=kind,
        message_id=message.id if message else None, detail=detail[:2000],
        client_address=request.remote_addr if has_request_context() else None,
        browser=request.user_agent.string[:300] if has_request_context() else None))


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
    if query := query.strip():
        statement = statement.where(or_(
            AccessEvent.email.icontains(query.lower(), autoescape=True),
            AccessEvent.kind.icontains(query, autoescape=True),
            AccessEvent.client_address.icontains(query, autoescape=True)))
    return list(db.session.scalars(statement.order_by(AccessEvent.at.desc()).limit(limit)))
