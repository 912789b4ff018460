"""The SMTP ingress on aiosmtpd: who may relay, and 250 only after the commit.

Relaying is allowed to clients in CCM_RELAY_NETWORKS, or after SMTP AUTH, which is
offered only over STARTTLS; anyone else is refused at RCPT, so this is never an open
relay. The envelope sender must be at a tenant's domain: this is an outbound gateway;
the null sender (bounces, automatic replies) is served by its From: header's domain.
Database work runs in threads, off the event loop; one thread stores the messages.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import ipaddress
import logging
import socket
import ssl
import time

import dns.asyncresolver
import dns.exception
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, AuthResult, LoginPassword
from flask import Flask
from limits import parse_many

from app import metrics
from app.config import networks, smtp_listener
from app.delivery import destinations
from app.domain import accounts, ingest, second_factor
from app.extensions import db
from app.mail import addresses, trace
from app.smtp.accepting import TakingTurns
from app.smtp.group_commit import GroupCommit, StoreTimeout
from app.smtp.session import Session, Sessions, data_timeout
from app.smtp.throttle import auth_limiter

log = logging.getLogger(__name__)

OK_SENDER = "250 2.1.0 Sender OK"
OK_RECIPIENT = "250 2.1.5 Recipient OK"
ACCEPTED = "250 2.0.0 Message accepted for delivery"
RELAY_DENIED = "550 5.7.1 Relaying denied: authenticate first"
TRY_AGAIN = "451 4.3.0 Temporary failure, please try again later"
NOT_YOUR_ADDRESS = "553 5.7.1 Sender address is not the one you authenticated as"
AUTH_LATER = "454 4.7.0 Temporary authentication failure, try again later"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"

#: ``MAIL FROM:<>`` as aiosmtpd hands it over ("<>"), or "" (no brackets); kept as "<>"
#: in the envelope until DATA, stored as ""
NULL_SENDER = ("", "<>")

#: seconds the trace line waits for the client's reverse DNS name
REVERSE_DNS_SECONDS = 2.0

#: failed SMTP AUTH attempts allowed from one client address, as at the portal's forms
AUTH_FAILURES = parse_many(accounts.SIGN_IN_LIMIT)

#: seconds a sender domain found served at MAIL FROM is taken as served without asking
#: the database again
SERVED_FOR = 60.0


class IngressHandler:
    """aiosmtpd handler: checks each envelope step, stores the message at DATA."""

    def __init__(self, app: Flask):
        self.app = app
        self.networks = networks(app.config["RELAY_NETWORKS"])
        self._trusted_address = functools.lru_cache(maxsize=4096)(self._in_relay_networks)
        self.store = GroupCommit(app)
        # Made once: making one reads the system's resolver settings (a file), which
        # would otherwise happen on the event loop at every session.
        self.reverse_resolver = reverse_resolver(app)
        # Only served domains are remembered: DATA checks the sender again as it stores
        # the message, so a domain removed meanwhile is still refused there, and one
        # just added is served at once. (Touched only on the event loop.)
        self.served_until: dict[str, float] = {}
        # failed AUTH counted where the portal counts failed sign-ins, else in memory
        self.auth_failures = auth_limiter(app)

    def trusted(self, peer) -> bool:
        """Whether the client at ``peer`` (address and port, or an address) may relay
        without AUTH: asked at each RCPT, so each address's answer is kept."""
        return self._trusted_address(peer[0] if isinstance(peer, tuple) else peer)

    def _in_relay_networks(self, client: str) -> bool:
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return False
        if address.version == 6 and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if address in NULL_SENDER:
            address = "<>"  # aiosmtpd takes "" for no MAIL command at all
            # The null sender (bounces, automatic replies, read receipts) is at no domain:
            # only clients that may relay send it, and its tenant is found at DATA from
            # the From: header. Anyone else is refused here, as they would be at RCPT.
            if not (session.authenticated or self.trusted(session.peer)):
                return RELAY_DENIED
        elif session.authenticated and not self.trusted(session.peer) and \
                addresses.normalise(address) != session.auth_data.login:
            # A user sends as themselves: never as a colleague or another tenant's staff.
            # (The organisation's own servers, in CCM_RELAY_NETWORKS, relay for anyone.)
            return NOT_YOUR_ADDRESS
        elif (reply := await self._served(address)) is not None:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        envelope.ccm_started = time.monotonic()  # the transaction's duration, for metrics
        return OK_SENDER

    async def _served(self, address: str) -> str | None:
        """None when ``address`` is at a domain a tenant serves; else the reply."""
        domain = addresses.domain_of(address)
        if self.served_until.get(domain, 0.0) >= time.monotonic():
            return None
        try:
            served = await asyncio.to_thread(self._in_context, ingest.tenant_of, address)
        except Exception:
            log.exception("sender check failed")
            return TRY_AGAIN
        if served is None:
            return ingest.FOREIGN_SENDER
        self.served_until[domain] = time.monotonic() + SERVED_FOR
        return None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if not (session.authenticated or self.trusted(session.peer)):
            return RELAY_DENIED
        if len(envelope.rcpt_tos) >= self.app.config["MAX_RECIPIENTS"]:
            return TOO_MANY_RECIPIENTS  # the client sends the rest in another message
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return OK_RECIPIENT

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        mail_from = "" if envelope.mail_from in NULL_SENDER else envelope.mail_from
        if not mail_from and session.authenticated and \
                not self.trusted(session.peer) and \
                addresses.normalise(ingest.header_sender(raw) or "") != session.auth_data.login:
            # a user's read receipt names them in From: (the tenant is found by it)
            return NOT_YOUR_ADDRESS
        client = trace.SmtpClient(helo=session.host_name or "",
                                  name=await self._client_name(session),
                                  esmtp=session.extended_smtp,
                                  authenticated=bool(session.authenticated))
        try:
            await self.store(raw, mail_from, list(envelope.rcpt_tos),
                             client_address=str(session.peer[0]), tls=bool(session.ssl),
                             smtp=client)
        except ingest.Refused as refused:
            return refused.reply
        except StoreTimeout as late:
            log.warning("could not store a message from %s: %s", envelope.mail_from, late)
            return TRY_AGAIN
        except Exception:
            # Never aiosmtpd's "500", never a traceback: the client keeps the message and
            # tries again; we log what went wrong.
            log.exception("could not store a message from %s", envelope.mail_from)
            return TRY_AGAIN
        metrics.stored(time.monotonic() - envelope.ccm_started)
        return ACCEPTED

    async def _client_name(self, session) -> str:
        """The client address's reverse DNS name, for the trace line; "" when it has
        none or DNS is slow (looked up once a session, on the event loop)."""
        if not hasattr(session, "ccm_client_name"):
            session.ccm_client_name = await reverse_name(self.reverse_resolver,
                                                         str(session.peer[0]))
        return session.ccm_client_name

    async def handle_exception(self, error: Exception) -> str:
        """Whatever escaped a command: logged, and answered without its text (aiosmtpd's
        own answer, "500 Error: (ValueError) …", tells a stranger about our insides)."""
        log.error("SMTP command failed", exc_info=error)
        return TRY_AGAIN

    def _in_context(self, function, *args):
        with self.app.app_context():
            try:
                return function(*args)
            finally:
                db.session.remove()

    # SMTP AUTH with a portal password; only internal users may relay. The mechanisms
    # are the handler's own so that the password check (argon2, a tenth of a second of
    # CPU) runs in a thread: aiosmtpd's built-in ones call it on the event loop, where
    # it would stall every other connection.

    async def auth_PLAIN(self, server, args: list[str]) -> AuthResult:
        """RFC 4616: ``authzid NUL login NUL password``, at once or after a challenge."""
        response = await self._response(server, args, "")
        if response is None:
            return AuthResult(success=False, handled=True)
        try:
            _, login, password = response.split(b"\0")
        except ValueError:
            await server.push("501 5.5.2 Can't split auth value")
            return AuthResult(success=False, handled=True)
        return await self._check(server, login, password)

    async def auth_LOGIN(self, server, args: list[str]) -> AuthResult:
        """The LOGIN mechanism: the login (at once or asked for), then the password."""
        login = await self._response(server, args, server.AuthLoginUsernameChallenge)
        if login is None:
            return AuthResult(success=False, handled=True)
        password = await server.challenge_auth(server.AuthLoginPasswordChallenge)
        if password is MISSING:
            return AuthResult(success=False, handled=True)
        return await self._check(server, login, password)

    @staticmethod
    async def _response(server, args: list[str], challenge: str) -> bytes | None:
        """The client's initial response, or its answer to ``challenge``; None when it
        gave up or sent something that is not base64 (aiosmtpd or we answered that)."""
        if len(args) == 1:
            answer = await server.challenge_auth(challenge)
            return None if answer is MISSING else answer
        try:
            return base64.b64decode(args[1], validate=True)
        except ValueError:  # not base64, or not even ASCII
            await server.push("501 5.5.2 Can't decode base64")
            return None

    async def _check(self, server, login: bytes, password: bytes) -> AuthResult:
        email = login.decode("utf-8", errors="replace")
        client = str(server.session.peer[0])

        def internal_user() -> bool | None:
            """True or False; None when this client has failed too often of late."""
            throttle = self.auth_failures
            if throttle and not all(throttle.test(limit, "smtp-auth", client)
                                    for limit in AUTH_FAILURES):
                return None  # not even tested: guessing stops here, whatever the account
            matched = accounts.check_credentials(email, password.decode("utf-8", "replace"))
            relaying = [user for user in matched if may_relay(user)]
            for user in relaying:  # for these, the password is the whole proof
                accounts.clear_failures(user)
            db.session.commit()  # failed attempts count towards the lock-out
            if throttle and not matched:
                for limit in AUTH_FAILURES:
                    throttle.hit(limit, "smtp-auth", client)
            return bool(relaying)

        try:
            success = await asyncio.to_thread(self._in_context, internal_user)
        except Exception:
            log.exception("password check failed")
            success = None
        if success is None:
            return AuthResult(success=False, handled=False, message=AUTH_LATER)
        # handled=False: aiosmtpd answers 235 or 535 itself; handle_MAIL reads the login
        return AuthResult(success=success, handled=False,
                          auth_data=LoginPassword(addresses.normalise(email), b""))


