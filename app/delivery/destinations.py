"""Where a message may go: a domain's MX hosts, a relay's addresses, and which of them
the gateway may connect to.

The gateway connects where others point it: a domain's owner writes its MX records, and
a tenant administrator types the internal relay. Neither may aim it at itself or inside
the network it runs in, so every address is checked against one rule
(:func:`may_connect`) right before a connection, and a tenant administrator's relay once
more when it is saved (:func:`relay_refusal`).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass

import dns.exception
import dns.resolver

from app.config import networks, smtp_listener
from app.config_values import host_and_port
from app.mail import addresses
from app.words import N_, Words


@dataclass(frozen=True)
class RemoteAnswer:
    """What a mail server answered, in its own words: ``host`` said ``reply``
    ("550 5.1.1 No such user"), as a bounce report quotes it (RFC 3464's Remote-MTA and
    Diagnostic-Code)."""

    host: str
    reply: str


class DeliveryFailed(Exception):
    """The next hop refused the message, or could not be reached: ``reply`` says why;
    ``remote`` is the server's own answer when one refused it."""

    def __init__(self, reply: str, *, permanent: bool, remote: RemoteAnswer | None = None):
        super().__init__(reply)
        self.reply = reply
        self.permanent = permanent
        self.remote = remote


@dataclass(frozen=True)
class Options:
    """What the transport needs from the configuration."""

    dns_servers: str = ""
    delivery_port: int = 25
    helo_name: str = ""
    timeout: float = 60
    ca_file: str = ""
    #: networks that are not public but where an MX host may be (CCM_MX_ALLOWED_NETWORKS)
    allowed_networks: tuple = ()
    #: networks that are not public but where a tenant administrator may put the
    #: internal relay (CCM_TENANT_RELAY_ALLOWED_NETWORKS)
    relay_networks: tuple = ()
    #: where the gateway's own SMTP ingress listens (CCM_SMTP_LISTEN): never a next hop
    own_listener: str = ""

    @classmethod
    def from_config(cls, config) -> Options:
        return cls(config["DNS_SERVERS"], config["SMTP_DELIVERY_PORT"], config["HELO_NAME"],
                   config["SMTP_TIMEOUT"], config["TLS_CA_FILE"],
                   networks(config["MX_ALLOWED_NETWORKS"]),
                   networks(config["TENANT_RELAY_ALLOWED_NETWORKS"]), config["SMTP_LISTEN"])


# --- DNS -------------------------------------------------------------------------------


def resolver(options: Options) -> dns.resolver.Resolver:
    if not options.dns_servers:
        return dns.resolver.Resolver()
    result = dns.resolver.Resolver(configure=False)
    result.nameservers, result.nameserver_ports = [], {}
    for server in options.dns_servers.split(","):
        host, port = _host_port(server.strip())
        result.nameservers.append(host)
        if port:
            result.nameserver_ports[host] = port
    result.lifetime = 10
    return result


#: how long a look-up of an administrator's published record may wait: a web request
#: ("Check now") waits on it
TXT_TIMEOUT = 5.0


def txt_records(name: str, dns_servers: str, *, timeout: float = TXT_TIMEOUT) -> list[str]:
    """The TXT records at ``name`` (a CNAME followed), each one's strings joined; none
    when the name or its TXT set does not exist. Other DNS failures raise (the callers,
    proofs an administrator published, say what happened: :func:`lookup_failed`)."""
    looking = resolver(Options(dns_servers=dns_servers))
    looking.lifetime = timeout
    try:
        answer = looking.resolve(name, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]


def lookup_failed(name: str, error: dns.exception.DNSException) -> Words:
    """What to tell an administrator when DNS gave no answer for ``name``."""
    if isinstance(error, dns.exception.Timeout):
        return Words(N_("DNS did not answer for %(name)s in time. Nothing changed; try "
                        "again in a few minutes."), name=name)
    return Words(N_("DNS could not answer for %(name)s (%(error)s). Nothing changed; try "
                    "again in a few minutes."),  # SERVFAIL from every server, ...
                 name=name, error=type(error).__name__)


