"""How each kind of setting is read: a function of the text, giving the value to use or
ValueError saying why not (app/config.py names which setting is of which kind)."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError


def whole_number(least: int, most: int | None):
    def read(text: str) -> int:
        if not re.fullmatch(r"[+-]?[0-9]+", str(text).strip(), re.ASCII):
            raise ValueError(f"{text!r} is not a whole number")
        number = int(text)
        if number < least or (most is not None and number > most):
            raise ValueError(f"{number} is out of range: use {least} to {most}"
                             if most is not None else f"{number} is less than {least}")
        return number

    return read


def database_url(text: str) -> str:
    """A SQLAlchemy URL of SQLite or PostgreSQL whose driver is installed."""
    try:
        url = make_url(text)
        dialect = url.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError):
        raise ValueError("not a database URL such as postgresql+psycopg://ccm:PASSWORD@"
                         "host/ccm or sqlite:////var/lib/ccm/ccm.sqlite3") from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"{url.get_backend_name()} is not supported: use PostgreSQL "
                         f"or SQLite")
    try:
        dialect.import_dbapi()
    except ImportError:
        raise ValueError(f"the driver {url.drivername} is not installed (for PostgreSQL: "
                         f"pip install 'ccm[postgres]' and postgresql+psycopg://)") from None
    return text


def web_address(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc \
            or "?" in text or "#" in text or " " in text:  # an empty query too
        raise ValueError(f"{text!r} is not an address such as https://mail.example.com")
    try:
        parts.port  # noqa: B018  (reading it checks it)
    except ValueError:
        raise ValueError(f"{text!r} has a port that is not a number from 0 to 65535") \
            from None
    return text


def host_and_port(text: str) -> tuple[str, str | None]:
    """``host:port``, ``[v6]:port``, or a host (a bare IPv6 address too) without a port."""
    if text.startswith("["):
        host, closed, rest = text[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r} is not [IPv6 address]:port")
        return host, rest[1:] if rest else None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, port
    return text, None


def _port(text: str, port: str | None) -> None:
    if port is None or not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(f"{text!r} does not end with :PORT, a number from 1 to 65535")


def listen(*, several: bool):
    def read(text: str) -> str:
        addresses = text.split()
        if len(addresses) > 1 and not several:
            raise ValueError(f"{text!r} is not one address such as 127.0.0.1:2525")
        for address in addresses:
            host, port = host_and_port(address)
            _port(address, port)
            if host not in ("", "*") and not re.fullmatch(r"[A-Za-z0-9.:-]+", host):
                raise ValueError(f"{address!r}: {host!r} is neither a host name nor an "
                                 f"address")
        return text

    return read


def dns_servers(text: str) -> str:
    for server in filter(None, (part.strip() for part in text.split(","))):
        host, port = host_and_port(server)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{server!r}: {host!r} is not an IP address") from None
        if port is not None:
            _port(server, port)
    return text


def rate_limit_storage(text: str) -> str:
    from limits.storage import SCHEMES  # Flask-Limiter's own list of what it can use

    scheme = urlsplit(text).scheme
    if "://" not in text or scheme not in SCHEMES or scheme.startswith("async+"):
        raise ValueError(f"{text!r} is not a storage such as memory:// or "
                         f"redis://host:6379")
    return text


def host_name(text: str) -> str:
    labels = text.rstrip(".").split(".")
    if not all(re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?", label, re.ASCII)
               for label in labels):
        raise ValueError(f"{text!r} is not a host name such as mail.example.com")
    return text


def mail_address(text: str) -> str:
    local, at, domain = text.rpartition("@")
    if not at or not local or any(c.isspace() or c in "<>,;\"" for c in text):
        raise ValueError(f"{text!r} is not an address such as postmaster@example.com")
    host_name(domain)
    return text


def one_of(*choices: str):
    def read(text: str) -> str:
        if text not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return text

    return read
