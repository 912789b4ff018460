"""Notifications: one builder per kind, which every caller uses.

Each builder gathers exactly the values its template documents
(:data:`app.delivery.mail_templates.KINDS`) and picks the route: a tenant's own people
(internal users) get theirs through the internal relay, like the rest of their mail;
everyone else by CCM_OUTBOUND. The tenant is always named by its portal name, as the
portal it links to shows it. The mail itself is rendered when it is sent.
"""

from __future__ import annotations

from datetime import datetime

from app.config import RESET_LINK_LIFETIME
from app.delivery import mail_templates, queue
from app.domain import links
from app.models import OutboundItem, Recipient, Route, Side, Tenant, User


def secure_message(recipient: Recipient, *, new_account: bool) -> OutboundItem:
    """A secure message awaits ``recipient`` in the portal."""
    return _notify("secure_message", recipient.message.tenant, recipient.address,
                   recipient.kind, about=recipient, recipient=recipient.address,
                   new_account=new_account, visible_until=_day(recipient.visible_until))


def password(user: User, password_: str, *, reset: bool,
             recipient: Recipient | None = None) -> OutboundItem:
    """``user``'s login name and generated password: at first contact, or after an
    administrator's reset."""
    return _notify("password", user.tenant, user.email, user.kind, about=recipient,
                   login=user.email, password=password_, reset=reset)


def activation(user: User, activation_url: str, lifetime_hours: int,
               recipient: Recipient | None = None) -> OutboundItem:
    """A link for ``user`` to choose their first password, where the tenant prefers it."""
    return _notify("activation", user.tenant, user.email, user.kind, about=recipient,
                   login=user.email, activation_url=activation_url,
                   lifetime_hours=lifetime_hours)


def password_reset(user: User, reset_url: str) -> OutboundItem:
    """A link to set a new password, asked for at "I have forgotten my password"."""
    return _notify("password_reset", user.tenant, user.email, user.kind, email=user.email,
                   reset_url=reset_url,
                   lifetime_minutes=int(RESET_LINK_LIFETIME.total_seconds() // 60))


def expiry_warning(recipient: Recipient) -> OutboundItem:
    """An unopened message leaves the portal soon."""
    return _notify("expiry_warning", recipient.message.tenant, recipient.address,
                   recipient.kind, about=recipient, recipient=recipient.address,
                   visible_until=_day(recipient.visible_until))


def _notify(kind: str, tenant: Tenant, to: str, people: str, *,
            about: Recipient | None = None, **values) -> OutboundItem:
    """Queue ``kind`` for ``to``, about the copy ``about`` if any (its delivery events
    then tell of it); ``people`` is the addressee's kind, internal or external."""
    context = {"tenant_name": tenant.display_name, "portal_url": links.sign_in(tenant),
               **values}
    if set(context) != set(mail_templates.KINDS[kind]):
        raise ValueError(f"{kind} takes {sorted(mail_templates.KINDS[kind])}, "
                         f"not {sorted(context)}")
    route = Route.INTERNAL if people == Side.INTERNAL else Route.EXTERNAL
    return queue.notify(kind, to, context, tenant=tenant, recipient=about, route=route)


def _day(moment: datetime) -> str:
    return f"{moment:%d %B %Y}"
