"""Real servers on loopback for tests: an SMTP sink, an authoritative DNS server, a CA, a
TCP relay that can be cut, nginx as a reverse proxy, and ``ccm web`` with a client for it.

Nothing here is a mock: the code under test talks real SMTP, DNS and TLS to these servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import errno
import http.client
import itertools
import os
import re
import select
import signal
import socket
import socketserver
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import defaultdict, deque
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

LOOPBACK = "127.0.0.1"

# SMTP replies the sink gives when nothing is scripted.
REPLY_OK = "250 2.0.0 OK"
REPLY_QUEUED = "250 2.0.0 OK: queued"

STAGES = ("MAIL", "RCPT", "DATA")


def free_port() -> int:
    """A TCP port nobody listens on right now (another process may take it before we do)."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


# --------------------------------------------------------------------------------------------
# SMTP


@dataclass
class Delivery:
    """One message the sink accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls_version: str | None = None  # e.g. "TLSv1.3" when the session was encrypted
    mail_options: list[str] = field(default_factory=list)  # e.g. ["BODY=8BITMIME"]
    #: the client's address and port: one for each session (connection)
    peer: tuple | None = None

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)


@dataclass
class _Script:
    """What the sink does instead of accepting; shared between the test and the server thread."""

    failures: dict[str, deque[str]] = field(default_factory=lambda: defaultdict(deque))
    drops: int = 0
    delay: float = 0.0
    quit_delay: float = 0.0


class _Handler:
    """aiosmtpd hooks: they run in the server's event loop thread."""

    def __init__(self, sink: SmtpSink):
        self.sink = sink

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if reply := self.sink._scripted("MAIL"):
            return reply
        # With a hook in place aiosmtpd leaves the envelope to us.
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return REPLY_OK

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if reply := self.sink._scripted("RCPT"):
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return REPLY_OK

    async def handle_DATA(self, server, session, envelope):
        self.sink._saw("DATA")
        if self.sink._take_drop():
            # abort() closes without a reply; closing the connection cancels this task.
            server.transport.abort()
            await asyncio.Event().wait()
        if delay := self.sink._script.delay:
            # A client that gives up meanwhile cancels this task, so nothing is captured.
            await asyncio.sleep(delay)
        if reply := self.sink._scripted("DATA"):
            return reply
        ssl_object = server.transport.get_extra_info("ssl_object")
        self.sink._capture(Delivery(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            data=envelope.original_content,
            tls_version=ssl_object.version() if ssl_object else None,
            mail_options=list(envelope.mail_options),
            peer=tuple(session.peer) if session.peer else None,
        ))
        return REPLY_QUEUED

    async def handle_QUIT(self, server, session, envelope):
        self.sink._saw("QUIT")
        if delay := self.sink._script.quit_delay:
            # A client that gives up meanwhile closes the connection, ending this task.
            await asyncio.sleep(delay)
        return "221 Bye"


