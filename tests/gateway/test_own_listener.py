"""Delivery never hands a message straight back to CCM's own SMTP ingress: a destination
that resolves to where it listens bounces with 5.4.6, as Postfix's "mail for ... loops
back to myself"."""

import pytest
from servers import free_port, serve_mail_for
from support import mail

from app.delivery.destinations import loops_back
from app.extensions import db
from app.models import Message
from app.smtp import ingress


@pytest.fixture
def own_ingress(app):
    """Start the real ingress on a listen address, as CCM_SMTP_LISTEN says."""
    started = []

    def listen(where: str):
        app.config["SMTP_LISTEN"] = where
        controller = ingress.controller(app, where)
        controller.start()
        started.append(controller)
        return controller

    yield listen
    for controller in started:
        controller.stop()


def outcome(message) -> tuple[str, list[str]]:
    db.session.expire_all()
    (recipient,) = message.recipients
    return recipient.state, [e.text for e in recipient.events]


def assert_looped_back(message, destination: str) -> None:
    state, events = outcome(message)
    assert state == "bounced"
    assert any(f"5.4.6 mail for {destination} loops back to myself" in e for e in events)
    # Nothing reached the ingress: the message is still the only one stored.
    assert db.session.query(Message).count() == 1


@pytest.mark.parametrize("listen, mx_address", [
    ("127.0.0.9:{port}", "127.0.0.9"),     # the very address
    ("0.0.0.0:{port}", "127.0.0.9"),       # all IPv4 addresses: a local one
    ("[::]:{port}", "::1"),                # all addresses, IPv6
    ("[::]:{port}", "127.0.0.9"),          # all addresses: IPv4 too (dual stack)
], ids=["same address", "all IPv4", "all, IPv6", "all, IPv4"])
def test_an_mx_that_is_our_own_listener_bounces_with_5_4_6(app, gateway, network,
                                                           own_ingress, listen, mx_address):
    app.config["MX_ALLOWED_NETWORKS"] = "127.0.0.0/8,::1/128"
    network.dns.add_mx("loop.test", 10, "mx.loop.test")
    add = network.dns.add_aaaa if ":" in mx_address else network.dns.add_a
    add("mx.loop.test", mx_address)
    own_ingress(listen.format(port=network.port))
    message = gateway.send(mail(to="pat@loop.test"), ["pat@loop.test"])
    gateway.run_queue()
    assert_looped_back(message, "loop.test")


def test_a_backup_mx_that_is_not_ourselves_takes_the_message(gateway, network, own_ingress):
    network.dns.add_mx("loop.test", 10, "mx.loop.test")
    network.dns.add_a("mx.loop.test", "127.0.0.9")
    backup = serve_mail_for(network, "loop.test", "127.0.1.9", preference=20)
    own_ingress(f"127.0.0.9:{network.port}")
    message = gateway.send(mail(to="pat@loop.test"), ["pat@loop.test"])
    gateway.run_queue()
    assert backup.wait_for(1)[0].rcpt_tos == ["pat@loop.test"]
    assert outcome(message)[0] == "delivered"
    assert backup.sessions == 1


def test_an_internal_relay_that_is_our_own_listener_bounces_with_5_4_6(app, gateway,
                                                                       own_ingress):
    port = free_port()
    own_ingress(f"127.0.0.1:{port}")
    app.config["INTERNAL_RELAY"] = f"smtp://127.0.0.1:{port}"
    # From the null sender, so that no report of it goes the same way.
    message = gateway.send(mail(to="bob@acme.test"), ["bob@acme.test"], mail_from="",
                           tenant=gateway.tenant)
    gateway.run_queue()
    assert_looped_back(message, "127.0.0.1")


@pytest.mark.parametrize("address, port, listen, loops", [
    ("127.0.0.1", 25, "127.0.0.1:25", True),
    ("127.0.0.1", 25, "127.0.0.1:2525", False),        # another port
    ("127.0.0.2", 25, "127.0.0.1:25", False),          # another address
    ("::ffff:127.0.0.1", 25, "127.0.0.1:25", True),    # IPv4-mapped
    ("127.0.0.1", 25, "localhost:25", True),           # a listener named by host name
    ("127.0.0.5", 25, "0.0.0.0:25", True),
    ("::1", 25, "0.0.0.0:25", False),                  # an IPv4 listener takes no IPv6
    ("192.0.2.1", 25, "0.0.0.0:25", False),            # not an address of this machine
    ("2001:db8::1", 25, "[::]:25", False),
    ("not an address", 25, "0.0.0.0:25", False),
], ids=str)
def test_loops_back_judges_addresses_as_the_listener_takes_them(address, port, listen,
                                                                loops):
    assert loops_back(address, port, listen) is loops
