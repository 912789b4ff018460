"""The data model. Names follow DESIGN.md section 2."""

from .access import AccessEvent, RecoveryCode
from .audit import AuditEvent
from .auth import AuthSession, PasswordReset
from .draft import Draft
from .job import Job
from .message import ROUTES, DeliveryEvent, Message, Recipient
from .policy import FALLBACKS, POLICY_KINDS, TLS_LEVELS, WHERE, Policy
from .queue import OutboundItem
from .template import NotificationTemplate
from .tenant import ApplicationSettings, Domain, Tenant
from .user import ROLES, User

__all__ = [
    "FALLBACKS",
    "POLICY_KINDS",
    "ROLES",
    "ROUTES",
    "TLS_LEVELS",
    "WHERE",
    "AccessEvent",
    "ApplicationSettings",
    "AuditEvent",
    "AuthSession",
    "DeliveryEvent",
    "Domain",
    "Draft",
    "Job",
    "Message",
    "NotificationTemplate",
    "OutboundItem",
    "PasswordReset",
    "Policy",
    "Recipient",
    "RecoveryCode",
    "Tenant",
    "User",
]
