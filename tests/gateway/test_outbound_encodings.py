"""8BITMIME, SMTPUTF8, line ends and line lengths on the way out, against two real
servers: eight.test offers 8BITMIME and SMTPUTF8, seven.test neither (and refuses 8-bit
data, as a strict 7-bit server does)."""

import email
import email.policy
import re

import pytest
from servers import serve_mail_for
from support import without_trace

from app.extensions import db
from app.models import Message

LIMIT = 998


@pytest.fixture
def servers(gateway, network):
    eight = serve_mail_for(network, "eight.test", "127.0.1.1")
    seven = serve_mail_for(network, "seven.test", "127.0.1.2", eight_bit_mime=False,
                           smtputf8=False)
    return eight, seven


def crlf(data: bytes) -> bytes:
    data = re.sub(rb"\r\n|\r|\n", b"\r\n", data)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def parsed(data: bytes):
    return email.message_from_bytes(data, policy=email.policy.default)


def leaves(message) -> list[tuple[str, bytes]]:
    return [(part.get_content_type(), part.get_payload(decode=True))
            for part in message.walk() if not part.is_multipart()]


def head(message) -> list[tuple[str, str]]:
    """The headers as a reader sees them: unfolded, less those the conversion sets."""
    return [(name, " ".join(str(value).split())) for name, value in message.items()
            if name.lower() != "content-transfer-encoding"]


def assert_fit_for_smtp(data: bytes) -> None:
    lines = data.split(b"\r\n")
    assert lines[-1] == b"", "the data ends with CRLF"
    assert all(b"\r" not in line and b"\n" not in line for line in lines), "a bare CR or LF"
    assert max(map(len, lines)) <= LIMIT


def deliver_to_both(gateway, servers, raw: bytes):
    eight, seven = servers
    message = gateway.send(raw, ["pat@eight.test", "pat@seven.test"])
    gateway.run_queue()
    return message, eight.wait_for(1)[0], seven.wait_for(1)[0]


def text(body: str, charset="utf-8", cte="8bit", subtype="plain") -> str:
    return (f"Content-Type: text/{subtype}; charset={charset}\n"
            f"Content-Transfer-Encoding: {cte}\n\n{body}\n")


HEAD = "From: alice@acme.test\nTo: pat@eight.test, pat@seven.test\nMIME-Version: 1.0\n"
UTF8 = "Grüße, Ørsted — 東京 ✓ "
LONG_WORDS = " ".join(f"w{n}" for n in range(700))  # 3,000 characters with blanks

#: the class of message bodies a 7-bit server cannot take as they are, or that have
#: lines SMTP does not carry: each shape, and each line end a sender may have used
SHAPES = {
    "8-bit text, LF line ends": (HEAD + "Subject: a\n" + text(UTF8 * 3)).encode(),
    "8-bit text, bare CR line ends": (HEAD + "Subject: b\n" + text(UTF8 + "\n" + UTF8))
    .replace("\n", "\r").encode(),
    "8-bit latin-1 text, CRLF": (HEAD + "Subject: c\n" + text("Gr\xfc\xdfe", "iso-8859-1"))
    .replace("\n", "\r\n").encode("latin-1"),
    "mixed: 8-bit text, 8-bit binary, quoted-printable html": (
        HEAD + "Subject: d\nContent-Type: multipart/mixed; boundary=\"b1\"\n\n"
        "preamble\n--b1\n" + text(UTF8) + "--b1\n" + text("<p>caf=C3=A9</p>", cte=
                                                             "quoted-printable",
                                                             subtype="html") +
        "--b1\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: 8bit\n"
        "Content-Disposition: attachment; filename=data.bin\n\n").encode()
    + bytes(range(128, 256)) + b"\n--b1--\nepilogue\n",
    "nested alternative and an attached message": (
        HEAD + "Subject: e\nContent-Type: multipart/mixed; boundary=\"out\"\n\n"
        "--out\nContent-Type: multipart/alternative; boundary=\"in\"\n\n"
        "--in\n" + text(UTF8) + "--in\n" + text(f"<b>{UTF8}</b>", subtype="html") +
        "--in--\n--out\nContent-Type: message/rfc822\nContent-Transfer-Encoding: 8bit\n\n"
        "From: x@y.test\nSubject: inner\nContent-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: 8bit\n\n" + UTF8 + "\n--out--\n").encode(),
    "ASCII text with a 2,048-character line": (
        HEAD + "Subject: f\n\n" + "x" * 2048 + "\nshort\n").encode(),
    "8-bit text with a 3,000-character line": (HEAD + "Subject: g\n" + text(UTF8 * 130))
    .encode(),
    "base64 written on one 2,000-character line": (
        HEAD + "Subject: h\nContent-Type: application/pdf\nContent-Transfer-Encoding: "
        "base64\n\n" + "QUJD" * 500 + "\n").encode(),
    "a 3,000-character header with blanks": (
        HEAD + f"Subject: {LONG_WORDS}\nX-Note: {LONG_WORDS}\n\nbody\n").encode(),
}


