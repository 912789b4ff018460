"""What people wrote reads in its own direction, whatever the page's language: an English
message (its sender "Name <address>", its subject, its text with punctuation at the ends
of lines, its attachment's name) in the Arabic portal on a phone, and an Arabic message
in the English portal. Each piece is set apart (<bdi> or dir="auto",
app/templates/_text.html); the test asks Chromium for the direction it lays each out in,
and where the punctuation ends up on the screen."""
# ruff: noqa: RUF001  (Arabic letters that look like Latin ones are the point here)

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP

import pytest
from playwright.sync_api import Page, expect
from support import PASSWORD

from app.domain import ingest
from app.extensions import db
from app.models import Tenant

ALICE = "alice@acme.test"
PAT = "pat@partner.test"
NARROW = {"width": 360, "height": 740}
WIDE = {"width": 1280, "height": 800}

ENGLISH_BODY = "Dear Pat,\n\nOur offer stands at 40.\n\nAlice (Acme)"
ARABIC_SUBJECT = "عرض التسوية"
ARABIC_BODY = "عزيزي بات،\n\nعرضنا ما زال 40.\n\nسارة"


def deliver(sender: str, subject: str, body: str, message_id: str,
            attachment: str | None = None) -> None:
    message = EmailMessage(policy=SMTP)
    message["From"] = sender
    message["To"] = PAT
    message["Cc"] = "Bob Builder <bob@acme.test>"
    message["Subject"] = subject
    message["Message-ID"] = message_id
    message.set_content(body)
    if attachment:
        message.add_attachment(b"%PDF-1.4 terms", maintype="application", subtype="pdf",
                               filename=attachment)
    ingest.receive(message.as_bytes(), ALICE, [PAT], mode="external")
    db.session.commit()


@pytest.fixture
def mailbox(make_tenant, make_user, make_ccm_sender):
    tenant = make_tenant("acme", domains=["acme.test"])
    make_ccm_sender(tenant, ALICE)
    make_user(tenant, PAT, role="external")
    deliver(f"Alice Example <{ALICE}>", "Offer (revised).", ENGLISH_BODY, "<en@acme.test>",
            attachment="terms (v2).pdf")
    deliver(f"سارة أحمد <{ALICE}>", ARABIC_SUBJECT, ARABIC_BODY, "<ar@acme.test>")


def sign_in(browser, base_url: str, locale: str, button: str, viewport: dict) -> Page:
    context = browser.new_context(locale=locale, viewport=viewport)
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto(f"{base_url}/t/acme/sign-in")
    page.locator("#email").fill(PAT)
    page.locator("#password").fill(PASSWORD)
    page.get_by_role("button", name=button, exact=True).click()
    expect(page.locator("li.message-row")).to_have_count(2)
    return page


#: how an element is laid out: its dir attribute, its direction, the page's
LAID_OUT = """e => ({dir: e.getAttribute('dir'), direction: getComputedStyle(e).direction,
    page: getComputedStyle(document.documentElement).direction, text: e.textContent})"""

#: where on the screen the first and the last character of ``text`` are drawn, in the
#: element's text node that holds it
ENDS = """([e, text]) => {
    const walker = document.createTreeWalker(e, NodeFilter.SHOW_TEXT);
    while (walker.nextNode() && !walker.currentNode.textContent.includes(text)) {}
    const node = walker.currentNode, start = node.textContent.indexOf(text);
    const at = (i) => { const r = document.createRange(); r.setStart(node, i);
                        r.setEnd(node, i + 1); return r.getBoundingClientRect(); };
    const first = at(start), last = at(start + text.length - 1);
    return {first: first.left, last: last.left, top: first.top, lastTop: last.top,
            edge: e.getBoundingClientRect().left, right: e.getBoundingClientRect().right};
}"""


def laid_out(page: Page, selector: str) -> dict:
    return page.locator(selector).first.evaluate(LAID_OUT)


def ends(page: Page, selector: str, text: str) -> dict:
    return page.locator(selector).first.evaluate(f"e => ({ENDS})([e, {text!r}])")


