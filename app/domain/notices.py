"""Notifications: one builder per kind, which every caller uses.

Each builder gathers exactly the values its template documents
(:data:`app.delivery.mail_templates.KINDS`) and picks the route: a tenant's own people
(internal users) get theirs through the internal relay, like the rest of their mail;
everyone else by CCM_OUTBOUND. The tenant is always named by its portal name, as the
portal it links to shows it. The mail itself is rendered when it is sent.
"""

from __future__ import annotations

from sqlalchemy import select

from app import clock
from app.config import RESET_LINK_LIFETIME
from app.delivery import mail_templates, queue
from app.domain import accounts, links, passkeys, passwords
from app.extensions import db
from app.models import OutboundItem, Recipient, Route, Side, Tenant, User


def secure_message(recipient: Recipient, *, new_account: bool) -> OutboundItem:
    """A secure message awaits ``recipient`` in the portal."""
    return _notify("secure_message", recipient.message.tenant, recipient.address,
                   recipient.kind, about=recipient, recipient=recipient.address,
                   new_account=new_account, visible_until=_until(recipient))


def password(user: User, *, reset: bool, recipient: Recipient | None = None) -> OutboundItem:
    """``user``'s login name and a generated password: at first contact, or after an
    administrator's reset. The account has no usable password until the worker sends
    this: only then is the password generated and hashed (:func:`password_to_give`),
    so neither intake nor the queue holds it, and hashing never holds up intake."""
    return _notify("password", user.tenant, user.email, user.kind, about=recipient,
                   login=user.email, reset=reset)


def password_to_give(item: OutboundItem) -> tuple[str, str] | None:
    """For a password notification about to be sent: a fresh password and its hash; None
    when its account's password was set by other means meanwhile (then nothing is sent).

    Only reads: the caller hashes before it opens a write transaction, then stores the
    hash with :func:`give_password`. Each try generates a new password: the latest mail
    sent is the one whose password works.
    """
    user = _account_of(item)
    if not accounts.awaits_generated_password(user, item.notice.get("given")):
        return None
    new = passwords.generate()
    return new, accounts.hash_for(user, new)


def give_password(item: OutboundItem, password_hash: str) -> bool:
    """Store ``password_hash`` on the notification's account and remember on the item
    that it gave it; False, changing nothing, when the account's password was set by
    other means since :func:`password_to_give` looked. The caller commits."""
    user = _account_of(item, lock=True)
    if not accounts.awaits_generated_password(user, item.notice.get("given")):
        return False
    accounts.give_generated_password(user, password_hash)
    item.notice = {**item.notice, "given": accounts.fingerprint(password_hash)}
    return True


def _account_of(item: OutboundItem, *, lock: bool = False) -> User | None:
    """The account a password notification is for (its addressee, at its tenant); with
    ``lock``, read afresh and held until the commit (PostgreSQL), so that no password
    set meanwhile is overwritten."""
    query = select(User).where(User.tenant_id == item.tenant_id, User.email == item.rcpt_to)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return db.session.scalar(query)


def activation(user: User, activation_url: str, lifetime_hours: int,
               recipient: Recipient | None = None) -> OutboundItem:
    """A link for ``user`` to choose their first password (or create a passkey, where the
    tenant chose that too), where the tenant prefers it to a generated password."""
    return _notify("activation", user.tenant, user.email, user.kind, about=recipient,
                   login=user.email, activation_url=activation_url,
                   lifetime_hours=lifetime_hours,
                   passkey=passkeys.activation_by_passkey(user.tenant, user.kind))


def password_reset(user: User, reset_url: str) -> OutboundItem:
    """A link to set a new password, asked for at "I have forgotten my password"."""
    return _notify("password_reset", user.tenant, user.email, user.kind, email=user.email,
                   reset_url=reset_url,
                   lifetime_minutes=int(RESET_LINK_LIFETIME.total_seconds() // 60))


def expiry_warning(recipient: Recipient) -> OutboundItem:
    """An unopened message leaves the portal soon."""
    return _notify("expiry_warning", recipient.message.tenant, recipient.address,
                   recipient.kind, about=recipient, recipient=recipient.address,
                   visible_until=_until(recipient))


def _notify(kind: str, tenant: Tenant, to: str, people: str, *,
            about: Recipient | None = None, **values) -> OutboundItem:
    """Queue ``kind`` for ``to``, about the copy ``about`` if any (its delivery events
    then tell of it, and its link goes to that message, not the inbox); ``people`` is
    the addressee's kind, internal or external."""
    portal_url = links.message(about) if about is not None else links.sign_in(tenant)
    context = {"tenant_name": tenant.display_name, "portal_url": portal_url, **values}
    expected = set(mail_templates.KINDS[kind]) - mail_templates.AT_SENDING.get(kind, set())
    if set(context) != expected:
        raise ValueError(f"{kind} takes {sorted(expected)}, not {sorted(context)}")
    route = Route.INTERNAL if people == Side.INTERNAL else Route.EXTERNAL
    return queue.notify(kind, to, context, tenant=tenant, recipient=about, route=route)


def _until(recipient: Recipient) -> str:
    """When the copy leaves the portal, as a moment in UTC: the mail writes it out in its
    addressee's language, to the minute in the tenant's zone, the zone named (a day alone,
    and in UTC, put a message due at 21:00 on 29 December in New York on 30)."""
    return clock.as_utc(recipient.visible_until).isoformat()
