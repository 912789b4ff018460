"""Addresses and domain names: one reading of each, for every part of CCM.

The gateway, the portal's forms and ``ccm config import`` all ask here what an address's
domain is, whether it is internal to a tenant, and whether a text is a domain name, so
they cannot disagree (``'acme .test'`` was a domain to the import and not to the
settings page).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from email.errors import MessageError
from email.headerregistry import Address

from app.words import N_, Words

#: one label of a host or domain name, as DNS allows it (RFC 1035, RFC 1123)
LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", re.ASCII)
#: the longest domain name (RFC 1035, written without the final dot)
MAX_DOMAIN = 253
#: one atom of a sender's local part: RFC 5322 atext without "%" and "!", which old
#: relays read as routes to another host (user%other@relay, other!user@relay)
SENDER_ATOM = re.compile(r"[A-Za-z0-9#$&'*+/=?^_`{|}~-]+", re.ASCII)
#: the longest local part (RFC 5321)
MAX_LOCAL = 64
#: what a display name (the name before <address> in From) may not hold: what would end
#: or fake the address, and the bidirectional controls that reorder what is shown
NAME_FORBIDDEN = frozenset('@<>"') | frozenset("\u202a\u202b\u202c\u202d\u202e"
                                                "\u2066\u2067\u2068\u2069\u200e\u200f")


def normalise(address: str) -> str:
    """The form an address is kept and compared in: no surrounding spaces, lower case."""
    return address.strip().lower()


def domain_of(address: str) -> str:
    """The domain of ``address`` (what follows the last ``@``), normalised."""
    return address.rpartition("@")[2].strip().lower()


def is_internal(address: str, domains: Iterable[str]) -> bool:
    """Whether ``address`` is at one of ``domains`` (a tenant's internal domains)."""
    return domain_of(address) in {d.lower() for d in domains}


def domain_problem(name: str) -> str | None:
    """Why ``name`` is not a domain name one can receive mail at; None when it is.

    At least two labels of letters, digits and hyphens (a name in another script is
    read in its ASCII form, ``xn--``), the last one not all digits, at most 253
    characters, no final dot.
    """
    text = name.strip().lower()
    if not text or text != name.lower() or any(c.isspace() for c in text):
        return Words(N_("%(name)s is not a domain name: it holds spaces."), name=repr(name))
    if text.endswith("."):
        return Words(N_("Write %(name)s without the final dot."), name=name)
    try:
        ascii_form = text.encode("idna").decode("ascii")
    except UnicodeError:
        return Words(N_("%(name)s is not a domain name."), name=name)
    labels = ascii_form.split(".")
    if len(ascii_form) > MAX_DOMAIN or len(labels) < 2 or \
            not all(LABEL.fullmatch(label) for label in labels) or labels[-1].isdigit():
        return Words(N_("%(name)s is not a domain name (such as example.com)."), name=name)
    return None


def sender_at(address: str, domains: Iterable[str]) -> bool:
    """Whether a sender address (ASCII, :func:`sender_problem`) is at one of ``domains``,
    a domain in another script matching its ASCII form (``xn--bcher-kva.example``)."""
    names = {d.lower() for d in domains}
    return domain_of(address) in names | {_ascii_domain(d) for d in names}


def _ascii_domain(name: str) -> str:
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name


def sender_problem(address: str) -> str | None:
    """Why ``address`` cannot be the From address of mail the gateway writes; None when
    it can.

    Only the plainest form: an ASCII dot-atom local part (letters, digits and
    ``#$&'*+/=?^_`{|}~-``, dots between them), one ``@`` and a domain name, which
    Python's own header parser reads back unchanged. Anything more (a second ``@``, a
    quoted or non-ASCII local part, controls) either makes a malformed header or one
    that cannot be sent at all.
    """
    local, _, domain = address.rpartition("@")
    shown = _shown(address)
    if address.count("@") != 1 or not local or not domain:
        return Words(N_("%(address)s cannot be a sender address: it needs exactly one @, with "
                        "a name before it and a domain after it."), address=shown)
    if not address.isascii():
        return Words(N_("%(address)s cannot be a sender address: use only ASCII letters, "
                        "digits and punctuation (many mail servers cannot take any other)."),
                     address=shown)
    if len(local) > MAX_LOCAL or not all(SENDER_ATOM.fullmatch(a) for a in local.split(".")):
        return Words(N_("%(address)s cannot be a sender address: before the @, use letters, "
                        "digits, dots (not first, last or two together) and - _ + (no "
                        "spaces, quotes, %% or !), at most %(most)s characters."),
                     address=shown, most=MAX_LOCAL)
    if domain_problem(domain):
        return Words(N_("%(address)s cannot be a sender address: %(domain)s is not a domain "
                        "name."), address=shown, domain=_shown(domain))
    try:
        parsed = Address(addr_spec=address)
    except (ValueError, MessageError):
        parsed = None
    if parsed is None or parsed.addr_spec != address or parsed.domain != domain:
        return Words(N_("%(address)s cannot be a sender address: it does not read back the "
                        "same."), address=shown)
    return None


def display_name_problem(name: str) -> str | None:
    """Why ``name`` cannot stand before the address in From (a portal or organisation
    name); None when it can. ``Bank <security@bank.example>`` would show as another
    sender's address, so no ``@ < > "``, no control characters and no bidirectional
    controls."""
    bad = sorted({c for c in name if c in NAME_FORBIDDEN
                  or unicodedata.category(c) in ("Cc", "Zl", "Zp")})
    if bad:
        return Words(N_("A name that goes in the From line of notifications cannot hold "
                        "%(characters)s."), characters=" ".join(_shown(c) for c in bad))
    return None


def _shown(text: str) -> str:
    """``text`` for an error message: what cannot be seen (a control, a bidirectional
    override) written as its code point, so the message shows it and is not changed
    by it."""
    return "".join(c if c.isprintable() else f"U+{ord(c):04X}" for c in text)
