"""Receiving a message: the one path for SMTP, ``ccm send`` and the portal's composer.

``receive`` parses, decides a route per recipient, stores the message once with a row
per recipient, and queues every delivery and notification, all in the caller's
transaction. The SMTP ingress commits and only then answers 250.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select

from app.clock import utcnow
from app.delivery import queue
from app.domain import isolation
from app.domain.delivery_events import record
from app.domain.routing import MODES, Content, Decision, decide
from app.extensions import db
from app.mail import addresses, mime
from app.models import Domain, Message, Policy, Recipient, Tenant, User


class Refused(Exception):
    """The message cannot be taken; ``reply`` is the SMTP answer that says why."""

    def __init__(self, reply: str):
        super().__init__(reply)
        self.reply = reply


FOREIGN_SENDER = "550 5.7.1 Sender address is not in a domain this gateway serves"
NO_RECIPIENTS = "554 5.5.1 No valid recipients"


def tenant_of(address: str) -> Tenant | None:
    """The tenant whose internal domain ``address`` is at."""
    domain = addresses.domain_of(address)
    if not domain or not _is_text(domain):
        return None
    return db.session.scalar(select(Tenant).join(Domain).where(Domain.name == domain))


def _is_text(value: str) -> bool:
    """False for what holds bytes that were not UTF-8 on the wire (kept as surrogates)."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


@dataclass
class Plan:
    """The route of every recipient of a message, decided but not yet carried out."""

    parsed: mime.Parsed
    mode: str
    decisions: list[tuple[str, Decision]]
    notes: list[str] = field(default_factory=list)


def plan(tenant: Tenant, raw: bytes, mail_from: str, rcpt_tos: list[str],
         mode: str | None = None) -> Plan:
    """Decide each recipient's route as the gateway would: the admin's policy tester
    shows exactly this."""
    parsed = mime.parse(raw)
    notes = []
    if mode is None and parsed.ccm_mode is not None:
        sender = db.session.scalar(
            select(User).where(User.tenant_id == tenant.id, User.email == mail_from.lower()))
        if parsed.ccm_mode not in MODES:
            notes.append(f"X-CCM-Mode '{parsed.ccm_mode}' ignored: not a CCM mode")
        elif sender is None or not sender.may_send_secure:
            notes.append("X-CCM-Mode ignored: the sender may not Send Secure")
        else:
            mode = parsed.ccm_mode
    policies = list(db.session.scalars(
        select(Policy).where(Policy.tenant_id == tenant.id, Policy.enabled.is_(True))
        .order_by(Policy.position, Policy.id)))
    content = Content(parsed.subject, parsed.body_text)
    recipients = list(dict.fromkeys(r.strip().lower() for r in rcpt_tos if r.strip()))
    decisions = [(address, decide(tenant, policies, mail_from, address, content,
                                  mode or "off")) for address in recipients]
    return Plan(parsed, mode or "off", decisions, notes)


def receive(raw: bytes, mail_from: str, rcpt_tos: list[str], *, client_address: str = "",
            tls: bool = False, mode: str | None = None, tenant: Tenant | None = None,
            via: str = "SMTP") -> Message:
    """Store ``raw`` and route it to each of ``rcpt_tos``; the caller commits.

    ``mode`` is the CCM mode chosen in the portal (composer or reply); mail from a mail
    client asks with the X-CCM-Mode header instead, honoured only when the sender may
    "Send Secure". ``tenant`` is given for mail written in the portal, whose sender may
    be an external recipient replying; ``via`` names the way it came in, for the
    delivery history.

    What is stored is ``raw`` less ``mime.STRIPPED_HEADERS`` (X-CCM-Mode, Bcc,
    Resent-Bcc), removed here, once, after routing has read them and before anything
    is stored: every delivery, page, download and report reads the stored message, so
    none of them can show those headers, and nothing the gateway might sign later
    could carry them.
    """
    tenant = tenant or tenant_of(mail_from)
    if tenant is None:
        raise Refused(FOREIGN_SENDER)
    routing = plan(tenant, raw, mail_from, rcpt_tos, mode)
    if not routing.decisions:
        raise Refused(NO_RECIPIENTS)
    parsed = routing.parsed
    raw = mime.strip_headers(raw)

    received_at = utcnow()
    message = Message(
        public_id=secrets.token_urlsafe(16), tenant=tenant, mail_from=mail_from,
        header_from=parsed.header_from, subject=parsed.subject,
        message_id_header=parsed.message_id, client_address=client_address,
        received_over_tls=tls, size=len(raw), raw=raw, parts=mime.stored_index(raw, parsed),
        received_at=received_at,
        # kept for the tenant's window at least; a longer CCM window extends it
        expires_at=received_at + timedelta(days=tenant.visibility_days),
    )
    db.session.add(message)

    if via == "SMTP":
        how = f"Received by SMTP from {client_address or 'unknown'} " + (
            "over TLS" if tls else "without TLS")
    else:
        how = f"Written in the {via} from {client_address or 'unknown'}"
    for address, decision in routing.decisions:
        recipient = Recipient(
            address=address, kind="internal" if tenant.is_internal(address) else "external",
            route=decision.route, reason=decision.reason, policy=decision.policy,
            tls=decision.tls, fallback=decision.fallback,
        )
        message.recipients.append(recipient)
        record(recipient, "received", how)
        if parsed.defects:
            record(recipient, "received", "Malformed MIME kept as received: "
                   + ", ".join(sorted(set(parsed.defects))))
        for note in routing.notes:
            record(recipient, "policy", note)
        record(recipient, "policy", decision.reason)
        if decision.route == "ccm":
            isolation.hold(recipient)
        else:
            queue.queue_delivery(recipient)
    return message