class SmtpSink:
    """An SMTP server on loopback that keeps every message it accepts in ``messages``.

    ``host`` and ``port`` pin the address: several sinks on one port and different
    loopback addresses (127.0.0.2, 127.0.0.3, ...) stand in for several MX hosts, since
    the gateway delivers to one port (CCM_SMTP_DELIVERY_PORT) whatever the host.

    Only accepted messages are captured: a scripted failure, a dropped connection or a
    client that gave up during a delay leaves ``messages`` unchanged.
    """

    def __init__(self, tls_context: ssl.SSLContext | None = None, require_tls: bool = False,
                 host: str = LOOPBACK, port: int | None = None):
        if require_tls and tls_context is None:
            raise ValueError("require_tls needs a tls_context to offer STARTTLS with")
        self.tls_context = tls_context
        self.require_tls = require_tls
        self.host = host
        self.port: int | None = None
        self._wanted_port = port
        self._controller: Controller | None = None
        self._messages: list[Delivery] = []
        self._script = _Script()
        # One lock for the messages and the script; the condition wakes wait_for().
        self._changed = threading.Condition()
        self._commands: defaultdict[str, int] = defaultdict(int)  # see wait_for_command

    # -- life cycle

    def start(self) -> SmtpSink:
        if self._controller is not None:
            raise RuntimeError("the SMTP sink is already running")
        # The port is free when probed but may be taken before aiosmtpd binds it: try again.
        for attempt in range(5):
            controller = self._new_controller(
                _Handler(self),
                hostname=self.host,
                port=self._wanted_port or free_port(),
                server_hostname="sink.test",  # else aiosmtpd asks the resolver for our FQDN
                tls_context=self.tls_context,
                require_starttls=self.require_tls,
            )
            try:
                controller.start()
            except OSError as error:
                _discard(controller)
                if error.errno != errno.EADDRINUSE or attempt == 4 or self._wanted_port:
                    raise
                continue
            self._controller, self.port = controller, controller.port
            return self
        raise AssertionError("unreachable")

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def _new_controller(self, handler: _Handler, **options) -> Controller:
        return Controller(handler, **options)

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- what was received

    @property
    def messages(self) -> list[Delivery]:
        with self._changed:
            return list(self._messages)

    def wait_for(self, count: int, timeout: float = 10) -> list[Delivery]:
        """Block until at least ``count`` messages were captured; return all of them."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._messages) >= count, timeout):
                raise AssertionError(
                    f"SMTP sink on port {self.port}: expected {count} message(s) within "
                    f"{timeout}s, got {len(self._messages)}"
                )
            return list(self._messages)

    def _capture(self, delivery: Delivery) -> None:
        with self._changed:
            self._messages.append(delivery)
            self._changed.notify_all()

    # -- scripted behaviour

    def fail(self, stage: str, code: int, text: str, times: int = 1) -> None:
        """Answer the next ``times`` commands of ``stage`` with ``code text``."""
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, not {stage!r}")
        if not 400 <= code <= 599:
            raise ValueError(f"a failure needs a 4xx or 5xx code, not {code}")
        with self._changed:
            self._script.failures[stage].extend([f"{code} {text}"] * times)

    def drop_during_data(self, times: int = 1) -> None:
        """Close the next ``times`` connections after their DATA arrived, without a reply."""
        with self._changed:
            self._script.drops += times

    def delay(self, seconds: float) -> None:
        """Wait ``seconds`` before answering every DATA from now on (0 turns it off)."""
        with self._changed:
            self._script.delay = seconds

    def delay_quit(self, seconds: float) -> None:
        """Wait ``seconds`` before answering every QUIT from now on (0 turns it off)."""
        with self._changed:
            self._script.quit_delay = seconds

    def _scripted(self, stage: str) -> str | None:
        with self._changed:
            failures = self._script.failures[stage]
            return failures.popleft() if failures else None

    def _take_drop(self) -> bool:
        with self._changed:
            if self._script.drops:
                self._script.drops -= 1
                return True
            return False


    # -- commands seen: what a test waits for instead of sleeping until the client is there

    def wait_for_command(self, command: str, count: int = 1, timeout: float = 10) -> None:
        """Block until ``command`` (DATA, once its data arrived, or QUIT) came ``count``
        times in all, whatever the sink answers to it (a delay runs after this)."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._commands[command] >= count, timeout):
                raise AssertionError(
                    f"SMTP sink on port {self.port}: expected {command} {count} time(s) "
                    f"within {timeout}s, got {self._commands[command]}")

    def _saw(self, command: str) -> None:
        with self._changed:
            self._commands[command] += 1
            self._changed.notify_all()


def _discard(controller: Controller) -> None:
    """Release a controller whose start() failed, so no event loop is left unclosed."""
    if controller.loop.is_running():
        controller.stop()
    else:  # the thread gave up before running the loop, which aiosmtpd then leaves open
        controller.loop.close()


# --------------------------------------------------------------------------------------------
# A sink as a mail server of a kind: what it offers (8BITMIME, SMTPUTF8), what it counts
# (sessions, RCPT commands), and closing its sessions as a server's idle time-out does.


