"""The envelope and the headers as the gateway passes them on: recipients' local parts
keep their case, a message has at most CCM_MAX_RECIPIENTS recipients, and X-CCM-Mode in
any spelling is read once and never leaves. Real SMTP on loopback."""

import re

import pytest
from support import mail

from app.extensions import db
from app.mail import mime
from app.models import Message, User
from app.smtp.ingress import TOO_MANY_RECIPIENTS
from app.web.queries import sent_items

SECURE = "Sender chose CCM mode External Recipients Only"


def stored() -> list[Message]:
    db.session.expire_all()
    return db.session.query(Message).order_by(Message.id).all()


# --- the case of a recipient's local part ------------------------------------------


def test_a_local_part_keeps_its_case_on_the_way_out(gateway, ingress_server):
    partner = gateway.network.mx("partner.test")
    client = ingress_server()
    sent = ["John.Smith@Partner.TEST", "Bob.Jones@ACME.test"]
    assert client.sendmail("alice@acme.test", sent, mail().encode()) == {}
    (message,) = stored()
    assert [r.address for r in message.recipients] == ["John.Smith@partner.test",
                                                       "Bob.Jones@acme.test"]
    gateway.run_queue()
    assert [d.rcpt_tos for d in partner.wait_for(1)] == [["John.Smith@partner.test"]]
    assert [d.rcpt_tos for d in gateway.relay.wait_for(1)] == [["Bob.Jones@acme.test"]]


def test_a_recipient_named_in_to_in_another_case_is_no_blind_copy(gateway, ingress_server):
    client = ingress_server()
    client.sendmail("alice@acme.test", ["John.Smith@partner.test", "eve@partner.test"],
                    mail(to="john.smith@PARTNER.test").encode())
    (message,) = stored()
    assert sent_items.blind_copies(message) == {"eve@partner.test"}


def test_recipients_are_the_same_whatever_their_case(gateway, ingress_server):
    client = ingress_server()
    client.sendmail("alice@acme.test", ["John@Partner.test", "john@partner.TEST",
                                        "JOHN@PARTNER.TEST"], mail().encode())
    (message,) = stored()
    assert [r.address for r in message.recipients] == ["John@partner.test"]


def test_a_ccm_recipient_finds_one_account_whatever_the_case(gateway, ingress_server):
    gateway.network.mx("lawfirm.test")  # the notifications
    gateway.policy(name="Law firm", kind="route", to_pattern="*@lawfirm.test")
    client = ingress_server()
    client.sendmail("alice@acme.test", ["Pat.Jones@LawFirm.test"], mail().encode())
    client.sendmail("alice@acme.test", ["PAT.JONES@lawfirm.test"], mail().encode())
    client.sendmail("alice@acme.test", ["Bob@Acme.Test"], mail(headers="X-CCM-Mode: all\n")
                    .encode())
    first, second, internal = stored()
    pat = gateway.account("pat.jones@lawfirm.test")
    assert first.recipients[0].user == second.recipients[0].user == pat
    assert first.recipients[0].address == "Pat.Jones@lawfirm.test"
    assert db.session.query(User).filter(User.email.ilike("pat.jones@%")).count() == 1
    assert internal.recipients[0].route == "ccm"
    assert internal.recipients[0].user == gateway.account("bob@acme.test")


# --- how many recipients -------------------------------------------------------------


def test_the_recipient_after_the_thousandth_is_told_to_wait(gateway, ingress_server):
    client = ingress_server()
    rcpts = [f"r{n}@partner.test" for n in range(1001)]
    refused = client.sendmail("alice@acme.test", rcpts, mail().encode())
    assert refused == {"r1000@partner.test": (452, b"4.5.3 Too many recipients")}
    (message,) = stored()
    assert len(message.recipients) == 1000


def test_the_recipient_limit_is_a_setting_and_counts_per_message(app, gateway,
                                                                 ingress_server):
    app.config["MAX_RECIPIENTS"] = 2
    client = ingress_server()
    client.ehlo()
    client.mail("alice@acme.test")
    assert client.rcpt("a@partner.test")[0] == 250
    assert client.rcpt("b@partner.test")[0] == 250
    code, text = client.rcpt("c@partner.test")
    assert f"{code} {text.decode()}" == TOO_MANY_RECIPIENTS
    assert client.data(mail().encode())[0] == 250
    # the next message starts again from none
    assert client.sendmail("alice@acme.test", ["c@partner.test"], mail().encode()) == {}
    assert [len(m.recipients) for m in stored()] == [2, 1]


# --- X-CCM-Mode in every spelling ---------------------------------------------------

