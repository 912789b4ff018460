"""A bounce report for any message: whatever the original's bytes, a remote's permanent
refusal ends the item bounced with exactly one report, RFC 3464 or RFC 6533, and the
remote is not tried again."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from email import policy
from email.parser import BytesParser
from email.utils import formataddr, parseaddr

import dkim
import dns.resolver
import pytest

from app.clock import utcnow
from app.delivery import dkim_signing, dsn, mail_templates
from app.extensions import db
from app.models import OutboundItem

MX = "mx.partner.test"
REFUSAL = "5.1.1 <pat@partner.test>: no such user"
HEAD = b"From: Alice <alice@acme.test>\r\nTo: pat@partner.test\r\n"

# name: (the original's bytes, recipient, envelope sender, whether the report is RFC 6533's)
ORIGINALS = {
    "plain": (HEAD + b"Subject: Figures\r\n\r\nNumbers.\r\n", "pat", "alice", False),
    "utf8 headers": (b"From: J\xc3\xbcrgen <alice@acme.test>\r\nTo: pat@partner.test\r\n"
                     b"Subject: Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln\r\n\r\nHallo.\r\n",
                     "pat", "alice", True),
    "latin-1 headers": (HEAD + b"Subject: Gr\xfc\xdfe\r\nX-Note: caf\xe9\r\n\r\nx\r\n",
                        "pat", "alice", True),
    "bare LF": (HEAD.replace(b"\r\n", b"\n") + b"Subject: LF\n\nbody\n", "pat", "alice",
                False),
    "bare CR": (b"From: alice@acme.test\rTo: pat@partner.test\rSubject: CR\r\rbody\r",
                "pat", "alice", False),
    "CR inside a value": (HEAD + b"Subject: one\rtwo\nthree\r\n\r\nbody\r\n", "pat",
                          "alice", False),
    "NUL bytes": (HEAD + b"Subject: a\x00b\r\nX-\x00: \x00\r\n\r\nbo\x00dy\r\n", "pat",
                  "alice", False),
    "controls": (HEAD + b"Subject: \x1b[31mred\x07\x7f\r\n\r\nbody\r\n", "pat", "alice",
                 False),
    "C1 controls and line separators": (
        HEAD + "Subject: a\u0085b\u2028c\u2029d\r\n\r\nx\r\n".encode(), "pat", "alice", True),
    "headers, no body": (HEAD + b"Subject: no body", "pat", "alice", False),
    "no header section": (b"\r\nJust a body, no headers.\r\n", "pat", "alice", False),
    "no header lines": (b"just some words\r\nand more words\r\n", "pat", "alice", False),
    "continuation first": (b" folded before anything\r\n" + HEAD + b"\r\nx\r\n", "pat",
                           "alice", False),
    "huge headers": (HEAD + b"".join(b"X-Filler-%d: %s\r\n" % (n, b"y" * 900)
                                     for n in range(300)) + b"\r\nx\r\n", "pat", "alice",
                     False),
    "huge line": (HEAD + b"Subject: " + b"z" * 20_000 + b"\r\n\r\nx\r\n", "pat",
                      "alice", False),
    "huge line in utf8": (HEAD + b"Subject: " + "\u00fc".encode() * 5_000 + b"\r\n\r\nx\r\n",
                       "pat", "alice", True),
    "malformed MIME": (HEAD + b"Subject: =?utf-8?B?!!!?= =?x-unknown?q?=ZZ?=\r\n"
                       b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"\r\n"
                       b"Content-Transfer-Encoding: base64\r\n\r\n--\r\n--x\r\n=ZZ\r\n",
                       "pat", "alice", False),
    "8-bit header name": (HEAD + b"S\xc3\xbcbject: x\r\n\xff\xfe: y\r\n\r\nx\r\n", "pat",
                          "alice", True),
    "mbox From line": (b"From alice@acme.test Mon Jan  1 00:00:00 2024\r\n" + HEAD
                       + b"\r\nx\r\n", "pat", "alice", False),
    "report fields in the headers": (HEAD + b"Final-Recipient: rfc822; evil@x.test\r\n"
                                     b"Action: delivered\r\n\r\nx\r\n", "pat", "alice",
                                     False),
    "utf8 recipient": (HEAD + b"Subject: to p\xc3\xa4t\r\n\r\nx\r\n", "p\u00e4t", "alice",
                       True),
    "utf8 sender": (HEAD + b"Subject: from j\xc3\xbcrgen\r\n\r\nx\r\n", "pat",
                    "j\u00fcrgen", True),
}


def events(recipient) -> list[str]:
    db.session.refresh(recipient)
    return [e.text for e in recipient.events]


def items(kind: str) -> list[OutboundItem]:
    db.session.expire_all()
    return db.session.query(OutboundItem).filter_by(kind=kind).order_by(OutboundItem.id).all()


def run_again(gateway) -> None:
    """Everything due now, as if every back-off had passed, and the queue run."""
    for item in db.session.query(OutboundItem).filter_by(state="pending"):
        item.next_attempt_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    gateway.run_queue()


def fields(block: bytes) -> dict[str, str]:
    """One block of report fields, read strictly: every line ``Name: value`` or a
    continuation of the line before."""
    found: dict[str, str] = {}
    name = None
    for line in block.decode().split("\r\n"):
        if line[:1] in (" ", "\t"):
            assert name, f"a continuation line opens the block: {line!r}"
            found[name] += line
            continue
        match = re.fullmatch(r"([!-9;-~]+):(.*)", line)
        assert match, f"not a field: {line!r}"
        name = match.group(1).lower()
        assert name not in found, f"{name} twice in one block"
        found[name] = match.group(2).strip()
    return found


def report_blocks(data: bytes, boundary: str) -> tuple[bytes, list[bytes]]:
    """The report part's MIME header and its blocks, read from the bytes as sent."""
    parts = data.split(b"\r\n--" + boundary.encode())
    header, _, body = parts[2].partition(b"\r\n\r\n")
    assert body.endswith(b"\r\n") and not body.endswith(b"\r\n\r\n")
    return header, body[:-2].split(b"\r\n\r\n")