class MailServerSink(SmtpSink):
    """An SmtpSink that offers 8BITMIME and SMTPUTF8 or not, and counts its sessions
    (connections) and RCPT commands.

    Without 8BITMIME it is strict as a 7-bit server is: it reads the data as ASCII and
    refuses 8-bit data (500); without SMTPUTF8 it refuses a command that is not ASCII.
    Like every sink it refuses a line over 1,001 octets with its CRLF (aiosmtpd's limit).
    """

    def __init__(self, *args, eight_bit_mime: bool = True, smtputf8: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.offers = {"decode_data": not eight_bit_mime, "enable_SMTPUTF8": smtputf8}
        self.sessions = 0
        self.rcpt_commands = 0
        self._open: set[asyncio.Transport] = set()

    def start(self) -> MailServerSink:
        super().start()
        with self._changed:
            self.sessions = 0  # aiosmtpd's own check that the server is up is none
        return self

    def _new_controller(self, handler: _Handler, **options) -> Controller:
        return _CountingController(self, handler, **options, **self.offers)

    def close_sessions(self) -> None:
        """Close every open session from the server's side, as an idle time-out does."""
        with self._changed:
            open_now = list(self._open)
        for transport in open_now:
            self._controller.loop.call_soon_threadsafe(transport.close)
        with self._changed:
            self._changed.wait_for(lambda: not self._open.intersection(open_now), 10)

    def _count(self, what: str, transport: asyncio.Transport | None = None) -> None:
        with self._changed:
            if what == "session":
                self.sessions += 1
                self._open.add(transport)
            elif what == "closed":
                self._open.discard(transport)
            else:
                self.rcpt_commands += 1
            self._changed.notify_all()


def serve_mail_for(network, domain: str, address: str, *, preference: int = 10,
                   **offers) -> MailServerSink:
    """A started MailServerSink at ``address`` on the delivery port of ``network`` (the
    loopback Internet of tests/gateway/conftest.py), an MX host of ``domain`` there."""
    sink = MailServerSink(host=address, port=network.port, **offers).start()
    network.sinks.append(sink)  # stopped with the network
    name = f"mx-{address.replace('.', '-')}.{domain}"
    network.dns.add_mx(domain, preference, name)
    network.dns.add_a(name, address)
    return sink


class _CountingController(Controller):
    def __init__(self, sink: MailServerSink, *args, **kwargs):
        self.sink = sink
        super().__init__(*args, **kwargs)

    def factory(self):
        return _CountingSMTP(self.sink, self.handler, **self.SMTP_kwargs)


class _CountingSMTP(SMTP):
    def __init__(self, sink: MailServerSink, *args, **kwargs):
        self.sink = sink
        super().__init__(*args, **kwargs)

    def connection_made(self, transport):
        super().connection_made(transport)
        self.sink._count("session", transport)

    def connection_lost(self, error):
        self.sink._count("closed", self.transport)
        super().connection_lost(error)

    async def smtp_RCPT(self, arg):
        self.sink._count("rcpt")
        await super().smtp_RCPT(arg)


# --------------------------------------------------------------------------------------------
# DNS

TTL = 60


class _UdpHandler(socketserver.BaseRequestHandler):
    def handle(self):
        wire, sock = self.request
        if reply := self.server.dns.answer(wire, udp=True):
            sock.sendto(reply, self.client_address)


class _TcpHandler(socketserver.BaseRequestHandler):
    def handle(self):
        # DNS over TCP: each message is preceded by its length in two bytes (RFC 1035 4.2.2).
        self.request.settimeout(5)
        stream = self.request.makefile("rb")
        with stream:
            while (prefix := stream.read(2)) and len(prefix) == 2:
                wire = stream.read(struct.unpack("!H", prefix)[0])
                if reply := self.server.dns.answer(wire, udp=False):
                    self.request.sendall(struct.pack("!H", len(reply)) + reply)


class _TcpServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = False  # server_close() waits for open connections: nothing is left over


class DnsServer:
    """An authoritative DNS server on 127.0.0.1, over UDP and TCP on the same port.

    Names are compared without regard to case. An unknown name answers NXDOMAIN; a known
    name without records of the asked type answers NOERROR with an empty answer. A UDP
    answer too large for the query's buffer comes back truncated, so clients retry over TCP.
    """

    def __init__(self):
        self.port: int | None = None
        self._records: dict[dns.name.Name, dict[int, list[dns.rdata.Rdata]]] = {}
        self._failing: dict[dns.name.Name, int] = {}
        self._lock = threading.Lock()
        self._servers: list[socketserver.BaseServer] = []
        self._threads: list[threading.Thread] = []

    @property
    def address(self) -> str:
        """``host:port``, the form ``CCM_DNS_SERVERS`` takes."""
        return f"{LOOPBACK}:{self.port}"

    # -- records

    def add_mx(self, domain: str, preference: int, host: str) -> None:
        self._add(domain, dns.rdatatype.MX, f"{preference} {_absolute(host)}")

    def add_a(self, name: str, address: str) -> None:
        self._add(name, dns.rdatatype.A, address)

    def add_aaaa(self, name: str, address: str) -> None:
        self._add(name, dns.rdatatype.AAAA, address)

    def add_txt(self, name: str, text: str | bytes) -> None:
        """A TXT record; text over 255 bytes becomes several strings, as DKIM keys need."""
        data = text.encode() if isinstance(text, str) else text
        chunks = [data[i:i + 255] for i in range(0, len(data), 255)] or [b""]
        self._add(name, dns.rdatatype.TXT,
                  dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, chunks))

    def add_cname(self, name: str, target: str) -> None:
        """An alias: a query for another type at ``name`` gets the CNAME and the
        target's records of that type, as an authoritative server for both would."""
        self._add(name, dns.rdatatype.CNAME, _absolute(target))

    def fail(self, name: str, rcode: int = dns.rcode.SERVFAIL) -> None:
        """Answer every query for ``name`` with ``rcode`` (SERVFAIL, REFUSED, ...)."""
        with self._lock:
            self._failing[dns.name.from_text(name)] = rcode

    def forget(self, name: str) -> None:
        """Drop every record of ``name``: from now on it does not exist (NXDOMAIN)."""
        with self._lock:
            self._records.pop(dns.name.from_text(name), None)

    def _add(self, name: str, rdtype: int, rdata: str | dns.rdata.Rdata) -> None:
        if isinstance(rdata, str):  # parsed here so a typo fails in the test, not the server
            rdata = dns.rdata.from_text(dns.rdataclass.IN, rdtype, rdata)
        with self._lock:
            # dns.name.Name compares and hashes without regard to case.
            by_type = self._records.setdefault(dns.name.from_text(name), {})
            by_type.setdefault(rdtype, []).append(rdata)

    # -- answering

    def answer(self, wire: bytes, udp: bool) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None  # not DNS: say nothing, as a real server would
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        with self._lock:
            failing = self._failing.get(question.name)
            by_type = self._records.get(question.name)
            rdatas = list(by_type.get(question.rdtype, [])) if by_type is not None else []
            alias = by_type.get(dns.rdatatype.CNAME) if by_type is not None else None
            if alias and not rdatas:
                response.answer.append(dns.rrset.from_rdata_list(question.name, TTL, alias))
                target = alias[0].target
                rdatas = list(self._records.get(target, {}).get(question.rdtype, []))
                if rdatas:
                    response.answer.append(dns.rrset.from_rdata_list(target, TTL, rdatas))
                rdatas = []
        if failing is not None:
            response.set_rcode(failing)
        elif by_type is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif rdatas:
            response.answer.append(dns.rrset.from_rdata_list(question.name, TTL, rdatas))
        limit = 65535
        if udp:  # RFC 6891: the buffer the client's EDNS announces, else 512 bytes
            limit = max(512, query.payload) if query.edns >= 0 else 512
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            truncated = dns.message.make_response(query)
            truncated.flags |= dns.flags.AA | dns.flags.TC
            return truncated.to_wire()

    # -- life cycle

    def start(self) -> DnsServer:
        if self._servers:
            raise RuntimeError("the DNS server is already running")
        # UDP and TCP must share one port: if TCP finds it taken, start over with another.
        for attempt in range(5):
            udp = socketserver.UDPServer((LOOPBACK, 0), _UdpHandler)
            try:
                tcp = _TcpServer(udp.server_address, _TcpHandler)
            except OSError as error:
                udp.server_close()
                if error.errno != errno.EADDRINUSE or attempt == 4:
                    raise
                continue
            break
        self.port = udp.server_address[1]
        for server in (udp, tcp):
            server.dns = self
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                      name=f"dns-{self.port}", daemon=True)
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join()
        self._servers.clear()
        self._threads.clear()

    def __enter__(self) -> DnsServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _absolute(name: str) -> str:
    return name if name.endswith(".") else name + "."


