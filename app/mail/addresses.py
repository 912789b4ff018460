"""Addresses and domain names: one reading of each, for every part of CCM.

The gateway, the portal's forms and ``ccm config import`` all ask here what an address's
domain is, whether it is internal to a tenant, and whether a text is a domain name, so
they cannot disagree (``'acme .test'`` was a domain to the import and not to the
settings page).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: one label of a host or domain name, as DNS allows it (RFC 1035, RFC 1123)
LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", re.ASCII)
#: the longest domain name (RFC 1035, written without the final dot)
MAX_DOMAIN = 253


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
        return f"{name!r} is not a domain name: it holds spaces."
    if text.endswith("."):
        return f"Write {name} without the final dot."
    try:
        ascii_form = text.encode("idna").decode("ascii")
    except UnicodeError:
        return f"{name} is not a domain name."
    labels = ascii_form.split(".")
    if len(ascii_form) > MAX_DOMAIN or len(labels) < 2 or \
            not all(LABEL.fullmatch(label) for label in labels) or labels[-1].isdigit():
        return f"{name} is not a domain name (such as example.com)."
    return None
