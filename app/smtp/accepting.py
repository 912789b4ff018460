"""Accepting from a listening socket that sibling processes accept from too.

asyncio accepts every connection waiting (up to 100) each time the socket is ready, so
the process that wakes first takes a burst of connections all: four clients connecting
at once went to one ``ccm smtp`` process of two, which then received with one core
while the other sat idle, for as long as the clients kept their connections (Postfix
keeps them for many messages). Here a process takes one connection at a time, and one
already serving sessions first steps back a moment for each, so the least busy sibling
takes it (as nginx's workers hold back by their connections), with no state shared
between the processes: when no sibling takes it, this one does after the pause.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable

log = logging.getLogger(__name__)

#: seconds a process steps back for each session it serves before it accepts
STEP_BACK = 0.001
#: the longest step back. It bounds how fast a busy process accepts (one connection a
#: step back: 200 a second, each process), so it is short: a sibling with no session
#: takes a connection at once, and beyond 5 sessions the busy ones take turns by chance
LONGEST_STEP_BACK = 0.005
#: connections the kernel keeps waiting to be accepted (asyncio's own default)
BACKLOG = 100
#: seconds to stop accepting when accept fails (no file descriptor or memory left for
#: another connection, say), as asyncio does: the socket stays ready, which would spin
PAUSE_AFTER_FAILING = 1.0


class TakingTurns:
    """Accepts the connections of ``listening`` one at a time for ``protocol_factory``,
    stepping back for the ``busy()`` sessions this process already serves."""

    def __init__(self, loop: asyncio.AbstractEventLoop, listening: socket.socket,
                 protocol_factory: Callable[[], asyncio.Protocol], *,
                 busy: Callable[[], int], ssl_context: ssl.SSLContext | None = None):
        self.loop = loop
        self.listening = listening
        self.protocol_factory = protocol_factory
        self.busy = busy
        self.ssl_context = ssl_context
        self.later: asyncio.TimerHandle | None = None
        listening.setblocking(False)
        listening.listen(BACKLOG)  # as a server that starts serving would
        self._watch()

    def close(self) -> None:
        """Accept no more, and close this process's hold on the socket."""
        if self.listening.fileno() == -1:
            return  # closed already
        if self.later is not None:
            self.later.cancel()
        self.loop.remove_reader(self.listening.fileno())
        self.listening.close()

    def _watch(self) -> None:
        self.later = None
        self.loop.add_reader(self.listening.fileno(), self._ready)

    def _ready(self) -> None:
        pause = min(LONGEST_STEP_BACK, STEP_BACK * self.busy())
        if not pause:
            self._accept()
            return
        self.loop.remove_reader(self.listening.fileno())
        self.later = self.loop.call_later(pause, self._after_stepping_back)

    def _after_stepping_back(self) -> None:
        if self._accept():
            self._watch()

    def _accept(self) -> bool:
        """Take one connection, if a sibling did not take it first; False when accepting
        stops for a while."""
        try:
            connection, _ = self.listening.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return True  # a sibling took it, or its client gave up
        except OSError as error:
            log.error("cannot accept an SMTP connection (%s): accepting again in %.0f s",
                      error, PAUSE_AFTER_FAILING)
            self.loop.remove_reader(self.listening.fileno())
            self.later = self.loop.call_later(PAUSE_AFTER_FAILING, self._watch)
            return False
        connection.setblocking(False)
        self.loop.create_task(self._serve(connection))
        return True

    async def _serve(self, connection: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(self.protocol_factory, connection,
                                                    ssl=self.ssl_context)
        except (OSError, ssl.SSLError) as error:  # a TLS handshake that failed, say
            log.info("an SMTP connection ended before its session began: %s", error)
            connection.close()
