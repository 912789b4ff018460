"""Proof that a tenant holds a domain: a DNS TXT record, as Microsoft 365 and Google
Workspace ask for.

A domain a tenant administrator adds in Settings is *pending*: it is not internal, not
usable as the notification sender's domain and claims nothing against other tenants,
until the administrator publishes ``ccm-verification=<token>`` at
``_ccm-challenge.<domain>`` and asks for a check. The record sits on its own name, not
at the domain's apex, so the apex TXT set that every SPF check fetches stays small, and
so the owner may delegate just that name with a CNAME (as ACME DNS-01 allows). The first
tenant to prove a domain holds it; the platform administrator's domains (a new tenant,
``ccm config import``) count as proven: the operator is trusted.

The worker also looks, every hour for a week after a domain was added (as Google
Workspace does), so the administrator who published the record need not come back to
press "Check now". After that week a pending domain waits for "Check now": it claims
nothing, so it is left in the list rather than removed behind the administrator's back.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

import dns.exception
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import clock
from app.delivery import destinations, dkim_signing, mail_templates
from app.domain import audit
from app.extensions import db
from app.models import Domain, Tenant
from app.words import N_, Words

#: the name under the domain where the proof is published
CHALLENGE_LABEL = "_ccm-challenge"
#: what the TXT record starts with; the token follows
PREFIX = "ccm-verification="
TIMEOUT = destinations.TXT_TIMEOUT
#: how long after a domain was added the worker looks for its proof, and how often
AUTO_CHECK, AUTO_CHECK_EVERY = timedelta(days=7), timedelta(hours=1)
#: the most domains one run of the worker looks up (the least recently checked first)
AUTO_CHECK_BATCH = 100

log = logging.getLogger(__name__)


def record_name(domain: Domain) -> str:
    """Where the TXT record goes."""
    return f"{CHALLENGE_LABEL}.{domain.name}"


def record_value(domain: Domain) -> str:
    """What the TXT record says."""
    return f"{PREFIX}{domain.proof_token}"


def pending(name: str) -> Domain:
    """A new domain a tenant administrator added: waiting for its proof."""
    return Domain(name=name, verified=False, proof_token=secrets.token_urlsafe(24),
                  added_at=clock.utcnow())


def vouch(domain: Domain) -> None:
    """Verify ``domain`` on the operator's word (platform administrator, config import)."""
    if not domain.verified:
        domain.verified, domain.verified_at, domain.proof_token = True, clock.utcnow(), None


def verified_elsewhere(names: list[str], tenant: Tenant) -> list[str]:
    """Which of ``names`` another tenant has proven (or the operator gave it)."""
    return list(db.session.scalars(select(Domain.name).where(
        Domain.name.in_(names), Domain.verified, Domain.tenant_id != tenant.id)))


@dataclass(frozen=True)
class Outcome:
    proven: bool
    message: Words


def check(domain: Domain, dns_servers: str, *, timeout: float = TIMEOUT) -> Outcome:
    """Look for the proof of ``domain`` in DNS (``dns_servers``: CCM_DNS_SERVERS, empty
    for the system's resolver) and mark it verified when found. Any DNS failure changes
    nothing and says what went wrong; the caller records the outcome and commits."""
    if domain.verified:
        return Outcome(True, Words(N_("%(domain)s is already verified."), domain=domain.name))
    if owner := verified_elsewhere([domain.name], domain.tenant):
        return Outcome(False, Words(N_("%(domain)s has been verified by another organisation. "
                                       "Ask the platform administrator if it is yours."),
                                    domain=owner[0]))
    name = record_name(domain)
    try:
        texts = set(destinations.txt_records(name, dns_servers, timeout=timeout))
    except dns.exception.DNSException as error:
        return Outcome(False, destinations.lookup_failed(name, error))
    finally:
        # written after the lookup: a write pending during it would hold SQLite's one
        # write lock (every writer of the gateway) while DNS takes its time
        domain.checked_at = clock.utcnow()
    if record_value(domain) not in texts:
        found = sorted(t for t in texts if t.startswith(PREFIX))
        if found:
            return Outcome(False, Words(N_(
                "No TXT record %(value)s at %(name)s yet (found %(found)s, not this token). "
                "DNS changes can take a while to be seen."),
                value=record_value(domain), name=name, found=", ".join(found)))
        return Outcome(False, Words(N_("No TXT record %(value)s at %(name)s yet. DNS changes "
                                       "can take a while to be seen."),
                                    value=record_value(domain), name=name))
    try:
        # Another tenant may prove it at the same moment: the database's one verified
        # row per name decides, and the loser's row stays as it was.
        with db.session.begin_nested():
            domain.verified, domain.verified_at, domain.proof_token = \
                True, clock.utcnow(), None
    except IntegrityError:
        return Outcome(False, Words(N_("%(domain)s has just been verified by another "
                                       "organisation."), domain=domain.name))
    return Outcome(True, Words(N_("%(domain)s is verified."), domain=domain.name))


def check_pending(dns_servers: str, *, timeout: float = TIMEOUT) -> int:
    """The worker's run: look again for what administrators were asked to publish (the
    proof of each domain added within :data:`AUTO_CHECK` and not checked within
    :data:`AUTO_CHECK_EVERY`, and each waiting DKIM key's record), audit each one found,
    and commit each on its own (no lock held across a slow DNS answer); how many found."""
    return _check_pending_domains(dns_servers, timeout) + \
        _check_waiting_keys(dns_servers, timeout)


def _due(rows, created, checked, waiting):
    """The rows of ``rows`` (Domain or Tenant) ``waiting`` whose look-up is due: made within
    :data:`AUTO_CHECK` and not looked for within :data:`AUTO_CHECK_EVERY`, the least
    recently looked for first, at most :data:`AUTO_CHECK_BATCH`."""
    now = clock.utcnow()
    return list(db.session.scalars(
        select(rows).where(waiting, created >= now - AUTO_CHECK,
                           checked.is_(None) | (checked <= now - AUTO_CHECK_EVERY))
        .order_by(checked.is_not(None), checked, rows.id).limit(AUTO_CHECK_BATCH)))


def _check_pending_domains(dns_servers: str, timeout: float) -> int:
    proven = 0
    for domain in _due(Domain, Domain.added_at, Domain.checked_at, ~Domain.verified):
        outcome = check(domain, dns_servers, timeout=timeout)
        if outcome.proven:
            audit.record("domain verified", f"{domain.name}: {outcome.message} (checked by "
                         "the worker)", tenant=domain.tenant, actor="ccm worker")
            proven += 1
            log.info("domain %s of tenant %s verified by the worker", domain.name,
                     domain.tenant.slug)
        db.session.commit()
    return proven


def _check_waiting_keys(dns_servers: str, timeout: float) -> int:
    published = 0
    for tenant in _due(Tenant, Tenant.dkim_next_created_at, Tenant.dkim_next_checked_at,
                       Tenant.dkim_next_selector.is_not(None)):
        domain = mail_templates.sender_domain(tenant)
        if not tenant.is_internal(f"x@{domain}"):
            continue  # it could sign nothing: Settings says to set a sender address
        outcome = dkim_signing.check_published(tenant, domain, dns_servers, timeout=timeout)
        if outcome.published:
            audit.record("DKIM key published", f"{outcome.message} (checked by the worker)",
                         tenant=tenant, actor="ccm worker")
            published += 1
        db.session.commit()
    return published
