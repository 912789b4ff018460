"""The recipient portal in Chromium: from the notification emails to reading and replying.

Messages arrive the way the gateway takes them (``ingest.receive`` in CCM mode External
Recipients Only), so the recipient's account, its generated password and both
notifications are the real ones, read from the maildir outbox.
"""

from __future__ import annotations

import re
import struct
import zlib
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from types import SimpleNamespace

import pytest
from axe import check_accessibility, summary
from flows import expect_inbox, rich_editor, sign_in
from playwright.sync_api import Page, expect
from sqlalchemy import select
from support import mail

from app.clock import utcnow
from app.domain import ingest
from app.extensions import db
from app.models import Message, Recipient, User

PAT = "pat@partner.test"
SAM = "sam@partner.test"
ALICE = "alice@acme.test"
BOB = "bob@acme.test"
NEW_PASSWORD = "plum orbit lantern meadow"
SUBJECT = "Board pack for March"
REMOTE_IMAGE = "https://tracker.example/pixel.gif"
HOSTILE_NAME = "../../evil name.pdf"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PLAIN_COUNT = 25
ORIGINAL_MESSAGE_ID = "<board-pack-march@acme.test>"


def red_png(size: int = 4) -> bytes:
    """A ``size`` x ``size`` opaque red PNG (RGB, no alpha channel)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8 bits, truecolour
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * size for _ in range(size))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def board_pack() -> bytes:
    """HTML with a cid: image and a remote one, a text alternative, a hostile attachment."""
    message = EmailMessage()
    message["From"] = f"Alice Example <{ALICE}>"
    message["To"] = f"{PAT}, Sam Partner <{SAM}>"
    message["Cc"] = BOB
    message["Subject"] = SUBJECT
    message["Date"] = format_datetime(utcnow().replace(tzinfo=None), usegmt=False)
    message["Message-ID"] = ORIGINAL_MESSAGE_ID
    message.set_content("Hello Pat,\n\nThe board pack is attached.\n\nAlice\n")
    message.add_alternative(
        "<html><body>"
        "<p>Hello Pat,</p>"
        '<p>Our logo: <img src="cid:logo@acme.test" alt="Acme logo" width="48" height="48"></p>'
        f'<p><img src="{REMOTE_IMAGE}" alt="Sales chart" width="120" height="60"></p>'
        "<p>The board pack is attached.</p><p>Alice</p>"
        "</body></html>",
        subtype="html",
    )
    message.get_payload()[1].add_related(red_png(), "image", "png", cid="<logo@acme.test>")
    message.add_attachment(PDF, maintype="application", subtype="pdf", filename=HOSTILE_NAME)
    return message.as_bytes(policy=SMTP)


@pytest.fixture
def delivered(live_server, make_tenant, make_user, make_ccm_sender):
    """Mail for Pat from Alice at Acme: the board pack, then 25 weekly reports.

    Delivered once the live server is up, so the notifications link to it.
    """
    tenant = make_tenant("acme", domains=["acme.test"])
    make_ccm_sender(tenant, ALICE)
    make_user(tenant, BOB, role="internal")

    board = ingest.receive(board_pack(), ALICE, [PAT], mode="external")
    db.session.commit()
    for number in range(1, PLAIN_COUNT + 1):
        raw = mail(subject=f"Weekly report {number:02d}", body=f"Report number {number}.")
        ingest.receive(raw.replace("\n", "\r\n").encode(), ALICE, [PAT], mode="external")
        db.session.commit()
    copy = db.session.scalar(select(Recipient).where(Recipient.message_id == board.id,
                                                     Recipient.address == PAT))
    assert copy.route == "ccm" and copy.state == "held"
    return SimpleNamespace(tenant=tenant, board=board, board_url=f"/inbox/{board.public_id}",
                           visible_until=copy.visible_until)


# --- signing in from the notifications -------------------------------------------------


def text_of(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def open_notification(page: Page, live_server: str, outbox) -> str:
    """Read Pat's two notifications, open the portal link; returns the emailed password."""
    to_pat = [m for m in outbox() if m["To"] == PAT]
    secure = [m for m in to_pat
              if m["Subject"] == "Secure message from Acme Corp: sign in to read it"]
    details = [m for m in to_pat if m["Subject"].startswith("Your sign-in details")]
    assert len(secure) == PLAIN_COUNT + 1, [m["Subject"] for m in to_pat]
    assert len(details) == 1, "one password notification, for the first message only"

    password = re.search(r"^Password:\s+(\S+)$", text_of(details[0]), re.MULTILINE)
    assert password, text_of(details[0])
    assert re.search(rf"^Login name:\s+{re.escape(PAT)}$", text_of(details[0]), re.MULTILINE)
    # Only the first message's notification says that sign-in details follow.
    first = [m for m in secure if "Your sign-in details arrive in a separate email."
             in text_of(m)]
    assert len(first) == 1
    notice = text_of(first[0])
    assert re.search(rf"^Sign in with:\s+{re.escape(PAT)}$", notice, re.MULTILINE)
    link = re.search(r"https?://\S+", notice)
    assert link, notice
    # the message's own link (tests/browser/test_message_link_flow.py follows it closely)
    assert re.fullmatch(rf"{re.escape(live_server)}/t/acme/messages/[\w-]+", link.group(0))

    page.goto(link.group(0))
    expect(page.get_by_role("heading", name="Sign in to Acme Corp")).to_be_visible()
    return password.group(1)


