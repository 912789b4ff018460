"""The portal on waitress, and its drain when the process stops.

waitress's own ``run()`` ends only on an exception and then drops what is in flight:
its task threads get five seconds, and a response still in a channel's buffer is never
sent, since the loop that writes it has stopped. So the portal runs waitress's loop
itself until it is told to stop, then drains: the listening sockets close (new
connections are refused; a load balancer sends them elsewhere), the loop goes on until
every request already received, or still arriving, has been answered and its response
sent, closing each idle keep-alive connection, for the grace period at most
(CCM_SHUTDOWN_GRACE); connections still busy then are cut.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import waitress
from flask import Flask
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer

log = logging.getLogger(__name__)


class Portal:
    """A waitress server for ``app``, run by :meth:`serve_until`, then :meth:`drain`."""

    def __init__(self, app: Flask, *, listen: str, threads: int):
        self.map: dict = {}
        # X-Forwarded-* pass through untouched: app/web/proxies.py alone decides whose to
        # believe (CCM_PROXY_HOPS, CCM_PROXY_NETWORKS) and removes all others.
        self.server = waitress.create_server(app, map=self.map, listen=listen,
                                             threads=threads, ident="ccm",
                                             clear_untrusted_proxy_headers=False)
        self.adj = self.server.adj
        self.listeners = [d for d in self.map.values() if isinstance(d, BaseWSGIServer)]

    def serve_until(self, stopped: Callable[[], bool]) -> None:
        """Serve until ``stopped()`` (and :meth:`wake` called, to end the wait now)."""
        while not stopped():
            wasyncore.loop(timeout=self.adj.asyncore_loop_timeout, map=self.map,
                           use_poll=self.adj.asyncore_use_poll, count=1)

    def wake(self) -> None:
        """End the loop's current wait (safe in a signal handler: one write to a pipe)."""
        self.listeners[0].trigger.pull_trigger()

    def drain(self, grace: float) -> None:
        """Stop accepting, finish what is in flight within ``grace`` seconds, stop."""
        deadline = time.monotonic() + grace
        for listener in self.listeners:
            wasyncore.dispatcher.close(listener)  # the socket only; the trigger stays
        wait = 0.0  # first read what has arrived: a request begun is not idle
        while (channels := self._channels()) and time.monotonic() < deadline:
            wasyncore.loop(timeout=wait, map=self.map, use_poll=self.adj.asyncore_use_poll,
                           count=1)
            for channel in self._channels():
                if _idle(channel):
                    channel.will_close = True  # closed at the loop's next turn
            wait = min(self.adj.asyncore_loop_timeout, max(0.0, deadline - time.monotonic()))
        if channels:
            log.warning("stopping: %d portal connection(s) still busy after %s s, cut",
                        len(channels), grace)
        self.server.task_dispatcher.shutdown(timeout=max(0.0, deadline - time.monotonic()))
        wasyncore.close_all(self.map)

    def _channels(self) -> list[HTTPChannel]:
        return [d for d in list(self.map.values()) if isinstance(d, HTTPChannel)]


def _idle(channel: HTTPChannel) -> bool:
    """No request being received, answered or sent on this connection."""
    return not (channel.requests or channel.request is not None
                or channel.total_outbufs_len)
