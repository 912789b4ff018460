"""DKIM for mail the gateway writes itself (notifications, reports), per tenant.

A key is generated on request in the administrator's settings and *waits*: the DNS record
to publish is shown there, and the key signs nothing until CCM finds that record in DNS
("Check DNS now", or the worker's hourly ``prove`` job), since a signature whose key no
record holds fails at every receiver. The key it replaces signs until then. Each key has
a selector of its own, dated to the second, so a new key never overwrites the record of
the one still in use. The signing domain (d=) is the From address's, so that DMARC
aligns, and the tenant's key signs only for its own domains, where its record can be
published: mail from an address at any other domain (the site-wide CCM_MAIL_FROM, or
postmaster at the portal's host, when the tenant has set no sender address of its own)
goes unsigned, since a signature whose key no DNS record holds would only fail.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import SMTP

import dkim
import dns.exception
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import update

from app import clock
from app.delivery import destinations
from app.extensions import db
from app.models import Tenant
from app.words import N_, Words

#: headers a reader trusts or replies by; each is named twice ("over-signed", RFC 6376
#: 5.4.2): the second names a header that is not there, so one added after signing (a
#: second From or Subject, a Reply-To aiming the replies elsewhere) breaks the signature
_PROTECTED = [b"from", b"reply-to", b"to", b"cc", b"subject", b"date", b"message-id"]
SIGNED_HEADERS = [*_PROTECTED, *_PROTECTED, b"auto-submitted", b"mime-version",
                  b"content-type", b"content-language"]


def generate(tenant: Tenant) -> None:
    """A new 2048-bit RSA key with a selector of its own, waiting for its DNS record
    (it replaces a key that was waiting, never the one in use)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tenant.dkim_next_private_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()).decode()
    now = clock.utcnow()
    selector = f"ccm{now:%Y%m%d%H%M%S}"
    tenant.dkim_next_selector = selector if selector != tenant.dkim_selector else f"{selector}b"
    tenant.dkim_next_created_at, tenant.dkim_next_checked_at = now, None


def activate(tenant: Tenant, domain: str) -> bool:
    """The waiting key signs for ``domain`` from now on; the one it replaces is
    forgotten. One UPDATE that takes only the key that was checked: False, and nothing
    changed, when another one was generated meanwhile (its record is still to be seen)."""
    checked = tenant.dkim_next_selector
    changed = db.session.execute(
        update(Tenant).where(Tenant.id == tenant.id, Tenant.dkim_next_selector == checked)
        .values(dkim_selector=Tenant.dkim_next_selector,
                dkim_private_key=Tenant.dkim_next_private_key, dkim_domain=domain,
                dkim_next_selector=None, dkim_next_private_key=None,
                dkim_next_created_at=None, dkim_next_checked_at=None)
        .execution_options(synchronize_session=False)).rowcount == 1
    db.session.refresh(tenant)
    return changed


def follow_sender(tenant: Tenant, domain: str) -> None:
    """The notification sender moved to ``domain``: a key checked at another domain goes
    back to waiting, for its record there (unless a newer key already waits), so it never
    signs for a domain whose DNS was not seen to hold it."""
    if not tenant.dkim_private_key or tenant.dkim_domain in (None, domain):
        return
    if not tenant.dkim_next_private_key:
        tenant.dkim_next_selector, tenant.dkim_next_private_key = \
            tenant.dkim_selector, tenant.dkim_private_key
        tenant.dkim_next_created_at, tenant.dkim_next_checked_at = clock.utcnow(), None
    tenant.dkim_selector = tenant.dkim_private_key = tenant.dkim_domain = None


