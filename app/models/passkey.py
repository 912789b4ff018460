"""Passkeys: WebAuthn credentials a person signs in with instead of a password."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, backref, mapped_column, relationship

from app import clock
from app.extensions import db
from app.models.user import User


class Passkey(db.Model):
    """One credential of one account: its public key, never a secret.

    Bound to the account's tenant: every tenant's portal shares one host (one WebAuthn
    relying party), so the tenant is checked here, not by the browser.
    """

    __tablename__ = "passkey"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"),
                                           index=True)
    #: the credential's id as the authenticator made it (at most 1023 bytes)
    credential_id: Mapped[bytes] = mapped_column(LargeBinary(1023), unique=True)
    #: the WebAuthn user handle the credential was made for, the same for all of a user's
    user_handle: Mapped[bytes] = mapped_column(LargeBinary(64))
    #: the COSE public key
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    #: the authenticator's signature counter at the last use; one going back is a clone
    sign_count: Mapped[int] = mapped_column(default=0)
    #: how the browser may reach the authenticator (internal, usb, hybrid...), comma-separated
    transports: Mapped[str] = mapped_column(String(200), default="")
    #: the owner's name for it ("Work laptop")
    name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=clock.utcnow)
    last_used_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(backref=backref(
        "passkeys", order_by="Passkey.created_at", passive_deletes=True))


class SpentChallenge(db.Model):
    """A sign-in challenge that has been answered: each is good for one answer.

    The challenge rides in a signed cookie (app/web/auth/passkeys.py), which alone would
    let a captured cookie and answer be replayed while the cookie lasts, by passkeys whose
    counter stays 0 (many do). The database says no to the second answer instead.
    """

    __tablename__ = "spent_challenge"

    #: SHA-256 of the challenge, hex
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: after this the challenge is refused as too old anyway: the row can go (clean job)
    expires_at: Mapped[datetime] = mapped_column(index=True)
