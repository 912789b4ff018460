"""Bcc: no recipient ever sees it, in a delivered copy or in the portal; the sender does.

The gateway removes Bcc (with Resent-Bcc and X-CCM-Mode, app/mail/mime.py
STRIPPED_HEADERS) once, as it stores a message, so every way out reads a message
without it. Each variant goes through the real SMTP ingress to an MX (an aiosmtpd sink),
to the internal relay (a maildir) and to the portal (CCM), and every copy must be the
message as sent less those headers, byte for byte.
"""

from __future__ import annotations

import mailbox
import re
from dataclasses import dataclass

import pytest
from support import PASSWORD, post_form, without_trace

from app.delivery.encodings import crlf
from app.domain.passwords import hash_password
from app.extensions import db
from app.mail import mime
from app.models import Message, User

#: the recipients the variants hide: bob by the internal relay (a maildir), counsel in
#: the portal (a route policy sends lawfirm.test mail by CCM); pat, named in To, by MX
HIDDEN = ("bob@acme.test", "counsel@lawfirm.test")
RECIPIENTS = ["pat@partner.test", *HIDDEN]

FROM = b"From: Alice <alice@acme.test>\r\n"
TO = b"To: pat@partner.test\r\n"
SUBJECT = b"Subject: Figures\r\n"
REST = b"Message-ID: <figures@acme.test>\r\nDate: Mon, 2 Mar 2026 09:00:00 +0000\r\n"
#: a line that looks like a Bcc header in the body is text, and stays
BODY = b"\r\nThe figures.\r\nBcc: only text in the body\r\n"
ATTACHED = (b"From: archive@acme.test\r\nBcc: auditor@elsewhere.test\r\n"
            b"Subject: Old figures\r\n\r\nLast year's figures.\r\n")


