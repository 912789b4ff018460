"""CCM delivery: keep a message in the isolation area for a recipient and notify them."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import clock, database, metrics
from app.domain import accounts, links, notices
from app.domain.delivery_events import record
from app.extensions import db
from app.mail import addresses
from app.models import DELIVERED_TO_CCM, Recipient, RecipientState, Role, Route, Side, User

#: a child of Flask's application logger ("app"), so it goes where that goes
log = logging.getLogger(__name__)


def hold(recipient: Recipient) -> None:
    """Make ``recipient``'s copy visible in the portal and queue their notifications.

    A recipient new to this tenant gets an account, and with it the password
    notification (or, if the tenant prefers, an activation link) besides the secure
    message notification; a later message sends only the latter.
    """
    message = recipient.message
    tenant = message.tenant
    account, user = _account(tenant, recipient.address)
    first_contact = user is not None
    days = (recipient.policy and recipient.policy.visibility_days) or tenant.visibility_days
    recipient.user_id = account
    recipient.state = RecipientState.HELD
    recipient.visible_until = message.received_at + timedelta(days=days)
    message.expires_at = max(message.expires_at or recipient.visible_until,
                             recipient.visible_until)
    record(recipient, "ccm", DELIVERED_TO_CCM)
    metrics.held()

    notices.secure_message(recipient, new_account=first_contact)
    if not first_contact:
        return
    if tenant.first_contact == "activation_link":
        token = accounts.start_reset(user, purpose="activation",
                                     lifetime=timedelta(hours=tenant.activation_hours))
        notices.activation(user, links.set_password(token, links.message_path(recipient)),
                           tenant.activation_hours, recipient=recipient)
    else:
        # No password yet (the row is created with none): the worker generates and
        # hashes it when it sends the notification, outside this storing transaction.
        notices.password(user, reset=False, recipient=recipient)


def _account(tenant, address: str) -> tuple[int, User | None]:
    """The id of the recipient's account at ``tenant``, created on first use; and the
    account itself when it is new (first contact)."""
    email = addresses.normalise(address)
    # Without autoflush: the message's rows go to the database once, at the commit,
    # instead of being inserted here and updated after. (A message's addresses are
    # already distinct, so no account for this address is pending in this session.)
    with db.session.no_autoflush:
        found = _existing(tenant, email)
    if found is not None:
        return found, None
    internal = tenant.is_internal(email)
    user = User(tenant=tenant, email=email, kind=Side.INTERNAL if internal else Side.EXTERNAL,
                role=Role.INTERNAL if internal else Role.EXTERNAL, failed_signins=0,
                disabled=False, must_change_password=True)
    # The account is written now, before the group's other rows: on SQLite that needs
    # the write lock, which a group commit takes only for its inserts otherwise.
    database.begin_writing()
    try:
        # In a savepoint: when another message to the same new recipient, received at the
        # same moment, creates the account first, this one uses it instead of failing.
        with db.session.begin_nested():
            db.session.add(user)
    except IntegrityError:
        existing = _existing(tenant, email)
        if existing is None:
            raise
        return existing, None
    log.info("created a portal account for %s at %s", email, tenant.slug)
    return user.id, user


def _existing(tenant, email: str) -> int | None:
    """The id of ``email``'s account at ``tenant``: its id only (loading the account
    would cost more than the query), kept while no account is removed or readdressed
    (``database.kept_until_changed``)."""
    return database.kept_until_changed(("account", tenant.id, email), lambda: db.session.scalar(
        select(User.id).where(User.tenant_id == tenant.id, User.email == email)))


def revoke(recipient: Recipient, *, by: str) -> bool:
    """Withdraw a CCM copy before its window ends; False if there was nothing to withdraw."""
    if recipient.route != Route.CCM or recipient.state != RecipientState.HELD:
        return False
    recipient.state = RecipientState.REVOKED
    recipient.revoked_at = clock.utcnow()
    record(recipient, "revoked", f"Revoked by {by}")
    return True
