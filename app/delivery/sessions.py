"""SMTP sessions with remote servers: opened with EHLO and STARTTLS as the TLS level
asks, and kept open a little while for the next message to the same server, as
Postfix's connection cache does.

A session is kept per (host, address, port, TLS level): the level decides how its TLS
was negotiated, so a session opened under a weaker one never carries mail that requires
more. A kept session waits at most :data:`IDLE_SECONDS` and carries at most
:data:`MESSAGES_PER_SESSION` messages; it is checked with RSET before it is used again,
and one that fails that check (the server closed it meanwhile) is replaced by a new
connection, which is no further try of that server.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field

from app.delivery.destinations import DeliveryFailed, Options, RemoteAnswer

#: seconds to wait for the answer to QUIT, after the message was accepted
QUIT_TIMEOUT = 5
#: how long an idle session is kept for the next message (Postfix's
#: smtp_connection_cache_time_limit)
IDLE_SECONDS = 2.0
#: messages one session carries before it is closed and a new one opened (a bound like
#: Postfix's smtp_connection_reuse_count_limit, so that no session lasts for ever)
MESSAGES_PER_SESSION = 100

#: (host, address, port, TLS level)
Key = tuple[str, str, int, str | None]


class TlsUnavailable(Exception):
    """TLS was required and could not be negotiated with any server."""


@dataclass
class Session:
    """One open SMTP connection, in the state after EHLO (and STARTTLS, when used)."""

    client: smtplib.SMTP
    tls_version: str | None
    #: how long QUIT may take (the configured time-out, at most QUIT_TIMEOUT)
    quit_timeout: float = QUIT_TIMEOUT
    messages: int = 0
    idle_since: float = field(default_factory=time.monotonic)
    #: whether it has carried a message before (then a failure to reset it is no try)
    reused: bool = False


class Sessions:
    """Idle sessions, shared by the threads of one delivery run; each session is used by
    one thread at a time. ``close`` ends them all (the run calls it when it ends)."""

    def __init__(self, idle_seconds: float | None = None, messages: int | None = None):
        self.idle_seconds = IDLE_SECONDS if idle_seconds is None else idle_seconds
        self.messages = MESSAGES_PER_SESSION if messages is None else messages
        self._idle: dict[Key, list[Session]] = {}
        self._lock = threading.Lock()

    def open(self, key: Key, options: Options) -> Session:
        """A session with the server ``key`` names: a kept one that still answers, or a
        new one (DeliveryFailed or TlsUnavailable when it cannot be opened)."""
        while (session := self._take(key)) is not None:
            if _answers_rset(session.client):
                session.reused = True
                return session
            close(session.client, 0)  # the server closed it meanwhile: not a try
        return connect(key, options)

    def keep(self, key: Key, session: Session) -> None:
        """Keep ``session`` after a finished transaction, or close it at its bound."""
        session.messages += 1
        if session.messages >= self.messages:
            close(session.client, session.quit_timeout)
            return
        session.idle_since = time.monotonic()
        with self._lock:
            self._idle.setdefault(key, []).append(session)

    def close_idle(self) -> None:
        """Close the sessions idle longer than ``idle_seconds``."""
        now = time.monotonic()
        self._close_where(lambda session: now - session.idle_since > self.idle_seconds)

    def close(self) -> None:
        self._close_where(lambda session: True)

    def _take(self, key: Key) -> Session | None:
        self.close_idle()
        with self._lock:
            kept = self._idle.get(key)
            return kept.pop() if kept else None

    def _close_where(self, expired) -> None:
        with self._lock:
            closing = [s for kept in self._idle.values() for s in kept if expired(s)]
            self._idle = {key: [s for s in kept if not expired(s)]
                          for key, kept in self._idle.items()}
            self._idle = {key: kept for key, kept in self._idle.items() if kept}
        for session in closing:
            close(session.client, session.quit_timeout)


def _answers_rset(client: smtplib.SMTP) -> bool:
    try:
        return client.rset()[0] == 250
    except (OSError, smtplib.SMTPException):
        return False


# --- opening one ----------------------------------------------------------------------


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


def connect(key: Key, options: Options) -> Session:
    """A new session: connected, EHLO said, STARTTLS when offered (required by ``tls``)."""
    host, address, port, tls = key
    try:
        # Naming the host here makes smtplib check the certificate against it.
        client = _SMTP(address, host=host, port=port, local_hostname=options.helo_name or None,
                       timeout=options.timeout)
    except (OSError, smtplib.SMTPException) as error:
        raise DeliveryFailed(f"4.4.1 {host} [{address}]: {error or type(error).__name__}",
                             permanent=False) from None
    try:
        client.ehlo()
        if not client.has_extn("starttls"):
            if tls:
                raise TlsUnavailable(f"{host} does not offer STARTTLS")
            return Session(client, None, min(options.timeout, QUIT_TIMEOUT))
        _starttls(client, host, tls, options)
        client.ehlo()
        return Session(client, client.sock.version(), min(options.timeout, QUIT_TIMEOUT))
    except (OSError, smtplib.SMTPException) as error:
        close(client, 0)
        if isinstance(error, smtplib.SMTPResponseException):
            raise failure(host, error.smtp_code, error.smtp_error) from None
        raise DeliveryFailed(f"4.4.2 {host}: {error or type(error).__name__}",
                             permanent=False) from None
    except BaseException:
        close(client, 0)
        raise


def _starttls(client: smtplib.SMTP, host: str, tls: str | None, options: Options) -> None:
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
        reply = _text(refused.smtp_error)
        if tls:
            raise TlsUnavailable(f"{host} refused STARTTLS: {refused.smtp_code} "
                                 f"{reply}") from None
        raise DeliveryFailed(f"4.7.0 {host} refused STARTTLS: {refused.smtp_code} "
                             f"{reply}", permanent=False) from None


def failure(host: str, code: int, text: bytes | str) -> DeliveryFailed:
    """The server's reply as a failure: permanent for 5xx; the DSN quotes it."""
    return DeliveryFailed(f"{host} said: {code} {_text(text)}", permanent=500 <= code < 600,
                          remote=RemoteAnswer(host, " ".join(f"{code} {_text(text)}".split())))


def _text(text: bytes | str) -> str:
    return text.decode("utf-8", errors="replace") if isinstance(text, bytes) else str(text)


def close(client: smtplib.SMTP, timeout: float = QUIT_TIMEOUT) -> None:
    """Say QUIT, waiting ``timeout`` seconds at most for the answer, whatever it is."""
    try:
        if client.sock is not None:
            client.sock.settimeout(timeout)
        client.quit()
    except (OSError, smtplib.SMTPException):
        client.close()
