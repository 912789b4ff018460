"""The ingress's timeouts and line lengths, against a real socket client.

A client is timed out when it sends nothing for CCM_SMTP_IDLE_TIMEOUT, not while it
keeps sending; DATA as a whole is bounded by the message size at CCM_SMTP_MIN_DATA_RATE.
DATA lines of any length within the size limit are taken whole, as Postfix takes them.
"""

import select
import smtplib

import pytest
from support import mail

from app.extensions import db
from app.models import Message


def stored() -> list[Message]:
    db.session.expire_all()
    return db.session.query(Message).order_by(Message.id).all()


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def start_data(client: smtplib.SMTP) -> None:
    client.ehlo()
    assert client.mail("alice@acme.test")[0] == 250
    assert client.rcpt("pat@partner.test")[0] == 250
    client.putcmd("data")
    assert client.getreply()[0] == 354


def trickle(client: smtplib.SMTP, data: bytes, piece: int, pause: float) -> tuple | None:
    """Send ``data`` ``piece`` bytes at a time, ``pause`` seconds apart; stop at the
    server's first reply and return it (None when it said nothing meanwhile)."""
    for start in range(0, len(data), piece):
        client.sock.sendall(data[start:start + piece])
        readable, _, _ = select.select([client.sock], [], [], pause)  # the pacing
        if readable:
            return client.getreply()
    return None


@pytest.fixture
def timeouts(app):
    def configure(idle: float, size: int = 100_000, rate: int = 10_000) -> None:
        # DATA may last max(idle, size / rate) seconds
        app.config.update(SMTP_IDLE_TIMEOUT=idle, MAX_MESSAGE_BYTES=size, SMTP_MIN_DATA_RATE=rate)
    return configure


def test_a_message_trickling_in_for_longer_than_the_idle_timeout_is_accepted(
        gateway, ingress_server, timeouts):
    timeouts(idle=1.0)  # DATA may last 10 s; the trickle takes about 3
    client = ingress_server()
    start_data(client)
    message = crlf(mail(subject="Slow link", body="line of a long report\n" * 60))
    assert trickle(client, message, piece=len(message) // 30 + 1, pause=0.1) is None
    client.send(b".\r\n")
    assert client.getreply()[0] == 250
    assert [m.subject for m in stored()] == ["Slow link"]


SILENT_POINTS = {
    "at the greeting": b"",
    "after RCPT": b"EHLO client.test\r\nMAIL FROM:<alice@acme.test>\r\n"
                  b"RCPT TO:<pat@partner.test>\r\n",
    "right after 354": b"DATA\r\n",
    "after a whole line of DATA": b"DATA\r\nSubject: Cut\r\n",
    "in the middle of a DATA line": b"DATA\r\nSubject: Cut\r\n\r\nhalf a li",
}


@pytest.mark.parametrize("point", SILENT_POINTS)
def test_a_client_that_goes_silent_is_told_421_and_nothing_is_stored(
        gateway, ingress_server, timeouts, point):
    timeouts(idle=0.5)
    client = ingress_server()
    commands = SILENT_POINTS[point]
    if commands.startswith(b"DATA"):
        start_data(client)
        commands = commands.removeprefix(b"DATA\r\n")
    client.send(commands)
    while True:  # the answers to what was sent, then the timeout's
        code, text = client.getreply()
        if code == 421:
            break
        assert code in (250, 354)
    assert b"4.4.2" in text and b"timeout" in text
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.getreply()  # and the connection is closed
    assert stored() == []


def test_data_that_never_ends_is_cut_at_the_ceiling(gateway, ingress_server, timeouts):
    timeouts(idle=1.0, size=2000, rate=1000)  # DATA may last max(1, 2000 / 1000) = 2 s
    client = ingress_server()
    start_data(client)
    endless = crlf("Subject: Drip\n\n" + "drip\n" * 2000)
    reply = trickle(client, endless, piece=5, pause=0.05)  # never idle, 100 bytes a second
    assert reply is not None and reply[0] == 421
    assert b"4.4.2" in reply[1] and b"too long" in reply[1]
    assert stored() == []


@pytest.mark.parametrize("length", [998, 999, 1001, 2048, 5000, 200_000])
def test_long_lines_are_taken_whole(app, gateway, ingress_server, length):
    app.config["MAX_MESSAGE_BYTES"] = 300_000
    line = ("0123456789" * (length // 10 + 1))[:length]
    client = ingress_server()
    assert client.sendmail("alice@acme.test", ["pat@partner.test"],
                           crlf(mail(subject=f"Line of {length}", body=line))) == {}
    (message,) = stored()
    assert f"\r\n{line}\r\n".encode() in message.raw
    # commands are as limited as before: the lifted limit was for that DATA only
    assert client.docmd("NOOP " + "x" * 2000)[0] == 500
    assert client.noop()[0] == 250


def test_a_line_longer_than_the_size_limit_is_refused_not_lost(app, gateway, ingress_server):
    app.config["MAX_MESSAGE_BYTES"] = 10_000
    client = ingress_server()
    with pytest.raises(smtplib.SMTPResponseException) as refused:
        client.sendmail("alice@acme.test", ["pat@partner.test"],
                        crlf(mail(body="y" * 20_000)))
    assert refused.value.smtp_code in (500, 552)
    assert stored() == []
    assert client.noop()[0] == 250  # and the session goes on