def reads_left_to_right(page: Page, selector: str, text: str) -> dict:
    """``text`` is drawn with its first character left of its last one: "Dear Pat," with
    its comma at the right, not ",Dear Pat"; or, broken over two lines, begun on the first."""
    found = ends(page, selector, text)
    if abs(found["top"] - found["lastTop"]) < 4:  # on one line
        assert found["first"] < found["last"], (text, found)
    else:
        assert found["top"] < found["lastTop"], (text, found)
    return found


def look(page: Page, screenshot, label: str) -> None:
    """Screenshots at 1280 and 360 px, light and dark; nothing runs off the page."""
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        for name, size in (("wide", WIDE), ("narrow", NARROW)):
            page.set_viewport_size(size)
            screenshot(page, f"{label}-{name}-{scheme}")
            assert page.evaluate("document.scrollingElement.scrollWidth") <= size["width"], (
                label, name)
    page.emulate_media(color_scheme="light")
    page.set_viewport_size(NARROW)


@pytest.mark.usefixtures("mailbox")
def test_an_english_message_in_the_arabic_portal_on_a_phone(live_server, browser, screenshot):
    page = sign_in(browser, live_server, "ar", "تسجيل الدخول", NARROW)
    try:
        english = page.locator("li.message-row", has_text="Offer (revised).")
        arabic = page.locator("li.message-row", has_text=ARABIC_SUBJECT)
        for row, direction in ((english, "ltr"), (arabic, "rtl")):
            for part in (".row-name", ".row-subject"):
                shown = row.locator(part).evaluate(LAID_OUT)
                assert shown["dir"] == "auto" and shown["direction"] == direction, shown
        # the English subject keeps its full stop at its end, and sits on the page's side
        subject = english.locator(".row-subject")
        assert subject.evaluate("e => getComputedStyle(e).textAlign") == "right"
        look(page, screenshot, "inbox")

        english.locator("a").click()
        expect(page.locator(".message-meta")).to_be_visible()
        # the page stays right to left; what Alice wrote is laid out left to right
        sender = laid_out(page, ".message-meta dd bdi")
        assert sender["text"] == f"Alice Example <{ALICE}>"
        assert sender["direction"] == "ltr" and sender["page"] == "rtl", sender
        assert laid_out(page, ".message-meta dd")["direction"] == "rtl"
        cc = page.locator(".message-meta dd bdi", has_text="bob@acme.test")
        assert cc.evaluate(LAID_OUT)["direction"] == "ltr"
        assert laid_out(page, "#message-subject bdi")["direction"] == "ltr"
        body = laid_out(page, ".message-text")
        assert body["dir"] == "auto" and body["direction"] == "ltr", body
        attachment = laid_out(page, ".attachments a bdi")
        assert attachment["text"] == "terms (v2).pdf" and attachment["direction"] == "ltr"
        # on the screen: "<" before the address and ">" after it; "(revised)." with its
        # stop at the end; "terms (v2).pdf" in its order
        reads_left_to_right(page, ".message-meta dd bdi", f"<{ALICE}>")
        reads_left_to_right(page, "#message-subject bdi", "Offer (revised).")
        reads_left_to_right(page, ".attachments a bdi", "terms (v2).pdf")
        # each line of the text starts at the left and ends with its punctuation
        for line in ("Dear Pat,", "Our offer stands at 40.", "Alice (Acme)"):
            found = reads_left_to_right(page, ".message-text", line)
            assert found["first"] - found["edge"] < 40, (line, found)
        look(page, screenshot, "message")

        # the reply: the textarea and the editor take the direction of what is in them
        page.locator(".actions a").first.click()
        area = page.locator("[data-rich-area]")
        expect(area).to_be_visible()
        reads_left_to_right(page, "#reply-title bdi", "Offer (revised).")
        assert page.locator("textarea[name=body]").get_attribute("dir") == "auto"
        quoted = area.locator("blockquote")
        assert quoted.evaluate("e => getComputedStyle(e).unicodeBidi") == "plaintext"
        for line in ("Dear Pat,", "Our offer stands at 40."):
            reads_left_to_right(page, "[data-rich-area] blockquote", line)
        look(page, screenshot, "reply")
    finally:
        page.context.close()


