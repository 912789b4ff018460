"""CCM between two real Postfix servers: the organisation's in front, a remote MX behind.

The organisation's Postfix (acme.test's mailboxes) relays everything else to CCM's
ingress; CCM delivers external mail by MX to the partner's Postfix (partner.test, which
knows only pat) and internal mail and reports back through the organisation's Postfix.
"""

from __future__ import annotations

import contextlib
import os
import re
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
def partner_mx(app, gateway):
    """Starts the partner's mail server, partner.test's MX (pat, sam and kim), with
    further ``main.cf`` settings."""
    with contextlib.ExitStack() as started:

        def start(**settings) -> Postfix:
            server = started.enter_context(Postfix(
                "mx.partner.test", domains={"partner.test": ["pat", "sam", "kim"]},
                settings=settings))
            gateway.network.dns.add_mx("partner.test", 10, "mx.partner.test")
            gateway.network.dns.add_a("mx.partner.test", LOOPBACK)
            app.config["SMTP_DELIVERY_PORT"] = server.port
            return server

        yield start


@pytest.fixture
def partner(partner_mx):
    """The partner's mail server as Postfix comes."""
    return partner_mx()


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


def test_the_organisations_auto_replies_leave_from_the_null_sender(gateway, organisation,
                                                                   partner):
    submit(organisation, "", ["pat@partner.test"], """\
From: Bob <bob@acme.test>
To: pat@partner.test
Subject: Out of office
Auto-Submitted: auto-replied

Back on Monday.
""")
    [message] = received_by_ccm(1)
    assert message.mail_from == ""
    gateway.run_queue()

    [reply] = partner.wait_for("pat")
    assert reply["Subject"] == "Out of office"
    assert reply["Return-Path"] == "<>"


def test_every_hop_leaves_its_trace_and_the_gateway_counts_them(app, gateway, ccm_listener,
                                                                partner):
    """CCM's Received: line sits between the organisation's and the partner's, and a
    message that has been round a loop is refused where it comes in (here, at CCM:
    the organisation's server lets more hops through than Postfix's default 50)."""
    with Postfix("mail.acme.test", domains={"acme.test": ["alice", "bob"]},
                 relayhost=f"[{LOOPBACK}]:{ccm_listener.port}",
                 settings={"hopcount_limit": "100"}) as organisation:
        app.config["INTERNAL_RELAY"] = f"smtp://{LOOPBACK}:{organisation.port}"
        trace_and_count(gateway, organisation, partner)


def trace_and_count(gateway, organisation, partner):
    submit(organisation, "alice@acme.test", ["pat@partner.test"], MESSAGE)
    received_by_ccm(1)
    gateway.run_queue()
    [delivered] = partner.wait_for("pat")
    trace = delivered.get_all("Received")
    by = [re.search(r"\sby\s+(\S+)", line).group(1) for line in trace]
    assert by[:3] == ["mx.partner.test", "gateway.acme.test", "mail.acme.test"]

    looped = "".join(f"Received: from relay{n}.acme.test by relay{n}.acme.test; "
                     f"Sun, 6 Dec 2026 00:00:00 +0000\n" for n in range(50)) + MESSAGE
    submit(organisation, "alice@acme.test", ["pat@partner.test"], looped)
    [bounce] = organisation.wait_for("alice")  # the organisation's server was refused
    assert "5.4.6" in bounce.as_string()
    assert len(received_by_ccm(1)) == 1


def test_eight_bit_mail_reaches_a_server_without_8bitmime_re_encoded(gateway, organisation,
                                                                      partner_mx):
    seven_bit = partner_mx(smtpd_discard_ehlo_keywords="8bitmime, smtputf8")
    # (lines within 998 bytes: Postfix's own client folds longer ones before CCM sees them)
    text = "Grüße aus Köln: die Zahlen für das Quartal.\n" + "é" * 450 + "\n"
    submit(organisation, "alice@acme.test", ["pat@partner.test"], f"""\
From: alice@acme.test
To: pat@partner.test
Subject: Zahlen
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

{text}""")
    received_by_ccm(1)
    gateway.run_queue()

    [delivered] = seven_bit.wait_for("pat")
    assert delivered["Content-Transfer-Encoding"] in ("quoted-printable", "base64")
    assert delivered.get_content().replace("\r\n", "\n") == text
    assert delivered.as_bytes().isascii()


def test_a_message_in_utf_8_refused_by_the_remote_comes_back_as_an_rfc_6533_report(
        gateway, organisation, partner):
    submit(organisation, "alice@acme.test", ["nobody@partner.test"],
           "From: Zoë <alice@acme.test>\nTo: nobody@partner.test\nSubject: Änderung\n\n"
           "Grüße\n")
    received_by_ccm(1)
    gateway.run_queue()
    gateway.run_queue()

    [report] = organisation.wait_for("alice")
    status = next(part for part in report.walk()
                  if part.get_content_type() == "message/global-delivery-status")
    text = status.get_payload(decode=True).decode() if not status.is_multipart() \
        else status.as_string()
    assert "Remote-MTA: dns; mx.partner.test" in text
    assert "550 5.1.1" in text


def test_one_session_carries_a_messages_recipients_and_the_next_message(
        app, gateway, organisation, partner):
    # one delivery at a time to the domain, so the second message must reuse the session
    # (with more, Postfix's own way, the two would go side by side in two sessions)
    app.config.update(DESTINATION_CONCURRENCY=1)
    for subject in ("First", "Second"):
        submit(organisation, "alice@acme.test",
               ["pat@partner.test", "sam@partner.test", "kim@partner.test"],
               MESSAGE.replace("Quarterly figures", subject))
    received_by_ccm(2)
    gateway.run_queue()

    for local in ("pat", "sam", "kim"):
        assert {m["Subject"] for m in partner.wait_for(local, 2)} == {"First", "Second"}
    # Postfix logs each session's commands when it ends: one session, six RCPTs in it
    sessions = [line for line in partner.log().splitlines()
                if "smtpd" in line and "disconnect from" in line and "rcpt=" in line]
    assert len(sessions) == 1 and " rcpt=6 " in sessions[0], partner.log()
