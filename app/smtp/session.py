"""The ingress's SMTP session: aiosmtpd's, with Postfix's timeouts and line lengths.

aiosmtpd restarts its timer only on commands, so a message still arriving steadily is cut
when the timer runs out mid-DATA; and it refuses a DATA line longer than 1,001 octets
("500 Line too long"). Postfix instead times out a client that sends nothing for
``smtpd_timeout`` (300 s), and accepts lines of any length. So does this session:

- the idle timeout restarts on every byte the client sends, whatever the command;
- DATA as a whole may last as long as the largest message takes at a slow but live rate
  (CCM_SMTP_MIN_DATA_RATE), never less than the idle timeout: a client dripping a byte
  now and then cannot hold a connection for ever;
- DATA lines may be as long as the message may be; commands keep aiosmtpd's limit, so a
  client that may not send mail cannot make us buffer a long line.

Both timeouts answer ``421 4.4.2`` and close, as Postfix does; nothing is stored.

Shutting down (``ccm smtp`` on SIGTERM, :meth:`Sessions.shut_down`): the listener is
closed first, then every session answers ``421 4.3.2`` and closes at once unless it is
inside DATA. A session between MAIL and DATA counts as idle: nothing of its transaction
is stored yet and the client sends it all again later, as after any 421 (RFC 5321 3.8),
whereas a message already on the wire may be large and is let in: it is stored and
answered 250 (or 451), and then the session gets its 421. The grace period
(CCM_SHUTDOWN_GRACE) bounds the wait; a DATA still running then is cut with the same
421, so its client keeps the message and tries again (a duplicate only if the message
was being committed at that very moment, as after a crash).
"""

from __future__ import annotations

import asyncio
import logging
import re
from email._header_value_parser import get_addr_spec, get_angle_addr
from email.errors import HeaderParseError

from aiosmtpd.smtp import MISSING, SMTP, syntax

log = logging.getLogger(__name__)

#: the longest piece of DATA read at once (a line may be longer: it comes in pieces)
_PIECE = 256 * 1024

IDLE = "421 4.4.2 {host} Error: timeout exceeded"
TOO_SLOW = "421 4.4.2 {host} Error: message transfer took too long"
SHUTTING_DOWN = "421 4.3.2 {host} Service shutting down"


#: ``<local@domain>`` whose local part is a dot-atom and domain a plain host name (RFC
#: 5321 4.1.2), which the ``email`` parser reads as itself, and the blanks after it,
#: which it skips (a comment there is left to it): most of what clients send
_PLAIN_ADDRESS = re.compile(
    r" *<(?P<spec>[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>[ \t]*+(?!\()")


def data_timeout(size_limit: int, min_rate: int, idle_timeout: float) -> float:
    """Seconds a whole DATA may take: the largest message at ``min_rate`` bytes a second,
    never less than the idle timeout (50 MiB at 8 KiB/s: 6,400 s, 1 h 47 min)."""
    return max(float(idle_timeout), size_limit / min_rate)


