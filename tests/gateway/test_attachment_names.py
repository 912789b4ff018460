"""Attachment names: the name a person gave is kept (spaces, accents, any script) and
made safe, on the way in (an upload, a sender's MIME) and on the way out (a download's
Content-Disposition, RFC 6266)."""

from io import BytesIO

import pytest
from support import PASSWORD, post_form
from werkzeug.http import parse_options_header

from app.domain.passwords import hash_password
from app.extensions import db
from app.mail import filenames

#: (as given, as kept)
NAMES = [
    ("NDA signed.pdf", "NDA signed.pdf"),
    ("Übersicht März 2026.xlsx", "Übersicht März 2026.xlsx"),
    ("U\u0308bersicht.pdf", "Übersicht.pdf"),  # decomposed accents, composed (NFC)
    ("契約書 最終版.pdf", "契約書 最終版.pdf"),
    ("عقد.pdf", "عقد.pdf"),
    ("резюме.docx", "резюме.docx"),
    ("👍 done.png", "👍 done.png"),
    ("../../etc/passwd", "passwd"),
    ("..\\..\\windows\\win.ini", "win.ini"),
    ("C:\\Users\\pat\\Desktop\\offer.pdf", "offer.pdf"),
    ("C:offer.pdf", "offer.pdf"),
    ("/etc/shadow", "shadow"),
    ("folder/", ""),
    (".htaccess", "htaccess"),
    ("..", ""),
    ("...pdf", "pdf"),
    ("report.pdf. . .", "report.pdf"),
    ("   spaced   out   .txt", "spaced out .txt"),
    ("invoice\u202efdp.exe", "invoicefdp.exe"),  # right-to-left override
    ("a\u2066b\u2069\u200e\u200f\u061c.txt", "ab.txt"),  # isolates and marks
    ("zero\u200bwidth\ufeff.txt", "zerowidth.txt"),
    ("line\r\nbreak\tand\x0btabs.txt", "line break and tabs.txt"),
    ("nul\x00and\x1bescape\x7f\x9b\x85.txt", "nulandescape .txt"),  # NEL: a line break,
    ("quote\"and<angle>|pipe?*.txt", "quote_and_angle__pipe__.txt"),
    ("CON", "_CON"),
    ("nul.txt", "_nul.txt"),
    ("LPT1.doc", "_LPT1.doc"),
    ("console.txt", "console.txt"),
    ("\u200b\u202e", ""),
    ("", ""),
    ("x" * 300 + ".pdf", "x" * 116 + ".pdf"),
    ("é" * 150 + ".docx", "é" * 97 + ".docx"),  # 200 bytes of UTF-8 at most
    ("名" * 100, "名" * 66),
    ("a." + "b" * 300, ("a." + "b" * 300)[:120]),  # no sensible extension to keep
]


@pytest.mark.parametrize(("given", "kept"), NAMES)
def test_a_name_keeps_what_its_person_wrote_and_loses_what_could_harm(given, kept):
    assert filenames.safe(given) == kept
    assert filenames.safe(kept) == kept  # safe already: unchanged


@pytest.mark.parametrize(("given", "_kept"), NAMES)
def test_every_kept_name_is_bounded_and_plain(given, _kept):
    name = filenames.safe(given)
    assert len(name) <= filenames.MAX_CHARACTERS and len(name.encode()) <= filenames.MAX_BYTES
    assert not name.startswith((".", " ")) and not name.endswith((".", " "))
    assert not any(c in name for c in "/\\\x00\r\n\u202e")


@pytest.mark.parametrize("name", [kept for _, kept in NAMES if kept])
def test_the_download_header_gives_the_name_back_exactly(name):
    header = filenames.content_disposition(name)
    assert header.isascii() and "\r" not in header and "\n" not in header
    # as a browser reads it: filename* (RFC 8187) wins where it is given
    assert parse_options_header(header) == ("attachment", {"filename": name})
    fallback = header.split('filename="', 1)[1].split('"', 1)[0]
    assert fallback.isascii() and "\\" not in fallback and "%" not in fallback


def test_the_ascii_fallback_keeps_letters_without_their_accents():
    assert filenames.content_disposition("Übersicht März.pdf") == (
        "attachment; filename=\"Ubersicht Marz.pdf\"; "
        "filename*=UTF-8''%C3%9Cbersicht%20M%C3%A4rz.pdf")
    assert filenames.content_disposition("NDA signed.pdf") == \
        'attachment; filename="NDA signed.pdf"'


@pytest.fixture
def pat(gateway):
    """Pat's browser, signed in at acme (his account made by his first CCM message)."""
    def signed_in():
        user = gateway.account("pat@partner.test")
        user.password_hash, user.must_change_password = hash_password(PASSWORD), False
        db.session.commit()
        from flask import current_app
        reader = current_app.test_client()
        post_form(reader, "/t/acme/sign-in", {"email": "pat@partner.test",
                                              "password": PASSWORD})
        return reader
    return signed_in


def test_an_upload_reaches_its_recipient_under_the_name_it_was_given(gateway, client,
                                                                      signed_in, pat):
    given = ["NDA signed.pdf", "Übersicht März.xlsx", "契約書.pdf", "../../evil\u202efdp.exe",
             ".hidden", "x" * 300 + ".txt"]
    signed_in("alice@acme.test")
    response = post_form(client, "/compose/", {
        "to": "pat@partner.test", "cc": "", "subject": "Papers", "body": "Attached.",
        "mode": "external",
        "attachments": [(BytesIO(b"content %d" % n), name, "application/octet-stream")
                        for n, name in enumerate(given)]})
    assert response.status_code == 302
    message = gateway.latest()
    reader = pat()
    page = reader.get(f"/inbox/{message.public_id}").get_data(as_text=True)
    expected = [filenames.safe(name) for name in given]
    assert expected[:3] == given[:3] and expected[3] == "evilfdp.exe"
    for n, name in enumerate(expected):
        assert name in page
        download = reader.get(f"/inbox/{message.public_id}/parts/{n + 1}")
        assert download.status_code == 200 and download.data == b"content %d" % n
        header = download.headers["Content-Disposition"]
        assert parse_options_header(header) == ("attachment", {"filename": name}), header


def test_a_senders_hostile_mime_name_is_made_safe_for_the_download(gateway, pat):
    raw = (b"From: alice@acme.test\r\nTo: pat@partner.test\r\nSubject: files\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
           b"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment;\r\n"
           b" filename*=UTF-8''..%2F..%2F%2Ebashrc%E2%80%AEfdp.exe%0D%0AX-Evil%3A%201\r\n"
           b"\r\n%PDF\r\n--b--\r\n")
    message = gateway.send(raw, ["pat@partner.test"], mode="external")
    reader = pat()
    download = reader.get(f"/inbox/{message.public_id}/parts/1")
    assert download.status_code == 200 and "X-Evil" not in download.headers
    assert download.headers["Content-Disposition"] == \
        'attachment; filename="bashrcfdp.exe X-Evil_ 1"'
