"""Handing one message for one recipient to the next hop: a maildir, a relay, or the MX.

``send`` returns the text of the delivery event, or raises :class:`DeliveryFailed`
(temporary or permanent, with the reply that said so) or :class:`TlsUnavailable`
(a TLS requirement that no server could meet).

The duplicate window. Once the remote server has answered 250 to the message's data the
message is its responsibility; until the caller has committed that fact, a crash (or a
failed commit) leaves the queue item to be tried again, and the recipient gets the
message twice. ``send`` calls ``accepted`` right after that 250, before it says QUIT,
so the window is the caller's commit alone: no round trip, and no server that stalls
after its 250 (QUIT waits at most :data:`QUIT_TIMEOUT`, and a QUIT that fails changes
nothing: the message was delivered). What remains cannot be closed from this side:
SMTP has no two-phase commit, so a crash between the 250 and the commit, or a 250 lost
on the way back to us (the server has the message, we time out and retry), still means
a second copy.
"""

from __future__ import annotations

import mailbox
import smtplib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from app.delivery.destinations import (
    RELAY_PORTS,
    DeliveryFailed,
    Options,
    RemoteAnswer,
    may_connect,
    mx_hosts,
    parse_relay,
    relay_addresses,
)
from app.models import DELIVERED_VIA_MX

#: seconds to wait for the answer to QUIT, after the message was accepted
QUIT_TIMEOUT = 5


class TlsUnavailable(Exception):
    """TLS was required and could not be negotiated with any server."""


def send(target: str, raw: bytes, mail_from: str, rcpt: str, *, tls: str | None = None,
         options: Options | None = None, restricted: bool = False,
         accepted: Callable[[str], object] | None = None,
         before_next: Callable[[], object] | None = None) -> str:
    """Deliver ``raw`` to ``rcpt`` through ``target`` (mx, smtp://host:port, maildir:PATH).

    ``restricted`` says a tenant administrator chose the relay ``target``: the gateway
    then connects only where such a one may aim it (:func:`relay_refusal`), judging the
    addresses the host has now, not those it had when the setting was saved.
    ``accepted`` is called with the event text as soon as the message is delivered (for
    SMTP: right after the server's 250, before QUIT); whatever it raises is not a
    delivery failure and is raised as it is. ``before_next`` is called before each
    server after the first (trying several can take minutes); what it raises stops the
    delivery and is raised as it is.
    """
    options = options or Options()
    if target.startswith("maildir:"):
        mailbox.Maildir(target.removeprefix("maildir:"), create=True).add(raw)
        event = f"Delivered to the maildir {target.removeprefix('maildir:')}"
        if accepted is not None:
            accepted(event)
        return event
    if target.startswith("smtp://"):
        host, port, addresses = _relay_addresses(target, options, restricted)
        hosts = [(host, addresses)]

        def describe(used: _Used) -> str:
            return f"Relayed to {host}:{port} ({used.tls_version or 'no TLS'})"
    elif target == "mx":
        domain = rcpt.rpartition("@")[2]
        hosts = mx_hosts(domain, options)
        port = options.delivery_port

        def describe(used: _Used) -> str:
            return f"{DELIVERED_VIA_MX}: {used.host} ({used.tls_version or 'no TLS'})"
    else:
        raise ValueError(f"unknown delivery target {target!r}")

    def then(used: _Used) -> None:
        if accepted is not None:
            accepted(describe(used))

    return describe(_first_that_takes_it(hosts, port, raw, mail_from, rcpt, tls, options,
                                         before_next,
                                         then))


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


@dataclass
class _Used:
    host: str
    tls_version: str | None


class _SMTP(smtplib.SMTP):
    """smtplib connecting to an address we resolved, while naming the host for TLS."""

    def __init__(self, address: str, **kwargs):
        self._address = address
        super().__init__(**kwargs)

    def _get_socket(self, host, port, timeout):
        return socket.create_connection((self._address, port), timeout, self.source_address)


def _tls_context(level: str | None, ca_file: str) -> ssl.SSLContext:
    if level == "verify":
        # Checks the chain and that the certificate names the MX host.
        return ssl.create_default_context(cafile=ca_file or None)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # "encrypt" and opportunistic TLS: no check
    return context


