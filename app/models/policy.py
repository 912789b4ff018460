"""Administrator policies, evaluated per recipient in the administrator's order."""

from __future__ import annotations

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.tenant import Tenant
from app.models.vocabulary import Fallback, PolicyKind, TlsLevel

POLICY_KINDS = tuple(PolicyKind)
TLS_LEVELS = tuple(TlsLevel)
FALLBACKS = tuple(Fallback)
WHERE = ("subject", "body")


class Policy(db.Model):
    """A route, content or secure-delivery rule of one tenant."""

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"),
                                           index=True)
    position: Mapped[int] = mapped_column(default=0)
    name: Mapped[str] = mapped_column(String(200))
    #: a PolicyKind
    kind: Mapped[str] = mapped_column(String(20))
    enabled: Mapped[bool] = mapped_column(default=True)
    #: address patterns: an address, "*@domain", "internal", "external" or "*";
    #: None means any sender, and external recipients
    from_pattern: Mapped[str | None] = mapped_column(String(320))
    to_pattern: Mapped[str | None] = mapped_column(String(320))
    #: content policies: the words or phrases, and where to look for them
    phrases: Mapped[list] = mapped_column(JSON, default=list)
    where: Mapped[list] = mapped_column(JSON, default=lambda: list(WHERE))
    #: secure-delivery policies: the TlsLevel required and the Fallback without it
    tls: Mapped[str | None] = mapped_column(String(10))
    fallback: Mapped[str | None] = mapped_column(String(10))
    #: overrides the tenant's visibility window for messages this policy sends by CCM
    visibility_days: Mapped[int | None]

    tenant: Mapped[Tenant] = relationship(back_populates="policies")