@pytest.mark.parametrize("raw", SHAPES.values(), ids=SHAPES.keys())
def test_each_server_gets_what_it_can_take_and_the_same_content(gateway, servers, raw):
    message, eight, seven = deliver_to_both(gateway, servers, raw)
    sent = crlf(raw)
    for delivery in (eight, seven):
        assert_fit_for_smtp(delivery.data)
        assert leaves(parsed(delivery.data)) == leaves(parsed(sent))
        assert head(parsed(without_trace(delivery.data))) == head(parsed(sent))
    # 8BITMIME: declared when the data has 8-bit bytes, and they go as they are.
    assert ("BODY=8BITMIME" in eight.mail_options) == (not eight.data.isascii())
    if max(map(len, sent.split(b"\r\n"))) <= LIMIT:
        assert eight.data == crlf(db.session.get(Message, message.id).raw)
    # No 8BITMIME: the data is 7-bit and says nothing of 8 bits.
    assert seven.data.isascii() and not any("8BITMIME" in o for o in seven.mail_options)
    assert not any("SMTPUTF8" in o for o in eight.mail_options + seven.mail_options)


def test_a_header_line_with_no_blank_is_broken_as_postfix_does(gateway, servers):
    raw = (HEAD + "Subject: s\nX-Token: " + "t" * 2500 + "\n\nbody\n").encode()
    _, eight, seven = deliver_to_both(gateway, servers, raw)
    for delivery in (eight, seven):
        assert_fit_for_smtp(delivery.data)
        token = parsed(delivery.data)["X-Token"]
        assert token.replace(" ", "") == "t" * 2500
        assert delivery.message.get_payload() == "body\r\n"


def recipient_events(message) -> dict[str, list[str]]:
    db.session.expire_all()
    return {r.address: [e.text for e in r.events] for r in message.recipients}


def deliver(gateway, raw: bytes, rcpts=("pat@eight.test", "pat@seven.test"), **kwargs):
    message = gateway.send(raw, list(rcpts), **kwargs)
    gateway.run_queue()
    return message


def test_utf8_in_headers_goes_with_smtputf8_or_bounces_with_5_6_7(gateway, servers):
    eight, seven = servers
    # From the null sender: app/delivery/dsn.py cannot yet write a report whose
    # text/rfc822-headers part holds UTF-8 (it fails encoding it as ASCII).
    message = deliver(gateway, (HEAD + f"Subject: {UTF8}\n" + text("ASCII body")).encode(),
                      mail_from="", tenant=gateway.tenant)
    (delivery,) = eight.wait_for(1)
    assert "SMTPUTF8" in delivery.mail_options and "BODY=8BITMIME" in delivery.mail_options
    assert str(parsed(delivery.data)["Subject"]).strip() == UTF8.strip()
    assert seven.messages == []
    events = recipient_events(message)["pat@seven.test"]
    assert any("5.6.7" in e and "SMTPUTF8" in e for e in events)
    assert {r.address: r.state for r in message.recipients} == {
        "pat@eight.test": "delivered", "pat@seven.test": "bounced"}


def test_an_address_that_is_not_ascii_bounces_alone_where_smtputf8_is_not_offered(
        gateway, servers):
    eight, seven = servers
    rcpts = ["p\u00e4t@seven.test", "pat@seven.test", "p\u00e4t@eight.test"]
    message = deliver(gateway, b"From: alice@acme.test\r\nSubject: hi\r\n\r\nhello\r\n",
                      rcpts)
    assert [d.rcpt_tos for d in seven.wait_for(1)] == [["pat@seven.test"]]
    assert "SMTPUTF8" not in seven.messages[0].mail_options
    (delivery,) = eight.wait_for(1)
    assert delivery.rcpt_tos == ["p\u00e4t@eight.test"] and "SMTPUTF8" in delivery.mail_options
    states = {r.address: r.state for r in message.recipients}
    assert states == {"p\u00e4t@seven.test": "bounced", "pat@seven.test": "delivered",
                      "p\u00e4t@eight.test": "delivered"}
    assert any("5.6.7" in e for e in recipient_events(message)["p\u00e4t@seven.test"])


SIGNED_CONTENT = ("Content-Type:text/plain;charset=utf-8\r\n"  # as written, no blank
                  "Content-Transfer-Encoding: 8bit\r\nX-Folded: one\r\n\ttwo\r\n\r\n")


def signed(content: str) -> str:
    return ("Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; "
            "micalg=sha-256; boundary=\"sig\"\r\n\r\n--sig\r\n" + content +
            "\r\n--sig\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\nTUlJQ0FBQUFBQUE=\r\n--sig--\r\n")


def test_a_signed_part_that_would_need_re_encoding_bounces_with_5_6_3(gateway, servers):
    content = SIGNED_CONTENT + UTF8
    eight, seven = servers
    message = deliver(gateway, (HEAD.replace("\n", "\r\n") + "Subject: signed\r\n" +
                                signed(content)).encode())
    assert content.encode() in eight.wait_for(1)[0].data  # unaltered where it can go
    assert seven.messages == []
    assert any("5.6.3" in e and "multipart/signed" in e
               for e in recipient_events(message)["pat@seven.test"])


def test_a_signed_part_goes_byte_for_byte_while_the_rest_is_re_encoded(gateway, servers):
    content = SIGNED_CONTENT + "plain ASCII, signed"
    signed_part = signed(content)
    raw = (HEAD.replace("\n", "\r\n") + "Subject: both\r\nContent-Type: multipart/mixed; "
           "boundary=\"out\"\r\n\r\n--out\r\n" + signed_part + "\r\n--out\r\n" +
           text(UTF8).replace("\n", "\r\n") + "--out--\r\n").encode()
    seven = deliver_to_both(gateway, servers, raw)[2]
    assert seven.data.isascii()
    assert content.encode() in seven.data
    assert leaves(parsed(seven.data)) == leaves(parsed(raw))
