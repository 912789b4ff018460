"""DKIM for mail the gateway writes itself (notifications, reports), per tenant.

The key is generated on request in the administrator's settings; the DNS record to
publish is shown there. The signing domain (d=) is the From address's, so that DMARC
aligns, and the tenant's key signs only for its own domains, where its record can be
published: mail from an address at any other domain (the site-wide CCM_MAIL_FROM, or
postmaster at the portal's host, when the tenant has set no sender address of its own)
goes unsigned, since a signature whose key no DNS record holds would only fail.
"""

from __future__ import annotations

import base64
from email.parser import BytesHeaderParser
from email.policy import SMTP

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app import clock
from app.models import Tenant

#: headers a reader trusts or replies by; each is named twice ("over-signed", RFC 6376
#: 5.4.2): the second names a header that is not there, so one added after signing (a
#: second From or Subject, a Reply-To aiming the replies elsewhere) breaks the signature
_PROTECTED = [b"from", b"reply-to", b"to", b"cc", b"subject", b"date", b"message-id"]
SIGNED_HEADERS = [*_PROTECTED, *_PROTECTED, b"auto-submitted", b"mime-version",
                  b"content-type", b"content-language"]


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
    """The domain of the From address, lower case; "" without one. The header is read
    whole: a display name makes it long enough to be folded onto a second line."""
    head = raw.partition(b"\r\n\r\n")[0] + b"\r\n\r\n"  # a report may hold a large original
    header = BytesHeaderParser(policy=SMTP).parsebytes(head).get("From")
    found = getattr(header, "addresses", ())
    return found[0].domain.lower() if found else ""


def signing_domain(raw: bytes, tenant: Tenant | None) -> str | None:
    """The domain to sign ``raw`` for: its From domain, when the tenant has a key and the
    domain is one of its own; else None (sent unsigned)."""
    if tenant is None or not tenant.dkim_private_key:
        return None
    domain = from_domain(raw)
    return domain if domain and tenant.is_internal(f"x@{domain}") else None


def sign(raw: bytes, tenant: Tenant | None) -> bytes:
    """``raw`` with a DKIM-Signature aligned with its From domain (:func:`signing_domain`),
    or unchanged."""
    if (domain := signing_domain(raw, tenant)) is None:
        return raw
    signature = dkim.sign(raw, tenant.dkim_selector.encode(), domain.encode(),
                          tenant.dkim_private_key.encode(), include_headers=SIGNED_HEADERS)
    return signature + raw
