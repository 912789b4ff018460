"""Mail loops end: every message the gateway takes gets a Received: line on top, and one
that already has more than CCM_HOP_LIMIT of them is refused at DATA. Real SMTP."""

import re
import smtplib
from contextlib import contextmanager

import pytest
from aiosmtpd.controller import Controller
from servers import free_port
from support import mail, without_trace

from app.domain.ingest import TOO_MANY_HOPS
from app.extensions import db
from app.mail import trace
from app.models import Message, OutboundItem

BODY = (b"From: alice@acme.test\r\nTo: pat@partner.test\r\nSubject: Hops\r\n\r\n"
        b"Received: in the body, not a hop\r\n")


def stored() -> list[Message]:
    db.session.expire_all()
    return db.session.query(Message).order_by(Message.id).all()


def received(count: int, spelling: str = "Received: from a.test by b.test; {n}\r\n") -> bytes:
    return b"".join(spelling.format(n=n).encode() for n in range(count))


def trace_lines(raw: bytes) -> list[str]:
    """Each Received: header of ``raw``, unfolded, top first."""
    message = re.split(rb"\r\n\r\n", raw, maxsplit=1)[0].decode()
    return [" ".join(line.split()) for line in re.split(r"\r\n(?![ \t])", message)
            if line.lower().startswith("received")]


SPELLINGS = ["Received: from a.test by b.test; {n}\r\n",
             "received: by b.test; {n}\r\n",
             "RECEIVED : from a.test\r\n\tby b.test; {n}\r\n",
             "Received:\r\n from a.test by b.test; {n}\r\n"]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_fifty_hops_pass_and_the_fifty_first_is_refused(gateway, ingress_server, spelling):
    client = ingress_server()
    assert client.sendmail("alice@acme.test", ["pat@partner.test"],
                           received(50, spelling) + BODY) == {}
    with pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail("alice@acme.test", ["pat@partner.test"], received(51, spelling) + BODY)
    assert f"{refused.value.smtp_code} {refused.value.smtp_error.decode()}" == TOO_MANY_HOPS
    (message,) = stored()
    assert trace.hops(message.raw) == 51


def test_the_limit_is_a_setting(app, gateway, ingress_server):
    app.config["HOP_LIMIT"] = 3
    client = ingress_server()
    assert client.sendmail("alice@acme.test", ["pat@partner.test"], received(3) + BODY) == {}
    with pytest.raises(smtplib.SMTPDataError):
        client.sendmail("alice@acme.test", ["pat@partner.test"], received(4) + BODY)


def test_the_stored_and_delivered_copy_has_one_more_received_line_on_top(
        gateway, ingress_server):
    partner = gateway.network.mx("partner.test")
    client = ingress_server()
    client.ehlo("mail.acme.test")
    sent = received(2) + BODY
    assert client.sendmail("alice@acme.test", ["pat@partner.test"], sent) == {}
    (message,) = stored()
    gateway.run_queue()
    (delivery,) = partner.wait_for(1)
    for copy in (message.raw, delivery.data):
        assert without_trace(copy) == sent
        ours = trace_lines(copy)[0]
        assert re.fullmatch(
            r"Received: from mail\.acme\.test \((\S+ )?\[127\.0\.0\.1\]\) "
            r"by gateway\.acme\.test \(CCM\) with ESMTP id [0-9A-F]{12} "
            r"for <pat@partner\.test>; \w{3}, \d+ \w{3} \d{4} \d\d:\d\d:\d\d \+0000", ours), ours
        assert len(trace_lines(copy)) == 3
    id_ = re.search(r" id (\w+) ", trace_lines(message.raw)[0]).group(1)
    assert any(f"queue id {id_}" in event.text for event in message.recipients[0].events)


def test_the_trace_line_names_tls_and_auth(gateway, signed_in_client):
    client = signed_in_client("alice@acme.test")
    client.sendmail("alice@acme.test", ["pat@partner.test", "bob@acme.test"], BODY)
    (message,) = stored()
    (ours,) = trace_lines(message.raw)
    assert ours.startswith("Received: from laptop.acme.test (")
    assert "[127.0.0.1]) by gateway.acme.test (CCM) with ESMTPSA id " in ours
    assert " for " not in ours  # two recipients: none is named to the other


