"""`ccm outbox` and `ccm queue` print mail content (subjects, addresses, bodies, remote
servers' replies) that others wrote: no control sequence in it reaches the operator's
terminal; each is shown as a visible escape (app/mail/terminal.py)."""

from __future__ import annotations

import base64
import mailbox
import re

import pytest
from support import mail

from app.domain.delivery_events import record
from app.extensions import db
from app.mail import terminal
from app.models import OutboundItem

#: what a terminal would obey: C0 but tab and line feed, DEL, C1, bidi controls
OBEYED = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
                    "\u202a-\u202e\u2066-\u2069]")
CLEAR = "\x1b[2J"
CLIPBOARD = "\x1b]52;c;ZXZpbA==\x07"  # OSC 52: write "evil" to the clipboard


@pytest.mark.parametrize("code", [*range(0x20), 0x7F, *range(0x80, 0xA0), 0x061C, 0x200E,
                                  0x200F, 0x2028, 0x2029, *range(0x202A, 0x202F),
                                  *range(0x2066, 0x206A)])
def test_every_control_is_written_as_a_visible_escape(code):
    text = f"a{chr(code)}b"
    shown = terminal.printable(text)
    if chr(code) in "\n\t":
        assert shown == text
    else:
        assert not OBEYED.search(shown) and shown.isprintable()
        assert shown == f"a\\x{code:02x}b" if code < 0x100 else shown == f"a\\u{code:04x}b"


def test_everything_else_is_printed_as_it_is():
    text = "Grüße — 契約書 👍 \\x1b is text\tand\nlines <a@b> ~!@#$%^&*()"
    assert terminal.printable(text) == text


def hostile_outbox(path) -> None:
    """Two copies as a hostile sender could have them written: escapes in encoded words,
    in quoted-printable and base64 bodies, in an HTML-only body and in addresses."""
    box = mailbox.Maildir(path, create=True)
    box.add(b"From: a@acme.test\r\nTo: pat@partner.test\r\n"
            b"Delivered-To: =?utf-8?q?pat=1B[2J?=@partner.test\r\n"
            b"Subject: =?utf-8?q?hi=1B[2J?=\r\n"
            b"X-Note: =?utf-8?b?" + base64.b64encode(b"\xc2\x9b31m\xe2\x80\xaered") + b"?=\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
            b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            b"copy =1B]52;c;ZXZpbA=3D=3D=07 this=0Doverwritten=7F=C2=9B2J\r\n"
            b"--b\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Disposition: attachment; filename*=utf-8''x%1B%5B2J.exe\r\n\r\n"
            b"data\r\n--b--\r\n")
    box.add(b"From: a@acme.test\r\nTo: sam@partner.test\r\nSubject: html\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n"
            + base64.encodebytes(b"<p>x\x1b[2J y \x07 &#27;[5m</p>") + b"\r\n")


def test_the_outbox_commands_print_no_control_sequence(runner, tmp_path):
    hostile_outbox(tmp_path / "box")
    listed = runner.invoke(args=["outbox", "list", "--path", str(tmp_path / "box")])
    assert listed.exit_code == 0, listed.output
    assert not OBEYED.search(listed.output)
    assert "pat\\x1b[2J@partner.test" in listed.output and "hi\\x1b[2J" in listed.output
    outputs = []
    for number in ("1", "2"):
        shown = runner.invoke(args=["outbox", "show", number, "--path", str(tmp_path / "box")])
        assert shown.exit_code == 0, shown.output
        assert not OBEYED.search(shown.output), ascii(shown.output)
        outputs.append(shown.output)
    plain = next(o for o in outputs if "Subject: hi" in o)
    assert "Subject: hi\\x1b[2J" in plain
    assert "X-Note: \\x9b31m\\u202ered" in plain
    assert "copy \\x1b]52;c;ZXZpbA==\\x07 this\\x0doverwritten\\x7f\\x9b2J" in plain
    assert "[attached: x\\x1b[2J.exe]" in plain
    html = next(o for o in outputs if "Subject: html" in o)
    assert "x\\x1b[2J y \\x07" in html


def test_the_queue_commands_print_no_control_sequence(runner, gateway, network):
    sink = network.mx("partner.test")
    sink.fail("RCPT", 451, "4.2.0 try later", times=1)
    gateway.send(mail(subject="hi"), ["pat@partner.test"])
    gateway.run_queue()
    item = db.session.query(OutboundItem).filter_by(kind="delivery").one()
    # what a remote server's reply, a sender's address or a Message-ID could hold
    item.last_error = f"451 {CLIPBOARD} try later{CLEAR}\r\x9b2J"
    item.mail_from = f"a{CLEAR}@acme.test"
    item.rcpt_to = "pat\u202e@partner.test"
    item.recipient.message.message_id_header = f"<x{CLEAR}@acme.test>"
    record(item.recipient, "Deferred", f"remote said {CLIPBOARD}")
    db.session.commit()
    listed = runner.invoke(args=["queue", "list"])
    assert listed.exit_code == 0, listed.output
    assert not OBEYED.search(listed.output), ascii(listed.output)
    assert "<a\\x1b[2J@acme.test> -> <pat\\u202e@partner.test>" in listed.output
    assert "(451 \\x1b]52;c;ZXZpbA==\\x07 try later\\x1b[2J\\x0d\\x9b2J)" in listed.output
    shown = runner.invoke(args=["queue", "show", str(item.id)])
    assert shown.exit_code == 0, shown.output
    assert not OBEYED.search(shown.output), ascii(shown.output)
    assert "<x\\x1b[2J@acme.test>" in shown.output
    assert "remote said \\x1b]52;c;ZXZpbA==\\x07" in shown.output
