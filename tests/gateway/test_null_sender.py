"""The null sender (``MAIL FROM:<>``): the organisation's own bounces, out-of-office
replies and read receipts pass through the gateway, found a tenant by their From:
header, and are never answered with a bounce. Real SMTP on loopback throughout."""

import smtplib

import pytest
from support import without_trace

from app.domain.ingest import FOREIGN_SENDER, NO_HEADER_SENDER
from app.extensions import db
from app.models import Message, OutboundItem
from app.smtp.ingress import NOT_YOUR_ADDRESS, RELAY_DENIED

AUTO_REPLY = (b"From: Alice <alice@acme.test>\r\nTo: pat@partner.test\r\n"
              b"Subject: Out of office\r\nAuto-Submitted: auto-replied\r\n\r\n"
              b"Back on Monday.\r\n")


def stored() -> list[Message]:
    db.session.expire_all()
    return db.session.query(Message).order_by(Message.id).all()


def with_from(line: bytes) -> bytes:
    """The auto-reply with its From: line replaced by ``line`` (b"" for none)."""
    return AUTO_REPLY.replace(b"From: Alice <alice@acme.test>\r\n", line)


def test_a_bounce_from_a_trusted_server_is_routed_and_delivered_from_the_null_sender(
        gateway, ingress_server):
    partner = gateway.network.mx("partner.test")
    client = ingress_server()
    assert client.sendmail("", ["pat@partner.test"], AUTO_REPLY) == {}

    (message,) = stored()
    assert (message.mail_from, message.tenant_id) == ("", gateway.tenant.id)
    assert message.header_from == "Alice <alice@acme.test>"
    assert message.recipients[0].route == "external"
    gateway.run_queue()
    (delivery,) = partner.wait_for(1)
    assert delivery.mail_from == "<>"  # as aiosmtpd reads MAIL FROM:<>
    assert delivery.rcpt_tos == ["pat@partner.test"]
    assert without_trace(delivery.data) == AUTO_REPLY


@pytest.mark.parametrize("from_line", [
    b"From: alice@acme.test\r\n", b"From: \"Smith, Alice\" <alice@acme.test>\r\n",
    b"From: =?utf-8?q?=C3=85lice?= <alice@acme.test>\r\n",
    "From: Ålice <alice@acme.test>\r\n".encode(),  # RFC 6532 UTF-8
    b"From: alice@acme.test (Alice)\r\n", b"From:\r\n alice@ACME.test\r\n",
])
def test_the_tenant_is_found_by_any_well_formed_from_header(gateway, ingress_server,
                                                            from_line):
    assert ingress_server().sendmail("", ["pat@partner.test"], with_from(from_line)) == {}
    (message,) = stored()
    assert (message.mail_from, message.tenant_id) == ("", gateway.tenant.id)


def test_a_route_policy_on_the_sender_matches_the_from_header(gateway, ingress_server):
    gateway.policy(name="Alice's mail by CCM", kind="route", from_pattern="alice@acme.test",
                   to_pattern="*")
    client = ingress_server()
    client.sendmail("", ["pat@partner.test"], AUTO_REPLY)
    client.sendmail("", ["pat@partner.test"],
                    AUTO_REPLY.replace(b"alice@acme.test", b"bob@acme.test"))
    alice, bob = stored()
    assert alice.recipients[0].route == "ccm"
    assert alice.recipients[0].reason == "Route policy 'Alice's mail by CCM' matched"
    assert bob.recipients[0].route == "external"


