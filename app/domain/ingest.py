"""Receiving a message: the one path for SMTP, ``ccm send`` and the portal's composer.

``receive`` parses, decides a route per recipient, stores the message once with a row
per recipient, and queues every delivery and notification, all in the caller's
transaction. The SMTP ingress commits and only then answers 250.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from email.errors import InvalidHeaderDefect

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app import clock, database, metrics
from app.config import settings
from app.delivery import queue
from app.domain import isolation
from app.domain.delivery_events import record
from app.domain.routing import MODES, Content, Decision, decide
from app.extensions import db
from app.mail import addresses, mime, trace
from app.models import Domain, Message, Policy, Recipient, Tenant, User
from app.words import N_, Words

log = logging.getLogger(__name__)


class Refused(Exception):
    """The message cannot be taken; ``reply`` is the SMTP answer that says why.

    ``receive`` raises it before it adds anything to the session, so a group commit
    answers it without undoing the other messages of its group (app/smtp/group_commit.py).
    """

    def __init__(self, reply: str):
        super().__init__(reply)
        self.reply = reply


FOREIGN_SENDER = "550 5.7.1 Sender address is not in a domain this gateway serves"
NO_RECIPIENTS = "554 5.5.1 No valid recipients"
#: RFC 5321 section 6.3 and RFC 3463: a message that has been round a loop
TOO_MANY_HOPS = "554 5.4.6 Too many hops"
#: a bounce or automatic reply whose tenant cannot be told from its From: header
NO_HEADER_SENDER = ("550 5.7.1 A message from the null sender must name one sender "
                    "address in its From: header")


def _sender_tenant(raw: bytes, mail_from: str) -> Tenant:
    """The tenant the message is from: by its envelope sender, or for the null sender
    by its From: header; Refused when no tenant serves it."""
    sender = mail_from or header_sender(raw)
    if sender is None:
        raise Refused(NO_HEADER_SENDER)
    tenant = tenant_of(sender)
    if tenant is None:
        raise Refused(FOREIGN_SENDER)
    return tenant


def _queue_id() -> str:
    """The id of the message in its trace line: random, unlike the row id (which would
    tell how much mail the gateway takes) or the public id (which is in portal URLs)."""
    return secrets.token_hex(6).upper()


def tenant_of(address: str) -> Tenant | None:
    """The tenant whose internal domain ``address`` is at."""
    domain = addresses.domain_of(address)
    if not domain or not _is_text(domain):
        return None
    return database.kept_until_changed(("tenant", domain), lambda: db.session.scalar(
        select(Tenant).join(Domain).where(Domain.name == domain, Domain.verified)
        .options(selectinload(Tenant.domains))))


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
    #: the message as it will be stored: less mime.STRIPPED_HEADERS
    raw: bytes = b""


def plan(tenant: Tenant, raw: bytes, mail_from: str, rcpt_tos: list[str],
         mode: str | None = None) -> Plan:
    """Decide each recipient's route as the gateway would: the admin's policy tester
    shows exactly this.

    The sender that policies and X-CCM-Mode go by is ``mail_from``, or for the null
    sender (a bounce, an out-of-office reply) the address in the From: header. The
    message is read without the headers the gateway strips (X-CCM-Mode is read from
    the lines that stripping removes, whatever their spelling), so what routing reads
    is what is stored.
    """
    sender = mail_from or header_sender(raw) or ""
    asked = mime.ccm_modes(raw)
    raw = mime.strip_headers(raw)
    parsed = mime.parse(raw)
    notes = []
    if mode is None and asked:
        mode = _asked_mode(tenant, sender, asked, notes)
    policies = database.kept_until_changed(("policies", tenant.id), lambda: list(
        db.session.scalars(select(Policy).where(Policy.tenant_id == tenant.id,
                                                Policy.enabled.is_(True))
                           .order_by(Policy.position, Policy.id))))
    content = Content(parsed.subject, parsed.body_text)
    decisions = [(address, decide(tenant, policies, sender, address, content,
                                  mode or "off")) for address in recipients_of(rcpt_tos)]
    return Plan(parsed, mode or "off", decisions, notes, raw)


def _asked_mode(tenant: Tenant, sender: str, asked: list[str],
                notes: list[str]) -> str | None:
    """The CCM mode the X-CCM-Mode headers ask for, if the sender may ask; else None,
    with a note saying why."""
    if len(set(asked)) > 1:
        # which one a mail client meant cannot be known: none of them is taken
        notes.append(Words(N_("X-CCM-Mode ignored: the message asks for more than one mode "
                              "(%(modes)s)"),
                           modes=", ".join(f"'{value}'" for value in dict.fromkeys(asked))))
        return None
    if asked[0] not in MODES:
        notes.append(Words(N_("X-CCM-Mode '%(mode)s' ignored: not a CCM mode"), mode=asked[0]))
        return None
    user = db.session.scalar(
        select(User).where(User.tenant_id == tenant.id, User.email == sender.lower()))
    if user is None or not user.may_send_secure:
        notes.append(Words(N_("X-CCM-Mode ignored: the sender may not Send Secure")))
        return None
    return asked[0]


def recipients_of(rcpt_tos: list[str]) -> list[str]:
    """Each recipient once, compared without regard to case; each kept as it was first
    written but for its domain, lower-cased: a local part's case may matter to the
    server that receives it (RFC 5321 section 2.4), a domain's never does."""
    found: dict[str, str] = {}
    for written in rcpt_tos:
        local, at, domain = written.strip().rpartition("@")
        address = f"{local}{at}{domain.lower()}"
        if address:
            found.setdefault(address.lower(), address)
    return list(found.values())