def _first_that_takes_it(hosts, port, raw, mail_from, rcpt, tls, options, before_next,
                         then) -> _Used:
    """Try each host and address in order until one takes the message or refuses it."""
    last_temporary = "4.4.1 No mail server could be reached"
    tls_problems = []
    tried = 0
    for host, host_addresses in hosts:
        if not host_addresses:
            last_temporary = f"4.4.4 {host} has no address"
            continue
        for address in host_addresses:
            if tried and before_next is not None:
                before_next()
            tried += 1
            try:
                return _deliver(host, address, port, raw, mail_from, rcpt, tls, options, then)
            except TlsUnavailable as problem:
                tls_problems.append(str(problem))
            except DeliveryFailed as failure:
                if failure.permanent:
                    raise
                last_temporary = failure.reply
    if tls_problems and len(tls_problems) == sum(len(a) for _, a in hosts):
        raise TlsUnavailable("; ".join(tls_problems))
    raise DeliveryFailed(last_temporary, permanent=False)


def _deliver(host, address, port, raw, mail_from, rcpt, tls, options, then) -> _Used:
    """One SMTP session; ``then(used)`` runs after the 250 to the data, before QUIT."""
    try:
        # Naming the host here makes smtplib check the certificate against it.
        client = _SMTP(address, host=host, port=port, local_hostname=options.helo_name or None,
                       timeout=options.timeout)
    except (OSError, smtplib.SMTPException) as error:
        raise DeliveryFailed(f"4.4.1 {host} [{address}]: {error or type(error).__name__}",
                             permanent=False) from None
    try:
        used = _transfer(client, host, raw, mail_from, rcpt, tls, options)
        # Delivered: whatever happens from here on (QUIT included) is not a failure.
        then(used)
        return used
    finally:
        _close(client, min(options.timeout, QUIT_TIMEOUT))


def _transfer(client, host, raw, mail_from, rcpt, tls, options) -> _Used:
    try:
        client.ehlo()
        tls_version = None
        if client.has_extn("starttls"):
            try:
                client.starttls(context=_tls_context(tls, options.ca_file))
            except (ssl.SSLError, ssl.CertificateError) as error:
                if tls:
                    raise TlsUnavailable(f"{host}: {error}") from None
                raise DeliveryFailed(f"4.7.0 TLS with {host} failed: {error}",
                                     permanent=False) from None
            except smtplib.SMTPResponseException as refused:
                # Offered, then refused: for a TLS requirement the same as not offered
                # (CCM fallback or bounce, as the policy says), never a bounce of its own.
                reply = refused.smtp_error.decode("utf-8", errors="replace") \
                    if isinstance(refused.smtp_error, bytes) else str(refused.smtp_error)
                if tls:
                    raise TlsUnavailable(f"{host} refused STARTTLS: {refused.smtp_code} "
                                         f"{reply}") from None
                raise DeliveryFailed(f"4.7.0 {host} refused STARTTLS: {refused.smtp_code} "
                                     f"{reply}", permanent=False) from None
            client.ehlo()
            tls_version = client.sock.version()
        elif tls:
            raise TlsUnavailable(f"{host} does not offer STARTTLS")
        client.sendmail(mail_from, [rcpt], raw, mail_options=_utf8_options(client, host,
                                                                           mail_from, rcpt))
        return _Used(host, tls_version)
    except smtplib.SMTPRecipientsRefused as refused:
        code, text = next(iter(refused.recipients.values()))
        raise _failure(host, code, text) from None
    except smtplib.SMTPResponseException as error:
        raise _failure(host, error.smtp_code, error.smtp_error) from None
    except (OSError, smtplib.SMTPException) as error:
        raise DeliveryFailed(f"4.4.2 {host}: {error or type(error).__name__}",
                             permanent=False) from None


def _utf8_options(client: smtplib.SMTP, host: str, mail_from: str, rcpt: str) -> list[str]:
    """SMTPUTF8 for an address that is not ASCII (RFC 6531): a server that does not offer
    it can never take the message."""
    if mail_from.isascii() and rcpt.isascii():
        return []
    if not client.has_extn("smtputf8"):
        raise DeliveryFailed(f"5.6.7 {host} does not accept addresses that are not ASCII "
                             f"(no SMTPUTF8)", permanent=True)
    return ["SMTPUTF8"]


def _failure(host: str, code: int, text: bytes | str) -> DeliveryFailed:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return DeliveryFailed(f"{host} said: {code} {text}", permanent=500 <= code < 600,
                          remote=RemoteAnswer(host, " ".join(f"{code} {text}".split())))


def _close(client: smtplib.SMTP, timeout: float) -> None:
    """Say QUIT, waiting ``timeout`` seconds at most for the answer, whatever it is."""
    try:
        if client.sock is not None:
            client.sock.settimeout(timeout)
        client.quit()
    except (OSError, smtplib.SMTPException):
        client.close()