class Session(SMTP):
    """aiosmtpd's SMTP protocol with the timeouts and line lengths above."""

    def __init__(self, handler, *, data_timeout: float, sessions: Sessions | None = None,
                 **kwargs):
        super().__init__(handler, **kwargs)
        self.data_timeout = data_timeout
        self._transfer: asyncio.TimerHandle | None = None
        self.sessions = sessions
        #: inside DATA, from the command to our reply: shutting down waits for it
        self.in_data = False

    def connection_made(self, transport) -> None:
        super().connection_made(transport)  # again after STARTTLS: the set keeps one
        if self.sessions is not None:
            self.sessions.add(self)

    def connection_lost(self, error) -> None:
        super().connection_lost(error)
        if self.sessions is not None:
            self.sessions.discard(self)

    def shut_down(self) -> None:
        """Answer 421 and close now, or once the DATA in progress is answered."""
        if not self.in_data:
            self._close(SHUTTING_DOWN, "shutting down")

    def data_received(self, data: bytes) -> None:
        # Any byte shows the client alive: Postfix's smtpd_timeout bounds each read.
        self._reset_timeout()
        super().data_received(data)

    def _timeout_cb(self) -> None:
        self._close(IDLE, "idle")

    @syntax("DATA")  # for HELP, as aiosmtpd's own
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        self._transfer = self.loop.call_later(self.data_timeout, self._close, TOO_SLOW,
                                              "too slow a DATA")
        self.in_data = True
        try:
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            content = await self._read_data()
            if content is None:
                reply = "552 Error: Too much mail data"
            else:
                # aiosmtpd's decoded content: the ingress decodes nothing (decode_data
                # off), and with SMTPUTF8 on its strict-ASCII refusal never applies
                self.envelope.original_content = content
                self.envelope.content = (content.decode("utf-8", errors="surrogateescape")
                                         if self._decode_data else content)
                reply = await self._call_handler_hook("DATA")
            self._set_post_data_state()
            await self.push("250 OK" if reply is MISSING else reply)
        finally:
            self.in_data = False
            self._transfer.cancel()
        if self.sessions is not None and self.sessions.stopping:
            self._close(SHUTTING_DOWN, "shutting down after DATA")

    async def _read_data(self) -> bytes | None:
        """The message, up to the line that holds one dot, with the dots that transparency
        added taken off again (RFC 5321 4.5.2); None when it is larger than the size
        limit, read to its end all the same and dropped as it came.

        aiosmtpd reads DATA a line at a time, an ``await`` and a check a line: most of
        its event loop's time for a message of 10 KiB, and 13,000 of each for 1 MB. Here
        the reader looks for ``.<CRLF>`` itself, in C, and stops only where a line ends
        with a dot; the line holding one dot is the one whose bytes before are a CRLF
        (for the first line, the DATA command's). What it takes as the message is what
        aiosmtpd takes (tests/gateway/test_data_reading.py holds both to it).
        """
        limit = self.data_size_limit or 0
        reader = self._reader
        # one buffer, not a list of pieces: a piece may be a few bytes ("x.<CRLF>"), and
        # an object each would cost ten times the message; it starts with the DATA
        # command's CRLF, so that the first line's dot comes off as the others do
        message: bytearray | None = bytearray(b"\r\n")
        size = 0
        # the stream buffers at most a piece ahead (its own limit, for commands, is set
        # back after DATA): past the size limit, what comes is dropped as it is read
        reader._limit = _PIECE
        before = b"\r\n"  # the last two bytes of what came before
        try:
            while True:
                try:
                    piece = await reader.readuntil(b".\r\n")
                except asyncio.LimitOverrunError as overrun:
                    piece = await reader.read(overrun.consumed)
                except asyncio.CancelledError:
                    self._writer.close()  # the connection is gone (aiosmtpd does the same)
                    raise
                # the last bytes only: a piece may be 256 KiB
                tail = before + piece[-5:]
                ends = piece.endswith(b".\r\n") and tail[-5:-3] == b"\r\n"
                before = tail[-2:]
                # the line holding one dot is not the message's
                size += len(piece) - 3 if ends else len(piece)
                if message is not None and limit and size > limit:
                    message = None  # too much: read to its end, keep nothing
                elif message is not None:
                    message += memoryview(piece)[:-3] if ends else piece
                if ends:
                    break
        finally:
            reader._limit = self.line_length_limit  # aiosmtpd's, for commands
        if message is None:
            return None
        unstuffed = message.replace(b"\r\n.", b"\r\n")
        del message  # at most two copies at once, however large
        del unstuffed[:2]
        return bytes(unstuffed)

    async def _call_handler_hook(self, command: str, *args):
        if command == "DATA" and self._transfer is not None:
            # The message is in: storing it has a deadline of its own (the handler's).
            self._transfer.cancel()
        return await super()._call_handler_hook(command, *args)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """The address of a MAIL or RCPT command and the rest of its line, as aiosmtpd
        reads it: a plain ``<local@domain>`` by a regular expression, anything else by
        the ``email`` package's parser, as aiosmtpd does. (aiosmtpd 1.4.6 also defines
        a class at every call, for its type hints; with the parser, that was 4-5 % of
        `ccm smtp`'s CPU.)"""
        if not arg:
            return "", ""
        if plain := _PLAIN_ADDRESS.match(arg):
            spec, rest = plain["spec"], arg[plain.end():]
        else:
            spec, rest = self._parse_address(arg)
        if spec is None or (self.local_part_limit and \
                len(spec.rpartition("@")[0]) > self.local_part_limit):
            return None, None
        return spec, rest

    @staticmethod
    def _parse_address(arg: str) -> tuple[str | None, str | None]:
        try:
            address, rest = (get_angle_addr if arg.lstrip().startswith("<")
                             else get_addr_spec)(arg)
        except HeaderParseError:
            return None, None
        return address.addr_spec, rest

    def _close(self, reply: str, why: str) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        log.info("%r: %s, closing", self.session.peer, why)
        self._writer.write(reply.format(host=self.hostname).encode() + b"\r\n")
        self.transport.close()  # sends what is written first, then ends the session


class Sessions:
    """The live sessions of one listener, to shut them down (used on its event loop)."""

    def __init__(self):
        self.live: set[Session] = set()
        self.stopping = False
        self._none_left = asyncio.Event()
        self._none_left.set()

    def add(self, session: Session) -> None:
        self.live.add(session)
        self._none_left.clear()
        if self.stopping:  # accepted just before the listener closed
            session.shut_down()

    def discard(self, session: Session) -> None:
        self.live.discard(session)
        if not self.live:
            self._none_left.set()

    async def shut_down(self, grace: float) -> None:
        """421 to every session not in DATA now, to the others once their DATA is
        answered; any left after ``grace`` seconds are cut with 421 all the same."""
        self.stopping = True
        for session in list(self.live):
            session.shut_down()
        try:
            await asyncio.wait_for(self._none_left.wait(), grace)
        except TimeoutError:
            log.warning("shutting down: %d session(s) still in DATA after %s s, cut",
                        len(self.live), grace)
            for session in list(self.live):
                session._close(SHUTTING_DOWN, "shutting down, grace period over")
            await asyncio.sleep(0)  # their connection_lost, before the loop stops
