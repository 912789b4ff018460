"""Where a tenant's internal relay may point: checked when saved and again at connection.

A tenant administrator types the relay, so the gateway must not connect for them to
itself, to the network it sits in, or to a service that is not an SMTP relay (SSRF).
The values go through the real settings form; host names through the test DNS server;
deliveries to real SMTP sinks.
"""

from __future__ import annotations

import errno
import html
import random

import pytest
from servers import SmtpSink
from support import mail, post_form

from app.delivery import destinations
from app.extensions import db
from app.models import AuditEvent, Tenant

PUBLIC = "93.184.215.14"  # any public address: nothing connects to it at save time

#: values no one may save: each with what the error says
MALFORMED = [
    ("smtp://2130706433", "is neither a host name"),
    ("smtp://0x7f.1", "is neither a host name"),
    ("smtp://0x7f000001", "is neither a host name"),
    ("smtp://017700000001", "is neither a host name"),
    ("smtp://0177.0.0.1", "is neither a host name"),
    ("smtp://127.1", "is neither a host name"),
    ("smtp://127.000.000.001", "is neither a host name"),
    ("smtp://-relay.acme.test", "is neither a host name"),
    ("smtp://" + "a" * 64 + ".test", "is neither a host name"),
    ("smtp://" + ".".join(["a" * 60] * 4) + ".com", "Too long"),  # with :25 added
    ("smtp://localhost.", "without the final dot"),
    ("smtp://relay.acme.test.", "without the final dot"),
    ("smtp://a@127.0.0.1", "with nothing else in it"),
    (f"smtp://a:b@{PUBLIC}", "with nothing else in it"),
    (f"smtp://{PUBLIC}@127.0.0.1", "with nothing else in it"),
    (f"smtp://127.0.0.1#@{PUBLIC}", "with nothing else in it"),
    (f"smtp://{PUBLIC}\\@127.0.0.1", "with nothing else in it"),
    (f"smtp://{PUBLIC}/path", "with nothing else in it"),
    (f"smtp://{PUBLIC}?next=127.0.0.1", "with nothing else in it"),
    (f"smtp://{PUBLIC} 127.0.0.1", "with nothing else in it"),
    (f"smtp://{PUBLIC}:", "with nothing else in it"),
    (f"http://{PUBLIC}", "with nothing else in it"),
    (f"{PUBLIC}:25", "with nothing else in it"),
    ("smtp://relay_1.acme.test", "with nothing else in it"),
    ("smtp://\uff4cocalhost", "with nothing else in it"),  # a full-width l
    ("smtp://[fe80::1%eth0]", "with nothing else in it"),
    ("smtp://[::1", "with nothing else in it"),
    ("smtp://[1::2::3]", "is not an IPv6 address"),
    (f"smtp://{PUBLIC}:0", "from 1 to 65535"),
    (f"smtp://{PUBLIC}:65536", "from 1 to 65535"),
]

NOT_PUBLIC = "is not a public address"
NOT_PUBLIC_NAME = "must resolve to public addresses only"
PORT = "Use port 25, 587 or 2525"

