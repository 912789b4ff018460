"""Absolute portal links for generated mail, always built from CCM_BASE_URL.

Never from the request's Host header: a forged Host would otherwise put an attacker's
address into a reset link (password-reset poisoning). These also work outside any
request, in the SMTP ingress and the worker.
"""

from app.config import settings
from app.models import Tenant


def absolute(path: str) -> str:
    return settings().base_url.rstrip("/") + path


def sign_in(tenant: Tenant) -> str:
    return absolute(f"/t/{tenant.slug}/sign-in")


def set_password(token: str) -> str:
    return absolute(f"/password/reset/{token}")
