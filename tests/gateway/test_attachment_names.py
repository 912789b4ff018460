"""Attachment names: the name a person gave is kept (spaces, accents, any script) and
made safe, on the way in (an upload, a sender's MIME) and on the way out (a download's
Content-Disposition, RFC 6266)."""

# ruff: noqa: RUF001  (the look-alike characters are what these tests are about)

import random
import re
import unicodedata
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
    # characters that only look different are judged as what they stand for (NFKC)
    ("．．／etc／passwd", "passwd"),  # fullwidth full stops and solidus
    ("．．＼．．＼windows＼win.ini", "win.ini"),
    ("C：＼x.exe", "x.exe"),
    ("ＣＯＮ.txt", "_CON.txt"),
    ("ｎｕｌ", "_nul"),
    ("ＬＰＴ¹.doc", "_LPT1.doc"),
    ("CON .txt", "_CON .txt"),  # Windows ignores the space before the extension
    ("conin$", "_conin$"),
    ("．htaccess", "htaccess"),
    ("report.pdf．", "report.pdf"),
    ("﹒﹒∕etc∕passwd", "∕etc∕passwd"),  # small full stops; the division slash is no separator
    ("ﬁnal report.pdf", "final report.pdf"),
    ("Übersicht.pdf", "Übersicht.pdf"),
    # invisible blanks are spaces; they cannot pad an extension out of sight
    ("invoice.pdf\u2800\u2800\u2800.exe", "invoice.pdf .exe"),
    ("invoice.pdf\u3164\u3164.exe", "invoice.pdf .exe"),
    ("invoice.pdf\uffa0\u115f\u1160.exe", "invoice.pdf .exe"),
    ("\u2800\u2800", ""),
    ("\u3164report.pdf\u3164", "report.pdf"),
    # tag characters and interlinear annotations are dropped, like other format characters
    ("invoice\U000e0070\U000e0064\U000e0066.exe", "invoice.exe"),
    ("a\U000e0001b\U000e007f.txt", "ab.txt"),
    ("x\ufff9hidden\ufffa\ufffb.txt", "xhidden.txt"),
    ("e\u034fe\u17b4\u17b5.txt", "ee.txt"),
    ("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645.pdf",
     "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645.pdf"),  # ZWNJ kept
    ("👩\u200d💻.png", "👩\u200d💻.png"),  # ZWJ kept
    ("e\u200b\u0301.txt", "é.txt"),  # what joins once the space between goes
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


#: (a name as stored before today's rules, what each part of the header holds)
STORED = [
    ("．．／etc／passwd", "passwd", "passwd"),
    ("ＣＯＮ.txt", "_CON.txt", "_CON.txt"),
    ("C：＼x.exe", "x.exe", "x.exe"),
    ("invoice.pdf⠀⠀⠀.exe", "invoice.pdf .exe", "invoice.pdf .exe"),
    ("x.\u0301", "x", "x.\u0301"),  # the accent dropped leaves a trailing dot: gone too
    ("n\u0303ul.txt", "_nul.txt", "ñul.txt"),  # a device name once the accent is gone
    ("Ｃ\u0327ON.txt", "_CON.txt", "ÇON.txt"),
    ("\u0301", "attachment", "\u0301"),
    ("契約書.pdf", "___.pdf", "契約書.pdf"),
    ("名名", "attachment", "名名"),
]


@pytest.mark.parametrize(("stored", "fallback", "utf8"), STORED)
def test_the_download_header_makes_any_stored_name_safe_in_both_forms(stored, fallback,
                                                                       utf8):
    """The ASCII form is made by decomposing (NFKD) and dropping what is not ASCII: it
    goes through the same rules again, as does the name itself."""
    header = filenames.content_disposition(stored)
    given_fallback = header.split('filename="', 1)[1].split('"', 1)[0]
    assert given_fallback == fallback
    assert parse_options_header(header)[1]["filename"] == utf8


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


#: what hostile names are made of: separators and their look-alikes, dots, drive colons,
#: controls, format and blank characters, combining marks, device names, long runs
HOSTILE = ([".", "..", "/", "\\", ":", "．", "／", "＼", "：", "﹒", "。", "C", "c", "ＣＯＮ",
            "CON", "nul", "LPT¹", "COM²", " ", "\t", "\n", "\r", "\x00", "\x1b", "\x7f",
            "\x85", "\x9b", "\u2028", "\u202e", "\u2066", "\u200b", "\ufeff", "\u00ad",
            "\u2800", "\u3164", "\u115f", "\u1160", "\uffa0", "\U000e0041",
            "\U000e007f", "\ufff9", "\ufffb", "\u034f", "\u0301", "\u0327", "\u0303",
            "ﬁ", "é", "名", "👍", "\u200d", "\u200c", "<", ">", "\"", "|", "?", "*", "%",
            "exe", "pdf", "etc", "passwd", "x" * 60, "é" * 40, "\ud800"])
INVISIBLE_OR_HARMFUL = re.compile(
    "[\x00-\x1f\x7f-\x9f/\\\\\u2028\u2029\u2800\u3164\u115f\u1160\uffa0\u034f"
    "\ufff9-\ufffb\U000e0000-\U000e007f]")


def test_any_name_made_of_hostile_pieces_comes_out_plain_and_stays_so():
    """50,000 names of random hostile pieces: each safe name is fixed under safe(), its
    own NFKC form, bounded, free of what could mislead, and its download header's two
    forms are safe too."""
    pick = random.Random(20261206)
    for _ in range(50_000):
        given = "".join(pick.choice(HOSTILE) for _ in range(pick.randint(1, 8)))
        name = filenames.safe(given)
        assert filenames.safe(name) == name, ascii(given)
        assert unicodedata.normalize("NFKC", name) == name, ascii(given)
        assert len(name) <= filenames.MAX_CHARACTERS
        assert len(name.encode(errors="surrogatepass")) <= filenames.MAX_BYTES
        assert not INVISIBLE_OR_HARMFUL.search(name), ascii(given)
        assert not any(unicodedata.category(c) in ("Cf", "Cc", "Cs") for c in name
                       if c not in "\u200c\u200d"), ascii(given)
        if name:
            assert not name.startswith((".", " ")) and not name.endswith((".", " "))
            assert not re.fullmatch(r"(?i)(con|prn|aux|nul|com\d|lpt\d)( *\..*)?", name)
        header = filenames.content_disposition(given)
        assert header.isascii() and "\r" not in header and "\n" not in header
        fallback = header.split('filename="', 1)[1].split('"', 1)[0]
        assert fallback == filenames.safe(fallback) and fallback, ascii(given)
        assert not re.fullmatch(r"(?i)(con|prn|aux|nul|com\d|lpt\d)( *\..*)?", fallback)