#: values only the platform administrator may save: what a tenant administrator is told,
#: and the network that, allowed by the operator, lets them (None: nothing does)
TARGETS = [
    ("smtp://127.0.0.1", NOT_PUBLIC, "127.0.0.0/8"),
    ("smtp://127.0.0.1:2525", NOT_PUBLIC, "127.0.0.0/8"),
    ("smtp://127.255.255.254:587", NOT_PUBLIC, "127.0.0.0/8"),
    ("smtp://10.0.0.5", NOT_PUBLIC, "10.0.0.0/8"),
    ("smtp://172.16.0.1", NOT_PUBLIC, "172.16.0.0/12"),
    ("smtp://192.168.1.10", NOT_PUBLIC, "192.168.0.0/16"),
    ("smtp://169.254.169.254", NOT_PUBLIC, "169.254.0.0/16"),
    ("smtp://100.64.0.1", NOT_PUBLIC, "100.64.0.0/10"),
    ("smtp://192.0.2.10", NOT_PUBLIC, "192.0.2.0/24"),
    ("smtp://0.0.0.0", NOT_PUBLIC, "0.0.0.0/32"),
    ("smtp://255.255.255.255", NOT_PUBLIC, "255.255.255.255/32"),
    ("smtp://224.0.0.1", NOT_PUBLIC, "224.0.0.0/4"),
    ("smtp://[::1]", NOT_PUBLIC, "::1/128"),
    ("smtp://[::]", NOT_PUBLIC, "::/128"),
    ("smtp://[::ffff:127.0.0.1]", NOT_PUBLIC, "127.0.0.0/8"),
    ("smtp://[::FFFF:7f00:1]:2525", NOT_PUBLIC, "127.0.0.0/8"),
    ("smtp://[::ffff:10.0.0.5]", NOT_PUBLIC, "10.0.0.0/8"),
    ("smtp://[::127.0.0.1]", NOT_PUBLIC, "127.0.0.0/8"),
    ("smtp://[2002:7f00:1::]", NOT_PUBLIC, "127.0.0.0/8"),  # 6to4
    ("smtp://[64:ff9b::a9fe:a9fe]", NOT_PUBLIC, "169.254.0.0/16"),  # NAT64
    ("smtp://[64:ff9b:1::a00:5]", NOT_PUBLIC, "10.0.0.0/8"),  # local-use NAT64
    ("smtp://[::ffff:0:a00:5]", NOT_PUBLIC, "10.0.0.0/8"),  # IPv4-translated
    ("smtp://[fec0::1]", NOT_PUBLIC, "fec0::/10"),  # site-local
    ("smtp://[fe80::1]", NOT_PUBLIC, "fe80::/10"),
    ("smtp://[fd00::5]", NOT_PUBLIC, "fc00::/7"),
    ("smtp://localhost", NOT_PUBLIC_NAME, "127.0.0.0/8,::1/128"),
    ("smtp://LocalHost:25", NOT_PUBLIC_NAME, "127.0.0.0/8,::1/128"),
    ("smtp://internal.acme.test", NOT_PUBLIC_NAME, "10.0.0.0/8"),
    ("smtp://metadata.acme.test", NOT_PUBLIC_NAME, "169.254.0.0/16"),
    ("smtp://mixed.acme.test", NOT_PUBLIC_NAME, "127.0.0.0/8"),  # one public, one not
    ("smtp://mapped.acme.test", NOT_PUBLIC_NAME, "127.0.0.0/8"),  # AAAA ::ffff:127.0.0.1
    ("smtp://missing.acme.test", NOT_PUBLIC_NAME, None),  # no such name: same answer
    (f"smtp://{PUBLIC}:6379", PORT, None),
    (f"smtp://{PUBLIC}:22", PORT, None),
    (f"smtp://{PUBLIC}:80", PORT, None),
    (f"smtp://{PUBLIC}:465", PORT, None),
    ("smtp://127.0.0.1:6379", PORT, None),
    ("smtp://169.254.169.254:80", PORT, None),
    ("smtp://10.0.0.5:22", PORT, None),
]


@pytest.fixture
def names(network):
    """The test DNS server's answers for the host names in the tables."""
    dns = network.dns
    dns.add_a("localhost", "127.0.0.1")
    dns.add_aaaa("localhost", "::1")
    dns.add_a("internal.acme.test", "10.0.0.5")
    dns.add_a("metadata.acme.test", "169.254.169.254")
    dns.add_a("mixed.acme.test", PUBLIC)
    dns.add_a("mixed.acme.test", "127.0.0.1")
    dns.add_a("mapped.acme.test", PUBLIC)
    dns.add_aaaa("mapped.acme.test", "::ffff:127.0.0.1")
    dns.add_a("public.acme.test", PUBLIC)
    return dns


@pytest.fixture
def admin(gateway, make_user, client, auth):
    """The tenant's administrator, signed in; ``admin(platform=True)`` the platform's."""

    def sign_in(platform: bool = False):
        make_user(gateway.tenant, "admin@acme.test", role="admin",
                  is_platform_admin=platform)
        auth.sign_in("admin@acme.test", slug="acme")
        return client

    return sign_in


def save_settings(client, relay: str, name: str = "Acme Corp"):
    return post_form(client, "/admin/settings", {
        "name": name, "portal_name": "", "domains": "acme.test", "internal_relay": relay,
        "visibility_days": "30", "expiry_warning_days": "3", "first_contact": "password",
        "activation_hours": "72", "second_factor_external": "optional",
        "second_factor_internal": "optional", "mail_from": ""})


def tenant_now(gateway) -> Tenant:
    db.session.expire_all()
    return db.session.get(Tenant, gateway.tenant.id)


def assert_refused(response, message: str, gateway, before: tuple) -> None:
    """The form came back with ``message`` under the relay field, and nothing changed."""
    assert response.status_code == 200
    page = html.unescape(response.get_data(as_text=True))
    assert 'id="internal_relay-error"' in page
    error = page.split('id="internal_relay-error"', 1)[1].split("</ul>", 1)[0]
    assert message in error
    tenant = tenant_now(gateway)
    assert (tenant.name, tenant.internal_relay, tenant.internal_relay_trusted) == before
    assert db.session.query(AuditEvent).filter_by(action="settings saved").count() == 0


# --- when saved ------------------------------------------------------------------------