def check_whole(data: bytes, international: bool) -> None:
    """Fit for SMTP: CRLF line ends only, no NUL, no line over 998 bytes; ASCII unless
    the report is RFC 6533's."""
    assert b"\x00" not in data
    assert b"\n" not in data.replace(b"\r\n", b"") and b"\r" not in data.replace(b"\r\n", b"")
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    if not international:
        assert data.isascii(), [line for line in data.split(b"\r\n") if not line.isascii()]


@pytest.mark.parametrize("stage", ["RCPT", "DATA"])
@pytest.mark.parametrize("case", list(ORIGINALS))
def test_a_refused_message_bounces_with_one_report_whatever_its_bytes(gateway, network,
                                                                      case, stage):
    raw, local, sender_local, international = ORIGINALS[case]
    rcpt, sender = f"{local}@partner.test", f"{sender_local}@acme.test"
    sink = network.mx("partner.test", name=MX)
    sink.fail(stage, 550, REFUSAL)
    message = gateway.send(raw, [rcpt], mail_from=sender)
    gateway.run_queue()

    # (a line over SMTP's limit leaves folded: the remote sees no line too long)
    said, status = f"550 {REFUSAL}", "5.1.1"
    (delivery,) = items("delivery")
    assert (delivery.state, delivery.attempts) == ("failed", 1)
    assert delivery.last_error == f"{MX} said: {said}"
    recipient = message.recipients[0]
    assert events(recipient)[-1] == f"Bounced: {MX} said: {said}"
    assert recipient.state == "bounced"
    (report_item,) = items("dsn")
    assert report_item.state == "done"
    (sent,) = gateway.relay.wait_for(1)
    assert (sent.mail_from, sent.rcpt_tos) == ("<>", [sender])

    report = BytesParser(policy=policy.default).parsebytes(sent.data)
    kind = "global-delivery-status" if international else "delivery-status"
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == kind
    assert report["Auto-Submitted"] == "auto-replied"
    assert report["From"] == formataddr(
        ("Mail Delivery System", mail_templates.sender_address(gateway.tenant)))
    assert "MAILER-DAEMON" not in str(report["From"])
    assert report["To"] == sender
    check_whole(sent.data, international)
    types = [part.get_content_type() for part in report.iter_parts()]
    returned = "message/global-headers" if international else "text/rfc822-headers"
    # even a message that came without headers has one: the gateway's Received: line
    assert types == ["text/plain", f"message/{kind}", returned]
    assert rcpt in report.get_body(("plain",)).get_content()

    header, blocks = report_blocks(sent.data, report.get_boundary())
    assert f"Content-Type: message/{kind}".encode() in header
    assert len(blocks) == 2, "one block about the message, one about the recipient"
    per_message, per_recipient = fields(blocks[0]), fields(blocks[1])
    assert set(per_message) == {"reporting-mta", "arrival-date"}
    assert per_message["reporting-mta"] == "dns; gateway.acme.test"
    assert per_recipient["final-recipient"] == (
        f"rfc822; {rcpt}" if rcpt.isascii() else f"utf-8; {rcpt}")
    assert per_recipient["action"] == "failed"
    assert per_recipient["status"] == status
    assert per_recipient["remote-mta"] == f"dns; {MX}"
    assert per_recipient["diagnostic-code"] == f"smtp; {said}"
    if kind == "delivery-status":  # the email package reads the same two blocks
        assert len(report.get_payload(1).get_payload()) == 2

    run_again(gateway)
    assert sink.messages == [], "the remote was tried again"
    assert len(gateway.relay.messages) == 1 and len(items("dsn")) == 1


