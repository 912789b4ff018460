"""DKIM for mail the gateway writes itself (notifications, reports), per tenant.

The key is generated on request in the administrator's settings; the DNS record to
publish is shown there. The signing domain is the From address's, so that DMARC aligns.
"""

from __future__ import annotations

import base64
from email.utils import parseaddr

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app import clock
from app.models import Tenant

SIGNED_HEADERS = [b"from", b"to", b"subject", b"date", b"message-id", b"auto-submitted",
                  b"mime-version", b"content-type"]


def generate(tenant: Tenant) -> None:
    """A new 2048-bit RSA key and a dated selector (publish the record before the next mail)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tenant.dkim_private_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()).decode()
    tenant.dkim_selector = f"ccm{clock.utcnow():%Y%m%d}"


def dns_record(tenant: Tenant, domain: str) -> tuple[str, str] | None:
    """(name, TXT value) to publish for ``domain``, or None without a key."""
    if not tenant.dkim_private_key:
        return None
    key = serialization.load_pem_private_key(tenant.dkim_private_key.encode(), password=None)
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return (f"{tenant.dkim_selector}._domainkey.{domain}",
            f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}")


def from_domain(raw: bytes) -> str:
    for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"from:"):
            return parseaddr(line[5:].decode("utf-8", "replace"))[1].rpartition("@")[2]
    return ""


def sign(raw: bytes, tenant: Tenant | None) -> bytes:
    """``raw`` with a DKIM-Signature for its From domain, when the tenant has a key."""
    if tenant is None or not tenant.dkim_private_key or not (domain := from_domain(raw)):
        return raw
    signature = dkim.sign(raw, tenant.dkim_selector.encode(), domain.encode(),
                          tenant.dkim_private_key.encode(), include_headers=SIGNED_HEADERS)
    return signature + raw