def dns_record(tenant: Tenant, domain: str, *, waiting: bool = False) -> tuple[str, str] | None:
    """(name, TXT value) to publish for ``domain``: of the key in use, or with
    ``waiting`` of the key waiting for its record; None without such a key."""
    pem = tenant.dkim_next_private_key if waiting else tenant.dkim_private_key
    if not pem:
        return None
    selector = tenant.dkim_next_selector if waiting else tenant.dkim_selector
    return f"{selector}._domainkey.{domain}", f"v=DKIM1; k=rsa; p={_public_key(pem)}"


def _public_key(pem: str) -> str:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    return base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()


@dataclass(frozen=True)
class Outcome:
    published: bool
    message: Words


def check_published(tenant: Tenant, domain: str, dns_servers: str, *,
                    timeout: float = destinations.TXT_TIMEOUT) -> Outcome:
    """Look for the waiting key's record of ``domain`` (the sender address's) in DNS,
    and make it the signing key when it is there, as published. Any DNS failure changes
    nothing and says so; the caller audits and commits."""
    if (wanted := dns_record(tenant, domain, waiting=True)) is None:
        return Outcome(False, Words(N_("No key is waiting for its DNS record.")))
    name = wanted[0]
    try:
        texts = destinations.txt_records(name, dns_servers, timeout=timeout)
    except dns.exception.DNSException as error:
        return Outcome(False, destinations.lookup_failed(name, error))
    finally:
        tenant.dkim_next_checked_at = clock.utcnow()  # after the lookup: no lock held
    keys = [_tags(t).get("p", "") for t in texts]
    if _public_key(tenant.dkim_next_private_key) not in keys:
        if any(keys):
            return Outcome(False, Words(N_(
                "The record at %(name)s is not published yet (a different key is there). "
                "DNS changes can take a while to be seen."), name=name))
        return Outcome(False, Words(N_("The record at %(name)s is not published yet. DNS "
                                       "changes can take a while to be seen."), name=name))
    selector = tenant.dkim_next_selector
    if not activate(tenant, domain):
        return Outcome(False, Words(N_("A newer key was generated meanwhile: publish its "
                                       "record, then check again.")))
    return Outcome(True, Words(N_("The record at %(name)s is published: notifications are "
                                  "signed with selector %(selector)s from now on."),
                               name=name, selector=selector))


def _tags(record: str) -> dict[str, str]:
    """A DKIM key record's tags (RFC 6376 3.6.1), blanks inside values removed (long
    keys are often written in several quoted strings with spaces between)."""
    tags = {}
    for part in record.split(";"):
        name, _, value = part.partition("=")
        tags[name.strip()] = "".join(value.split())
    return tags


def from_domain(raw: bytes) -> str:
    """The domain of the From address, lower case; "" without one. The header is read
    whole: a display name makes it long enough to be folded onto a second line."""
    head = raw.partition(b"\r\n\r\n")[0] + b"\r\n\r\n"  # a report may hold a large original
    header = BytesHeaderParser(policy=SMTP).parsebytes(head).get("From")
    found = getattr(header, "addresses", ())
    return found[0].domain.lower() if found else ""


def signing_domain(raw: bytes, tenant: Tenant | None) -> str | None:
    """The domain to sign ``raw`` for: its From domain, when the tenant has a key seen in
    that domain's DNS (a key from before that was kept: any domain of its own); else
    None (sent unsigned)."""
    if tenant is None or not tenant.dkim_private_key:
        return None
    domain = from_domain(raw)
    if tenant.dkim_domain is not None:
        return domain if domain == tenant.dkim_domain else None
    return domain if domain and tenant.is_internal(f"x@{domain}") else None


def sign(raw: bytes, tenant: Tenant | None) -> bytes:
    """``raw`` with a DKIM-Signature aligned with its From domain (:func:`signing_domain`),
    or unchanged."""
    if (domain := signing_domain(raw, tenant)) is None:
        return raw
    signature = dkim.sign(raw, tenant.dkim_selector.encode(), domain.encode(),
                          tenant.dkim_private_key.encode(), include_headers=SIGNED_HEADERS)
    return signature + raw
