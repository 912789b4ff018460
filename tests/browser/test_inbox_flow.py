"""The recipient's inbox and conversations, and the sender's Sent, in Chromium at 1280 and
360 px and in the dark scheme: withdrawn and expired messages stay listed, greyed; a reply
starts with the quoted original; the conversation shows under the message; Sent says
which messages went by CCM and shows the body sanitized."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from axe import check_accessibility, summary
from flows import rich_editor, sign_in_at
from playwright.sync_api import Page, expect

from app import clock
from app.domain import ingest, isolation
from app.extensions import db
from app.models import Message

ALICE = "alice@acme.test"
PAT = "pat@partner.test"
NARROW = {"width": 360, "height": 740}
WIDE = {"width": 1280, "height": 800}


def deliver(raw: str, rcpts: list[str], sender: str = ALICE, mode: str = "external") -> Message:
    message = ingest.receive(raw.replace("\n", "\r\n").encode(), sender, rcpts, mode=mode)
    db.session.commit()
    return message


def plain(subject: str, body: str, *, message_id: str, extra: str = "") -> str:
    return (f"From: Alice Example <{ALICE}>\nTo: {PAT}\nSubject: {subject}\n"
            f"Message-ID: {message_id}\n{extra}\n{body}\n")


@pytest.fixture
def acme(make_tenant, make_user, make_ccm_sender):
    tenant = make_tenant("acme", domains=["acme.test"])
    make_ccm_sender(tenant, ALICE)
    make_user(tenant, PAT, role="external")
    return tenant


@pytest.fixture
def mailbox(acme):
    """Pat's inbox: one message withdrawn, one expired, two to read."""
    withdrawn = deliver(plain("Sent in error", "Wrong file.", message_id="<w@acme.test>"), [PAT])
    isolation.revoke(withdrawn.recipients[0], by=f"the sender, {ALICE}")
    expired = deliver(plain("Last year's figures", "Old numbers.", message_id="<e@acme.test>"),
                      [PAT])
    expired.recipients[0].visible_until = clock.utcnow() - timedelta(days=2)
    deliver(plain("Board pack", "See the pack.", message_id="<b@acme.test>"), [PAT])
    offer = deliver(plain("Settlement offer", "Dear Pat,\n\nOur offer stands at 40.\n\nAlice",
                          message_id="<offer@acme.test>"), [PAT])
    db.session.commit()
    return offer


def look(page: Page, screenshot, label: str) -> None:
    """Screenshots at 1280 px and 360 px, light and dark; axe in both schemes."""
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        violations = check_accessibility(page)
        assert not violations, f"axe on {label} ({scheme}):\n{summary(violations)}"
        for name, size in (("wide", WIDE), ("narrow", NARROW)):
            page.set_viewport_size(size)
            screenshot(page, f"{label}-{name}-{scheme}")
            wide = page.evaluate("""() => [...document.querySelectorAll('body *')]
                .filter(e => e.getBoundingClientRect().right > innerWidth + 1)
                .map(e => e.tagName + '.' + e.className + '#' + e.id).slice(0, 5)""")
            assert not wide, (label, name, wide)  # nothing runs off the page
    page.emulate_media(color_scheme="light")
    page.set_viewport_size(WIDE)


def test_withdrawn_and_expired_stay_listed_and_the_sender_shows_on_a_phone(
        live_server, page, mailbox, screenshot, console_errors):
    sign_in_at(page, live_server, PAT)
    expect(page.get_by_role("heading", name="Secure messages")).to_be_visible()
    gone = page.locator("li.message-gone")
    expect(gone).to_have_count(2)
    today = clock.utcnow()
    expect(gone.filter(has_text="Sent in error")).to_contain_text(
        f"Withdrawn by the sender on {today:%d %B %Y}")
    expect(gone.filter(has_text="Last year's figures")).to_contain_text("Expired on")
    look(page, screenshot, "inbox")
    page.set_viewport_size(NARROW)
    for row in page.locator("li.message-row").all():
        sender = row.locator(".row-from")
        expect(sender).to_be_visible()
        expect(sender).to_contain_text("Alice Example")
        box = sender.bounding_box()
        assert box and box["width"] > 60 and box["x"] + box["width"] <= NARROW["width"]
    page.set_viewport_size(WIDE)
    # Opening a withdrawn one shows what happened, not the content.
    console_errors.allow(r"status of 410")
    gone.filter(has_text="Sent in error").get_by_role("link").click()
    expect(page.get_by_role("heading", name="This message was withdrawn by the sender")
           ).to_be_visible()
    expect(page.locator(".gone-fate")).to_have_text(
        f"The sender withdrew it on {today:%d %B %Y}.")
    expect(page.get_by_text("Wrong file.")).to_have_count(0)
    look(page, screenshot, "withdrawn")


