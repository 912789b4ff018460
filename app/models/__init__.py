"""The data model. Names are the product's words (docs/architecture.md)."""

from app.models.access import AccessEvent, RecoveryCode
from app.models.audit import AuditEvent
from app.models.auth import AuthSession, PasswordReset
from app.models.draft import Draft
from app.models.job import Job
from app.models.message import (
    DELIVERED_TO_CCM,
    DELIVERED_VIA_MX,
    ROUTES,
    WRITTEN_TO_OUTBOX,
    DeliveryEvent,
    Message,
    Recipient,
)
from app.models.passkey import Passkey, SpentChallenge
from app.models.policy import FALLBACKS, POLICY_KINDS, TLS_LEVELS, WHERE, Policy
from app.models.queue import OutboundItem
from app.models.template import NotificationTemplate
from app.models.tenant import ApplicationSettings, Domain, Tenant
from app.models.user import ROLES, User
from app.models.vocabulary import (
    Fallback,
    Mode,
    PolicyKind,
    QueueState,
    RecipientState,
    Role,
    Route,
    Side,
    TlsLevel,
)

__all__ = [
    "DELIVERED_TO_CCM",
    "DELIVERED_VIA_MX",
    "FALLBACKS",
    "POLICY_KINDS",
    "ROLES",
    "ROUTES",
    "TLS_LEVELS",
    "WHERE",
    "WRITTEN_TO_OUTBOX",
    "AccessEvent",
    "ApplicationSettings",
    "AuditEvent",
    "AuthSession",
    "DeliveryEvent",
    "Domain",
    "Draft",
    "Fallback",
    "Job",
    "Message",
    "Mode",
    "NotificationTemplate",
    "OutboundItem",
    "Passkey",
    "PasswordReset",
    "Policy",
    "PolicyKind",
    "QueueState",
    "Recipient",
    "RecipientState",
    "RecoveryCode",
    "Role",
    "Route",
    "Side",
    "SpentChallenge",
    "Tenant",
    "TlsLevel",
    "User",
]