# --------------------------------------------------------------------------------------------
# TLS


class ThrowawayCA:
    """A certificate authority that lives as long as the test: for STARTTLS both ways."""

    def __init__(self):
        self._ca = trustme.CA()

    def server_context(self, hostname: str) -> ssl.SSLContext:
        """A server presenting a certificate for ``hostname`` signed by this CA."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ca.issue_cert(hostname).configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client that verifies servers against this CA (and only this CA)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # checks names, loads no system CAs
        self._ca.configure_trust(context)
        return context

    def server_files(self, hostname: str, directory: Path | str) -> Path:
        """Write a certificate for ``hostname`` and its key into one PEM file; its path."""
        path = Path(directory) / f"{hostname}.pem"
        self._ca.issue_cert(hostname).private_key_and_cert_chain_pem.write_to_path(str(path))
        return path

    def ca_file(self, directory: Path | str) -> Path:
        """Write the CA certificate as PEM into ``directory``; return the file's path."""
        path = Path(directory) / "ca.pem"
        self._ca.cert_pem.write_to_path(str(path))
        return path


def self_signed_server_context(hostname: str) -> ssl.SSLContext:
    """A server whose certificate no client trusts: its CA is thrown away at once."""
    return ThrowawayCA().server_context(hostname)


# --------------------------------------------------------------------------------------------
# TCP relay


