"""Accounts: credentials, lock-out, password changes and reset links.

Plain functions over the model; the auth views, the command line and (later) the admin
pages call them. Callers commit.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

from sqlalchemy import select, update

from app import clock, metrics
from app.config import RESET_LINK_LIFETIME
from app.domain import auth_sessions, passwords, tokens
from app.extensions import db
from app.mail import addresses
from app.models import PasswordReset, Role, Side, Tenant, User
from app.words import N_, Words

#: consecutive failures allowed before an account is locked for a while
MAX_FAILURES = 5
#: the first lock lasts this long, each further failure doubles it...
LOCK_BASE = timedelta(minutes=1)
#: ...up to this, so an attacker can slow a victim down but never lock them out for good;
#: a password reset by email also lifts the lock.
LOCK_MAX = timedelta(minutes=15)
#: how long after signing in with a given password its forced change may skip asking for
#: it again: long enough to choose a password, short enough for an unattended browser
JUST_PROVEN = timedelta(minutes=10)
#: password attempts allowed from one client address: at the portal's sign-in forms, and
#: failed ones over SMTP AUTH
SIGN_IN_LIMIT = "10/minute;60/hour"


class PasswordRejected(ValueError):
    """A new password breaks the rules; ``problems`` says how (a page says each in its
    reader's language)."""

    def __init__(self, problems: list[Words]):
        super().__init__(" ".join(problems))
        self.problems = problems


def accounts_for(email: str, tenant: Tenant | None = None) -> list[User]:
    """Enabled accounts with this address: at ``tenant``, or at every tenant."""
    query = select(User).where(User.email == addresses.normalise(email), User.disabled.is_(False))
    if tenant is not None:
        query = query.where(User.tenant_id == tenant.id)
    return list(db.session.scalars(query.order_by(User.tenant_id)))


def check_credentials(email: str, password: str, tenant: Tenant | None = None) -> list[User]:
    """The accounts this address and password open; empty when they open none.

    Every refusal takes about as long as a wrong password, whatever the number of
    accounts (:func:`passwords.matching`), and locked accounts are not tested at all, so
    neither timing nor answers tell whether or how many accounts an address has. A match
    does not clear the failure count: only a complete sign-in does (:func:`signed_in`),
    so a second factor cannot be guessed by re-entering the password between guesses.
    """
    candidates = [u for u in accounts_for(email, tenant) if not is_locked(u)]
    found = passwords.matching([u.password_hash for u in candidates], password)
    matched = [user for user, hit in zip(candidates, found, strict=True) if hit]
    if not matched:
        record_failures(candidates)
        metrics.sign_in_failed("password")
    for user in matched:
        sibling = _sibling_hash(user)
        if passwords.needs_rehash(user.password_hash, salt_of=sibling):
            user.password_hash = passwords.hash_password(password, salt_of=sibling)
    return matched


def _sibling_hash(user: User) -> str | None:
    """The password hash of this address's first other account (stored, or being added
    in this transaction) made with today's parameters, whose salt a new hash of
    ``user`` shares. One with older parameters is passed over: its salt would not be
    shared, and the address would split into several salts."""
    query = select(User.password_hash).where(User.email == user.email,
                                             User.password_hash.is_not(None))
    if user.id is not None:
        query = query.where(User.id != user.id)
    with db.session.no_autoflush:
        stored = list(db.session.scalars(query.order_by(User.id)))
    pending = [other.password_hash for other in db.session.new
               if isinstance(other, User) and other is not user
               and other.email == user.email and other.password_hash]
    return next((h for h in [*stored, *pending] if not passwords.needs_rehash(h)), None)


def hash_for(user: User, password: str) -> str:
    """A hash of ``password`` for ``user``, salted like the address's other accounts."""
    return passwords.hash_password(password, salt_of=_sibling_hash(user))


def is_locked(user: User) -> bool:
    return user.locked_until is not None and user.locked_until > clock.utcnow()


def record_failure(user: User) -> None:
    """Count a refused second factor; lock after too many (a wrong password is counted
    by :func:`check_credentials`)."""
    record_failures([user])
    metrics.sign_in_failed("second_factor")


def record_failures(users: list[User]) -> None:
    """Count a failed attempt against each of ``users``; lock those with too many.

    The count is added to in the database, not to what this process read: attempts made
    at the same moment (parallel connections) must each count. One statement for all,
    run even for none, so the work does not depend on how many accounts there are.
    """
    now = clock.utcnow()
    ids = [user.id for user in users]
    db.session.execute(update(User).where(User.id.in_(ids))
                       .values(failed_signins=User.failed_signins + 1))
    for user in users:
        db.session.refresh(user, ["failed_signins"])
        excess = user.failed_signins - MAX_FAILURES
        if excess >= 0:
            user.locked_until = now + min(LOCK_BASE * 2**excess, LOCK_MAX)
            metrics.locked_out()


def signed_in(user: User) -> None:
    """A complete sign-in (password and, where enrolled, second factor) happened."""
    user.last_signin_at = clock.utcnow()
    clear_failures(user)


def clear_failures(user: User) -> None:
    """Only a complete proof of identity may start the failure count again."""
    user.failed_signins = 0
    user.locked_until = None


def change_password(user: User, current: str, new: str) -> None:
    """Change a signed-in user's password; the current one must be given (ASVS 6.2.3)."""
    if not passwords.verify_password(user.password_hash, current):
        raise PasswordRejected([Words(N_("Your current password is not right."))])
    if current == new:
        raise PasswordRejected([Words(N_("Choose a password different from the current one."))])
    set_password(user, new)


def just_proven(user: User) -> bool:
    """Whether ``user`` must change a given password and proved it moments ago, by
    signing in with it in this very session: then the change need not ask for it again.

    A session starts only once a password (and any second factor) was proven, and every
    way of giving a password ends the sessions open before; so a session begun after the
    password was set, and less than :data:`JUST_PROVEN` ago, began with this password.
    """
    if not user.must_change_password or user.password_changed_at is None:
        return False
    began = auth_sessions.started_at(user.session_token)
    return began is not None and (user.password_changed_at <= began
                                  and clock.utcnow() - began <= JUST_PROVEN)


def replace_given_password(user: User, new: str) -> None:
    """The forced change of a given password that :func:`just_proven` vouches for."""
    if not just_proven(user):
        raise PasswordRejected([Words(N_("Enter the password you were given."))])
    if passwords.verify_password(user.password_hash, new):
        raise PasswordRejected([Words(N_(
            "Choose a password different from the one you were given."))])
    set_password(user, new)


def set_password(user: User, new: str) -> None:
    """Set a password the user chose, and end every session they had."""
    problems = passwords.problems(new, email=user.email)
    if problems:
        raise PasswordRejected(problems)
    user.password_hash = hash_for(user, new)
    user.must_change_password = False
    user.password_changed_at = clock.utcnow()
    clear_failures(user)  # a reset link proved the mailbox; the lock would only hinder
    auth_sessions.end_all(user)


def set_generated_password(user: User) -> str:
    """Give ``user`` a new generated password that must be changed at next sign-in."""
    password = passwords.generate()
    user.password_hash = hash_for(user, password)
    user.must_change_password = True
    user.password_changed_at = clock.utcnow()
    auth_sessions.end_all(user)
    return password


def withdraw_password(user: User) -> None:
    """Leave ``user`` with no usable password until a password notification gives them
    one (:func:`give_generated_password`), and end every session they had. Cheap: the
    password is generated and hashed by the worker that sends it, not here."""
    user.password_hash = None
    user.must_change_password = True
    user.password_changed_at = clock.utcnow()
    auth_sessions.end_all(user)


def awaits_generated_password(user: User | None, given: str | None) -> bool:
    """Whether a password notification may give ``user`` a (new) generated password: the
    account has none yet, or only the one this notification gave at an earlier try
    (``given``, :func:`fingerprint` of its hash). A password set meanwhile by other
    means (a reset or activation link, a change) is never overwritten; nor one another
    password notification gave (first contact, then an administrator's reset, both
    waiting): the first sent gives the password, the other is not sent."""
    if user is None or user.disabled or not user.must_change_password:
        return False
    if user.password_hash is None:
        return True
    return given is not None and hmac.compare_digest(fingerprint(user.password_hash), given)


def fingerprint(password_hash: str) -> str:
    """A short digest of a password hash, kept with its notification so that a retry
    knows the password is still the one it gave; it tells nothing of the password."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:32]


def give_generated_password(user: User, password_hash: str) -> None:
    """Store the hash of a generated password the worker is about to send ``user``."""
    user.password_hash = password_hash
    user.must_change_password = True
    user.password_changed_at = clock.utcnow()
    auth_sessions.end_all(user)  # a retry's new password: the last one's sessions end


def start_reset(user: User, *, purpose: str = "reset",
                lifetime: timedelta = RESET_LINK_LIFETIME) -> str:
    """Create a link to set ``user``'s password (a reset, or a first activation)."""
    token, token_digest = tokens.new_token()
    db.session.add(
        PasswordReset(user=user, token_digest=token_digest, purpose=purpose,
                      expires_at=clock.utcnow() + lifetime)
    )
    return token


def find_reset(token: str) -> PasswordReset | None:
    """The reset this token names while it can still be used, else None."""
    reset = db.session.scalar(
        select(PasswordReset).where(PasswordReset.token_digest == tokens.digest(token))
    )
    if (
        reset is None
        or reset.used_at is not None
        or reset.expires_at <= clock.utcnow()
        or reset.user.disabled
    ):
        return None
    return reset


def complete_reset(reset: PasswordReset, new: str) -> None:
    """Set the new password and use up every outstanding link of that user."""
    set_password(reset.user, new)
    use_up_links(reset.user)


def use_up_links(user: User) -> None:
    """Use up every reset or activation link of ``user`` not used yet."""
    now = clock.utcnow()
    for link in db.session.scalars(
        select(PasswordReset).where(
            PasswordReset.user_id == user.id, PasswordReset.used_at.is_(None)
        )
    ):
        link.used_at = now


def create_first_administrator() -> tuple[User, str] | None:
    """On a database with no administrator, make one and return it with its password.

    The account belongs to the first tenant, created as "default" when there is none;
    its password is generated and must be changed at first sign-in.
    """
    if db.session.scalar(select(User.id).where(User.role == Role.ADMIN).limit(1)):
        return None
    tenant = db.session.scalar(select(Tenant).order_by(Tenant.id).limit(1))
    if tenant is None:
        tenant = Tenant(slug="default", name="Default organisation")
        db.session.add(tenant)
    user = User(tenant=tenant, email="admin@localhost", kind=Side.INTERNAL, role=Role.ADMIN,
                failed_signins=0, disabled=False, is_platform_admin=True)
    db.session.add(user)
    return user, set_generated_password(user)