def may_relay(user) -> bool:
    """Whether SMTP AUTH with this account's password lets it relay: an internal user's
    at its own tenant's domains, and not one who signs in with a second factor (enrolled,
    or required by the tenant), which SMTP cannot ask for: the password alone must not
    open what it guards."""
    return user.kind == "internal" and user.tenant.is_internal(user.email) and \
        not second_factor.enrolled(user) and second_factor.policy_for(user) != "required"


def reverse_resolver(app: Flask) -> dns.asyncresolver.Resolver:
    """An asynchronous resolver asking the gateway's DNS servers (CCM_DNS_SERVERS, else
    the system's), giving up after REVERSE_DNS_SECONDS."""
    look_up = dns.asyncresolver.Resolver(configure=False)
    system = destinations.resolver(destinations.Options.from_config(app.config))
    look_up.nameservers, look_up.nameserver_ports = system.nameservers, system.nameserver_ports
    look_up.lifetime = REVERSE_DNS_SECONDS
    return look_up


async def reverse_name(look_up: dns.asyncresolver.Resolver, client_address: str) -> str:
    """The PTR name of ``client_address``, checked to be a host name; "" when there is
    none or no answer comes soon."""
    try:
        answer = await look_up.resolve_address(client_address)
        name = answer[0].target.to_text(omit_final_dot=True)
    except (dns.exception.DNSException, ValueError, IndexError):
        return ""
    return name if addresses.domain_problem(name) is None else ""