def multipart(top_bcc: bytes) -> tuple[bytes, bytes]:
    """A message forwarding another as an attachment, whose own Bcc is content."""
    head = (FROM + TO + SUBJECT + top_bcc + REST + b"MIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="b1"\r\n')
    body = (b"\r\n--b1\r\nContent-Type: text/plain\r\n\r\nSee the attached.\r\n"
            b"--b1\r\nContent-Type: message/rfc822\r\nBcc: part-header@elsewhere.test\r\n"
            b"\r\n" + ATTACHED + b"--b1--\r\n")
    return head + body, head.replace(top_bcc, b"") + body


@dataclass(frozen=True)
class Variant:
    name: str
    sent: bytes
    #: what every recipient gets: ``sent`` less the headers, every other byte kept
    delivered: bytes


def variant(name: str, sent_head: bytes, delivered_head: bytes,
            body: bytes = BODY) -> Variant:
    return Variant(name, sent_head + body, delivered_head + body)


def lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


BCC = b"Bcc: bob@acme.test, counsel@lawfirm.test\r\n"
PLAIN = FROM + TO + SUBJECT + REST

VARIANTS = [
    variant("Bcc", FROM + TO + BCC + SUBJECT + REST, PLAIN),
    variant("BCC", FROM + TO + BCC.upper() + SUBJECT + REST, PLAIN),
    variant("bcc", FROM + TO + BCC.lower() + SUBJECT + REST, PLAIN),
    # RFC 5322's obsolete syntax, still a header to Postfix and others
    variant("blanks before the colon",
            FROM + TO + b"Bcc \t: bob@acme.test, counsel@lawfirm.test\r\n" + SUBJECT + REST,
            PLAIN),
    variant("several, first and last",
            b"Bcc: bob@acme.test\r\n" + PLAIN + b"bcc: counsel@lawfirm.test\r\n", PLAIN),
    variant("folded over three lines",
            FROM + TO + b"Bcc: Bob <bob@acme.test>,\r\n\tCounsel\r\n <counsel@lawfirm.test>\r\n"
            + SUBJECT + REST, PLAIN),
    variant("Resent-Bcc",
            b"Resent-From: alice@acme.test\r\nResent-Bcc: bob@acme.test\r\n"
            b"RESENT-BCC: counsel@lawfirm.test\r\n" + PLAIN,
            b"Resent-From: alice@acme.test\r\n" + PLAIN),
    variant("encoded words",
            FROM + TO + b"Bcc: =?utf-8?q?B=C3=B6b?= <bob@acme.test>,\r\n"
            b" =?utf-8?b?Q291bnNlbA==?= <counsel@lawfirm.test>\r\n" + SUBJECT + REST, PLAIN),
    variant("8-bit UTF-8", FROM + TO + "Bcc: Böb <bob@acme.test>, Counsel "
            "<counsel@lawfirm.test>\r\n".encode() + SUBJECT + REST, PLAIN),
    variant("empty", FROM + TO + b"Bcc:\r\n" + SUBJECT + b"Bcc: \r\n" + REST, PLAIN),
    variant("with X-CCM-Mode", FROM + TO + b"X-CCM-Mode: off\r\n" + BCC + SUBJECT + REST,
            PLAIN),
    # Smuggled: a line end that the email package reads, and some servers do not.
    variant("after a bare LF", FROM + TO + b"Subject: Figures\n" + BCC + REST, PLAIN),
    variant("after a bare CR", FROM + TO + b"Subject: Figures\r" + BCC + REST, PLAIN),
    variant("LF line ends throughout", lf(FROM + TO + BCC + SUBJECT + REST),
            lf(PLAIN), lf(BODY)),
    Variant("an attached message keeps its own", *multipart(BCC)),
]


def on_the_wire(data: bytes) -> bytes:
    """What SMTP carries of ``data``: smtplib ends the data with a line end if it has none."""
    return data if data.endswith(b"\r\n") else data + b"\r\n"


#: how mail readers split lines: RFC 5322 (CRLF only), most mail servers (LF, with or
#: without CR), and the email package (a bare CR too)
READERS = {"CRLF": rb"\r\n", "LF": rb"\r?\n", "LF or CR": rb"\r\n|\r|\n"}


def top_level_names(data: bytes, line_end: bytes) -> list[bytes]:
    """The names of the top-level headers a reader splitting lines at ``line_end`` sees."""
    names = []
    for line in re.split(line_end, data):
        if not line:
            break  # the empty line: the body follows
        if line[:1] not in (b" ", b"\t"):
            names.append(line.partition(b":")[0].strip().lower())
    return names


def assert_no_stripped_header(data: bytes) -> None:
    stripped = {name.lower().encode() for name in mime.STRIPPED_HEADERS}
    for reader, line_end in READERS.items():
        assert stripped.isdisjoint(top_level_names(data, line_end)), reader


@pytest.mark.parametrize("case", VARIANTS, ids=[v.name for v in VARIANTS])
def test_the_headers_go_and_every_other_byte_stays(case):
    assert mime.strip_headers(case.sent) == case.delivered
    assert_no_stripped_header(case.delivered)


def test_every_reader_would_have_seen_the_variants_bcc():
    """The table holds what it claims: each variant has a Bcc some reader sees."""
    hidden = [v.name for v in VARIANTS
              if not any({b"bcc", b"resent-bcc"} & set(top_level_names(v.sent, line_end))
                         for line_end in READERS.values())]
    assert hidden == []


@pytest.mark.parametrize("data", [
    PLAIN + BODY,
    b"X-Bcc: kept\r\nBcc-Note: kept\r\n" + PLAIN + BODY,  # other names that start alike
    FROM + b"Subject: About the Bcc: header\r\n Bcc: folded into the subject\r\n" + BODY,
    b"\r\nBcc: no headers at all, so this is the body\r\n",
    b"",
])
def test_a_message_without_them_is_left_as_it_is(data):
    assert mime.strip_headers(data) is data


@pytest.mark.parametrize(("sent", "delivered"), [
    (BCC + BODY, BODY),  # nothing else in the header section
    (FROM + BCC.rstrip(b"\r\n"), FROM.rstrip(b"\r\n")),  # headers only, no body
    # after a "blank line" of bare CRs: body to the email package, but the Subject's
    # text to LF readers, which a client breaking lines at a CR shows as a line
    (FROM + b"Subject: x\r\r" + BCC + BODY, FROM + b"Subject: x\r\r\n" + BODY),
])
def test_edge_cases_of_the_header_section(sent, delivered):
    assert mime.strip_headers(sent) == delivered
    assert_no_stripped_header(delivered)


# --- through the gateway ---------------------------------------------------------------


@pytest.fixture
def routes(app, gateway, tmp_path):
    """pat by MX to an aiosmtpd sink, bob by the internal relay to a maildir, counsel
    by CCM; returns the MX sink and the maildir."""
    relay = tmp_path / "relay"
    app.config["INTERNAL_RELAY"] = f"maildir:{relay}"
    gateway.policy(name="Law firm", kind="route", to_pattern="*@lawfirm.test")
    gateway.network.mx("lawfirm.test")  # counsel's notifications
    return gateway.network.mx("partner.test"), relay


#: the envelope the maildir transport writes on top of each copy, as Postfix's local does
MAILDIR_ENVELOPE = re.compile(rb"\AReturn-Path: [^\r\n]*\r\nX-Original-To: [^\r\n]*\r\n"
                              rb"Delivered-To: [^\r\n]*\r\n")


def maildir_copies(path) -> list[bytes]:
    """Each copy in the maildir, less its envelope lines (which name one recipient)."""
    box = mailbox.Maildir(path, create=False)
    return [MAILDIR_ENVELOPE.sub(b"", box.get_bytes(key), count=1) for key in box.iterkeys()]


def activate(gateway, email: str) -> User:
    user = gateway.account(email)
    user.password_hash = hash_password(PASSWORD)
    user.must_change_password = False
    db.session.commit()
    return user


@pytest.mark.parametrize("case", VARIANTS, ids=[v.name for v in VARIANTS])
def test_no_copy_and_no_portal_page_shows_bcc(app, gateway, routes, ingress_server, client,
                                              auth, case):
    mx, relay = routes
    smtp = ingress_server()
    assert smtp.sendmail("alice@acme.test", RECIPIENTS, case.sent) == {}
    expected = on_the_wire(case.delivered)
    message = db.session.query(Message).one()
    assert without_trace(message.raw) == expected
    assert {r.address: r.route for r in message.recipients} == {
        "pat@partner.test": "external", "bob@acme.test": "internal",
        "counsel@lawfirm.test": "ccm"}
    gateway.run_queue()

    (by_mx,) = [d for d in mx.wait_for(1) if d.rcpt_tos == ["pat@partner.test"]]
    (by_relay,) = maildir_copies(relay)
    assert without_trace(by_relay) == expected
    # SMTP carries lines ending in CRLF only
    assert without_trace(by_mx.data) == crlf(expected)
    for copy in (by_mx.data, by_relay):
        assert_no_stripped_header(copy)
        assert not any(address.encode() in copy for address in HIDDEN)

    # counsel, in the portal: the message and the reply form name only From, To and Cc
    activate(gateway, "counsel@lawfirm.test")
    auth.sign_in("counsel@lawfirm.test", slug="acme")
    for path in (f"/inbox/{message.public_id}", f"/inbox/{message.public_id}/reply?all=1"):
        page = client.get(path)
        assert page.status_code == 200
        text = page.get_data(as_text=True)
        assert "pat@partner.test" in text
        assert "bob@acme.test" not in text and "Böb" not in text

    # alice, the sender, sees whom she sent it to blind
    sender = app.test_client()  # of the class the client fixture chose
    post_form(sender, "/t/acme/sign-in", {"email": "alice@acme.test", "password": PASSWORD})
    page = sender.get(f"/sent/{message.public_id}").get_data(as_text=True)
    for address in RECIPIENTS:
        shown = re.search(rf"<strong><bdi>{re.escape(address)}</bdi></strong>"
                          r"\s*<span[^>]*>[^<]*</span>"
                          r"\s*(<span[^>]*>Bcc</span>)?", page)
        assert shown, f"{address} is not listed"
        assert bool(shown.group(1)) == (address in HIDDEN), address


# --- the portal's composer and replies -------------------------------------------------


@pytest.mark.parametrize(("field", "value"), [
    ("subject", "Offer\r\nBcc: bob@acme.test"),
    ("subject", "Offer\nBcc: bob@acme.test"),
    ("subject", "Offer\rBcc: bob@acme.test"),
    ("to", "pat@partner.test\r\nBcc: bob@acme.test"),
    ("cc", "pat@partner.test\nBcc: bob@acme.test"),
    ("cc", "Bcc: bob@acme.test"),
])
def test_the_composer_writes_no_bcc_header_whatever_is_typed(gateway, client, auth, field,
                                                              value):
    """The composer has To and Cc only, and a line break cannot start a header of its
    own: a single-line field refuses it (app/web/inputs.py), and "Bcc:" is no address."""
    auth.sign_in("alice@acme.test", slug="acme")
    fields = {"to": "pat@partner.test", "cc": "", "subject": "Offer", "body": "Terms.",
              field: value}
    response = post_form(client, "/compose/", fields)
    page = response.get_data(as_text=True)
    assert response.status_code == 200  # refused, saying why, and nothing is sent
    assert "Use one line of text" in page or "Not an email address: bcc:" in page
    assert db.session.query(Message).all() == []


def test_a_blind_recipient_replies_only_to_the_people_on_the_message(gateway, routes,
                                                                     ingress_server, client,
                                                                     auth):
    ingress_server().sendmail("alice@acme.test", RECIPIENTS, VARIANTS[0].sent)
    message = db.session.query(Message).one()
    activate(gateway, "counsel@lawfirm.test")
    auth.sign_in("counsel@lawfirm.test", slug="acme")
    reply = f"/inbox/{message.public_id}/reply"
    forged = post_form(client, reply, {"recipients": ["pat@partner.test", "bob@acme.test"],
                                       "body": "Agreed."})
    assert forged.status_code == 200
    assert "bob@acme.test is not one of them" in forged.get_data(as_text=True)
    assert db.session.query(Message).count() == 1
    sent = post_form(client, reply, {"recipients": ["alice@acme.test", "pat@partner.test"],
                                     "body": "Agreed."})
    assert sent.status_code == 302
    answer = db.session.query(Message).filter(Message.id != message.id).one()
    assert sorted(r.address for r in answer.recipients) == ["alice@acme.test",
                                                            "pat@partner.test"]
    assert b"bob@acme.test" not in answer.raw
