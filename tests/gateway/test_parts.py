"""The part index: the same parts as the full parse, or no index at all.

Every message checked here goes through ``assert_agrees``: when ``scan`` gives an index,
the skeleton with its slices must be, part for part, what ``email`` makes of the whole
message (headers, types, decoded bytes, sizes), and routing and the message page must
say the same either way. tests/conftest.py runs the same check on every message the
rest of the suite sends through the gateway.
"""

from __future__ import annotations

import hashlib
import os
import random
from email import policy
from email.message import EmailMessage

import pytest
from sqlalchemy import inspect
from support import assert_agrees, mail, without_trace

from app.domain import ingest, reading
from app.extensions import db
from app.mail import mime, parts
from app.models import Message


def built(html=True, attachments=(), related=False, text="Quarterly figures attached.",
          linesep="\r\n") -> bytes:
    message = EmailMessage()
    message["From"], message["To"] = "alice@acme.test", "pat@partner.test"
    message["Subject"] = "Figures"
    message.set_content(text)
    if html:
        message.add_alternative(f"<p>{text}</p><img src=\"cid:logo@acme.test\">",
                                subtype="html")
    if related and html:
        message.get_payload()[1].add_related(b"\x89PNG\r\n", maintype="image",
                                             subtype="png", cid="<logo@acme.test>")
    for name, content, kind in attachments:
        maintype, subtype = kind.split("/")
        if maintype == "text":
            message.add_attachment(content, subtype=subtype, filename=name)
        else:
            message.add_attachment(content, maintype=maintype, subtype=subtype,
                                   filename=name)
    return message.as_bytes(policy=policy.default.clone(linesep=linesep))


WELL_FORMED = {
    "plain": mail().replace("\n", "\r\n").encode(),
    "plain-lf": mail().encode(),
    "alternative": built(),
    "related-cid": built(related=True),
    "attachments": built(attachments=[
        ("../../evil name.pdf", b"%PDF-1.4" + os.urandom(3000), "application/pdf"),
        ("", b"no name", "application/octet-stream"),
        ("notes.txt", "caf\u00e9 notes", "text/plain"),
        ("\u00e9t\u00e9 r\u00e9sum\u00e9.bin", os.urandom(57), "application/octet-stream"),
    ]),
    "lf-line-ends": built(attachments=[("a.bin", os.urandom(500), "application/x-a")],
                          linesep="\n"),
    "nested": (b"From: a@acme.test\r\nSubject: nest\r\nMIME-Version: 1.0\r\n"
               b"Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\npreamble\r\n"
               b"--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n"
               b"--inner\r\nContent-Type: text/plain\r\n\r\nplain [secure]\r\n"
               b"--inner\r\nContent-Type: text/html\r\n\r\n<b>html</b>\r\n--inner--\r\n"
               b"inner epilogue\r\n--outer\r\nContent-Type: application/octet-stream\r\n"
               b"Content-Transfer-Encoding: base64\r\n\r\nAAEC\r\nAw==\r\n"
               b"--outer--  \r\nepilogue\r\n"),
    "empty-bodies": (b"From: a@acme.test\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
                     b"--b\r\nContent-Type: text/plain\r\n\r\n--b\r\n\r\nno headers\r\n"
                     b"--b\r\nContent-Type: text/plain\r\n\r\n\r\n--b--"),
    "quoted-printable": (b"From: a@acme.test\r\nContent-Type: multipart/mixed; boundary=q\r\n"
                         b"\r\n--q\r\nContent-Type: text/plain; charset=utf-8\r\n"
                         b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
                         b"caf=C3=A9 [secure] =\r\nsoft\r\n--q\r\n"
                         b"Content-Type: application/x-q\r\n"
                         b"Content-Transfer-Encoding: quoted-printable\r\n\r\n=00=01\r\n"
                         b"--q--\r\n"),
    "boundary-lookalikes": (b"From: a@acme.test\r\nContent-Type: multipart/mixed; boundary=b\r\n"
                            b"\r\n--b\r\nContent-Type: text/plain\r\n\r\n--bx\r\n --b\r\n"
                            b"--b-- trailing\r\n--b\r\nContent-Type: text/html\r\n\r\n"
                            b"<p>two</p>\r\n--b--\r\n"),
}

