"""Portal accounts. Credentials are per tenant: one address at two tenants is two users."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import clock
from app.extensions import db
from app.models.tenant import ApplicationSettings, Tenant
from app.models.vocabulary import Role, Side

ROLES = tuple(Role)


class User(db.Model):
    """An internal user, an administrator or an external recipient of one tenant."""

    __tablename__ = "users"  # "user" is a reserved word in PostgreSQL
    __table_args__ = (UniqueConstraint("tenant_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320), index=True)
    #: a Side: which side of the tenant's boundary the address is on
    kind: Mapped[str] = mapped_column(String(16))
    #: a Role
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    must_change_password: Mapped[bool] = mapped_column(default=True)
    failed_signins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    disabled: Mapped[bool] = mapped_column(default=False)
    #: the second factor (RFC 6238): base32 secret, and the last time step used, so
    #: that a code cannot be used twice
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_last_step: Mapped[int | None]
    totp_enrolled_at: Mapped[datetime | None]
    #: manages every tenant (the operator of this installation), besides its own
    is_platform_admin: Mapped[bool] = mapped_column(default=False)
    application_settings_id: Mapped[int | None] = mapped_column(
        ForeignKey("application_settings.id", ondelete="SET NULL")
    )
    #: per-user overrides of the profile: True allow, False deny, None as the profile says
    portal_ccm_override: Mapped[bool | None]
    send_secure_override: Mapped[bool | None]
    #: the portal language this person chose (a code of app/web/languages.py), None until then
    language: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=clock.utcnow)
    last_signin_at: Mapped[datetime | None]
    password_changed_at: Mapped[datetime | None]

    tenant: Mapped[Tenant] = relationship()
    application_settings: Mapped[ApplicationSettings | None] = relationship()

    # Flask-Login: the identifier kept in the cookie is the server-side session token,
    # set by whoever loads or signs in this user (see app/domain/auth_sessions.py).
    session_token = None  # str once loaded; not a column
    is_anonymous = False

    @property
    def is_authenticated(self) -> bool:
        return self.session_token is not None

    @property
    def is_active(self) -> bool:
        return not self.disabled

    def get_id(self) -> str | None:
        return self.session_token

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def profile(self) -> ApplicationSettings | None:
        """The user's application settings, or the tenant's default profile."""
        return self.application_settings or self.tenant.default_settings

    @property
    def may_use_portal_ccm(self) -> bool:
        return self._permission("portal_ccm")

    @property
    def may_send_secure(self) -> bool:
        return self._permission("send_secure")

    def _permission(self, name: str) -> bool:
        if self.kind != Side.INTERNAL:
            return False
        override = getattr(self, f"{name}_override")
        if override is not None:
            return override
        return bool(self.profile and getattr(self.profile, name))