@pytest.mark.usefixtures("mailbox")
def test_an_arabic_message_in_the_english_portal(live_server, browser, screenshot):
    page = sign_in(browser, live_server, "en", "Sign in", WIDE)
    try:
        row = page.locator("li.message-row", has_text=ARABIC_SUBJECT)
        assert row.locator(".row-subject").evaluate(LAID_OUT)["direction"] == "rtl"
        assert row.locator(".row-subject").evaluate(
            "e => getComputedStyle(e).textAlign") == "left"  # on the page's side
        row.locator("a").click()
        expect(page.locator(".message-meta")).to_be_visible()
        sender = laid_out(page, ".message-meta dd bdi")
        assert sender["text"] == f"سارة أحمد <{ALICE}>" and sender["direction"] == "rtl"
        assert laid_out(page, "#message-subject bdi")["direction"] == "rtl"
        body = laid_out(page, ".message-text")
        assert body["dir"] == "auto" and body["direction"] == "rtl" and body["page"] == "ltr"
        # the text starts at the right edge: its first letter right of its last
        found = ends(page, ".message-text", "عزيزي بات،")
        assert found["first"] > found["last"] and found["right"] - found["first"] < 40, found
        look(page, screenshot, "message")

        # replying, the quoted Arabic lines read right to left in the English editor
        page.get_by_role("link", name="Reply", exact=True).click()
        quoted = page.locator("[data-rich-area] blockquote")
        expect(quoted).to_contain_text("عرضنا ما زال 40.")
        found = ends(page, "[data-rich-area] blockquote", "عرضنا ما زال 40.")
        assert found["top"] == found["lastTop"] and found["first"] > found["last"], found
        look(page, screenshot, "reply")

        # an HTML body without a direction of its own, in the message's frame
        html = EmailMessage(policy=SMTP)
        html["From"], html["To"], html["Subject"] = f"Alice <{ALICE}>", PAT, ARABIC_SUBJECT
        html.set_content("<p>عزيزي بات،</p><p>عرضنا ما زال 40.</p>", subtype="html")
        message = ingest.receive(html.as_bytes(), ALICE, [PAT], mode="external")
        db.session.commit()
        page.goto(f"{live_server}/inbox/{message.public_id}/body")
        assert page.locator("body").evaluate("e => getComputedStyle(e).direction") == "rtl"
    finally:
        page.context.close()


