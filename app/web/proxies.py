"""Who the client is when reverse proxies stand in front of the portal.

Each proxy appends the address it sees to ``X-Forwarded-For``, after whatever list the
client sent. ``CCM_PROXY_HOPS`` says how many entries, from the right, proxies wrote;
that count holds only for a request that came through them, since someone who connects
to the portal directly writes every entry. So the ``X-Forwarded-*`` headers are read
only when the peer is in ``CCM_PROXY_NETWORKS`` (where the nearest proxy connects
from), and removed from every other request, so that nothing further in (the access
log, the sign-in throttle, Flask) ever sees a forged one.

This is the one place that reads them: waitress hands them over as they came
(app/cli.py). Waitress's own ``trusted_proxy`` could do the reading, but it trusts one
exact address, not a pair of load balancers or a subnet, and it does nothing for a
portal run under another WSGI server (wsgi.py).
"""

from __future__ import annotations

import ipaddress
import logging

from werkzeug.middleware.proxy_fix import ProxyFix

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """WSGI middleware: the client's address, scheme and host as the proxies saw them."""

    def __init__(self, app, hops: int, trusted: tuple[Network, ...]):
        self.app = app
        self.trusted = trusted if hops > 0 else ()
        self.forwarded = ProxyFix(self._checked, x_for=hops, x_proto=hops, x_host=hops)
        self._warned = False

    def __call__(self, environ, start_response):
        if within(environ.get("REMOTE_ADDR"), self.trusted):
            return self.forwarded(environ, start_response)
        forwarded = [key for key in environ
                     if key.startswith("HTTP_X_FORWARDED_") or key == "HTTP_FORWARDED"]
        if forwarded and self.trusted and not self._warned:
            # Once per process: enough to point an operator at the setting, too little
            # for a client sending these headers on purpose to flood the log.
            self._warned = True
            log.warning("X-Forwarded-* headers from %s ignored: not in CCM_PROXY_NETWORKS",
                        environ.get("REMOTE_ADDR"))
        for key in forwarded:
            del environ[key]
        return self.app(environ, start_response)

    def _checked(self, environ, start_response):
        """Keep the peer's address when the forwarded one is not an address at all: with
        more hops configured than there are proxies, the client wrote that entry."""
        if _address(environ.get("REMOTE_ADDR")) is None:
            environ["REMOTE_ADDR"] = environ["werkzeug.proxy_fix.orig"]["REMOTE_ADDR"]
        return self.app(environ, start_response)


def _address(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text or "")
    except ValueError:
        return None
    # A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d.
    return getattr(address, "ipv4_mapped", None) or address


def within(peer: str | None, trusted: tuple[Network, ...]) -> bool:
    address = _address(peer)
    return address is not None and any(address in network for network in trusted)