#: what the light path must leave to the full parse
UNUSUAL = {
    "no-boundary": b"From: a@acme.test\r\nContent-Type: multipart/mixed\r\n\r\nbody\r\n",
    "no-close": (b"From: a@acme.test\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
                 b"--b\r\nContent-Type: text/plain\r\n\r\nhidden [secure]\r\n"),
    "no-start": (b"From: a@acme.test\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
                 b"text [secure]\r\n--b--\r\n"),
    "bare-cr": (b"From: a@acme.test\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
                b"--b\r\nContent-Type: text/plain\r\n\r\nx\r--b\r\nhidden\r\n--b--\r\n"),
    "doubled-boundary": (b"From: a@acme.test\r\nContent-Type: multipart/mixed; boundary=b\r\n"
                         b"\r\n--b\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n"),
    "rfc822": (b"From: a@acme.test\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
               b"--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\n"
               b"inner [secure]\r\n--b--\r\n"),
    "same-boundary-nested": (b"From: a@acme.test\r\nContent-Type: multipart/mixed; boundary=b\r\n"
                             b"\r\n--b\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
                             b"--b\r\n\r\nx\r\n--b--\r\n--b--\r\n"),
    "headers-without-blank-line": (b"From: a@acme.test\r\nSubject: only headers\r\n"),
    "header-defect": (b"From: a@acme.test\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
                      b"--b\r\nnot a header line\r\nContent-Type: text/plain\r\n\r\nx\r\n"
                      b"--b--\r\n"),
    "digest": (b"From: a@acme.test\r\nContent-Type: multipart/digest; boundary=b\r\n\r\n"
               b"--b\r\n\r\nSubject: x\r\n\r\ny\r\n--b--\r\n"),
    # the parser takes the line for the start of the body; the body shown must hold it
    "single-part-stray-line": (b"Subject: x\r\nFrom: a@acme.test\r\nFrom hidden [secure]\r\n"
                               b"\r\nbody\r\n"),
}


@pytest.mark.parametrize("name", WELL_FORMED)
def test_well_formed_messages_get_an_index_that_agrees_with_the_full_parse(name):
    raw = WELL_FORMED[name]
    assert parts.scan(raw) is not None
    assert_agrees(raw)


@pytest.mark.parametrize("name", UNUSUAL)
def test_unusual_messages_are_left_to_the_full_parse(name):
    raw = UNUSUAL[name]
    assert parts.scan(raw) is None
    assert mime.parse(raw).index is None
    assert_agrees(raw)


def test_routing_sees_the_text_of_every_inline_part_on_the_light_path():
    parsed = mime.parse(WELL_FORMED["nested"])
    assert parsed.index is not None
    assert "plain [secure]" in parsed.body_text and "html" in parsed.body_text
    assert "hidden" in mime.parse(UNUSUAL["no-close"]).body_text  # as the full parse sees


def test_base64_that_email_would_repair_is_not_decoded_by_slices():
    for body in (b"AAEC\r\nAw=\r\n", b"AA=EC\r\n", b"AAEC!\r\n", b"AAE\r\n"):
        raw = (b"From: a@acme.test\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
               b"--b\r\nContent-Type: application/x-y\r\nContent-Transfer-Encoding: base64"
               b"\r\n\r\n" + body + b"--b--\r\n")
        index = parts.scan(raw)
        assert index is not None and not index.leaves[0].base64
        assert_agrees(raw)


def test_generated_messages_agree_with_the_full_parse():
    chooser = random.Random(9)
    for _ in range(25):
        attachments = [(chooser.choice(["a.pdf", "", "x y.txt", "../b", "\u00e9.bin"]),
                        os.urandom(chooser.randrange(0, 4000)),
                        chooser.choice(["application/pdf", "image/png", "audio/x-y"]))
                       for _ in range(chooser.randrange(0, 4))]
        raw = built(html=chooser.random() < 0.7, attachments=attachments,
                    related=chooser.random() < 0.3,
                    text=chooser.choice(["plain", "caf\u00e9 [secure]", "x" * 2000]),
                    linesep=chooser.choice(["\r\n", "\n"]))
        assert parts.scan(raw) is not None
        assert_agrees(raw)
        # and the same message broken at a random byte: indexed or not, never different
        cut = chooser.randrange(len(raw))
        assert_agrees(raw[:cut])
        assert_agrees(raw[:cut] + b"\r\n--" + raw[cut:])