def tls_context(app: Flask) -> ssl.SSLContext | None:
    cert, key = app.config["SMTP_TLS_CERT"], app.config["SMTP_TLS_KEY"]
    if not cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key or None)
    return context


class _Controller(Controller):
    """aiosmtpd's controller, serving our ``Session``.

    It listens on a socket of its own, or on ``sockets`` another process bound and
    handed down (``ccm smtp``'s siblings take their first process's: every process
    accepts from the one queue, and no other process can join it). With ``share_port``
    its own socket lets other ``ccm smtp --share-port`` commands listen on the port too:
    the kernel spreads new connections over them (SO_REUSEPORT, which only processes of
    the same user can join), and once one has closed its listener to shut down, over the
    others only. With ``take_turns`` (the number of processes accepting from its socket,
    when more than one) it accepts in turn with the others (``accepting``)."""

    def __init__(self, *args, share_port: bool = False, data_timeout: float,
                 sockets: list[socket.socket] | None = None, take_turns: int = 0,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.share_port = share_port
        self.data_timeout = data_timeout
        self.sockets = sockets or []
        # (implicit TLS, aiosmtpd's ssl_context, is not CCM's: STARTTLS is)
        self.take_turns = take_turns if self.ssl_context is None else 0
        #: the servers on ``sockets`` past the first (``server``, aiosmtpd's)
        self.more_servers: list[asyncio.AbstractServer] = []
        #: with siblings: what accepts from each listening socket, instead of the servers
        self.turns: list[TakingTurns] = []
        self.sessions = Sessions()

    def factory(self):
        return Session(self.handler, data_timeout=self.data_timeout, sessions=self.sessions,
                       **self.SMTP_kwargs)

    def shut_down(self, grace: float) -> None:
        """Stop listening, let the messages in DATA in, answer every session 421 4.3.2
        (app/smtp/session.py), then stop the event loop; ``grace`` seconds at most.
        Called from another thread than the loop's."""
        asyncio.run_coroutine_threadsafe(self._shut_down(grace), self.loop).result()
        self.stop()

    async def _shut_down(self, grace: float) -> None:
        starting = [task for turns in self.turns for task in turns.starting]
        self._stop_listening()  # new connections are refused from here on
        if starting:  # accepted: their sessions begin, to be told 421 with the others
            await asyncio.wait(starting, timeout=grace)
        await self.sessions.shut_down(grace)

    def _stop_listening(self) -> None:
        self._stop_taking_turns()
        for server in (self.server, *self.more_servers):
            server.close()

    def _stop_taking_turns(self) -> None:
        for turns in self.turns:
            turns.close()
        self.turns = []

    def _cleanup(self):
        self._stop_taking_turns()  # stopped without shutting down: the servers are closed
        super()._cleanup()

    async def _create_server(self) -> asyncio.AbstractServer:
        # taking turns, the servers only hold the sockets: this process accepts in turn
        serving = not self.take_turns
        if self.sockets:
            servers = [await self.loop.create_server(self._factory_invoker, sock=listening,
                                                     ssl=self.ssl_context,
                                                     start_serving=serving)
                       for listening in self.sockets]
        else:
            servers = [await self.loop.create_server(
                self._factory_invoker, host=self.hostname, port=self.port,
                ssl=self.ssl_context, reuse_port=self.share_port or None,
                start_serving=serving)]
        if self.take_turns:
            self.turns = [TakingTurns(self.loop, listening.dup(), self._factory_invoker,
                                      busy=lambda: len(self.sessions.live),
                                      processes=self.take_turns)
                          for server in servers for listening in server.sockets]
        self.more_servers = servers[1:]
        return servers[0]

    def listening(self) -> list[int]:
        """The file descriptors of the sockets it listens on, for siblings to take."""
        return [listening.fileno()
                for server in (self.server, *self.more_servers) for listening in server.sockets]

    def _trigger_server(self):
        if self.share_port or self.sockets:
            # aiosmtpd's check connects to the port, which may reach another process
            # listening on it: build the SMTP protocol directly instead, for the same check.
            self._factory_invoker()
        else:
            super()._trigger_server()


def controller(app: Flask, listen: str | None = None, *, share_port: bool = False,
               sockets: list[socket.socket] | None = None) -> Controller:
    """An aiosmtpd controller for the ingress, not yet started: on ``sockets`` when
    another process bound them, else on a socket of its own."""
    host, port = smtp_listener(listen or app.config["SMTP_LISTEN"])
    handler = IngressHandler(app)
    # ccm smtp's processes, which all accept from one socket
    processes = app.config.get("SMTP_PROCESSES", 1)
    return _Controller(
        handler,
        hostname=host,
        port=port,
        ident="CCM gateway",
        # named once: without it aiosmtpd asks socket.getfqdn() (perhaps DNS) on the event
        # loop at every connection, stalling every other session meanwhile
        server_hostname=trace.host_name(app.config["HELO_NAME"]),
        data_size_limit=app.config["MAX_MESSAGE_BYTES"],
        enable_SMTPUTF8=True,
        tls_context=tls_context(app),
        auth_require_tls=True,
        share_port=share_port,
        sockets=sockets,
        take_turns=processes if processes > 1 else 0,
        timeout=app.config["SMTP_IDLE_TIMEOUT"],
        data_timeout=data_timeout(app.config["MAX_MESSAGE_BYTES"],
                                  app.config["SMTP_MIN_DATA_RATE"],
                                  app.config["SMTP_IDLE_TIMEOUT"]),
    )