class TcpRelay:
    """Forwards connections from a loopback port to ``target`` until the test cuts it.

    ``cut("refuse")`` plays a server that went down: open connections are closed and new
    ones refused. ``cut("silent")`` plays a network that drops everything: connections stay
    open and new ones are accepted, but nothing gets through either way. ``restore()``
    forwards again, on the same port, over fresh connections.
    """

    OUTAGES = ("refuse", "silent")

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port: int | None = None
        self._silent = False
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> TcpRelay:
        self._listen()
        return self

    def __exit__(self, *exc) -> None:
        self._stop_listening()
        self._close_connections()
        for thread in self._threads:
            thread.join(timeout=10)

    def cut(self, outage: str) -> None:
        if outage == "refuse":
            self._stop_listening()
            self._close_connections()
        elif outage == "silent":
            self._silent = True
        else:
            raise ValueError(f"no outage {outage!r}; there are {', '.join(self.OUTAGES)}")

    def restore(self) -> None:
        self._close_connections()  # what they lost meanwhile is lost: start afresh
        self._silent = False
        if self._listener is None:
            self._listen()

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, self.port or 0))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._acceptor = self._start(self._accept, listener)

    def _stop_listening(self) -> None:
        if self._listener is None:
            return
        self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept(); that thread closes it
        self._acceptor.join(timeout=10)
        self._listener = self._acceptor = None

    def _close_connections(self) -> None:
        with self._lock:
            for connection in self._open:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)  # its thread sees the end, closes

    def _start(self, target, *args) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()
        return thread

    def _accept(self, listener: socket.socket) -> None:
        with listener:
            while True:
                try:
                    client, _ = listener.accept()
                except OSError:
                    return
                upstream = None
                if not self._silent:
                    try:
                        upstream = socket.create_connection(self.target, timeout=5)
                    except OSError:
                        client.close()
                        continue
                self._start(self._relay, client, upstream)

    def _relay(self, client: socket.socket, upstream: socket.socket | None) -> None:
        """Copy both ways (or, with no upstream, swallow) until either side ends."""
        ends = [end for end in (client, upstream) if end is not None]
        with self._lock:
            self._open.update(ends)
        try:
            while True:
                readable, _, _ = select.select(ends, [], [])
                for source in readable:
                    data = source.recv(65536)
                    if not data:
                        return
                    if upstream is not None and not self._silent:
                        (upstream if source is client else client).sendall(data)
        except OSError:
            return
        finally:
            with self._lock:
                self._open.difference_update(ends)
            for end in ends:
                end.close()


# --------------------------------------------------------------------------------------------
# Reverse proxy

NGINX = Path("/usr/sbin/nginx")