@pytest.mark.usefixtures("mailbox")
def test_the_sender_and_the_administrator_read_english_in_the_arabic_portal(
        live_server, browser, screenshot, make_user):
    reader = sign_in(browser, live_server, "en", "Sign in", WIDE)
    try:  # Pat opens the English message and downloads its attachment
        reader.locator("li.message-row", has_text="Offer (revised).").locator("a").click()
        href = reader.locator(".attachments a").get_attribute("href")
        assert reader.request.get(f"{live_server}{href}").ok
    finally:
        reader.context.close()
    make_user(Tenant.query.filter_by(slug="acme").one(), "admin@acme.test", role="admin")
    for who, pages in ((ALICE, ["/sent/"]), ("admin@acme.test", ["/admin/tracking"])):
        context = browser.new_context(locale="ar", viewport=NARROW)
        context.set_default_timeout(10_000)
        page = context.new_page()
        try:
            page.goto(f"{live_server}/t/acme/sign-in")
            page.locator("#email").fill(who)
            page.locator("#password").fill(PASSWORD)
            page.get_by_role("button", name="تسجيل الدخول", exact=True).click()
            expect(page.locator("#email")).to_have_count(0)  # signed in
            page.goto(f"{live_server}{pages[0]}")
            if who == ALICE:
                row = page.locator("li.message-row", has_text="Offer (revised).")
                shown = row.locator(".row-subject").evaluate(LAID_OUT)
                assert shown["direction"] == "ltr" and shown["page"] == "rtl", shown
                page.set_viewport_size(WIDE)
                found = reads_left_to_right(page, "li.message-row .row-subject >> nth=1",
                                            "Offer (revised).")
                assert found["top"] == found["lastTop"]
                look(page, screenshot, "sent")
                row.locator("a").click()
                expect(page.locator(".deliveries")).to_be_visible()
                look(page, screenshot, "sent-message")
                reads_left_to_right(page, "#sent-subject bdi", "Offer (revised).")
                reads_left_to_right(page, ".accesses bdi:has-text('terms')", "terms (v2).pdf")
                assert laid_out(page, ".delivery-head strong bdi")["text"] == PAT
            else:
                reads_left_to_right(page, "#results a bdi:has-text('Offer')", "Offer (revised).")
                look(page, screenshot, "tracking")
                page.locator("#results a", has_text="Offer (revised).").click()
                reads_left_to_right(page, "#tracked-subject bdi", "Offer (revised).")
                reads_left_to_right(page, ".message-meta bdi:has-text('Alice Example')",
                                    f"<{ALICE}>")
                subject = ".message-meta dd bdi:text-is('Offer (revised).')"
                found = reads_left_to_right(page, subject, "Offer (revised).")
                assert found["top"] == found["lastTop"]
                look(page, screenshot, "tracked")
                page.goto(f"{live_server}/admin/audit")
                look(page, screenshot, "audit")
        finally:
            context.close()


#: Unicode's first-strong isolate and pop directional isolate: <bdi> for a <title>
FSI, PDI = "\u2068", "\u2069"


@pytest.mark.parametrize(("locale", "button", "tenant_name", "subject", "direction"), [
    ("ar", "تسجيل الدخول", "Acme (Europe) Ltd.", "Offer (revised).", "ltr"),
    ("en", "Sign in", "أكمي (أوروبا) المحدودة.", ARABIC_SUBJECT, "rtl")],
    ids=["english-in-arabic", "arabic-in-english"])
@pytest.mark.usefixtures("mailbox")
def test_the_title_and_the_top_bar_set_apart_what_people_wrote(
        live_server, browser, screenshot, app, locale, button, tenant_name, subject,
        direction):
    """The subject in the window's title, the organisation's name and the person's
    address in the top bar: each in its own direction in a page of the other (a title
    holds no element, so Unicode's isolates do there what <bdi> does in the page)."""
    tenant = Tenant.query.filter_by(slug="acme").one()
    tenant.name = tenant_name
    db.session.commit()
    site = app.config["SITE_NAME"]
    page = sign_in(browser, live_server, locale, button, WIDE)
    try:
        brand = laid_out(page, ".topbar .brand bdi")
        assert brand["text"] == tenant_name and brand["direction"] == direction, brand
        assert brand["page"] == ("rtl" if locale == "ar" else "ltr")
        found = ends(page, ".topbar .brand", tenant_name)
        # its first letter on the side its own language starts from, the stop at its end
        assert (found["first"] < found["last"]) == (direction == "ltr"), found
        who = laid_out(page, ".topbar .who bdi")
        assert who["text"] == PAT and who["direction"] == "ltr", who
        page.locator("li.message-row", has_text=subject).locator("a").click()  # htmx
        expect(page.locator(".message-meta")).to_be_visible()
        expect(page).to_have_title(f"{FSI}{subject}{PDI} · {FSI}{site}{PDI}")
        look(page, screenshot, f"top-bar-{locale}")
        page.reload()  # the whole page
        assert page.title() == f"{FSI}{subject}{PDI} · {FSI}{site}{PDI}"
        page.goto(f"{live_server}/inbox/")
        assert page.title().endswith(f" · {FSI}{site}{PDI}")  # a title of its own words
        assert FSI not in page.title().partition(" · ")[0]
    finally:
        page.context.close()
