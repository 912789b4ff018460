"""Handing one message for its recipients at one destination to the next hop: a
maildir, a relay, or the MX.

``send`` delivers to all the recipients in one SMTP transaction per server (one RCPT
each), over a session that a :class:`~app.delivery.sessions.Sessions` may keep open for
the next message to that server. It reports each recipient delivered (``accepted``) or
returns why it was not: a :class:`DeliveryFailed` (temporary or permanent, with the
reply that said so) or a :class:`TlsUnavailable` (a TLS requirement that no server could
meet). What fails for the whole destination (its DNS, the relay's check) it raises.
The message goes out as each server can take it (app/delivery/encodings.py).

The duplicate window. Once the remote server has answered 250 to the message's data the
message is its responsibility; until the caller has committed that fact, a crash (or a
failed commit) leaves the queue items to be tried again, and the recipients get the
message twice. ``send`` calls ``accepted`` right after that 250, before anything else
(another message, RSET, QUIT), so the window is the caller's commit alone: no round
trip, and no server that stalls after its 250 (QUIT waits at most
:data:`~app.delivery.sessions.QUIT_TIMEOUT`, and a QUIT that fails changes nothing: the
message was delivered). What remains cannot be closed from this side: SMTP has no
two-phase commit, so a crash between the 250 and the commit, or a 250 lost on the way
back to us (the server has the message, we time out and retry), still means a second
copy.
"""

from __future__ import annotations

import logging
import mailbox
import smtplib
from collections.abc import Callable, Collection, Sequence

from app.delivery import encodings
from app.delivery.destinations import (
    RELAY_PORTS,
    DeliveryFailed,
    Options,
    loops_back,
    may_connect,
    mx_hosts,
    parse_relay,
    relay_addresses,
)
from app.delivery.sessions import Key, Session, Sessions, TlsUnavailable, close, failure
from app.models import DELIVERED_VIA_MX, WRITTEN_TO_OUTBOX

__all__ = ["DeliveryFailed", "Options", "Sessions", "TlsUnavailable", "send"]

log = logging.getLogger(__name__)

#: longest part of a server's reply quoted in a delivery event
REPLY_QUOTED = 200

#: why a recipient was not delivered
Failure = DeliveryFailed | TlsUnavailable


def send(target: str, raw: bytes, mail_from: str, rcpts: Sequence[str], *,
         tls: str | None = None, options: Options | None = None, restricted: bool = False,
         accepted: Callable[[list[int], str], object] | None = None,
         before_next: Callable[[], Collection[int]] | None = None,
         sessions: Sessions | None = None) -> dict[int, Failure]:
    """Deliver ``raw`` to ``rcpts`` (all at one domain) through ``target`` (mx,
    smtp://host:port, maildir:PATH); the recipients not delivered, by their position in
    ``rcpts``, with why.

    ``restricted`` says a tenant administrator chose the relay ``target``: the gateway
    then connects only where such a one may aim it (:func:`relay_refusal`), judging the
    addresses the host has now, not those it had when the setting was saved.
    ``accepted`` is called with the positions of the recipients delivered and the event
    text as soon as a server took the message (for SMTP: right after its 250); whatever
    it raises is not a delivery failure and is raised as it is. ``before_next`` is
    called before each server after the first (trying several can take minutes) and
    answers the positions still to be sent; what it raises stops the delivery and is
    raised as it is. ``sessions`` keeps sessions open for the next message; without it
    each session ends with this call.
    """
    options = options or Options()
    pending = dict(enumerate(rcpts))
    if target.startswith("maildir:"):
        to_maildir(target.removeprefix("maildir:"), raw, mail_from, pending.values())
        if accepted is not None:
            accepted(list(pending), WRITTEN_TO_OUTBOX)
        return {}
    if target.startswith("smtp://"):
        host, port, addresses = _relay_addresses(target, options, restricted)
        hosts, destination = [(host, addresses)], host

        def describe(host: str, session: Session, reply: str) -> str:
            return f"Relayed to {host}:{port}, which accepted it ({_how(session, reply)})"
    elif target == "mx":
        destination = _one_domain(rcpts)
        hosts, port = mx_hosts(destination, options), options.delivery_port

        def describe(host: str, session: Session, reply: str) -> str:
            return f"{DELIVERED_VIA_MX}: {host} accepted it ({_how(session, reply)})"
    else:
        raise ValueError(f"unknown delivery target {target!r}")

    def then(positions: list[int], host: str, session: Session, reply: str) -> None:
        if accepted is not None:
            accepted(positions, describe(host, session, reply))

    kept = sessions if sessions is not None else Sessions()
    try:
        return _Attempt(port, destination, raw, mail_from, tls, options, kept,
                        then).through(hosts, pending, before_next)
    finally:
        if sessions is None:
            kept.close()


