"""The routing decision alone (app/domain/routing.py, ``decide``): no database, no
application, transient models standing in for the tenant and its policies.

tests/gateway/test_routing.py sends real mail through the same decision; here each rule
of it is tried on its own, every CCM mode against every kind of recipient.
"""

from __future__ import annotations

import pytest

from app.domain.routing import Content, decide
from app.models import Domain, Fallback, Mode, Policy, PolicyKind, Route, Tenant, TlsLevel

ALICE = "alice@acme.test"  # an internal sender
INTERNAL, EXTERNAL = "bob@acme.test", "pat@partner.test"
NOTHING = Content()


@pytest.fixture(scope="module")
def acme() -> Tenant:
    return Tenant(slug="acme", name="Acme", domains=[Domain(name="acme.test")])


def policy(kind: PolicyKind, name: str = "P", **values) -> Policy:
    """A policy as the administrator saves it (a transient row gets no column defaults)."""
    values = {"enabled": True, "where": ["subject", "body"], "phrases": [], **values}
    return Policy(kind=kind, name=name, **values)


def route(name="Route", **values):
    return policy(PolicyKind.ROUTE, name, **values)


def content(phrases, name="Words", **values):
    return policy(PolicyKind.CONTENT, name, phrases=phrases, **values)


def secure(name="TLS", tls=TlsLevel.VERIFY, fallback=Fallback.CCM, **values):
    return policy(PolicyKind.SECURE_DELIVERY, name, tls=tls, fallback=fallback, **values)


@pytest.mark.parametrize(("mode", "recipient", "expected"), [
    (Mode.OFF, INTERNAL, Route.INTERNAL),
    (Mode.OFF, EXTERNAL, Route.EXTERNAL),
    (Mode.EXTERNAL, INTERNAL, Route.INTERNAL),
    (Mode.EXTERNAL, EXTERNAL, Route.CCM),
    (Mode.ALL, INTERNAL, Route.CCM),
    (Mode.ALL, EXTERNAL, Route.CCM),
])
def test_without_policies_the_senders_mode_and_the_recipients_side_decide(
        acme, mode, recipient, expected):
    decision = decide(acme, [], ALICE, recipient, NOTHING, mode)
    assert decision.route == expected
    assert decision.policy is None and decision.tls is None


@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize(("to_pattern", "recipient"), [
    (None, EXTERNAL),  # no pattern: external recipients
    ("external", EXTERNAL), ("internal", INTERNAL), ("*", INTERNAL), ("*", EXTERNAL),
    ("*@partner.test", EXTERNAL), ("PAT@partner.test", EXTERNAL),
])
def test_a_matching_route_policy_sends_by_ccm_whatever_the_mode(acme, mode, to_pattern,
                                                                 recipient):
    rule = route(to_pattern=to_pattern)
    decision = decide(acme, [rule], ALICE, recipient, NOTHING, mode)
    assert (decision.route, decision.policy) == (Route.CCM, rule)
    assert decision.reason == "Route policy 'Route' matched"


@pytest.mark.parametrize(("to_pattern", "from_pattern", "recipient"), [
    (None, None, INTERNAL),  # no pattern: external recipients only
    ("external", None, INTERNAL), ("internal", None, EXTERNAL),
    ("*@other.test", None, EXTERNAL), ("sam@partner.test", None, EXTERNAL),
    ("*", "*@globex.test", EXTERNAL), ("*", "external", EXTERNAL),
])
def test_a_route_policy_whose_patterns_do_not_fit_leaves_the_default(
        acme, to_pattern, from_pattern, recipient):
    rule = route(to_pattern=to_pattern, from_pattern=from_pattern)
    decision = decide(acme, [rule], ALICE, recipient, NOTHING, Mode.OFF)
    assert decision.policy is None and decision.route != Route.CCM


@pytest.mark.parametrize(("where", "text", "found"), [
    (["subject", "body"], Content(subject="Re: CONFIDENTIAL"), True),
    (["subject", "body"], Content(body_text="this is confidential."), True),
    (["subject"], Content(body_text="confidential"), False),
    (["body"], Content(subject="confidential"), False),
    (["subject", "body"], Content(subject="confident", body_text="ial"), False),
])
def test_a_content_policy_looks_where_it_is_told_without_regard_to_case(
        acme, where, text, found):
    rule = content(["  ", "Confidential"], where=where)  # a blank phrase finds nothing
    decision = decide(acme, [rule], ALICE, EXTERNAL, text, Mode.OFF)
    assert (decision.route == Route.CCM) is found
    if found:
        assert decision.reason == "Content policy 'Words' matched: found 'Confidential'"


def test_the_first_matching_policy_decides_in_the_administrators_order(acme):
    words = Content(subject="merger")
    first, second = content(["merger"], name="First"), route(name="Second")
    assert decide(acme, [first, second], ALICE, EXTERNAL, words).policy is first
    assert decide(acme, [second, first], ALICE, EXTERNAL, words).policy is second
    # A content policy that finds nothing does not stop the ones after it.
    assert decide(acme, [content(["nope"]), second], ALICE, EXTERNAL, words).policy is second


@pytest.mark.parametrize("rule", [route(enabled=False), content(["x"], enabled=False),
                                  secure(enabled=False)], ids=["route", "content", "secure"])
def test_a_disabled_policy_is_not_there(acme, rule):
    decision = decide(acme, [rule], ALICE, EXTERNAL, Content(subject="x"), Mode.OFF)
    assert decision.policy is None
    assert (decision.route, decision.tls) == (Route.EXTERNAL, None)


@pytest.mark.parametrize("fallback", list(Fallback))
def test_a_secure_delivery_policy_sets_the_tls_of_an_external_delivery(acme, fallback):
    rule = secure(tls=TlsLevel.ENCRYPT, fallback=fallback)
    decision = decide(acme, [rule], ALICE, EXTERNAL, NOTHING, Mode.OFF)
    assert (decision.route, decision.policy) == (Route.EXTERNAL, rule)
    assert (decision.tls, decision.fallback) == (TlsLevel.ENCRYPT, fallback)
    otherwise = "CCM" if fallback == Fallback.CCM else "bounce"
    assert decision.reason == f"Secure delivery policy 'TLS': TLS encrypt, otherwise {otherwise}"


def test_secure_delivery_does_not_decide_the_route_by_itself(acme):
    first, later = secure(name="First"), secure(name="Later", tls=TlsLevel.ENCRYPT)
    # the first secure policy that fits sets the TLS, a later route policy still decides
    assert decide(acme, [first, route()], ALICE, EXTERNAL, NOTHING).route == Route.CCM
    assert decide(acme, [first, later], ALICE, EXTERNAL, NOTHING).policy is first
    # the sender's mode comes before it; an internal recipient has no use for it
    assert decide(acme, [first], ALICE, EXTERNAL, NOTHING, Mode.EXTERNAL).route == Route.CCM
    everyone = secure(to_pattern="*")
    decision = decide(acme, [everyone], ALICE, INTERNAL, NOTHING, Mode.OFF)
    assert (decision.route, decision.tls, decision.policy) == (Route.INTERNAL, None, None)