#: nginx's main file: one process, with everything it writes in ``directory``
_NGINX_MAIN = """\
daemon off;
master_process off;
pid {directory}/nginx.pid;
error_log {directory}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {directory}/access.log;
    client_body_temp_path {directory}/body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    include {site};
}}
"""

_NGINX_PROXY_SITE = """\
server {{
    listen {LOOPBACK}:{port}{ssl};
    {certificate}
    location / {{
        proxy_pass http://{LOOPBACK}:{upstream};
        proxy_bind {source};
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-Host $http_host;
    }}
}}
"""


class _ServerProcess:
    """A server in a process of its own, listening on ``port`` once started; stopped
    when the ``with`` block ends (or when it never came up)."""

    port: int | None = None
    _process: subprocess.Popen | None = None

    def _wait_until_listening(self, log: Path) -> None:
        try:
            wait_for_port(self.port, self._process, log)
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None


class Nginx(_ServerProcess):
    """Debian's nginx as a reverse proxy on loopback: a throwaway instance of its own.

    It runs in the foreground as one process (no master handing work to another user),
    with its configuration, pid file, logs and temporary files in ``directory``. It
    forwards to ``upstream`` (a port on 127.0.0.1), connecting from ``source`` so that the
    server behind can tell it from a client, with the headers the README suggests. Given
    ``tls`` (one PEM file with key and certificate), it serves HTTPS instead of HTTP.
    """

    def __init__(self, directory: Path, upstream: int, *, source: str = LOOPBACK,
                 tls: Path | None = None):
        self.directory = Path(directory)
        self.upstream = upstream
        self.source = source
        self.tls = tls
        self.port: int | None = None
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> Nginx:
        self.port = free_port()
        _start_nginx(self, _NGINX_PROXY_SITE.format(
            LOOPBACK=LOOPBACK, port=self.port,
            upstream=self.upstream, source=self.source, ssl=" ssl" if self.tls else "",
            certificate=f"ssl_certificate {self.tls}; ssl_certificate_key {self.tls};"
            if self.tls else ""))
        return self


class NginxSite(_ServerProcess):
    """Debian's nginx serving ``site``, the text of a site file (``server`` blocks), in a
    throwaway instance like :class:`Nginx`'s; it is up once it listens on ``port``."""

    def __init__(self, directory: Path, site: str, port: int):
        self.directory = Path(directory)
        self.site = site
        self.port = port
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> NginxSite:
        _start_nginx(self, self.site)
        return self