def _host_port(server: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address (as the setting's
    check read it at start)."""
    host, port = host_and_port(server)
    return host, int(port) if port else None


def mx_hosts(domain: str, options: Options) -> list[tuple[str, list[str]]]:
    """The mail servers of ``domain`` by MX preference, each with its addresses.

    No MX record means the domain itself (RFC 5321 section 5.1); a null MX (RFC 7505)
    or a domain that does not exist is a permanent failure; a DNS time-out a temporary one.
    """
    look_up = resolver(options)
    try:
        answer = look_up.resolve(domain, "MX")
        records = sorted(answer, key=lambda record: record.preference)
        names = [r.exchange.to_text(omit_final_dot=True) for r in records]
    except dns.resolver.NXDOMAIN:
        raise DeliveryFailed(f"5.1.2 Domain {domain} does not exist", permanent=True) from None
    except dns.resolver.NoAnswer:
        names = [domain]
    except (dns.exception.Timeout, dns.resolver.NoNameservers) as error:
        raise DeliveryFailed(f"4.4.3 DNS look-up of {domain} failed: {error}",
                             permanent=False) from None
    except dns.exception.SyntaxError:  # a label over 63 characters, an empty one, ...
        raise DeliveryFailed(f"5.1.2 {domain} is not a valid domain name",
                             permanent=True) from None
    except dns.exception.DNSException as error:
        raise DeliveryFailed(f"4.4.3 DNS look-up of {domain} failed: {error}",
                             permanent=False) from None
    if names in ([""], ["."]):
        raise DeliveryFailed(f"5.1.10 Domain {domain} accepts no mail (null MX)",
                             permanent=True)
    found = [(name, _addresses(look_up, name)) for name in names]
    # The domain's owner writes its DNS: an MX at 127.0.0.1 or 10.0.0.5 would send the
    # message back into this gateway (a loop) or to a host inside the network.
    hosts = [(name, [a for a in addresses if may_connect(a, options.allowed_networks)])
             for name, addresses in found]
    if not any(addresses for _, addresses in hosts) and any(a for _, a in found):
        raise DeliveryFailed(f"5.4.4 The mail servers of {domain} have no public address",
                             permanent=True)
    return hosts


def _addresses(look_up: dns.resolver.Resolver, name: str) -> list[str]:
    found = []
    for record_type in ("A", "AAAA"):
        try:
            found += [r.address for r in look_up.resolve(name, record_type)]
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            continue
        except (dns.exception.Timeout, dns.resolver.NoNameservers):
            continue
    return found


def _addresses_by_system(host: str) -> list[str]:
    try:
        return list(dict.fromkeys(info[4][0] for info in socket.getaddrinfo(
            host, None, type=socket.SOCK_STREAM)))
    except (OSError, UnicodeError):
        return []


# --- where the gateway may connect -----------------------------------------------------

#: the ports SMTP relays listen on (RFC 5321, RFC 6409, and the usual alternative): the
#: only ones a tenant administrator may aim the gateway at
RELAY_PORTS = (25, 587, 2525)
#: the longest relay, as :class:`Relay` writes it (the column that keeps it)
RELAY_LENGTH = 255

_RELAY = re.compile(r"smtp://(?:\[(?P<ipv6>[0-9a-f:.]+)\]|(?P<host>[a-z0-9.-]+))"
                    r"(?::(?P<port>[0-9]{1,5}))?", re.ASCII)
#: IPv6 prefixes whose last 32 bits are an IPv4 address the packet reaches: NAT64, the
#: well-known prefix and the local-use one (RFC 6052, RFC 8215), IPv4-translated
#: addresses (RFC 2765) and the deprecated IPv4-compatible ones
_CARRY_IPV4 = tuple(ipaddress.ip_network(n) for n in (
    "64:ff9b::/96", "64:ff9b:1::/48", "::ffff:0:0:0/96", "::/96"))
#: ranges that are never public, whatever this Python's ``is_global`` says of them
#: (its answers have changed between versions): IPv6 site-local (RFC 3879)
_NEVER_PUBLIC = (ipaddress.ip_network("fec0::/10"),)


@dataclass(frozen=True)
class Relay:
    """An SMTP relay: a host name (lower case) or an IP address, and a port."""

    host: str
    port: int = 25

    def __str__(self) -> str:
        return f"smtp://{f'[{self.host}]' if ':' in self.host else self.host}:{self.port}"


def parse_relay(value: str) -> Relay:
    """``smtp://host`` or ``smtp://host:port`` and nothing else, or ValueError saying why not.

    The host is an IPv4 address in full, an IPv6 address in brackets, or a host name
    whose last label starts with a letter: the shorthands the system resolver would read
    as addresses (2130706433, 0x7f.1, 017700000001, 127.1) are none of these. No user
    name, path, spaces or final dot: nothing that one parser reads differently from another.
    """
    match = _RELAY.fullmatch(value.lower()) if value.isascii() else None
    if match is None:
        raise ValueError(Words(N_("Use smtp://host or smtp://host:port, with nothing else in it.")))
    port = int(match["port"] or 25)
    if not 1 <= port <= 65535:
        raise ValueError(Words(N_("A port is a number from 1 to 65535.")))
    relay = Relay(_relay_host(match["ipv6"], match["host"]), port)
    if len(str(relay)) > RELAY_LENGTH:
        raise ValueError(Words(N_("Too long: a relay written as smtp://host:port has at most "
                                  "%(most)s characters."), most=RELAY_LENGTH))
    return relay


def _relay_host(ipv6: str | None, host: str | None) -> str:
    if ipv6 is not None:
        try:
            return str(ipaddress.IPv6Address(ipv6))
        except ValueError:
            raise ValueError(Words(N_("[%(address)s] is not an IPv6 address."),
                                   address=ipv6)) from None
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    if host.endswith("."):
        raise ValueError(Words(N_("Write the host name without the final dot.")))
    labels = host.split(".")
    if len(host) > 253 or not all(addresses.LABEL.fullmatch(label) for label in labels) \
            or not labels[-1][0].isalpha():
        raise ValueError(Words(N_("%(host)s is neither a host name (such as relay.example.com) "
                                  "nor an IP address written in full (such as 192.0.2.10)."),
                               host=host))
    return host


def may_connect(address: str, allowed_networks: tuple) -> bool:
    """Whether the gateway may connect to ``address`` on behalf of someone other than the
    operator (a domain's DNS, a tenant administrator): a public unicast address, or one
    in ``allowed_networks``. An IPv6 address that carries an IPv4 one (mapped, 6to4,
    NAT64) is judged by the IPv4 address it reaches."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    reached = _reached(ip)
    public = reached.is_global and not reached.is_multicast and \
        not any(reached in network for network in _NEVER_PUBLIC
                if network.version == reached.version)
    return public or any(a in network for a in (ip, reached) for network in allowed_networks)


def _reached(ip: ipaddress.IPv4Address | ipaddress.IPv6Address):
    if ip.version == 4:
        return ip
    if ip.ipv4_mapped or ip.sixtofour:
        return ip.ipv4_mapped or ip.sixtofour
    if any(ip in prefix for prefix in _CARRY_IPV4):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def relay_addresses(host: str, options: Options, *, restricted: bool = True) -> list[str]:
    """The addresses of a relay's host: an IP address is its own; a name a tenant
    administrator set is looked up in CCM_DNS_SERVERS when set (as MX hosts are), so the
    check sees what the gateway would; the operator's own relays by the system resolver,
    as before, so a name in /etc/hosts still works."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    if options.dns_servers and restricted:
        return _addresses(resolver(options), host)
    return _addresses_by_system(host)


def relay_refusal(relay: Relay, options: Options) -> str | None:
    """Why a tenant administrator may not aim the gateway at ``relay``; None if they may.

    The port must be an SMTP relay's, and every address the host has now public or in
    CCM_TENANT_RELAY_ALLOWED_NETWORKS. The answer never says what a name resolved to,
    nor whether it resolved at all: that would let a tenant administrator read the
    gateway's internal DNS.
    """
    if relay.port not in RELAY_PORTS:
        return Words(N_("Use port %(ports)s or %(last)s; the platform administrator can set "
                        "another."), ports=", ".join(map(str, RELAY_PORTS[:-1])),
                     last=str(RELAY_PORTS[-1]))  # a port, not a quantity
    addresses = relay_addresses(relay.host, options)
    if not addresses or not all(may_connect(a, options.relay_networks) for a in addresses):
        if addresses == [relay.host]:
            return Words(N_("%(host)s is not a public address. Use a relay at a public "
                            "address, or ask the operator to allow its network."),
                         host=relay.host)
        return Words(N_("%(host)s must resolve to public addresses only. Use a relay at a "
                        "public address, or ask the operator to allow its network."),
                     host=relay.host)
    return None


def loops_back(address: str, port: int, listen: str) -> bool:
    """Whether connecting to ``address`` and ``port`` reaches the gateway's own SMTP
    ingress, listening on ``listen`` (host:port, as CCM_SMTP_LISTEN): the message would
    come straight back. A listener on 0.0.0.0 (or ::) takes every address of this
    machine (:: its IPv4 ones too, as Linux's dual-stack sockets do); an address is this
    machine's when a socket can be bound to it. A public address that a NAT forwards to
    the gateway cannot be seen from here."""
    try:
        host, listen_port = smtp_listener(listen)
        target = _unmapped(ipaddress.ip_address(address))
    except ValueError:
        return False
    if listen_port != port:
        return False
    for listening in _addresses_by_system(host):
        ip = _unmapped(ipaddress.ip_address(listening.partition("%")[0]))
        if ip == target or (ip.is_unspecified and (ip.version == 6 or target.version == 4)
                            and _is_local(target)):
            return True
    return False


def _unmapped(ip: ipaddress.IPv4Address | ipaddress.IPv6Address):
    """The address a connection to ``ip`` reaches: an IPv4-mapped one's IPv4 address."""
    return ip.ipv4_mapped if ip.version == 6 and ip.ipv4_mapped else ip


def _is_local(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((str(ip), 0))
        return True
    except OSError:
        return False