def _how(session: Session, reply: str) -> str:
    """The server's answer and the encryption, as a delivery event quotes them."""
    tls = f"encrypted with {session.tls_version}" if session.tls_version else "not encrypted"
    return f"{reply}; {tls}" if reply else tls


def to_maildir(path: str, raw: bytes, mail_from: str, rcpts: Collection[str]) -> None:
    """Write one copy for each of ``rcpts`` to the maildir at ``path``, each with the
    envelope on top as Postfix's local delivery puts it (``Return-Path``,
    ``X-Original-To``, ``Delivered-To``): the headers alone do not say who a copy was
    for (a Bcc, a notification's recipient). The path goes to the operator's log only."""
    folder = mailbox.Maildir(path, create=True)
    newline = b"\r\n" if raw.split(b"\n", 1)[0].endswith(b"\r") else b"\n"
    for rcpt in rcpts:
        envelope = [f"Return-Path: <{mail_from}>", f"X-Original-To: {rcpt}",
                    f"Delivered-To: {rcpt}"]
        # the envelope was checked on the way in; a line break here would forge headers
        top = newline.join(_one_line(line).encode() for line in envelope)
        key = folder.add(top + newline + raw)
        log.info("to=<%s> written to the maildir %s as %s", rcpt, path, key)


def _one_line(text: str) -> str:
    return "".join(c if c.isprintable() else " " for c in text)


def _one_domain(rcpts: Sequence[str]) -> str:
    domains = {rcpt.rpartition("@")[2].lower() for rcpt in rcpts}
    if len(domains) != 1:
        raise ValueError(f"one delivery by MX goes to one domain, not {sorted(domains)}")
    return domains.pop()


def _relay_addresses(target: str, options: Options,
                     restricted: bool) -> tuple[str, int, list[str]]:
    """Host, port and the addresses to try of the relay ``target``, looked up now; for a
    ``restricted`` relay, only those a tenant administrator may use, or DeliveryFailed."""
    try:
        relay = parse_relay(target)
    except ValueError as error:
        raise DeliveryFailed(f"4.3.5 The relay {target} is not valid: {error}",
                             permanent=False) from None
    addresses = relay_addresses(relay.host, options, restricted=restricted)
    if restricted:
        if relay.port not in RELAY_PORTS:
            raise DeliveryFailed(f"4.7.0 Not connecting to the relay {relay}: port "
                                 f"{relay.port} is not an SMTP relay's", permanent=False)
        addresses = [a for a in addresses if may_connect(a, options.relay_networks)]
        if not addresses:
            raise DeliveryFailed(f"4.7.0 Not connecting to the relay {relay}: it has no "
                                 f"public address, nor one in a network the operator "
                                 f"allows for relays", permanent=False)
    return relay.host, relay.port, addresses


# --- SMTP ------------------------------------------------------------------------------


