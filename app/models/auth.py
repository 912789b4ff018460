"""Server-side records behind sign-in: sessions and password-reset links.

Only a SHA-256 digest of each token is stored, so a copy of the database does not
hand out live sessions or reset links.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import clock
from app.extensions import db
from app.models.user import User


class AuthSession(db.Model):
    """One signed-in browser. Ending it (sign-out, password change) revokes the cookie."""

    __tablename__ = "auth_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=clock.utcnow)
    ended_at: Mapped[datetime | None]
    client_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(300))

    user: Mapped[User] = relationship()


class PasswordReset(db.Model):
    """A single-use, time-limited link to set a password: a reset, or a first activation."""

    __tablename__ = "password_reset"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    #: "reset" (forgotten password) or "activation" (first contact, by link)
    purpose: Mapped[str] = mapped_column(String(12), default="reset")

    user: Mapped[User] = relationship()