#: (the header lines as written, what the gateway makes of them: a mode or None)
SPELLINGS = [
    ("X-CCM-Mode: external\r\n", "external"),
    ("x-ccm-mode: external\r\n", "external"),
    ("X-CCM-MODE:external\r\n", "external"),
    ("X-CCM-Mode : external\r\n", "external"),  # blanks before the colon: still it
    ("X-CCM-Mode\t:\texternal\r\n", "external"),
    ("X-CCM-Mode:\r\n external\r\n", "external"),  # folded
    ("X-CCM-Mode: External \r\n", "external"),
    ("X-CCM-Mode: external\r\nX-CCM-Mode: EXTERNAL\r\n", "external"),  # the same twice
    ("X-CCM-Mode:\r\n", None),  # empty
    ("X-CCM-Mode: \r\n\t\r\n", None),  # empty, folded
    ("X-CCM-Mode: secure\r\n", None),  # no such mode
    ("X-CCM-Mode: external\r\nx-ccm-mode : off\r\n", None),  # two modes: which?
    ("X-CCM-Mode: off\r\nX-CCM-Mode: external\r\n", None),
    ("X-Other: 1\rX-CCM-Mode: external\r\n", "external"),  # after a bare CR
    ("X-Other: 1\nX-CCM-Mode: external\r\n", "external"),  # after a bare LF
]
NOT_HEADERS = ["X-CCM-Modes: external\r\n", "X-CCM-Mode-Note: external\r\n"]


def message_with(lines: str, sender: str = "alice@acme.test") -> bytes:
    return (f"From: {sender}\r\n{lines}To: pat@partner.test\r\nSubject: Figures\r\n\r\n"
            "The body may say X-CCM-Mode: all.\r\n").encode()


def header_names(raw: bytes) -> list[str]:
    head = mime.header_block(raw).decode("utf-8", "replace")
    return [m.group(1).lower() for m in re.finditer(r"(?:^|[\r\n])([^\s:]+)[ \t]*:", head)]


@pytest.mark.parametrize(("lines", "mode"), SPELLINGS)
def test_x_ccm_mode_is_read_once_and_never_passed_on(gateway, ingress_server, lines, mode):
    """bob may not Send Secure: his message goes out by MX, so what leaves can be seen;
    alice may: hers goes by CCM exactly when the headers ask for one mode, External."""
    partner = gateway.network.mx("partner.test")
    client = ingress_server()
    client.sendmail("bob@acme.test", ["pat@partner.test"],
                    message_with(lines, "bob@acme.test"))
    client.sendmail("alice@acme.test", ["pat@partner.test"], message_with(lines))
    bobs, alices = stored()
    gateway.run_queue()
    delivered = [d.data for d in partner.messages if b"The body may say" in d.data]
    assert len(delivered) == (1 if mode == "external" else 2)  # and a notification
    for raw in (bobs.raw, alices.raw, *delivered):
        assert "x-ccm-mode" not in header_names(raw)
        assert b"The body may say X-CCM-Mode: all." in raw
    assert bobs.subject == alices.subject == "Figures"  # the headers after it were read

    decision = alices.recipients[0]
    events = [e.text for e in decision.events]
    if mode == "external":
        assert (decision.route, decision.reason) == ("ccm", SECURE)
    else:
        assert decision.route == "external"
        assert any(e.startswith("X-CCM-Mode") and "ignored" in e for e in events), events
    if lines.lower().count("x-ccm-mode") == 2 and mode is None:
        assert any("asks for more than one mode" in e for e in events), events


@pytest.mark.parametrize("lines", NOT_HEADERS)
def test_headers_that_only_start_like_it_are_other_headers(gateway, lines):
    message = gateway.send(message_with(lines).decode(), ["pat@partner.test"])
    assert message.recipients[0].route == "external"
    assert lines.split(":")[0].lower() in header_names(message.raw)


# --- reading the address of MAIL and RCPT ------------------------------------------

ADDRESS_ARGUMENTS = [
    "<pat@partner.test>", "<pat@partner.test> SIZE=10240", "<a.b+c@x-y.test>  BODY=8BITMIME",
    "  <pat@partner.test>", "<pat@partner.test> (a comment) SIZE=1", "<pat@partner.test>(c)",
    '<"John Smith"@partner.test>', "<@relay.test:pat@partner.test>", "<pat@[192.0.2.1]>",
    "<a..b@partner.test>", "<.a@partner.test>", "<a.@partner.test>", "<pat@partner.>",
    "<pat@partner.test >", "< pat@partner.test>", "<pat@partner.test", "pat@partner.test",
    "pat@partner.test SIZE=1", "<jürgen@partner.test>", "<pat@partner.test>SIZE=1", "",
    "<" + "x" * 65 + "@partner.test>", "<" + "x" * 64 + "@partner.test>", "<>",
]


@pytest.mark.parametrize("argument", ADDRESS_ARGUMENTS)
def test_an_address_is_read_as_aiosmtpd_reads_it(argument):
    """The session reads a plain ``<local@domain>`` itself, the rest by aiosmtpd's way:
    either way the same address, rest of the line and refusals as aiosmtpd's own."""
    from aiosmtpd.smtp import SMTP

    from app.smtp.session import Session

    ours, theirs = Session(object(), data_timeout=1), SMTP(object())
    assert ours._getaddr(argument) == theirs._getaddr(argument)


def test_quoted_and_commented_addresses_are_taken(gateway, ingress_server):
    client = ingress_server()
    client.ehlo()
    assert client.mail("<alice@acme.test> (the sender)")[0] == 250
    assert client.rcpt('"John Smith"@partner.test')[0] == 250
    assert client.rcpt("<bob@partner.test>  ")[0] == 250
    assert client.data(mail().encode())[0] == 250
    (message,) = stored()
    assert [r.address for r in message.recipients] == ['"John Smith"@partner.test',
                                                       "bob@partner.test"]
