"""The ingress reads DATA in pieces that end at ``.<CRLF>`` (app/smtp/session.py), not a
line at a time as aiosmtpd does: what it takes as the message, and how the session goes
on after it, must be exactly what aiosmtpd's own reading gives.

Both servers run on loopback and get the same bytes: aiosmtpd's ``SMTP`` with lines as
long as the size limit (the ingress's rule before it read DATA itself), and the ingress's
``Session``. Every test compares what each handler got and every reply each sent.
"""

from __future__ import annotations

import contextlib
import random
import socket
import time

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from app.smtp.session import Session

LIMIT = 400  # bytes of DATA either server takes


class Keep:
    """A handler that keeps what each DATA gave it."""

    def __init__(self):
        self.contents: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):
        self.contents.append(envelope.original_content)
        assert envelope.content == envelope.original_content  # bytes: not decoded
        return "250 OK kept"


class LongLines(SMTP):
    """aiosmtpd reading DATA itself, its lines as long as the size limit."""

    async def smtp_DATA(self, arg):
        self.line_length_limit = self._reader._limit = LIMIT + 3
        try:
            await super().smtp_DATA(arg)
        finally:
            del self.line_length_limit
            self._reader._limit = self.line_length_limit


class _Serving(Controller):
    def __init__(self, kind, handler):
        super().__init__(handler, hostname="127.0.0.1", port=0, data_size_limit=LIMIT,
                         enable_SMTPUTF8=True)
        self.kind = kind

    def factory(self):
        if self.kind is Session:
            return Session(self.handler, data_timeout=30, **self.SMTP_kwargs)
        return LongLines(self.handler, **self.SMTP_kwargs)

    def _trigger_server(self):  # its check connects by name; the port is known here
        self._factory_invoker()


@pytest.fixture(scope="module")
def servers():
    started = []
    for kind in (LongLines, Session):
        handler = Keep()
        controller = _Serving(kind, handler)
        controller.port = _free_port()
        controller.start()
        started.append((controller, handler))
    yield started
    for controller, _ in started:
        controller.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def transcript(port: int, handler: Keep, payload: bytes, pieces: list[int] | None = None
               ) -> tuple[bytes, list[bytes]]:
    """Every byte the server sent for a session that sends ``payload`` after DATA (in
    ``pieces`` of these sizes, with a pause between), then QUIT; and what its handler
    was given."""
    handler.contents.clear()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        replies = _read_reply(client)
        for command in (b"EHLO client.test", b"MAIL FROM:<a@acme.test>",
                        b"RCPT TO:<b@partner.test>", b"DATA"):
            client.sendall(command + b"\r\n")
            replies += _read_reply(client)
        sizes = [*(pieces or []), len(payload)]
        try:  # what follows an early end may be bogus commands, and the server hang up
            at = 0
            for size in sizes:
                client.sendall(payload[at:at + size])
                at += size
                if pieces:
                    time.sleep(0.002)
            client.sendall(b"QUIT\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        with contextlib.suppress(ConnectionResetError):
            while chunk := client.recv(65536):
                replies += chunk
    return replies, list(handler.contents)


def _read_reply(client: socket.socket) -> bytes:
    reply = b""
    while not reply.endswith(b"\r\n") or reply.splitlines()[-1][3:4] == b"-":
        reply += client.recv(65536)
    return reply


def normalised(replies: bytes) -> bytes:
    """The one reply the two may word differently: a single line longer than the size
    limit is "500 Line too long" to aiosmtpd, 552 (too much mail data) to the ingress."""
    return replies.replace(b"500 Line too long (see RFC5321 4.5.3.1.6)",
                           b"552 Error: Too much mail data")


def assert_same(servers, payload: bytes, pieces: list[int] | None = None) -> None:
    (reference, kept), (ours, got) = servers
    expected = transcript(reference.port, kept, payload, pieces)
    found = transcript(ours.port, got, payload, pieces)
    assert (normalised(found[0]), found[1]) == (normalised(expected[0]), expected[1]), payload


#: what a DATA may hold that its reading could get wrong: the end and what looks like it
TOKENS = [b".", b"..", b"...", b"\r\n", b"\n", b"\r", b"\r\n.", b".\r\n", b"\n.", b".\n",
          b"\r.", b"\r\n..\r\n", b"x", b"line", b"\x00", b"\xff", b" ", b"\t",
          b"\r\n.\r\n"]


@pytest.mark.parametrize("payload", [
    b".\r\n",                                   # an empty message
    b"..\r\n.\r\n",                             # one line holding a (stuffed) dot
    b".x\r\n.\r\n",                             # a first line that begins with a dot
    b"Subject: a\r\n\r\nbody\r\n.\r\n",
    b"a.\r\nb.\r\n..\r\n...\r\n.\r\n",          # lines that end in dots
    b"a\n.\nb\r\n.\r\n",                        # bare LF around a dot: not the end
    b"a\r.\rb\r\n.\r\n",                        # bare CR: not the end either
    b"a\r\n.\r\nMAIL FROM:<c@acme.test>\r\n",   # the end, then a command pipelined
    b"a\r\n.\r\n.\r\n",                         # the end, then a line the command reader gets
    b"x" * (LIMIT - 2) + b"\r\n.\r\n",          # the limit exactly
    b"x" * (LIMIT - 1) + b"\r\n.\r\n",          # one byte over
    b"x" * (LIMIT * 3) + b"\r\n.\r\n",          # far over, one line
    (b"y" * 50 + b".\r\n") * 20 + b".\r\n",     # over, in lines that end in dots
    b"\r\n.\r\n",                               # a message of one empty line
    b"x.\r\n" * 90 + b".\r\n",                   # lines of one letter and a dot
    b"x.\r\n" * 200 + b".\r\n",                  # ... over the limit
])
def test_the_message_and_the_replies_are_aiosmtpds(servers, payload):
    assert_same(servers, payload)


@pytest.mark.parametrize("piece", [256 * 1024, 5])
def test_random_data_in_random_pieces_is_read_as_aiosmtpd_reads_it(servers, monkeypatch,
                                                                     piece):
    """The whole class: DATA made of what could be mistaken for its end, sent at once
    and in pieces that split the end and the dots anywhere, and read in pieces of the
    ingress's size (and of 5 bytes, which cut the end everywhere)."""
    from app.smtp import session

    monkeypatch.setattr(session, "_PIECE", piece)
    rng = random.Random(20261206 + piece)
    for case in range(150):
        payload = b"".join(rng.choice(TOKENS) for _ in range(rng.randint(0, 60)))
        payload += b"\r\n.\r\n"
        if rng.random() < 0.2:
            payload = b"z" * rng.randint(LIMIT - 20, LIMIT + 20) + payload
        pieces = None
        if case % 3 == 0:
            pieces = [rng.randint(1, 7) for _ in range(rng.randint(1, 12))]
        assert_same(servers, payload, pieces)
