"""NUL bytes in a received message's headers: stored on every database, never a 451 loop.

PostgreSQL's text cannot hold NUL; received mail may carry it anywhere. Every header the
gateway keeps in a column, and every delivery event that quotes one, stores it as U+FFFD.
"""

from __future__ import annotations

import pytest

from app.extensions import db
from app.models import Message

PLACES = {
    "subject": b"Subject: a\x00b\r\n",
    "From display name": b"From: Al\x00ice <alice@acme.test>\r\n",
    "Message-ID": b"Message-ID: <a\x00b@acme.test>\r\n",
    "X-CCM-Mode value": b"X-CCM-Mode: exte\x00rnal\r\n",
    "attachment name": b"Content-Type: text/plain; name=\"a\x00b.txt\"\r\n",
}


@pytest.mark.parametrize("header", PLACES.values(), ids=PLACES.keys())
def test_a_nul_in_a_header_is_stored_as_a_replacement_character(gateway, ingress_server,
                                                                  header):
    lines = [b"From: alice@acme.test", b"To: pat@partner.test", b"Subject: plain",
             b"Message-ID: <plain@acme.test>"]
    name = header.split(b":")[0]
    lines = [line for line in lines if not line.startswith(name + b":")]
    raw = b"\r\n".join(lines) + b"\r\n" + header + b"\r\nThe body.\r\n"
    client = ingress_server()
    client.sendmail("alice@acme.test", ["pat@partner.test"], raw)  # 250, not 451

    db.session.rollback()
    message = db.session.query(Message).one()
    kept = [message.subject, message.header_from, message.message_id_header]
    kept += [event.text for event in message.recipients[0].events]
    assert not any("\x00" in text for text in kept)
    if name in (b"Subject", b"From", b"Message-ID"):
        assert any("\ufffd" in text for text in kept)
    if name != b"X-CCM-Mode":  # which the gateway removes
        assert b"\x00" in message.raw, "the message itself is kept as it came"