class _Attempt:
    """One message to one destination: its servers tried in order until each recipient
    is delivered or refused for good, or none is left to try."""

    def __init__(self, port, destination, raw, mail_from, tls, options, sessions, then):
        self.port, self.destination, self.raw, self.mail_from = port, destination, raw, mail_from
        self.tls, self.options, self.sessions, self.then = tls, options, sessions, then

    def through(self, hosts, pending: dict[int, str], before_next) -> dict[int, Failure]:
        failed: dict[int, Failure] = {}
        last = "4.4.1 No mail server could be reached"
        last_for: dict[int, str] = {}
        tls_problems, tried, own = [], 0, 0
        for host, host_addresses in hosts:
            if not host_addresses:
                last = f"4.4.4 {host} has no address"
                continue
            for address in host_addresses:
                if loops_back(address, self.port, self.options.own_listener):
                    own += 1  # our own SMTP ingress: it would hand the message back here
                    continue
                if tried and before_next is not None:
                    still = set(before_next())
                    pending = {p: rcpt for p, rcpt in pending.items() if p in still}
                tried += 1
                try:
                    outcomes = self._via((host, address, self.port, self.tls), pending)
                except TlsUnavailable as problem:
                    tls_problems.append(str(problem))
                    continue
                except DeliveryFailed as whole:
                    outcomes = dict.fromkeys(pending, whole)
                for position, outcome in outcomes.items():
                    if outcome is not None and not outcome.permanent:
                        last_for[position] = outcome.reply  # left for the next server
                        continue
                    del pending[position]
                    if outcome is not None:
                        failed[position] = outcome
                if not pending:
                    return failed
        return failed | self._left(pending, last, last_for, tls_problems, tried, own)

    def _left(self, pending, last, last_for, tls_problems, tried, own) -> dict[int, Failure]:
        """Why the recipients that no server took or refused for good were not delivered."""
        if tls_problems and len(tls_problems) == tried:
            problem = TlsUnavailable("; ".join(tls_problems))
            return dict.fromkeys(pending, problem)
        if own and not tried:
            # As Postfix: the destination is this gateway itself, which no retry changes.
            loop = DeliveryFailed(f"5.4.6 mail for {self.destination} loops back to myself",
                                  permanent=True)
            return dict.fromkeys(pending, loop)
        return {p: DeliveryFailed(last_for.get(p, last), permanent=False) for p in pending}

    def _via(self, key: Key, pending: dict[int, str]) -> dict[int, DeliveryFailed | None]:
        """One transaction with the server ``key`` names, over a kept or a new session;
        None for a recipient delivered, else the failure."""
        host = key[0]
        session = self.sessions.open(key, self.options)

        def delivered(positions: list[int], reply: str) -> None:
            self.then(positions, host, session, reply)

        try:
            outcomes, closing = _transaction(session, host, self.raw, self.mail_from,
                                             pending, delivered)
        except (OSError, smtplib.SMTPException) as error:
            close(session.client, 0)
            raise DeliveryFailed(f"4.4.2 {host}: {error or type(error).__name__}",
                                 permanent=False) from None
        except BaseException:
            close(session.client, session.quit_timeout)
            raise
        if closing:
            close(session.client, session.quit_timeout)
        else:
            self.sessions.keep(key, session)
        return outcomes


def _transaction(session: Session, host: str, raw: bytes, mail_from: str,
                 pending: dict[int, str], delivered: Callable[[list[int], str], None]
                 ) -> tuple[dict[int, DeliveryFailed | None], bool]:
    """MAIL, one RCPT per recipient, DATA; the outcome of each recipient, and whether
    the server is closing the session (421)."""
    client = session.client
    outcomes: dict[int, DeliveryFailed | None] = {}
    smtputf8 = client.has_extn("smtputf8")
    for position, rcpt in pending.items():
        if not rcpt.isascii() and not smtputf8:
            outcomes[position] = DeliveryFailed(
                f"5.6.7 {host} does not accept addresses that are not ASCII (no SMTPUTF8)",
                permanent=True)
    sending = {p: rcpt for p, rcpt in pending.items() if p not in outcomes}
    if not sending:
        return outcomes, False
    try:
        wire = encodings.for_server(
            raw, eight_bit_mime=client.has_extn("8bitmime"), smtputf8=smtputf8,
            utf8_addresses=not mail_from.isascii() or not all(
                rcpt.isascii() for rcpt in sending.values()), host=host)
    except DeliveryFailed as unfit:
        return outcomes | dict.fromkeys(sending, unfit), False
    options = list(wire.mail_options)
    if client.has_extn("size"):
        options.append(f"SIZE={len(wire.data)}")
    client.command_encoding = "ascii"  # smtplib's MAIL turns it to UTF-8 for SMTPUTF8
    code, reply = client.mail(mail_from, options)
    if code != 250:
        if code != 421:
            client.rset()
        return outcomes | dict.fromkeys(sending, failure(host, code, reply)), code == 421
    taken = []
    for position, rcpt in sending.items():
        code, reply = client.rcpt(rcpt)
        if code in (250, 251):
            taken.append(position)
        else:
            outcomes[position] = failure(host, code, reply)
            if code == 421:
                return outcomes | dict.fromkeys(sending.keys() - outcomes.keys(),
                                                outcomes[position]), True
    if not taken:
        client.rset()
        return outcomes, False
    try:
        code, reply = client.data(wire.data)
    except smtplib.SMTPDataError as refused:  # DATA itself refused, before the content
        code, reply = refused.smtp_code, refused.smtp_error
        if code != 421:
            client.rset()
    if code != 250:
        return outcomes | dict.fromkeys(taken, failure(host, code, reply)), code == 421
    delivered(taken, _quoted(code, reply))  # before anything else is said to the server
    return outcomes | dict.fromkeys(taken), False


def _quoted(code: int, reply: bytes | str) -> str:
    """A server's reply on one line, bounded, as a delivery event quotes it."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    text = _one_line(" ".join(text.split()))
    text = f"{code} {text}".strip()
    return text if len(text) <= REPLY_QUOTED else text[:REPLY_QUOTED - 1] + "…"