@pytest.mark.parametrize("platform", [False, True], ids=["tenant admin", "platform admin"])
@pytest.mark.parametrize(("value", "message"), MALFORMED)
def test_a_malformed_relay_is_refused_for_everyone(gateway, names, admin, platform, value,
                                                  message):
    client = admin(platform=platform)
    response = save_settings(client, value, name="Acme Renamed")
    assert_refused(response, message, gateway, ("Acme Corp", None, False))


@pytest.mark.parametrize(("value", "message", "allows"), TARGETS)
def test_a_tenant_administrator_cannot_aim_the_relay_inside(gateway, names, admin, value,
                                                           message, allows):
    response = save_settings(admin(), value, name="Acme Renamed")
    assert_refused(response, message, gateway, ("Acme Corp", None, False))


def test_what_a_name_resolves_to_is_never_told(gateway, names, admin):
    """The error must not let a tenant administrator read the gateway's internal DNS."""
    client = admin()
    for value in ("smtp://internal.acme.test", "smtp://missing.acme.test"):
        page = save_settings(client, value).get_data(as_text=True)
        assert "10.0.0.5" not in page
        assert "internal.acme.test must resolve" in page or \
            "missing.acme.test must resolve" in page


def test_the_system_resolver_is_held_to_the_same_rule(app, gateway, admin):
    app.config["DNS_SERVERS"] = ""  # localhost from the system's own hosts file
    response = save_settings(admin(), "smtp://localhost:25", name="Acme Renamed")
    assert_refused(response, NOT_PUBLIC_NAME, gateway, ("Acme Corp", None, False))


@pytest.mark.parametrize(("value", "message", "allows"), TARGETS)
def test_the_platform_administrator_may_aim_it_anywhere(gateway, names, admin, value,
                                                      message, allows):
    response = save_settings(admin(platform=True), value)
    assert response.status_code == 302
    tenant = tenant_now(gateway)
    assert tenant.internal_relay == str(destinations.parse_relay(value))
    assert tenant.internal_relay_trusted
    (event,) = db.session.query(AuditEvent).filter_by(action="settings saved")
    assert (f"internal relay: none → {tenant.internal_relay}, set by the platform "
            "administrator") in event.detail


@pytest.mark.parametrize(("value", "allows"),
                         [(v, n) for v, _, n in TARGETS if n is not None])
def test_the_operator_can_allow_a_network(app, gateway, names, admin, value, allows):
    app.config["TENANT_RELAY_ALLOWED_NETWORKS"] = f"203.0.113.0/24, {allows}"
    response = save_settings(admin(), value)
    assert response.status_code == 302
    tenant = tenant_now(gateway)
    assert tenant.internal_relay == str(destinations.parse_relay(value))
    assert not tenant.internal_relay_trusted  # still checked at each connection


def test_public_relays_are_a_tenant_administrators_to_set(gateway, names, admin):
    client = admin()
    for value, stored in [(f"smtp://{PUBLIC}", f"smtp://{PUBLIC}:25"),
                          ("smtp://Public.Acme.test:587", "smtp://public.acme.test:587"),
                          ("smtp://[2001:4860:4860::8888]:2525",
                           "smtp://[2001:4860:4860::8888]:2525"),
                          ("", None)]:
        assert save_settings(client, value).status_code == 302, value
        assert tenant_now(gateway).internal_relay == stored


def test_a_tenant_administrator_keeps_the_relay_the_platform_administrator_set(
        gateway, names, admin):
    gateway.tenant.internal_relay, gateway.tenant.internal_relay_trusted = \
        "smtp://10.0.0.5:25", True
    db.session.commit()
    client = admin()
    assert save_settings(client, "smtp://10.0.0.5:25", name="Acme Renamed").status_code == 302
    tenant = tenant_now(gateway)
    assert (tenant.name, tenant.internal_relay, tenant.internal_relay_trusted) == (
        "Acme Renamed", "smtp://10.0.0.5:25", True)
    # ...but changing it is setting one of their own.
    response = save_settings(client, "smtp://10.0.0.6:25", name="Acme Again")
    assert "10.0.0.6 is not a public address" in html.unescape(response.get_data(as_text=True))
    assert save_settings(client, f"smtp://{PUBLIC}").status_code == 302
    tenant = tenant_now(gateway)
    assert (tenant.internal_relay, tenant.internal_relay_trusted) == (
        f"smtp://{PUBLIC}:25", False)


def test_a_relay_saved_before_the_check_is_checked_when_saved_again(gateway, names, admin):
    gateway.tenant.internal_relay = "smtp://127.0.0.1:6379"  # untrusted, as 0012 leaves it
    db.session.commit()
    response = save_settings(admin(), "smtp://127.0.0.1:6379", name="Acme Renamed")
    assert_refused(response, PORT, gateway, ("Acme Corp", "smtp://127.0.0.1:6379", False))


# --- at connection ---------------------------------------------------------------------


