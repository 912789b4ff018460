"""CCM between two real Postfix servers: the organisation's in front, a remote MX behind.

The organisation's Postfix (acme.test's mailboxes) relays everything else to CCM's
ingress; CCM delivers external mail by MX to the partner's Postfix (partner.test, which
knows only pat) and internal mail and reports back through the organisation's Postfix.
"""

from __future__ import annotations

import os
import smtplib
import time

import pytest
from postfix import POSTFIX, Postfix
from servers import LOOPBACK, free_port
from sqlalchemy import func, select

from app.extensions import db
from app.models import Message
from app.smtp import ingress

pytestmark = pytest.mark.skipif(
    not POSTFIX.exists() and not os.environ.get("CI"),
    reason=f"{POSTFIX} is missing: apt-get install postfix")


@pytest.fixture
def ccm_listener(app, gateway):
    """CCM's SMTP ingress on a loopback port, configured as the gateway fixture left it."""
    server = ingress.controller(app, f"{LOOPBACK}:{free_port()}")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def partner(app, gateway):
    """The partner's mail server, partner.test's MX, which knows only pat."""
    with Postfix("mx.partner.test", domains={"partner.test": ["pat"]}) as server:
        gateway.network.dns.add_mx("partner.test", 10, "mx.partner.test")
        gateway.network.dns.add_a("mx.partner.test", LOOPBACK)
        app.config["SMTP_DELIVERY_PORT"] = server.port
        yield server


@pytest.fixture
def organisation(app, gateway, ccm_listener):
    """Acme's own mail server: its users' mailboxes, and CCM as its relay for the rest;
    CCM's internal relay in turn."""
    with Postfix("mail.acme.test", domains={"acme.test": ["alice", "bob"]},
                 relayhost=f"[{LOOPBACK}]:{ccm_listener.port}") as server:
        app.config["INTERNAL_RELAY"] = f"smtp://{LOOPBACK}:{server.port}"
        yield server


def submit(server: Postfix, mail_from: str, rcpts: list[str], text: str) -> None:
    """A mail client handing a message to the organisation's server."""
    with smtplib.SMTP(LOOPBACK, server.port, timeout=10) as client:
        client.sendmail(mail_from, rcpts, text.replace("\n", "\r\n").encode())


def received_by_ccm(count: int, seconds: float = 30) -> list[Message]:
    """The messages CCM has stored, once there are ``count``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        db.session.rollback()  # read what the ingress's thread committed
        if db.session.scalar(select(func.count(Message.id))) >= count:
            return list(db.session.scalars(select(Message).order_by(Message.id)))
        time.sleep(0.05)
    raise AssertionError(f"CCM did not receive {count} message(s) in {seconds} s")


MESSAGE = """\
From: Alice <alice@acme.test>
To: Pat <pat@partner.test>
Subject: Quarterly figures
Message-ID: <figures@acme.test>

The figures are attached.
"""


def test_ordinary_mail_passes_through_once(gateway, organisation, partner):
    submit(organisation, "alice@acme.test", ["pat@partner.test"], MESSAGE)
    [message] = received_by_ccm(1)
    assert [r.route for r in message.recipients] == ["external"]
    gateway.run_queue()

    [delivered] = partner.wait_for("pat")
    assert delivered["Subject"] == "Quarterly figures"
    assert delivered.get_content().strip() == "The figures are attached."
    # the organisation's server and the partner's each left a trace
    trace = " ".join(delivered.get_all("Received"))
    assert "mail.acme.test" in trace and "mx.partner.test" in trace
    gateway.run_queue()
    assert len(partner.mailbox("pat")) == 1


def test_secure_mail_stays_and_the_partner_gets_notifications(gateway, organisation,
                                                                 partner):
    gateway.policy(name="All partners", kind="route", to_pattern="*@partner.test")
    submit(organisation, "alice@acme.test", ["pat@partner.test"], MESSAGE)
    [message] = received_by_ccm(1)
    assert [r.route for r in message.recipients] == ["ccm"]
    gateway.run_queue()

    notifications = partner.wait_for("pat", 2)
    for notification in notifications:
        assert "figures" not in notification.as_string().lower()
    assert len(partner.mailbox("pat")) == 2


def test_a_refused_recipient_bounces_back_through_the_organisations_server(
        gateway, organisation, partner):
    submit(organisation, "alice@acme.test", ["nobody@partner.test"],
           MESSAGE.replace("pat@", "nobody@"))
    received_by_ccm(1)
    gateway.run_queue()  # the partner's Postfix refuses: CCM reports it to alice
    gateway.run_queue()

    [report] = organisation.wait_for("alice")
    assert report.get_content_type() == "multipart/report"
    status = next(part for part in report.walk()
                  if part.get_content_type() == "message/delivery-status")
    text = status.as_string()
    assert "nobody@partner.test" in text and "5.1.1" in text
    assert "Quarterly figures" in report.as_string()