def test_reply_with_the_quote_and_see_the_conversation(
        live_server, page, mailbox, screenshot):
    sign_in_at(page, live_server, PAT)
    page.get_by_role("link", name=re.compile("Settlement offer")).click()
    expect(page.get_by_role("heading", name="Settlement offer")).to_be_visible()
    page.get_by_role("link", name="Reply", exact=True).click()
    body = rich_editor(page, "Your reply")
    expect(body.locator("blockquote")).to_contain_text("Our offer stands at 40.")
    # the editor's text, which the hidden textarea holds, quotes as the text part will
    expect(page.locator("textarea[name=body]")).to_have_value(re.compile(
        r"^On .*Alice Example <alice@acme.test> wrote:\n> Dear Pat,\n>\n"
        r"> Our offer stands at 40\.\n>\n> Alice$"))
    look(page, screenshot, "reply-form")
    body.press("Control+Home")
    body.type("We accept 40.")
    page.get_by_role("button", name="Send reply").click()
    expect(page.get_by_role("status")).to_have_text("Your reply has been sent.")
    db.session.expire_all()
    mine = db.session.query(Message).order_by(Message.id.desc()).first()
    assert mine.mail_from == PAT and mine.thread == "<offer@acme.test>"
    # Alice answers from her mail program, in the thread; and writes to someone else in it.
    deliver(plain("Re: Settlement offer", "Thank you, Pat. Signed copy follows.",
                  message_id="<thanks@acme.test>",
                  extra=f"In-Reply-To: {mine.message_id_header}\n"
                        f"References: <offer@acme.test> {mine.message_id_header}\n"), [PAT])
    deliver(plain("Re: Settlement offer", "Internal note: he took 40.",
                  message_id="<note@acme.test>",
                  extra="References: <offer@acme.test>\n").replace(f"To: {PAT}",
                                                                   "To: bob@acme.test"),
            ["bob@acme.test"], mode="off")
    page.reload()
    turns = page.locator("ol.turns > li")
    expect(turns).to_have_count(2)
    expect(turns.nth(0)).to_contain_text("You wrote")
    expect(turns.nth(0)).to_contain_text("We accept 40.")
    expect(turns.nth(1)).to_contain_text("Alice Example")
    expect(turns.nth(1)).to_contain_text("Signed copy follows.")
    expect(page.get_by_text("Internal note")).to_have_count(0)
    # The quote was sent once, as typed.
    expect(turns.nth(0).locator(".turn-text")).to_have_text("We accept 40.")
    quote = turns.nth(0).locator(".turn-quote")
    expect(quote.locator(".message-text")).to_be_hidden()  # folded: it is on the page above
    quote.get_by_text("Quoted text").click()
    expect(quote.locator(".message-text")).to_contain_text("> Our offer stands at 40.")
    assert turns.nth(0).inner_text().count("wrote:") == 1
    look(page, screenshot, "conversation")
    # Alice's answer lists what came before it, in order, above its own text.
    turns.nth(1).get_by_role("link", name=re.compile("^Open")).click()
    expect(page.get_by_role("heading", name="Re: Settlement offer")).to_be_visible()
    earlier = page.locator(".conversation-earlier li")
    expect(earlier).to_have_count(2)
    expect(earlier.nth(0)).to_contain_text("Alice Example")
    expect(earlier.nth(0).get_by_role("link")).to_have_text("Settlement offer")
    expect(earlier.nth(1)).to_contain_text("You")
    expect(page.locator("ol.turns")).to_have_count(0)
    look(page, screenshot, "earlier")


HOSTILE = (
    "From: Alice Example <alice@acme.test>\nTo: pat@partner.test\nSubject: Terms (HTML)\n"
    "Message-ID: <html@acme.test>\nContent-Type: text/html\n\n"
    "<h2>Terms</h2><p>Please find the <b>terms</b> below.</p>"
    '<script>document.title="owned"</script><img src="x" onerror="document.title=1">'
    '<p><a href="javascript:alert(1)">click me</a></p><img src="https://tracker.test/p.gif">\n'
)


def test_sent_shows_the_ccm_badge_and_the_sanitized_body(
        live_server, page, mailbox, screenshot):
    deliver(HOSTILE, [PAT])
    deliver(plain("Lunch", "Pizza?", message_id="<lunch@acme.test>").replace(
        f"To: {PAT}", "To: bob@acme.test"), ["bob@acme.test"], mode="off")
    sign_in_at(page, live_server, ALICE)
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Sent").click()
    rows = page.locator("li.message-row")
    expect(rows.filter(has_text="Terms (HTML)").locator(".badge-ccm")).to_have_text("By CCM")
    expect(rows.filter(has_text="Lunch").locator(".badge-ccm")).to_have_count(0)
    expect(rows.filter(has_text="Sent in error")).to_contain_text("Withdrawn")
    expect(rows.filter(has_text="Last year's figures")).to_contain_text("Expired")
    look(page, screenshot, "sent")
    rows.filter(has_text="Terms (HTML)").get_by_role("link").click()
    expect(page.get_by_role("heading", name="Terms (HTML)")).to_be_visible()
    frame = page.frame_locator("iframe.message-frame")
    expect(frame.get_by_role("heading", name="Terms")).to_be_visible()
    expect(frame.locator("script")).to_have_count(0)
    expect(frame.locator("[onerror]")).to_have_count(0)
    expect(frame.locator("a[href^='javascript']")).to_have_count(0)
    expect(page.get_by_text("Remote images in this message are blocked")).to_be_visible()
    assert page.title() != "owned"
    look(page, screenshot, "sent-detail")
