"""Reading hostile mail: every error the email package raises on bad input falls back to
the raw text, quietly; any other error is logged with its traceback (app/mail/decoding.py).

The class of bad input is tried by mutating broken messages (encoded words, RFC 2231
parameters, address lists, charsets, transfer encodings) a few thousand times, the same
way each run; that is how the errors decoding.py names were found.
"""

from __future__ import annotations

import logging
import random
from email.message import EmailMessage

import pytest

from app.domain import reading
from app.mail import decoding, mime

SEEDS = [
    b"From: =?x-unknown?q?abc?= <a@b>\r\nTo: \"x\" <@>, ,;: <a@b\r\n"
    b"Subject: =?utf-8?b?////?=\r\nDate: Mon, 99 Foo 20x\r\n"
    b"Content-Type: text/plain; charset=x-nope\r\n\r\nbody\xff\r\n",
    b"From: a@b\r\nTo: undisclosed-recipients:;\r\nSubject: =?utf-8?q?=ZZ?=\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n"
    b"Content-Type: text/html; charset=\"utf-16\"\r\nContent-Transfer-Encoding: base64\r\n"
    b"\r\n!!!notbase64===\r\n--b\r\n"
    b"Content-Type: application/octet-stream; name*=x-bad''%ZZ%ff\r\n"
    b"Content-Disposition: attachment; filename*0*=unknown''a%E9; filename*1=b\r\n"
    b"\r\nxx\r\n--b--\r\n",
    b"From: \"unterminated <a@b>\r\nTo: a@b, (comment <c@d>\r\nSubject: \xff\xfe\r\n"
    b"Content-Type: message/rfc822\r\n\r\nFrom: x\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n=E9=\r\n",
    b"Content-Type: multipart/alternative; boundary=q\r\n"
    b"To: =?utf-8?Q?a=40b?= <x@y>, \"\\\r\nSubject: =?iso-2022-jp?b?GyRC?=\r\n\r\n--q\r\n"
    b"Content-Type: text/plain; charset=\"\"\r\n\r\nx\r\n--q\r\n"
    b"Content-Type: text/html; charset=utf-8; format=\r\n"
    b"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 a\r\n--q--\r\n",
    b"Subject: x\r\nContent-Type: text/plain; charset*=utf-8''%ZZ\r\n"
    b"Content-Disposition: inline; filename=\"=?utf-8?q?a?=\"\r\n"
    b"From: a@[300.1.1.1], b@\"q\"@c\r\n\r\nx",
]
#: pieces of MIME syntax a mutation puts anywhere
TOKENS = [b"=?", b"?=", b"?b?", b"?q?", b"\"", b"\\", b"<", b">", b"(", b")", b",", b";",
          b":", b"@", b"\r\n", b"\r\n ", b"*=", b"''", b"%", b"%ff", b"charset=",
          b"boundary=", b"--", b"\xff", b"\x00", b"utf-16", b"x-unknown", b"=?utf-8?", b"[",
          b"]", b"name*0*=", b"=\r\n", b"\t"]


def mutations(count: int, seed: int):
    rng = random.Random(seed)
    for _ in range(count):
        data = bytearray(rng.choice(SEEDS))
        for _ in range(rng.randint(1, 8)):
            roll, at = rng.random(), rng.randrange(len(data) + 1)
            if roll < 0.4:
                data[at:at] = rng.choice(TOKENS)
            elif roll < 0.6:
                del data[at:at + rng.randint(1, 4)]
            elif roll < 0.8:
                data[at:at] = bytes([rng.randrange(256)])
            else:
                data[at:at] = data[rng.randrange(len(data) + 1):][:rng.randint(1, 20)]
        yield bytes(data)


def read_every_way(raw: bytes) -> None:
    """What the gateway and the portal read of a message."""
    for light in (True, False):
        mime.parse(raw, light=light)
    message = mime.parse_message(raw)
    for name in ("Subject", "From", "Date", "Message-ID"):
        mime.header(message, name)
    for name in ("To", "Cc"):
        reading.addresses(message, name)
    for number, part in enumerate(message.walk()):
        if not part.is_multipart():
            mime.part_text(part)
            reading.filename(part, number)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_hostile_mail_is_read_without_an_error_and_without_an_unexpected_one(seed, caplog):
    with caplog.at_level(logging.ERROR, logger="app"):
        for raw in mutations(1500, seed):
            read_every_way(raw)  # raises nothing
    assert caplog.records == []  # every fallback was the input's fault


def test_a_header_the_parser_slips_on_is_kept_as_text_and_the_message_still_reads():
    """Found by the mutations: the parser asks for the Content-Type while it parses,
    and a parameter broken across lines made it raise IndexError, so the whole message
    could not be read (nor routed, nor shown)."""
    raw = (b"Subject: Figures\r\nContent-Type: text/plain; charset*\r\n =utf-8''%ZZ\r\n"
           b"\r\nQuarterly figures\r\n")
    parsed = mime.parse(raw, light=False)
    assert parsed.subject == "Figures"
    assert "Quarterly figures" in parsed.body_text


def test_a_charset_the_codecs_refuse_falls_back_quietly(caplog):
    raw = b"Content-Type: text/plain; charset=\"x-\x00nope\"\r\n\r\ncaf\xc3\xa9\r\n"
    with caplog.at_level(logging.ERROR, logger="app"):
        (part,) = mime.parse_message(raw).walk()
        assert mime.part_text(part) == "caf\u00e9\r\n"
    assert caplog.records == []


class Broken(EmailMessage):
    """A bug of ours stands in here: the same types, raised outside the email package."""

    def get(self, name, failobj=None):
        if name == "Subject":
            raise AttributeError("a bug, not the input")
        return super().get(name, failobj)

    def get_content(self, *args, **kw):
        raise KeyError("a bug, not the input")


def test_an_error_of_ours_still_falls_back_but_is_logged_with_its_traceback(caplog):
    message = Broken()
    message.set_raw("Subject", "Kept")
    with caplog.at_level(logging.ERROR, logger="app"):
        assert mime.header(message, "Subject") == "Kept"
        assert mime.part_text(message) == ""
    assert [r.getMessage() for r in caplog.records] == [
        "unexpected AttributeError reading the Subject header; falling back to its raw text",
        "unexpected KeyError reading a text part; falling back to its raw text"]
    assert all(r.exc_info and r.exc_info[1].__traceback__ for r in caplog.records)


def test_only_errors_raised_inside_the_email_package_or_its_codecs_are_the_inputs():
    unknown_charset = mime.parse_message(b"Content-Type: text/plain; charset=x-nope\r\n\r\nx")
    with pytest.raises(LookupError) as inside:
        unknown_charset.get_content()
    assert decoding.raised_by_the_reader(inside.value)
    with pytest.raises(UnicodeError) as outside:
        b"\xff".decode("utf-8")  # the same codec, called by code of ours
    assert not decoding.raised_by_the_reader(outside.value)
