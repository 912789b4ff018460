"""Server-side sessions: the cookie carries a random token, the database says if it lives.

Flask's signed cookie cannot be taken back once issued, so every signed-in request is
checked against an :class:`AuthSession` row that sign-out, a password change or an
administrator can end. Idle and absolute time-outs are enforced here too.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import joinedload

from app import clock
from app.config import SESSION_ABSOLUTE_TIMEOUT, SESSION_IDLE_TIMEOUT
from app.domain import tokens
from app.extensions import db
from app.models import AuthSession, User

#: last_seen_at is written at most this often, so reading pages costs no write each time
_TOUCH_INTERVAL = timedelta(minutes=1)


def start(user: User, *, client_address: str | None, user_agent: str | None) -> str:
    """Open a session for ``user`` and return its token (the caller commits)."""
    token, token_digest = tokens.new_token()
    db.session.add(
        AuthSession(
            user=user,
            token_digest=token_digest,
            client_address=client_address,
            user_agent=(user_agent or "")[:300],
        )
    )
    user.session_token = token
    return token


@cache
def _by_token():
    """The session with its user and their tenant (built once: this runs on every page)."""
    return (
        select(AuthSession)
        .options(joinedload(AuthSession.user, innerjoin=True)
                 .joinedload(User.tenant, innerjoin=True))
        .where(AuthSession.token_digest == bindparam("digest"))
    )


def resume(token: str) -> User | None:
    """The user whose live session ``token`` names, or None (expired, ended, disabled).

    Runs on every signed-in request, so it is one query: the session, its user and the
    user's tenant (which the second-factor check and every page's header need) together.
    """
    now = clock.utcnow()
    record = db.session.scalar(_by_token(), {"digest": tokens.digest(token)})
    if record is None or record.ended_at is not None or record.user.disabled:
        return None
    if now - record.created_at > SESSION_ABSOLUTE_TIMEOUT or (
        now - record.last_seen_at > SESSION_IDLE_TIMEOUT
    ):
        record.ended_at = now
        db.session.commit()
        return None
    if now - record.last_seen_at > _TOUCH_INTERVAL:
        record.last_seen_at = now
        db.session.commit()
    record.user.session_token = token
    return record.user


def started_at(token: str | None) -> datetime | None:
    """When the live session ``token`` names began; None for no such live session."""
    if not token:
        return None
    return db.session.scalar(select(AuthSession.created_at).where(
        AuthSession.token_digest == tokens.digest(token), AuthSession.ended_at.is_(None)))


def end(token: str) -> None:
    """End one session (sign-out)."""
    db.session.execute(
        update(AuthSession)
        .where(AuthSession.token_digest == tokens.digest(token), AuthSession.ended_at.is_(None))
        .values(ended_at=clock.utcnow())
    )


def end_all(user: User) -> None:
    """End every session of ``user``: after a password change or reset, or by an admin."""
    db.session.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user.id, AuthSession.ended_at.is_(None))
        .values(ended_at=clock.utcnow())
    )