@pytest.mark.parametrize(("from_line", "reply"), [
    (b"From: eve@elsewhere.test\r\n", FOREIGN_SENDER),
    (b"From: Eve <eve@acme.test.elsewhere.test>\r\n", FOREIGN_SENDER),
    (b"", NO_HEADER_SENDER),  # none at all
    (b"From:\r\n", NO_HEADER_SENDER),
    (b"From: <>\r\n", NO_HEADER_SENDER),
    (b"From: Alice\r\n", NO_HEADER_SENDER),  # a name, no address
    (b"From: alice@\r\n", NO_HEADER_SENDER),
    (b"From: @acme.test\r\n", NO_HEADER_SENDER),  # a served domain, but no mailbox
    (b"From: alice@acme.test, bob@acme.test\r\n", NO_HEADER_SENDER),  # two: whose?
    (b"From: alice@acme.test\r\nFrom: eve@elsewhere.test\r\n", NO_HEADER_SENDER),
    (b"From: =?utf-8?q?Alice=2C_<eve@elsewhere.test>?= <eve@elsewhere.test>\r\n",
     FOREIGN_SENDER),
    (b"From: \xff\xfe <\xff@acme.test>\r\n", NO_HEADER_SENDER),  # not UTF-8
    (b"From: alice@acme.test (unclosed comment\r\n", NO_HEADER_SENDER),
    (b"From: <alice@acme.test\r\n", NO_HEADER_SENDER),  # the parser would guess
    (b"From: alice@@acme.test\r\n", NO_HEADER_SENDER),
    (b"From: alice@[acme.test\r\n", NO_HEADER_SENDER),  # the parser itself fails
])
def test_a_null_sender_message_whose_from_header_names_no_served_sender_is_refused(
        gateway, ingress_server, from_line, reply):
    client = ingress_server()
    with pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail("", ["pat@partner.test"], with_from(from_line))
    assert f"{refused.value.smtp_code} {refused.value.smtp_error.decode()}" == reply
    assert stored() == []


def test_the_null_sender_from_an_untrusted_client_is_refused(app, gateway, ingress_server):
    app.config["RELAY_NETWORKS"] = "192.0.2.0/24"
    client = ingress_server()
    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        client.sendmail("", ["pat@partner.test"], AUTO_REPLY)
    assert f"{refused.value.smtp_code} {refused.value.smtp_error.decode()}" == RELAY_DENIED
    assert stored() == []


def test_a_signed_in_user_sends_a_read_receipt_as_themselves_only(gateway, signed_in_client):
    client = signed_in_client("alice@acme.test")
    assert client.sendmail("", ["pat@partner.test"], AUTO_REPLY) == {}
    with pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail("", ["pat@partner.test"],
                        AUTO_REPLY.replace(b"alice@acme.test", b"bob@acme.test"))
    assert f"{refused.value.smtp_code} {refused.value.smtp_error.decode()}" == \
        NOT_YOUR_ADDRESS
    (message,) = stored()
    assert message.header_from == "Alice <alice@acme.test>"


def test_a_null_sender_message_that_bounces_gets_no_report(gateway, ingress_server):
    partner = gateway.network.mx("partner.test")
    partner.fail("RCPT", 550, "5.1.1 No such user")
    ingress_server().sendmail("", ["pat@partner.test"], AUTO_REPLY)
    gateway.run_queue()
    (message,) = stored()
    assert message.recipients[0].state == "bounced"
    assert db.session.query(OutboundItem).filter_by(kind="dsn").count() == 0
    assert partner.messages == [] and gateway.relay.messages == []


def test_the_tracking_pages_show_the_from_header_for_the_null_sender(
        gateway, ingress_server, client, auth, make_user):
    make_user(gateway.tenant, "admin@acme.test", role="admin")
    ingress_server().sendmail("", ["pat@partner.test"], AUTO_REPLY)
    (message,) = stored()
    auth.sign_in("admin@acme.test", slug="acme")
    found = client.get("/admin/tracking?sender=alice").get_data(as_text=True)
    assert "<td><bdi>Alice &lt;alice@acme.test&gt;</bdi></td>" in found
    page = client.get(f"/admin/tracking/{message.public_id}").get_data(as_text=True)
    assert "&lt;&gt; (the null sender" in page
