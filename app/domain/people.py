"""What administrators do to accounts: create, reset, unlock, find."""

from __future__ import annotations

from sqlalchemy import select

from app.domain import accounts, auth_sessions, notices, second_factor
from app.domain.searching import search_text
from app.extensions import db
from app.mail import addresses
from app.models import Side, Tenant, User
from app.words import N_, Words


def search(tenant: Tenant, query: str = "", *, limit: int = 200) -> list[User]:
    statement = select(User).where(User.tenant_id == tenant.id)
    if query := search_text(query):
        statement = statement.where(User.email.icontains(query.lower(), autoescape=True))
    return list(db.session.scalars(statement.order_by(User.kind.desc(), User.email)
                                   .limit(limit)))


def user_of(tenant: Tenant, user_id: int) -> User | None:
    """A user of ``tenant``; None for anyone else's, whatever the id."""
    return db.session.scalar(select(User).where(User.tenant_id == tenant.id,
                                                User.id == user_id))


class CannotCreate(ValueError):
    """The account cannot be made; the message says why, for the form."""


class AccountExists(CannotCreate):
    pass


def create_internal(tenant: Tenant, email: str, role: str, profile=None) -> tuple[User, str]:
    """A new internal user or administrator with a generated password to change.

    Only at the tenant's own domains: an account is a right to send as its address.
    """
    email = addresses.normalise(email)
    if not tenant.is_internal(email):
        raise CannotCreate(Words(N_("%(email)s is not at one of this organisation's domains."),
                                  email=email))
    if db.session.scalar(select(User.id).where(User.tenant_id == tenant.id,
                                               User.email == email)):
        raise AccountExists(f"{email} already has an account here.")
    user = User(tenant=tenant, email=email, kind=Side.INTERNAL, role=role, failed_signins=0,
                disabled=False, application_settings=profile)
    db.session.add(user)
    return user, accounts.set_generated_password(user)


def reset_password(user: User) -> None:
    """A new generated password, sent in a password notification, to change at sign-in.

    Every session ends, and a second factor or lock-out no longer stands in the way.
    """
    # The old password stops working now; the new one is generated and hashed when the
    # notification is sent, so it is never kept in clear in the queue.
    accounts.withdraw_password(user)
    unlock(user)
    second_factor.reset(user)
    notices.password(user, reset=True)


def unlock(user: User) -> None:
    user.failed_signins = 0
    user.locked_until = None


def disable(user: User, disabled: bool) -> None:
    user.disabled = disabled
    if disabled:
        auth_sessions.end_all(user)
