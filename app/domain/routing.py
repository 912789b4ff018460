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

from app.models import Fallback, Mode, Policy, PolicyKind, Route, Side, Tenant
from app.words import N_, Words

#: the sender's CCM modes, as a tuple (app/domain/ingest.py checks X-CCM-Mode against it)
MODES = tuple(Mode)


@dataclass(frozen=True)
class Content:
    """What content policies look at."""

    subject: str = ""
    body_text: str = ""


@dataclass(frozen=True)
class Decision:
    """The route for one recipient and why."""

    route: Route
    reason: str
    policy: Policy | None = None
    tls: str | None = None  # a TlsLevel, for an external delivery
    fallback: str | None = None  # a Fallback, when that TLS cannot be had


def address_matches(pattern: str | None, address: str, tenant: Tenant, *,
                    default: str) -> bool:
    """Whether ``address`` fits ``pattern``: an address, ``*@domain``, internal, external, *."""
    pattern = (pattern or default).strip().lower()
    address = address.strip().lower()
    if pattern == "*":
        return True
    if pattern == Side.INTERNAL:
        return tenant.is_internal(address)
    if pattern == Side.EXTERNAL:
        return not tenant.is_internal(address)
    if pattern.startswith("*@"):
        return address.rpartition("@")[2] == pattern[2:]
    return address == pattern


def applies(policy: Policy, sender: str, recipient: str, tenant: Tenant) -> bool:
    """Whether the policy's sender and recipient patterns fit (not its content)."""
    return policy.enabled and address_matches(
        policy.from_pattern, sender, tenant, default="*"
    ) and address_matches(policy.to_pattern, recipient, tenant, default=Side.EXTERNAL)


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
           content: Content, mode: str = Mode.OFF) -> Decision:
    """The route for ``recipient`` of a message from ``sender``."""
    internal = tenant.is_internal(recipient)
    secure: Policy | None = None
    for policy in policies:
        if not applies(policy, sender, recipient, tenant):
            continue
        if policy.kind == PolicyKind.ROUTE:
            return Decision(Route.CCM, Words(N_("Route policy '%(policy)s' matched"),
                                             policy=policy.name), policy)
        if policy.kind == PolicyKind.CONTENT:
            phrase = phrase_found(policy, content)
            if phrase is not None:
                return Decision(Route.CCM, Words(
                    N_("Content policy '%(policy)s' matched: found '%(phrase)s'"),
                    policy=policy.name, phrase=phrase), policy)
        elif policy.kind == PolicyKind.SECURE_DELIVERY and secure is None and not internal:
            secure = policy
    if mode == Mode.ALL:
        return Decision(Route.CCM, Words(N_("Sender chose CCM mode All Recipients")))
    if mode == Mode.EXTERNAL and not internal:
        return Decision(Route.CCM, Words(N_("Sender chose CCM mode External Recipients Only")))
    if internal:
        return Decision(Route.INTERNAL, Words(N_("Internal recipient: internal relay")))
    if secure is not None:
        return Decision(
            Route.EXTERNAL,
            Words(N_("Secure delivery policy '%(policy)s': TLS %(tls)s, otherwise CCM"),
                  policy=secure.name, tls=secure.tls) if secure.fallback == Fallback.CCM else
            Words(N_("Secure delivery policy '%(policy)s': TLS %(tls)s, otherwise bounce"),
                  policy=secure.name, tls=secure.tls),
            secure, tls=secure.tls, fallback=secure.fallback,
        )
    return Decision(Route.EXTERNAL, Words(N_("External recipient: MX resolution")))
