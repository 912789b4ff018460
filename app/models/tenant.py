"""Tenants, their internal domains and their application settings profiles."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from app import clock
from app.extensions import db
from app.mail import addresses

if TYPE_CHECKING:
    from app.models.policy import Policy


class Tenant(db.Model):
    """A customer organisation."""

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    visibility_days: Mapped[int] = mapped_column(default=30)
    internal_relay: Mapped[str | None] = mapped_column(String(255))
    #: the relay was set by the platform administrator or ``ccm config import``, so the
    #: gateway connects wherever it points; one a tenant administrator set is held to
    #: what they may aim at, when saved and at each connection (app/delivery/transport.py)
    internal_relay_trusted: Mapped[bool] = mapped_column(default=False)
    #: how a recipient first gets in: "password" (emailed) or "activation_link"
    first_contact: Mapped[str] = mapped_column(String(20), default="password")
    #: how long an activation link stays usable
    activation_hours: Mapped[int] = mapped_column(default=72)
    #: warn recipients who have not opened a message this many days before it expires;
    #: 0 turns the warning off
    expiry_warning_days: Mapped[int] = mapped_column(default=3)
    #: second factor for external recipients and for internal users: off, optional, required
    second_factor_external: Mapped[str] = mapped_column(String(10), default="optional")
    second_factor_internal: Mapped[str] = mapped_column(String(10), default="optional")
    #: passkeys for external recipients and for internal users: off, allowed, required
    passkeys_external: Mapped[str] = mapped_column(String(10), default="allowed")
    passkeys_internal: Mapped[str] = mapped_column(String(10), default="allowed")
    #: with first contact by activation link: the link leads to creating a passkey, and
    #: the account has no password at all
    passkey_first_contact: Mapped[bool] = mapped_column(default=False)
    #: the notification sender address (Settings): From of generated mail, shown with the
    #: portal name, at one of the tenant's domains; CCM_MAIL_FROM when empty
    mail_from: Mapped[str | None] = mapped_column(String(320))
    #: DKIM signing of generated mail: selector and private key (PEM), generated on request
    dkim_selector: Mapped[str | None] = mapped_column(String(63))
    dkim_private_key: Mapped[str | None] = deferred(mapped_column(Text))
    #: a new key waiting for its DNS record: it signs nothing until CCM sees the record
    #: published (app/delivery/dkim_signing.py), so no receiver meets a signature it
    #: cannot check; the key above signs meanwhile
    dkim_next_selector: Mapped[str | None] = mapped_column(String(63))
    dkim_next_private_key: Mapped[str | None] = deferred(mapped_column(Text))
    #: when the waiting key was made and last looked for (the worker looks hourly, a week)
    dkim_next_created_at: Mapped[datetime | None] = mapped_column()
    dkim_next_checked_at: Mapped[datetime | None] = mapped_column()
    #: the domain whose DNS was seen to hold the key in use: it signs for that domain only
    #: (None for a key from before this was kept: it signs for any of the tenant's domains)
    dkim_domain: Mapped[str | None] = mapped_column(String(253))
    #: shown on the sign-in page and in notifications; the tenant name when empty
    portal_name: Mapped[str | None] = mapped_column(String(200))
    logo: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    logo_type: Mapped[str | None] = mapped_column(String(40))
    #: the IANA time zone its pages show times in (app/web/filters.py); UTC by default
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    #: the language of notifications to someone who has not chosen one in the portal
    default_language: Mapped[str] = mapped_column(String(16), default="en")
    created_at: Mapped[datetime] = mapped_column(default=clock.utcnow)

    domains: Mapped[list[Domain]] = relationship(
        back_populates="tenant", cascade="all, delete-orphan", order_by="Domain.name"
    )
    application_settings: Mapped[list[ApplicationSettings]] = relationship(
        back_populates="tenant", cascade="all, delete-orphan", order_by="ApplicationSettings.name"
    )
    policies: Mapped[list[Policy]] = relationship(
        back_populates="tenant", cascade="all, delete-orphan", order_by="Policy.position"
    )

    @property
    def display_name(self) -> str:
        return self.portal_name or self.name

    @property
    def default_settings(self) -> ApplicationSettings | None:
        return next((s for s in self.application_settings if s.is_default), None)

    @property
    def verified_domains(self) -> list[str]:
        """The names of its domains that count: proven, or given by the operator."""
        return [d.name for d in self.domains if d.verified]

    def is_internal(self, address: str) -> bool:
        """True when ``address`` is at one of this tenant's verified domains."""
        return addresses.is_internal(address, self.verified_domains)


class Domain(db.Model):
    """An internal domain. Verified, it belongs to one tenant only; pending (a tenant
    administrator added it and has not proven it in DNS, app/domain/domain_proof.py) it
    claims nothing, so several tenants may wait on the same name."""

    __table_args__ = (Index("uq_domain_verified_name", "name", unique=True,
                            sqlite_where=text("verified"), postgresql_where=text("verified")),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(253), index=True)
    #: True unless a tenant administrator added it and has not yet proven it: the
    #: platform administrator's domains (new tenant, ``ccm config import``) are trusted
    verified: Mapped[bool] = mapped_column(default=True)
    #: the token of the TXT record that proves a pending domain
    proof_token: Mapped[str | None] = mapped_column(String(64))
    verified_at: Mapped[datetime | None] = mapped_column()
    #: when a tenant administrator added it (pending domains only): the worker looks for
    #: its proof for a while after (app/domain/domain_proof.py, AUTO_CHECK)
    added_at: Mapped[datetime | None] = mapped_column()
    #: the last time its proof was looked for, by "Check now" or by the worker
    checked_at: Mapped[datetime | None] = mapped_column()

    def __init__(self, **values):
        # set now, not at INSERT: a new tenant's domains are internal before the flush
        values.setdefault("verified", True)
        super().__init__(**values)

    tenant: Mapped[Tenant] = relationship(back_populates="domains")


class ApplicationSettings(db.Model):
    """A named permission profile assigned to users."""

    __tablename__ = "application_settings"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    is_default: Mapped[bool] = mapped_column(default=False)
    #: may choose a CCM mode when composing in the portal
    portal_ccm: Mapped[bool] = mapped_column(default=False)
    #: may ask for CCM from a mail client with X-CCM-Mode ("Send Secure")
    send_secure: Mapped[bool] = mapped_column(default=False)

    tenant: Mapped[Tenant] = relationship(back_populates="application_settings")