def _start_nginx(server: Nginx | NginxSite, site: str) -> None:
    directory = server.directory
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "site.conf").write_text(site)
    conf = directory / "nginx.conf"
    conf.write_text(_NGINX_MAIN.format(directory=directory, site=directory / "site.conf"))
    server._process = subprocess.Popen(
        [str(NGINX), "-p", str(directory), "-c", str(conf), "-e", str(directory / "error.log")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server._wait_until_listening(directory / "error.log")


def wait_for_port(port: int, process: subprocess.Popen, log: Path, *,
                  host: str = LOOPBACK, seconds: float = 30) -> None:
    """Return once ``process`` accepts connections on ``port``; fail with its log if it
    exits first or does not get there in ``seconds``."""
    deadline = time.monotonic() + seconds
    while process.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return
        time.sleep(0.05)
    output = log.read_text(errors="replace") if log.exists() else ""
    raise RuntimeError(f"{process.args[0]} did not start listening on {port}:\n{output}")


# --------------------------------------------------------------------------------------------
# The portal, as an operator runs it

CCM = Path(sys.executable).with_name("ccm")


def ccm_environment(directory: Path, **settings: str) -> dict[str, str]:
    """The environment of a ``ccm`` command with the instance folder ``directory``:
    ``settings`` (``CCM_*`` variables) and none of the test run's own ``CCM_*``."""
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith("CCM_")}
    environment.update(CCM_INSTANCE_PATH=str(directory), **settings)
    return environment


#: a log's number when it has no port to be named by
_LOG_NUMBERS = itertools.count(1)


class Ccm:
    """``ccm COMMAND ARGS…`` in a process of its own on the test's database, its output
    in a log in the instance folder (the application's, or ``directory``); when given
    ``port``, started once it listens there. Killed at the end of the ``with`` block if
    still running."""

    def __init__(self, app, command: str, *args: str, port: int | None = None,
                 directory: Path | None = None, **settings: str):
        self.directory = Path(directory or app.instance_path)
        self.arguments = [command, *args]
        self.port = port
        self.settings = {"CCM_DATABASE_URL": app.config["DATABASE_URL"],
                         "CCM_SECRET_KEY": "ccm-under-test", **settings}
        self.process: subprocess.Popen | None = None
        self.log = self.directory / f"ccm-{command}-{port or next(_LOG_NUMBERS)}.log"

    def __enter__(self) -> Ccm:
        with self.log.open("wb") as log:
            # in the instance folder, as a service runs
            self.process = subprocess.Popen(
                [str(CCM), *self.arguments], env=ccm_environment(self.directory, **self.settings),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.directory)
        if self.port is not None:
            try:
                wait_for_port(self.port, self.process, self.log)
            except BaseException:
                self.__exit__()
                raise
        return self

    def stop(self, within: float) -> int:
        """SIGTERM; the exit status, which must come within ``within`` seconds."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=within)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def __exit__(self, *exc) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class CcmWeb(_ServerProcess):
    """``ccm web`` in a process of its own, on a loopback port.

    It gets ``settings`` (``CCM_*`` variables) and none of the test run's own ``CCM_*``
    environment; ``directory`` is its instance folder. What it prints is in ``output()``.
    """

    def __init__(self, directory: Path, settings: dict[str, str]):
        self.directory = Path(directory)
        self.settings = settings
        self.port: int | None = None
        self._process: subprocess.Popen | None = None
        self._log: Path | None = None

    def __enter__(self) -> CcmWeb:
        self.port = free_port()
        environment = ccm_environment(self.directory, CCM_HTTP_LISTEN=f"{LOOPBACK}:{self.port}",
                                      **self.settings)
        self._log = self.directory / f"ccm-web-{self.port}.log"
        with self._log.open("wb") as log:
            self._process = subprocess.Popen([str(CCM), "web", "--threads", "2"],
                                             env=environment, stdin=subprocess.DEVNULL,
                                             stdout=log, stderr=subprocess.STDOUT)
        self._wait_until_listening(self._log)
        return self

    def output(self) -> str:
        return self._log.read_text(errors="replace")


@dataclass
class Answer:
    status: int
    text: str
    headers: http.client.HTTPMessage


class Visitor:
    """A browser at one loopback address: it keeps its cookies like a browser does.

    ``source`` is the address it connects from (on Linux all of 127.0.0.0/8 is this
    machine's), so servers see distinct clients. It sends ``host`` as ``Host`` (by default
    127.0.0.1 and the port); ``tls`` makes it speak HTTPS to a certificate for 127.0.0.1.
    """

    def __init__(self, port: int, source: str = LOOPBACK, *, host: str | None = None,
                 tls: ssl.SSLContext | None = None):
        self.port = port
        self.source = source
        self.host = host or f"{LOOPBACK}:{port}"
        self.tls = tls
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict | None = None,
                headers: dict | None = None) -> Answer:
        if self.tls:
            connection = http.client.HTTPSConnection(
                LOOPBACK, self.port, timeout=30, source_address=(self.source, 0),
                context=self.tls)
        else:
            connection = http.client.HTTPConnection(LOOPBACK, self.port, timeout=30,
                                                    source_address=(self.source, 0))
        sent = {"Host": self.host, **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        with contextlib.closing(connection):
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            text = response.read().decode("utf-8", errors="replace")
        for cookie in response.headers.get_all("Set-Cookie") or []:
            name, _, value = cookie.split(";", 1)[0].partition("=")
            self.cookies[name.strip()] = value.strip()
        return Answer(response.status, text, response.headers)

    def submit(self, path: str, form: dict, headers: dict | None = None) -> Answer:
        """Fetch the form on ``path``, then POST ``form`` with its CSRF token."""
        page = self.request("GET", path, headers=headers)
        token = re.search(r'name="csrf_token"[^>]* value="([^"]+)"', page.text)
        assert token, f"no CSRF token on {path} ({page.status})"
        return self.request("POST", path, {"csrf_token": token.group(1), **form}, headers)
