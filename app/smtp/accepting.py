"""Accepting from a listening socket that sibling processes accept from too.

asyncio accepts every connection waiting (up to 100) each time the socket is ready, so
the process that wakes first takes a burst of connections all: four clients connecting
at once went to one ``ccm smtp`` process of two, which then received with one core
while the other sat idle, for as long as the clients kept their connections (Postfix
keeps them for many messages). Here a process takes its share of what is waiting (the
waiting connections divided by the processes), and one already serving sessions first
steps back a moment for each, so the least busy sibling takes the next (as nginx's
workers hold back by their connections), with no state shared between the processes.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import struct
from collections.abc import Callable

log = logging.getLogger(__name__)

#: seconds a process steps back for each session it serves before it accepts: long
#: enough for a sibling kept off the CPU a while (a loaded machine) to get there first
STEP_BACK = 0.002
#: the longest step back: a sibling with no session takes a connection at once, and
#: beyond 10 sessions the busy ones take turns by chance (each then takes its share of
#: what waits, so a flood is not accepted one connection a step back)
LONGEST_STEP_BACK = 0.02
#: connections the kernel keeps waiting to be accepted (asyncio's own default)
BACKLOG = 100
#: seconds to stop accepting when the system has no file descriptor or memory left for
#: another connection (as asyncio does): the socket stays ready, which would spin
PAUSE_AFTER_FAILING = 1.0
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
#: errors of the connection being accepted, not of the socket: accept(2) says to take
#: them as "try again"
_CONNECTION_ERRORS = (errno.EPROTO, errno.ENOPROTOOPT, errno.EHOSTDOWN, errno.ENONET,
                      errno.EHOSTUNREACH, errno.EOPNOTSUPP, errno.ENETDOWN,
                      errno.ENETUNREACH)


class TakingTurns:
    """Accepts the connections of ``listening`` for ``protocol_factory``, this process's
    share of them: stepping back for the ``busy()`` sessions it already serves, then
    taking what waits divided by the ``processes`` accepting from the socket."""

    def __init__(self, loop: asyncio.AbstractEventLoop, listening: socket.socket,
                 protocol_factory: Callable[[], asyncio.Protocol], *,
                 busy: Callable[[], int], processes: int):
        self.loop = loop
        self.listening = listening
        self.protocol_factory = protocol_factory
        self.busy = busy
        self.processes = processes
        #: the step back or the pause after failing, while one is under way
        self._timer: asyncio.TimerHandle | None = None
        #: connections accepted whose sessions are being set up (and asyncio keeps only
        #: weak references to its tasks)
        self.starting: set[asyncio.Task] = set()
        listening.setblocking(False)
        listening.listen(BACKLOG)  # as a server that starts serving would
        self._watch()

    def close(self) -> None:
        """Accept no more, and close this process's hold on the socket."""
        if self.listening.fileno() == -1:
            return  # closed already
        if self._timer is not None:
            self._timer.cancel()
        self.loop.remove_reader(self.listening.fileno())
        self.listening.close()

    def _watch(self) -> None:
        self._timer = None
        self.loop.add_reader(self.listening.fileno(), self._ready)

    def _ready(self) -> None:
        # a connection just accepted is not a session yet, but it is this process's
        pause = min(LONGEST_STEP_BACK, STEP_BACK * (self.busy() + len(self.starting)))
        if not pause:
            self._accept_share()
            return
        self.loop.remove_reader(self.listening.fileno())
        self._timer = self.loop.call_later(pause, self._after_stepping_back)

    def _after_stepping_back(self) -> None:
        if self._accept_share():
            self._watch()

    def _accept_share(self) -> bool:
        """Take this process's share of the connections waiting (one at least), those a
        sibling did not take first; False when accepting stops for a while."""
        for _ in range(max(1, waiting(self.listening) // self.processes)):
            try:
                connection, _ = self.listening.accept()
            except BlockingIOError:
                return True  # a sibling took them
            except ConnectionAbortedError:
                continue  # its client gave up
            except OSError as error:
                if error.errno in _CONNECTION_ERRORS:
                    continue
                return self._pause(error)
            connection.setblocking(False)
            task = self.loop.create_task(self._serve(connection))
            self.starting.add(task)
            task.add_done_callback(self.starting.discard)
        return True

    def _pause(self, error: OSError) -> bool:
        """Stop accepting for PAUSE_AFTER_FAILING seconds: the socket stays ready."""
        how = "no resources left" if error.errno in _OUT_OF_RESOURCES else "the socket failed"
        log.error("cannot accept an SMTP connection (%s: %s): accepting again in %.0f s",
                  how, error, PAUSE_AFTER_FAILING)
        self.loop.remove_reader(self.listening.fileno())
        self._timer = self.loop.call_later(PAUSE_AFTER_FAILING, self._watch)
        return False

    async def _serve(self, connection: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(self.protocol_factory, connection)
        except Exception as error:  # the client gone before its session began, say
            log.info("an SMTP connection ended before its session began: %s", error)
            connection.close()
        except asyncio.CancelledError:  # stopped without a graceful shutdown
            connection.close()
            raise


def waiting(listening: socket.socket) -> int:
    """The connections waiting to be accepted: on Linux what TCP_INFO says of a listening
    socket (its ``tcpi_unacked``); 1 where it cannot be asked."""
    try:
        info = listening.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        return struct.unpack_from("8x6I", info)[4]
    except (OSError, AttributeError, struct.error):
        return 1