def test_the_index_is_stored_and_shifted_when_x_ccm_mode_is_removed(app, acme):
    raw = built(attachments=[("a.bin", os.urandom(3000), "application/octet-stream")])
    raw = b"X-CCM-Mode: all\r\n" + raw
    message = ingest.receive(raw, "alice@acme.test", ["pat@partner.test"])
    db.session.commit()
    index = parts.Index.from_json(message.parts)
    assert index is not None and index.length == len(message.raw)
    assert len(without_trace(message.raw)) == len(raw) - 17
    assert b"X-CCM-Mode" not in message.raw
    assert reading.read_message(message) == reading.read(message.raw)


def _download(message, number) -> bytes:
    content = reading.download(message, number)[0]
    return content if isinstance(content, bytes) else b"".join(content)


def test_a_large_attachment_downloads_byte_identical_in_slices(app, acme, monkeypatch):
    monkeypatch.setattr(reading, "CHUNK", 4099)  # odd slices: groups and lines split
    attachment = os.urandom(200_000)
    raw = built(attachments=[("big.bin", attachment, "application/octet-stream")])
    message = ingest.receive(raw, "alice@acme.test", ["pat@partner.test"])
    db.session.commit()
    db.session.expire_all()
    stored = db.session.get(Message, message.id)
    readable = reading.read_message(stored)
    assert [(p.filename, p.size) for p in readable.attachments] == [("big.bin", 200_000)]
    number = readable.attachments[0].number
    content = reading.download(stored, number)[0]
    assert not isinstance(content, bytes)  # streamed
    assert hashlib.sha256(b"".join(content)).digest() == hashlib.sha256(attachment).digest()


def test_a_message_stored_without_an_index_is_read_by_the_full_parse(app, acme):
    raw = built(related=True, attachments=[("a.pdf", b"%PDF", "application/pdf")])
    message = ingest.receive(raw, "alice@acme.test", ["pat@partner.test"])
    db.session.commit()
    numbers = range(len(parts.Index.from_json(message.parts).leaves))
    with_index = (reading.read_message(message), [_download(message, n) for n in numbers])
    message.parts = None  # as for a message stored before migration 0009
    db.session.commit()
    db.session.expire_all()
    stored = db.session.get(Message, message.id)
    assert (reading.read_message(stored), [_download(stored, n) for n in numbers]) == \
        with_index
    assert reading.download(stored, 99) is None


def test_a_purged_message_reads_as_empty_not_as_an_error(app, acme):
    message = ingest.receive(built(), "alice@acme.test", ["pat@partner.test"])
    db.session.commit()
    message.raw = None
    db.session.commit()
    db.session.expire_all()
    stored = db.session.get(Message, message.id)
    readable = reading.read_message(stored)
    assert readable.html in ("", None) and readable.attachments == []


def test_the_page_the_headers_and_a_download_never_load_the_whole_message(app, acme):
    raw = built(related=True, attachments=[("big.bin", os.urandom(300_000), "audio/x-y")])
    message = ingest.receive(raw, "alice@acme.test", ["pat@partner.test"])
    db.session.commit()
    db.session.expire_all()
    stored = db.session.get(Message, message.id)
    readable = reading.read_message(stored)
    assert readable.html is not None and [p.filename for p in readable.attachments] == \
        ["big.bin"]
    assert reading.addresses(reading.headers(stored), "To") == ["pat@partner.test"]
    assert len(_download(stored, readable.attachments[0].number)) == 300_000
    assert "raw" not in inspect(stored).dict
    assert readable == reading.read(stored.raw)  # and once loaded, the same as the full parse


def test_small_messages_are_parsed_whole_as_before(monkeypatch):
    monkeypatch.setattr(parts, "INDEX_FROM", 32 * 1024)  # the default
    small = built(attachments=[("a.pdf", os.urandom(20_000), "application/pdf")])
    large = built(attachments=[("a.pdf", os.urandom(30_000), "application/pdf")])
    assert mime.parse(small).index is None and mime.parse(large).index is not None