def test_the_returned_headers_are_the_originals_in_utf8(gateway, network):
    sink = network.mx("partner.test", name=MX)
    sink.fail("RCPT", 550, REFUSAL)
    gateway.send(ORIGINALS["utf8 headers"][0], ["pat@partner.test"])
    gateway.run_queue()
    (sent,) = gateway.relay.wait_for(1)
    returned = sent.data.split(b"Content-Type: message/global-headers\r\n")[1]
    assert b"Content-Transfer-Encoding: 8bit\r\n\r\n" in returned
    assert "Subject: Grüße aus Köln\r\n".encode() in returned
    assert b"From: J\xc3\xbcrgen <alice@acme.test>\r\n" in returned


def test_huge_headers_are_returned_in_part(gateway, network):
    sink = network.mx("partner.test", name=MX)
    sink.fail("DATA", 554, "5.3.4 message too big")
    gateway.send(ORIGINALS["huge headers"][0], ["pat@partner.test"])
    gateway.run_queue()
    (sent,) = gateway.relay.wait_for(1)
    assert len(sent.data) < dsn.RETURNED_HEADERS_LIMIT + 10_000
    assert b"\r\nX-Filler-1: " in sent.data and b"X-Filler-299" not in sent.data
    assert b"Status: 5.3.4" in sent.data


def test_the_report_is_signed_for_the_domain_of_its_from(gateway, network):
    gateway.tenant.mail_from = "notify@acme.test"
    dkim_signing.generate(gateway.tenant)
    dkim_signing.activate(gateway.tenant, "acme.test")  # as if its record were published
    db.session.commit()
    network.dns.add_txt(*dkim_signing.dns_record(gateway.tenant, "acme.test"))
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port = ["127.0.0.1"], network.dns.port

    def from_test_dns(name, timeout=5):
        answer = resolver.resolve(name.decode().rstrip("."), "TXT")
        return b"".join(b"".join(record.strings) for record in answer)

    sink = network.mx("partner.test", name=MX)
    sink.fail("RCPT", 550, REFUSAL, times=2)
    for case in ("plain", "utf8 headers"):
        gateway.send(ORIGINALS[case][0], ["pat@partner.test"])
    gateway.run_queue()
    for sent in gateway.relay.wait_for(2):
        report = BytesParser(policy=policy.default).parsebytes(sent.data)
        assert report["From"] == "Mail Delivery System <notify@acme.test>"
        signature = dict(tag.strip().split("=", 1)
                         for tag in str(report["DKIM-Signature"]).split(";") if "=" in tag)
        assert signature["d"] == parseaddr(str(report["From"]))[1].rpartition("@")[2]
        assert dkim.verify(sent.data, dnsfunc=from_test_dns)


def test_a_report_that_cannot_be_built_ends_the_item_all_the_same(gateway, network,
                                                                   monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise TypeError("a bug in the report")

    monkeypatch.setattr(dsn, "failure_report", broken)
    sink = network.mx("partner.test", name=MX)
    sink.fail("RCPT", 550, REFUSAL)
    message = gateway.send(ORIGINALS["plain"][0], ["pat@partner.test"])
    with caplog.at_level(logging.ERROR, logger="app.delivery.runner"):
        gateway.run_queue()
    (delivery,) = items("delivery")
    assert (delivery.state, delivery.attempts) == ("failed", 1)
    assert delivery.last_error == f"{MX} said: 550 {REFUSAL}"
    assert events(message.recipients[0])[-2:] == [
        f"Bounced: {MX} said: 550 {REFUSAL}",
        "No report could be sent to the sender: TypeError"]
    (logged,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert logged.exc_info and logged.exc_info[0] is TypeError
    assert items("dsn") == []
    run_again(gateway)
    assert sink.messages == [] and gateway.relay.messages == []


@pytest.mark.parametrize(("reply", "status"), [
    ("550 5.7.1 refused", "5.7.1"), ("550 no code at all", "5.0.0"),
    ("554 4.4.7 odd but so", "5.4.7"), ("550 127.0.0.1 is not a code", "5.0.0"),
    ("550 5.1234.1 too long", "5.0.0"), ("550 .. 5. x.y.z", "5.0.0"),
])
def test_the_status_is_the_remotes_enhanced_code_else_the_generic_one(reply, status):
    assert dsn._status_code(reply) == status


@pytest.mark.parametrize("end", [b"\r\n", b"\n", b"\r"])
def test_the_returned_headers_end_where_a_reader_ends_them(gateway, network, end):
    sink = network.mx("partner.test", name=MX)
    sink.fail("RCPT", 550, REFUSAL)
    head = [b"From: alice@acme.test", b"To: pat@partner.test", b"Subject: ends"]
    gateway.send(end.join(head) + end + end + b"The body." + end, ["pat@partner.test"])
    gateway.run_queue()
    (sent,) = gateway.relay.wait_for(1)
    returned = sent.data.split(b"Content-Type: text/rfc822-headers\r\n")[1]
    body = returned.split(b"\r\n\r\n", 1)[1]
    assert body.split(b"\r\n--")[0].endswith(b"\r\n" + b"\r\n".join(head) + b"\r\n")
    assert body.startswith(b"Received: "), "the gateway's trace line comes first"
