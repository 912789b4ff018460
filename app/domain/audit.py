"""Writing and reading the audit log of administrator actions."""

from __future__ import annotations

from flask import request
from flask_login import current_user
from sqlalchemy import or_, select

from app.domain.searching import search_text
from app.extensions import db
from app.models import AuditEvent, Tenant


def record(action: str, detail: str = "", *, tenant: Tenant | None = None,
           actor: str | None = None) -> None:
    """Log an action of the signed-in administrator (or of ``actor``, an operator at
    the command line), in the current transaction."""
    if actor is None:
        actor = current_user.email if current_user.is_authenticated else "unknown"
    db.session.add(AuditEvent(
        tenant_id=tenant.id if tenant is not None else None,
        actor=actor,
        client_address=request.remote_addr if request else None,
        action=action, detail=detail[:4000]))


def search(tenant: Tenant | None, query: str = "", *, limit: int = 200) -> list[AuditEvent]:
    """Recent entries for ``tenant`` (None: platform-wide), newest first."""
    statement = select(AuditEvent)
    statement = statement.where(AuditEvent.tenant_id == (tenant.id if tenant else None)) \
        if tenant is not None else statement.where(AuditEvent.tenant_id.is_(None))
    if query := search_text(query):
        statement = statement.where(or_(
            AuditEvent.actor.icontains(query, autoescape=True),
            AuditEvent.action.icontains(query, autoescape=True),
            AuditEvent.detail.icontains(query, autoescape=True)))
    return list(db.session.scalars(statement.order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
                                   .limit(limit)))