@pytest.mark.parametrize(("greeting", "protocol"), [("helo", "SMTP"), ("ehlo", "ESMTP")])
def test_helo_and_ehlo(gateway, ingress_server, greeting, protocol):
    client = ingress_server()
    getattr(client, greeting)("mail.acme.test")
    client.sendmail("alice@acme.test", ["pat@partner.test"], BODY)
    (message,) = stored()
    assert f" with {protocol} id " in trace_lines(message.raw)[0]


@pytest.mark.parametrize("name", ["two words", "a(b)c", "x;y", "ünï.test", "a" * 300,
                                  "[127.0.0.1] by evil.test", "a\x0bb"])
def test_a_greeting_that_is_no_host_name_is_written_as_unknown(gateway, ingress_server, name):
    client = ingress_server()
    client.send(f"EHLO {name}\r\n".encode())
    assert client.getreply()[0] == 250
    # (smtplib's sendmail would greet again, with a name of its own)
    assert client.mail("alice@acme.test")[0] == 250
    assert client.rcpt("pat@partner.test")[0] == 250
    assert client.data(BODY)[0] == 250
    (message,) = stored()
    ours = trace_lines(message.raw)[0]
    assert ours.startswith("Received: from unknown ("), ours
    assert len(trace_lines(message.raw)) == 1


def test_mail_written_in_the_portal_or_injected_counts_as_a_hop(gateway):
    portal = gateway.send(mail(), ["pat@partner.test"], via="portal",
                          client_address="2001:db8::7", tls=True)
    command = gateway.send(mail(), ["pat@partner.test"], via="command line",
                           client_address="ccm send")
    assert re.fullmatch(r"Received: from \[IPv6:2001:db8::7\] by gateway\.acme\.test "
                        r"\(CCM, written in the portal\) with HTTPS id \w+ "
                        r"for <pat@partner\.test>; .*", trace_lines(portal.raw)[0])
    assert re.fullmatch(r"Received: by gateway\.acme\.test \(CCM, command line\) id \w+ "
                        r"for <pat@partner\.test>; .*", trace_lines(command.raw)[0])


# --- a real loop ---------------------------------------------------------------------


class _Forward:
    """A tenant's mail server whose route for its own domain points back at the gateway:
    it passes each message on and answers what the gateway answered."""

    def __init__(self, port: int):
        self.port, self.copies = port, 0

    async def handle_DATA(self, server, session, envelope):
        self.copies += 1
        sender = "" if envelope.mail_from == "<>" else envelope.mail_from
        try:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as client:
                client.sendmail(sender, envelope.rcpt_tos, envelope.original_content)
        except (smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as refused:
            return f"{refused.smtp_code} {refused.smtp_error.decode()}"
        except smtplib.SMTPRecipientsRefused as refused:
            code, text = next(iter(refused.recipients.values()))
            return f"{code} {text.decode()}"
        return "250 2.0.0 Passed on"


@contextmanager
def forwarding_relay(to_port: int):
    handler = _Forward(to_port)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(),
                            server_hostname="exchange.acme.test")
    controller.start()
    try:
        yield handler, controller.port
    finally:
        controller.stop()


def test_a_relay_that_sends_the_tenants_mail_back_makes_a_loop_that_ends(
        app, gateway, ingress_server):
    client = ingress_server()  # starts the listener
    port = client.sock.getpeername()[1]
    with forwarding_relay(port) as (relay, relay_port):
        app.config["INTERNAL_RELAY"] = f"smtp://127.0.0.1:{relay_port}"
        assert client.sendmail("alice@acme.test", ["bob@acme.test"],
                               mail(to="bob@acme.test").encode()) == {}
        gateway.run_queue()  # ends: no new message is taken after the last hop

    limit = app.config["HOP_LIMIT"]
    copies = stored()
    assert len(copies) == limit + 1  # each with one more hop: 1, 2, ... 51
    assert [trace.hops(m.raw) for m in copies] == list(range(1, limit + 2))
    last = copies[-1].recipients[0]
    assert last.state == "bounced"
    assert any("5.4.6 Too many hops" in event.text for event in last.events)
    assert all(m.recipients[0].state == "delivered" for m in copies[:-1])
    # the report to alice went the same way and was refused (from the null sender,
    # at no served domain): it is not answered, and nothing is left to send
    assert relay.copies == limit + 2
    assert db.session.query(OutboundItem).filter(OutboundItem.state == "pending").count() == 0