def header_sender(raw: bytes) -> str | None:
    """The one address the From: header names; None when it names none or several, or
    cannot be read without guessing (the parser's repairs of a broken header, such as
    ``<alice@acme.test`` or ``alice@@acme.test``, are guesses), or is not text."""
    headers = mime.parse_message(mime.header_block(raw) + b"\r\n\r\n")
    try:
        values = headers.get_all("From", [])
        named = [address.addr_spec for value in values for address in value.addresses]
        broken = any(isinstance(defect, InvalidHeaderDefect)
                     for value in values for defect in value.defects)
    except mime.DECODE_ERRORS:
        return None
    if broken or len(named) != 1 or not _is_text(named[0]):
        return None
    local, _, domain = named[0].rpartition("@")
    return named[0] if local and domain.strip() else None


def receive(raw: bytes, mail_from: str, rcpt_tos: list[str], *, client_address: str = "",
            tls: bool = False, mode: str | None = None, tenant: Tenant | None = None,
            via: str = "SMTP", smtp: trace.SmtpClient | None = None) -> Message:
    """Store ``raw`` and route it to each of ``rcpt_tos``; the caller commits.

    ``mode`` is the CCM mode chosen in the portal (composer or reply); mail from a mail
    client asks with the X-CCM-Mode header instead, honoured only when the sender may
    "Send Secure". ``tenant`` is given for mail written in the portal, whose sender may
    be an external recipient replying; ``via`` names the way it came in ("SMTP",
    "portal", "command line"), for the delivery history and the trace line, and
    ``smtp`` what the SMTP session knew of its client.

    The null sender (``mail_from`` "": bounces, automatic replies, read receipts) is
    served for the tenant of the From: header's address, and never gets a bounce.

    What is stored is ``raw`` with a ``Received:`` line on top (so every copy that
    leaves carries the hop), less ``mime.STRIPPED_HEADERS`` (X-CCM-Mode, Bcc,
    Resent-Bcc), removed here, once, after routing has read them and before anything
    is stored: every delivery, page, download and report reads the stored message, so
    none of them can show those headers, and nothing the gateway might sign later
    could carry them.
    """
    if trace.hops(raw) > settings().hop_limit:
        raise Refused(TOO_MANY_HOPS)  # a loop: the sending server bounces it
    tenant = tenant or _sender_tenant(raw, mail_from)
    received_at, queue_id, recipients = clock.utcnow(), _queue_id(), recipients_of(rcpt_tos)
    raw = trace.received(
        by=trace.host_name(settings().helo_name), queue_id=queue_id,
        via=via, client_address=client_address, tls=tls, smtp=smtp,
        rcpt=recipients[0] if len(recipients) == 1 else "", when=received_at) + raw
    routing = plan(tenant, raw, mail_from, recipients, mode)
    if not routing.decisions:
        raise Refused(NO_RECIPIENTS)
    parsed, raw = routing.parsed, routing.raw

    message = Message(
        public_id=secrets.token_urlsafe(16), tenant=tenant, mail_from=mail_from,
        header_from=parsed.header_from, subject=parsed.subject,
        message_id_header=parsed.message_id, thread=parsed.thread, client_address=client_address,
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
    _route(message, routing, f"{how}, queue id {queue_id}")
    _announce(message.public_id, queue_id, mail_from, how,
              [decision.route for _, decision in routing.decisions])
    return message


def _announce(public_id: str, queue_id: str, mail_from: str, how: str,
              routes: list[str]) -> None:
    """Count the message in the metrics and log it, as Postfix logs "queued as": once the
    commit has made it so."""
    metrics.received(routes)
    line = (f"from=<{mail_from}>, {how[0].lower()}{how[1:]}, {len(routes)} recipient(s) "
            f"({', '.join(sorted(set(routes)))})")
    database.when_committed(lambda: log.info(
        "message %s received: queue id %s, %s", public_id, queue_id, line,
        extra={"message_id": public_id, "queue_id": queue_id}))


def _route(message: Message, routing: Plan, how: str) -> None:
    """A recipient row per decision, its first events, and its copy held or queued."""
    tenant, parsed = message.tenant, routing.parsed
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