def relay_sink() -> SmtpSink:
    """An SMTP sink on a relay port (2525) at a loopback address of its own."""
    for _ in range(20):
        host = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(2, 254)}"
        try:
            return SmtpSink(host=host, port=2525).start()
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
    raise AssertionError("no free loopback address for port 2525")


@pytest.fixture
def sinks():
    started = [relay_sink(), relay_sink()]
    try:
        yield started
    finally:
        for sink in started:
            sink.stop()


def relay_events(message) -> list[str]:
    recipient = message.recipients[0]
    db.session.refresh(recipient)
    return [e.text for e in recipient.events]


@pytest.mark.parametrize("rebound", ["other sink", "mapped other sink", "10.0.0.5", "::1"])
def test_a_name_that_resolves_elsewhere_after_saving_is_refused_at_connection(
        app, gateway, network, admin, sinks, rebound):
    """DNS rebinding: the address is judged right before connecting, not when saved."""
    allowed, other = sinks
    app.config["TENANT_RELAY_ALLOWED_NETWORKS"] = f"{allowed.host}/32"
    network.dns.add_a("relay.acme.test", allowed.host)
    assert save_settings(admin(), "smtp://relay.acme.test:2525").status_code == 302
    first = gateway.send(mail(to="bob@acme.test"), ["bob@acme.test"])
    gateway.run_queue()
    assert len(allowed.wait_for(1)) == 1
    assert "Relayed to relay.acme.test:2525" in relay_events(first)[-1]

    network.dns.forget("relay.acme.test")
    address = {"other sink": other.host, "mapped other sink": f"::ffff:{other.host}"}.get(
        rebound, rebound)
    (network.dns.add_aaaa if ":" in address else network.dns.add_a)("relay.acme.test",
                                                                     address)
    second = gateway.send(mail(subject="Second", to="bob@acme.test"), ["bob@acme.test"])
    gateway.run_queue()
    assert other.messages == [] and len(allowed.messages) == 1
    recipient = second.recipients[0]
    db.session.refresh(recipient)
    assert recipient.state == "deferred"
    assert "4.7.0 Not connecting to the relay smtp://relay.acme.test:2525: it has no public " \
           "address, nor one in a network the operator allows for relays" in \
           relay_events(second)[-1]
    assert address not in relay_events(second)[-1]

    # Deferred, not lost: once the name points back, the next try delivers.
    network.dns.forget("relay.acme.test")
    network.dns.add_a("relay.acme.test", allowed.host)
    gateway.make_due()
    gateway.run_queue()
    assert [d.message["Subject"] for d in allowed.wait_for(2)] == ["Quarterly figures",
                                                                  "Second"]


@pytest.mark.parametrize(("stored", "event"), [
    ("smtp://{other}:2525", "it has no public address"),
    ("smtp://[::ffff:{other}]:2525", "it has no public address"),
    ("smtp://127.0.0.1:{default}", "is not an SMTP relay"),
    ("smtp://a@{other}:2525", "4.3.5 The relay smtp://a@{other}:2525 is not valid"),
    ("smtp://2130706433:2525", "is not valid"),
])
def test_a_relay_saved_before_the_check_is_refused_at_connection(gateway, sinks, stored,
                                                                 event):
    """What a tenant administrator saved before the check existed is not trusted."""
    _, other = sinks
    values = {"other": other.host, "default": gateway.relay.port}
    gateway.tenant.internal_relay = stored.format(**values)
    db.session.commit()
    message = gateway.send(mail(to="bob@acme.test"), ["bob@acme.test"])
    gateway.run_queue()
    assert other.messages == [] and gateway.relay.messages == []
    assert event.format(**values) in relay_events(message)[-1]
    assert message.recipients[0].state == "deferred"


def test_delivery_to_an_allowed_network_works(app, gateway, admin, sinks):
    allowed, _ = sinks
    app.config["TENANT_RELAY_ALLOWED_NETWORKS"] = "127.0.0.0/8"
    assert save_settings(admin(), f"smtp://{allowed.host}:2525").status_code == 302
    message = gateway.send(mail(to="bob@acme.test"), ["bob@acme.test"])
    gateway.run_queue()
    (delivery,) = allowed.wait_for(1)
    assert delivery.rcpt_tos == ["bob@acme.test"]
    assert gateway.relay.messages == []
    assert f"Relayed to {allowed.host}:2525" in relay_events(message)[-1]


def test_the_operators_own_relay_is_not_held_to_the_rule(gateway):
    """CCM_INTERNAL_RELAY (here at 127.0.0.1 on a random port) is the operator's: trusted."""
    message = gateway.send(mail(to="bob@acme.test"), ["bob@acme.test"])
    gateway.run_queue()
    assert len(gateway.relay.wait_for(1)) == 1
    assert message.recipients[0].state == "delivered"