def choose_password(page: Page) -> None:
    """The forced change right after signing in: the given password is not asked again."""
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Repeat the new password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Save and continue").click()


def sign_in_from_the_notifications(page: Page, live_server: str, outbox) -> None:
    """From the first notification's link to its message (the board pack), then the inbox."""
    generated = open_notification(page, live_server, outbox)
    sign_in(page, PAT, generated)
    expect(page.get_by_role("heading", name="Choose your own password")).to_be_visible()
    choose_password(page)
    expect(page.get_by_role("heading", name=SUBJECT, level=1)).to_be_visible()
    expect(page.get_by_role("status")).to_have_text(
        "Your password has been changed. Other devices have been signed out.")
    page.goto(f"{live_server}/inbox/")
    expect_inbox(page, live_server)


def rows(page: Page):
    return page.locator("#messages .message-row")


def mark(page: Page) -> None:
    """Leave a marker a full page load would wipe out: later checks prove htmx swaps."""
    page.evaluate("window.ccmMarker = 'still here'")


def still_marked(page: Page) -> bool:
    return page.evaluate("window.ccmMarker") == "still here"


# --- the tests ---------------------------------------------------------------------------


def test_from_the_notification_to_the_inbox_and_a_message(
    app, live_server, page, delivered, outbox
):
    sign_in_from_the_notifications(page, live_server, outbox)
    db.session.expire_all()
    pat = db.session.scalar(select(User).where(User.email == PAT))
    assert pat.kind == "external" and not pat.must_change_password

    # Newest first, twenty a page, all unread, each with its visibility.
    expect(rows(page)).to_have_count(20)
    expect(rows(page).first.locator(".row-subject")).to_have_text("Weekly report 25")
    expect(page.locator("#messages .message-row.unread")).to_have_count(20)
    expect(rows(page).first).to_contain_text("Unread:")
    expect(rows(page).first.locator(".dot")).to_be_visible()
    until = f"visible until {delivered.visible_until:%d %b}"
    expect(rows(page).first.locator(".row-until")).to_have_text(until)
    pager = page.get_by_role("navigation", name="Pages")
    expect(pager).to_contain_text("Page 1")
    expect(pager.get_by_role("link", name="Newer")).to_have_count(0)

    # Older and Newer swap the list in place and keep the address bar in step.
    mark(page)
    pager.get_by_role("link", name="Older").click()
    expect(pager).to_contain_text("Page 2")
    expect(page).to_have_url(f"{live_server}/inbox/?page=2")
    expect(rows(page)).to_have_count(PLAIN_COUNT + 1 - 20)
    expect(rows(page).last.locator(".row-subject")).to_have_text(SUBJECT)
    expect(pager.get_by_role("link", name="Older")).to_have_count(0)
    pager.get_by_role("link", name="Newer").click()
    expect(pager).to_contain_text("Page 1")
    expect(page).to_have_url(f"{live_server}/inbox/?page=1")
    assert still_marked(page), "paging reloaded the page"

    # Typing searches: the list filters and the address records the query.
    page.get_by_role("searchbox", name="Search by sender or subject").fill("board")
    expect(page).to_have_url(f"{live_server}/inbox/?q=board")
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text(SUBJECT)
    expect(pager).to_have_count(0)
    page.get_by_role("searchbox").fill("nothing like this")
    expect(page.get_by_role("heading", name="Nothing found")).to_be_visible()
    page.get_by_role("searchbox").fill("board")
    expect(rows(page)).to_have_count(1)
    assert still_marked(page), "searching reloaded the page"

    # Opening a message swaps it in; the address is the message's own.
    rows(page).first.get_by_role("link").click()
    expect(page.get_by_role("heading", name=SUBJECT, level=1)).to_be_visible()
    expect(page).to_have_url(f"{live_server}{delivered.board_url}")
    assert still_marked(page), "opening a message reloaded the page"
    expect(page.locator(".message-meta")).to_contain_text(
        f"Visible until{delivered.visible_until:%d %B %Y}")

    # Reloading renders the message as a whole page at that address.
    page.reload()
    expect(page.get_by_role("heading", name=SUBJECT, level=1)).to_be_visible()
    # the subject and the site's name set apart (U+2068 ... U+2069), as <bdi> in the page
    expect(page).to_have_title(f"\u2068{SUBJECT}\u2069 · \u2068{app.config['SITE_NAME']}\u2069")
    expect(page.get_by_role("navigation", name="Account")).to_contain_text(PAT)
    expect(page.locator("footer")).to_be_visible()

    # Back returns to the search results, now with the message read.
    page.go_back()
    expect(page).to_have_url(f"{live_server}/inbox/?q=board")
    expect(page.get_by_role("heading", name="Secure messages")).to_be_visible()
    expect(rows(page)).to_have_count(1)
    expect(page.locator("#messages .message-row.unread")).to_have_count(0)
    expect(rows(page).first).not_to_contain_text("Unread:")


