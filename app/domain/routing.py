"""The routing decision for one recipient: the gateway and the admin's policy tester call this.

Policies are evaluated in the administrator's order. The first *route* or *content*
policy that matches sends the recipient by CCM, whatever CCM mode the sender chose
(``off`` included). A *secure delivery* policy does not decide the route by itself: the
first one that matches sets the TLS requirement for an ordinary delivery. Failing a
policy, the sender's CCM mode decides; failing that, internal recipients go to the
internal relay and external ones out by MX.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.models import Policy, Tenant

#: the sender's CCM mode: from the portal composer, or X-CCM-Mode from a mail client
MODES = ("off", "external", "all")


@dataclass(frozen=True)
class Content:
    """What content policies look at."""

    subject: str = ""
    body_text: str = ""


@dataclass(frozen=True)
class Decision:
    """The route for one recipient and why."""

    route: str  # "ccm", "internal" or "external"
    reason: str
    policy: Policy | None = None
    tls: str | None = None  # "encrypt" or "verify", for an external delivery
    fallback: str | None = None  # "ccm" or "bounce", when that TLS cannot be had


def address_matches(pattern: str | None, address: str, tenant: Tenant, *,
                    default: str) -> bool:
    """Whether ``address`` fits ``pattern``: an address, ``*@domain``, internal, external, *."""
    pattern = (pattern or default).strip().lower()
    address = address.strip().lower()
    if pattern == "*":
        return True
    if pattern == "internal":
        return tenant.is_internal(address)
    if pattern == "external":
        return not tenant.is_internal(address)
    if pattern.startswith("*@"):
        return address.rpartition("@")[2] == pattern[2:]
    return address == pattern


def applies(policy: Policy, sender: str, recipient: str, tenant: Tenant) -> bool:
    """Whether the policy's sender and recipient patterns fit (not its content)."""
    return policy.enabled and address_matches(
        policy.from_pattern, sender, tenant, default="*"
    ) and address_matches(policy.to_pattern, recipient, tenant, default="external")


def phrase_found(policy: Policy, content: Content) -> str | None:
    """The first of the policy's phrases found (case-insensitively) where it looks."""
    places = []
    if "subject" in policy.where:
        places.append(content.subject.casefold())
    if "body" in policy.where:
        places.append(content.body_text.casefold())
    for phrase in policy.phrases:
        if phrase.strip() and any(phrase.casefold() in place for place in places):
            return phrase
    return None


def decide(tenant: Tenant, policies: list[Policy], sender: str, recipient: str,
           content: Content, mode: str = "off") -> Decision:
    """The route for ``recipient`` of a message from ``sender``."""
    internal = tenant.is_internal(recipient)
    secure: Policy | None = None
    for policy in policies:
        if not applies(policy, sender, recipient, tenant):
            continue
        if policy.kind == "route":
            return Decision("ccm", f"Route policy '{policy.name}' matched", policy)
        if policy.kind == "content":
            phrase = phrase_found(policy, content)
            if phrase is not None:
                return Decision(
                    "ccm", f"Content policy '{policy.name}' matched: found '{phrase}'", policy
                )
        elif policy.kind == "secure_delivery" and secure is None and not internal:
            secure = policy
    if mode == "all":
        return Decision("ccm", "Sender chose CCM mode All Recipients")
    if mode == "external" and not internal:
        return Decision("ccm", "Sender chose CCM mode External Recipients Only")
    if internal:
        return Decision("internal", "Internal recipient: internal relay")
    if secure is not None:
        return Decision(
            "external",
            f"Secure delivery policy '{secure.name}': TLS {secure.tls}, "
            f"otherwise {'CCM' if secure.fallback == 'ccm' else 'bounce'}",
            secure, tls=secure.tls, fallback=secure.fallback,
        )
    return Decision("external", "External recipient: MX resolution")
