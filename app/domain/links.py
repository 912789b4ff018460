"""Absolute portal links for generated mail, always built from CCM_BASE_URL.

Never from the request's Host header: a forged Host would otherwise put an attacker's
address into a reset link (password-reset poisoning). These also work outside any
request, in the SMTP ingress and the worker.
"""

from urllib.parse import quote

from app.config import settings
from app.models import Recipient, Tenant


def absolute(path: str) -> str:
    return settings().base_url.rstrip("/") + path


def sign_in(tenant: Tenant) -> str:
    return absolute(f"/t/{tenant.slug}/sign-in")


def message(recipient: Recipient) -> str:
    """The link to ``recipient``'s copy of a message, at its tenant: signed out, it leads
    through that tenant's sign-in page to the message (auth.message_link)."""
    return absolute(message_path(recipient))


def message_path(recipient: Recipient) -> str:
    held = recipient.message
    return (f"/t/{quote(held.tenant.slug, safe='')}/messages/"
            f"{quote(held.public_id, safe='')}")


def set_password(token: str, then: str | None = None) -> str:
    """A reset or activation link; ``then``, a path on the portal, is where the browser
    goes once the password is chosen (the message an activation link is about)."""
    return absolute(f"/password/reset/{token}" + (f"?next={quote(then, safe='/')}" if then else ""))