def test_inline_image_remote_image_and_attachment(
    live_server, page, delivered, outbox, console_errors
):
    # The network is closed anyway; answering for the tracker keeps the test quick and sure.
    page.context.route("https://tracker.example/**", lambda route: route.abort())
    sign_in_from_the_notifications(page, live_server, outbox)
    page.goto(f"{live_server}{delivered.board_url}")
    frame_element = page.locator("iframe.message-frame")
    expect(frame_element).to_have_attribute("src", f"{delivered.board_url}/body")
    body = page.frame_locator("iframe.message-frame")

    logo = body.get_by_role("img", name="Acme logo")
    expect(logo).to_be_visible()
    expect(logo).to_have_attribute("src", re.compile(r"/inline/\d+$"))
    # The frame runs no script (its sandbox has no allow-scripts); it is same-origin, so
    # the page itself can look into it.
    natural = page.evaluate("""() => {
        const doc = document.querySelector("iframe.message-frame").contentDocument;
        return [...doc.images].map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight]);
    }""")
    assert ["Acme logo", True, 4, 4] in natural, natural

    chart = body.get_by_role("img", name="Remote image blocked: Sales chart")
    expect(chart).to_have_attribute("src", "/static/img/remote-image-blocked.svg")
    expect(chart).to_have_attribute("title", "Remote image blocked")
    assert any(alt == "Remote image blocked: Sales chart" and complete and width > 0
               for alt, complete, width, _ in natural), natural
    notice = page.locator(".remote-notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("Remote images in this message are blocked")

    # The attachment is a download under a safe name, with the bytes sent.
    attachment = page.get_by_role("region", name="Attachments")
    link = attachment.get_by_role("link", name="evil name.pdf")
    expect(attachment).to_contain_text("application/pdf")
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename == "evil name.pdf"
    assert "/" not in download.suggested_filename and "\\" not in download.suggested_filename
    with open(download.path(), "rb") as handle:
        assert handle.read() == PDF

    # Asking for remote images frames the body with remote=1; the tracker stays unreachable.
    console_errors.allow(r"Failed to load resource: net::ERR_FAILED \(https://tracker\.example/")
    page.get_by_role("link", name="Show remote images").click()
    expect(frame_element).to_have_attribute("src", f"{delivered.board_url}/body?remote=1")
    expect(page).to_have_url(f"{live_server}{delivered.board_url}?remote=1")
    expect(page.locator(".remote-notice")).to_have_count(0)
    expect(body.get_by_role("img", name="Sales chart")).to_have_attribute("src", REMOTE_IMAGE)
    expect(body.get_by_role("img", name="Acme logo")).to_be_visible()


def test_reply_all_with_an_attachment(live_server, page, delivered, outbox):
    sign_in_from_the_notifications(page, live_server, outbox)
    page.goto(f"{live_server}{delivered.board_url}")
    mark(page)
    page.get_by_role("link", name="Reply all").click()
    expect(page.get_by_role("heading", name=f"Reply all: {SUBJECT}")).to_be_visible()
    expect(page).to_have_url(f"{live_server}{delivered.board_url}/reply?all=1")
    assert still_marked(page), "Reply all reloaded the page"

    # The original sender and the other recipients, all ticked; never the replier.
    recipients = page.get_by_role("group", name="Send to")
    boxes = recipients.get_by_role("checkbox")
    expect(boxes).to_have_count(3)
    for address in (ALICE, SAM, BOB):
        expect(recipients.get_by_role("checkbox", name=address, exact=True)).to_be_checked()
    expect(recipients.get_by_role("checkbox", name=PAT)).to_have_count(0)
    expect(recipients).not_to_contain_text(PAT)
    expect(page.get_by_label("CCM mode")).to_have_count(0)  # external users have no choice

    rich_editor(page, "Your reply").fill("Thank you, Alice. My comments are attached.")
    page.get_by_label("Attach files").set_input_files(
        files=[{"name": "comments.txt", "mimeType": "text/plain",
                "buffer": b"Page 3: the figures for Q1 look right.\n"}])
    page.get_by_role("button", name="Send reply").click()

    expect(page.get_by_role("status")).to_have_text("Your reply has been sent.")
    expect(page).to_have_url(f"{live_server}{delivered.board_url}")
    expect(page.get_by_role("heading", name=SUBJECT, level=1)).to_be_visible()

    db.session.expire_all()
    replies = db.session.scalars(select(Message).where(Message.mail_from == PAT)).all()
    assert len(replies) == 1
    reply = replies[0]
    headers = reply.raw.split(b"\r\n\r\n", 1)[0].decode()
    assert f"In-Reply-To: {ORIGINAL_MESSAGE_ID}" in headers
    assert f"Subject: Re: {SUBJECT}" in headers
    assert b"comments.txt" in reply.raw
    assert b"Thank you, Alice." in reply.raw
    assert sorted(r.address for r in reply.recipients) == sorted([ALICE, SAM, BOB])
    copy = db.session.scalar(select(Recipient).where(Recipient.message_id == delivered.board.id,
                                                     Recipient.address == PAT))
    assert copy.replied_at is not None


@pytest.mark.parametrize("width, height, scheme", [
    (1280, 800, "light"), (390, 844, "light"), (1280, 800, "dark"), (390, 844, "dark")],
    ids=["desktop", "phone", "desktop-dark", "phone-dark"])
def test_screenshots(live_server, page, delivered, outbox, screenshot, width, height, scheme):
    page.set_viewport_size({"width": width, "height": height})
    page.emulate_media(color_scheme=scheme)
    sign_in_from_the_notifications(page, live_server, outbox)
    # One message read, so the list shows both kinds of row.
    page.goto(f"{live_server}/inbox/{delivered.board.public_id}")
    page.goto(f"{live_server}/inbox/?page=2")
    expect(rows(page)).to_have_count(PLAIN_COUNT + 1 - 20)
    screenshot(page, "inbox-page-2")
    page.goto(f"{live_server}/inbox/")
    expect(rows(page)).to_have_count(20)
    screenshot(page, "inbox")
    assert not overflows(page), overflows(page)

    page.goto(f"{live_server}{delivered.board_url}")
    expect(page.frame_locator("iframe.message-frame").get_by_role(
        "img", name="Acme logo")).to_be_visible()
    screenshot(page, "message")
    assert not overflows(page), overflows(page)

    page.get_by_role("link", name="Reply all").click()
    expect(page.get_by_role("group", name="Send to")).to_be_visible()
    screenshot(page, "reply")
    assert not overflows(page), overflows(page)


def test_a_body_too_large_to_format_is_shown_as_its_text(
        live_server, page, delivered, outbox, screenshot, monkeypatch):
    from app.domain import reading

    monkeypatch.setattr(reading, "HTML_DISPLAY_LIMIT", 2000)  # the page is the same
    rows_html = "".join(f"<tr><td>Line {n} of the price list</td></tr>" for n in range(80))
    raw = mail(subject="Price list", body=f"<table>{rows_html}</table>",
               headers="MIME-Version: 1.0\nContent-Type: text/html\n")
    sign_in_from_the_notifications(page, live_server, outbox)
    big = ingest.receive(raw.replace("\n", "\r\n").encode(), ALICE, [PAT], mode="external")
    db.session.commit()
    page.goto(f"{live_server}/inbox/{big.public_id}")
    expect(page.get_by_text("This message is too large to show with its formatting")
           ).to_be_visible()
    expect(page.get_by_text("Line 79 of the price list")).to_be_visible()
    assert page.locator("iframe.message-frame").count() == 0
    screenshot(page, "too-large")
    assert not overflows(page), overflows(page)


def overflows(page: Page) -> list[str]:
    """Elements that stick out sideways past the viewport (a page one scrolls sideways)."""
    return page.evaluate("""() => {
        const width = document.documentElement.clientWidth;
        const wide = [];
        for (const el of document.body.querySelectorAll("*")) {
            const box = el.getBoundingClientRect();
            if (box.width && (box.right > width + 1 || box.left < -1)
                    && !el.closest(".visually-hidden, .skip-link")) {
                wide.push(`${el.tagName.toLowerCase()}.${el.className}: ${box.left}-${box.right}`);
            }
        }
        return wide;
    }""")


def assert_accessible(page: Page, where: str) -> None:
    violations = check_accessibility(page)
    assert not violations, f"axe found problems on {where}:\n{summary(violations)}"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_accessibility(live_server, page, delivered, outbox, console_errors, scheme):
    """axe, colour contrast included, in either scheme the reader's system asks for."""
    page.emulate_media(color_scheme=scheme)
    generated = open_notification(page, live_server, outbox)
    assert_accessible(page, "the sign-in page")
    sign_in(page, PAT, generated)
    expect(page.get_by_role("heading", name="Choose your own password")).to_be_visible()
    assert_accessible(page, "the password change page")
    choose_password(page)
    expect(page.get_by_role("heading", name=SUBJECT, level=1)).to_be_visible()
    page.goto(f"{live_server}/inbox/")
    expect_inbox(page, live_server)
    assert_accessible(page, "the inbox")
    page.get_by_role("searchbox").fill("nothing like this")
    expect(page.get_by_role("heading", name="Nothing found")).to_be_visible()
    assert_accessible(page, "the inbox with nothing found")
    page.goto(f"{live_server}{delivered.board_url}")
    expect(page.frame_locator("iframe.message-frame").get_by_role(
        "img", name="Acme logo")).to_be_visible()
    assert_accessible(page, "the message page")
    page.get_by_role("link", name="Reply all").click()
    expect(page.get_by_role("group", name="Send to")).to_be_visible()
    assert_accessible(page, "the reply page")
    rich_editor(page, "Your reply").fill("")  # it starts with the quoted original
    page.get_by_role("button", name="Send reply").click()  # with no text: refused
    expect(rich_editor(page, "Your reply")).to_have_attribute("aria-invalid", "true")
    assert_accessible(page, "the reply page with an error")

    # The message body's frame runs no script, so axe reads that document on its own.
    # Alone it has no <link rel=icon>, so Chromium asks for /favicon.ico: a 404.
    console_errors.allow(r"status of 404 .*/favicon\.ico\)$")
    page.goto(f"{live_server}{delivered.board_url}/body")
    expect(page.get_by_role("img", name="Acme logo")).to_be_visible()
    violations = check_accessibility(page, framed=True)
    assert not violations, f"axe found problems in the message body:\n{summary(violations)}"


def test_inbox_page_weight(live_server, page, delivered, outbox):
    sign_in_from_the_notifications(page, live_server, outbox)
    # A first visit: nothing from the cache, so every byte counts.
    devtools = page.context.new_cdp_session(page)
    devtools.send("Network.enable")
    devtools.send("Network.setCacheDisabled", {"cacheDisabled": True})
    page.wait_for_load_state("load")
    page.goto("about:blank")  # nothing of the last page still arriving
    responses = []
    page.on("response", lambda response: responses.append(response))
    page.goto(f"{live_server}/inbox/")
    expect(rows(page)).to_have_count(20)
    page.wait_for_load_state("load")

    sizes = {response.url: len(response.body()) for response in responses
             if response.status == 200}
    body_bytes = sum(sizes.values())
    transferred = page.evaluate("""() => {
        const [nav] = performance.getEntriesByType("navigation");
        return nav.transferSize + performance.getEntriesByType("resource")
            .reduce((sum, entry) => sum + entry.transferSize, 0);
    }""")
    print(f"inbox page: {body_bytes} bytes of bodies, {transferred} bytes transferred",
          *(f"  {size:>7}  {url}" for url, size in sizes.items()), sep="\n")
    assert body_bytes < 150 * 1024, sizes
    assert transferred < 150 * 1024, transferred

    # (each with its fingerprint, ?v=, which app/web/static_files.py adds)
    scripts = {response.url.removeprefix(live_server).partition("?")[0]
               for response in responses if response.request.resource_type == "script"}
    assert scripts == {"/static/js/htmx-2.0.11.min.js", "/static/js/ccm.js"}, scripts
    in_page = page.evaluate("[...document.scripts].map(s => s.getAttribute('src'))")
    assert sorted(src.partition("?")[0] for src in in_page) == [
        "/static/js/ccm.js", "/static/js/htmx-2.0.11.min.js"], in_page


def test_the_title_follows_navigation_in_place(live_server, page, delivered, outbox):
    sign_in_from_the_notifications(page, live_server, outbox)
    page.get_by_role("searchbox").fill("board")
    expect(rows(page)).to_have_count(1)
    rows(page).first.get_by_role("link").click()
    expect(page).to_have_url(f"{live_server}{delivered.board_url}")
    expect(page.get_by_role("heading", name=SUBJECT, level=1)).to_be_visible()
    expect(page).to_have_title(re.compile(rf"^\u2068{re.escape(SUBJECT)}\u2069 · "),
                               timeout=2_000)
