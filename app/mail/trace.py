"""The ``Received:`` trace line the gateway adds to every message, and the hop count.

Each mail server a message passes adds one ``Received:`` line at the top (RFC 5321
section 4.4), so their number counts the hops it has made; a message that comes round
a loop gains one each time, and is refused once it has too many (as Postfix does with
``hopcount_limit``): a loop ends with a bounce instead of going on for ever.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import lru_cache

from app.mail import mime

#: a ``Received:`` line's start, in any case, blanks allowed before the colon, at the start
#: of a line as mime.strip_headers reads lines (after CRLF, LF or a bare CR)
_RECEIVED = re.compile(rb"(?:\A|(?<=[\r\n]))Received[ \t]*:", re.IGNORECASE)
#: what a client-given name may hold in a trace line: a host name or address literal
_NAME = re.compile(r"[A-Za-z0-9.\-_:\[\]]{1,255}")
#: what an address may hold in the ``for`` clause: printable ASCII, no brackets or blanks
_ADDRESS = re.compile(r"[!-;=?-~]{1,320}")


@dataclass(frozen=True)
class SmtpClient:
    """What the SMTP session knew about the client that handed the gateway a message."""

    helo: str = ""
    #: its address's reverse DNS name, when one was found
    name: str = ""
    #: EHLO rather than HELO
    esmtp: bool = True
    authenticated: bool = False


def hops(raw: bytes) -> int:
    """The ``Received:`` lines in the header section of ``raw``."""
    return len(_RECEIVED.findall(mime.header_block(raw)))


def host_name(configured: str = "") -> str:
    """The gateway's name in its trace lines: CCM_HELO_NAME, else the machine's FQDN."""
    return configured or _fqdn()


@lru_cache(maxsize=1)
def _fqdn() -> str:
    return socket.getfqdn()  # may ask DNS: once per process


def received(*, by: str, queue_id: str, via: str, client_address: str = "",
             tls: bool = False, smtp: SmtpClient | None = None, rcpt: str = "",
             when: datetime | None = None) -> bytes:
    """The ``Received:`` line for a message that arrived ``via`` SMTP, the portal or the
    command line, folded, with its CRLF.

    ``rcpt`` goes in the ``for`` clause: give it only when the message has one recipient
    (with more, it would show each of them the others, Bcc among them)."""
    literal = _address_literal(client_address)
    if via == "SMTP":
        smtp = smtp or SmtpClient()
        helo = smtp.helo if _NAME.fullmatch(smtp.helo or "") else "unknown"
        name = f"{smtp.name} " if _NAME.fullmatch(smtp.name or "") else ""
        origin = f"from {helo} ({name}{literal or 'unknown'})\r\n\t"
        protocol = ("ESMTP" if smtp.esmtp or tls else "SMTP") + \
            ("S" if tls else "") + ("A" if smtp.authenticated else "")
        stamp = f"by {by} (CCM) with {protocol}"
    elif via == "portal":
        origin = f"from {literal}\r\n\t" if literal else ""
        stamp = f"by {by} (CCM, written in the portal) with {'HTTPS' if tls else 'HTTP'}"
    else:
        origin, stamp = "", f"by {by} (CCM, {via})"
    target = f"\r\n\tfor <{rcpt}>" if _ADDRESS.fullmatch(rcpt) else ""
    when = when or datetime.now(UTC)
    date = format_datetime(when.replace(microsecond=0, tzinfo=when.tzinfo or UTC))
    return f"Received: {origin}{stamp} id {queue_id}{target};\r\n\t{date}\r\n".encode()


def _address_literal(client_address: str) -> str:
    """``[192.0.2.1]`` or ``[IPv6:2001:db8::1]`` (RFC 5321 section 4.1.3); "" for what
    is not an address (``ccm send``, "portal")."""
    try:
        address = ipaddress.ip_address(client_address)
    except ValueError:
        return ""
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    return f"[IPv6:{address}]" if address.version == 6 else f"[{address}]"
