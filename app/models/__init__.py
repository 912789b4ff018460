"""The data model. Names follow DESIGN.md section 2."""

from .auth import AuthSession, PasswordReset
from .tenant import ApplicationSettings, Domain, Tenant
from .user import ROLES, User

__all__ = [
    "ROLES",
    "ApplicationSettings",
    "AuthSession",
    "Domain",
    "PasswordReset",
    "Tenant",
    "User",
]
