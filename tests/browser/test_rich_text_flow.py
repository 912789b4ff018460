"""Rich text in Chromium: alice formats a message with the toolbar (bold, list, link,
quote), pat reads it in the portal and answers in the editor, quoting it; a hostile paste
is cleaned in the editor and on the server. The page's CSP stays strict throughout: a
violation is a console error, which fails the test."""

from __future__ import annotations

import re

import pytest
from flows import rich_editor, sign_in_at
from playwright.sync_api import Page, expect

from app.domain import reading
from app.extensions import db
from app.models import Draft, Message

ALICE = "alice@acme.test"
PAT = "pat@partner.test"
SUBJECT = "Formatted terms"


@pytest.fixture
def acme(make_tenant, make_user, make_ccm_sender):
    """Tenant acme, alice allowed portal CCM, and pat, an external recipient."""
    tenant = make_tenant("acme", domains=["acme.test"])
    make_ccm_sender(tenant, ALICE)
    make_user(tenant, PAT)
    return tenant


def editor(page: Page, name: str):
    return rich_editor(page, name)


def tool(page: Page, name: str):
    return page.get_by_role("toolbar", name="Formatting").get_by_role(
        "button", name=name, exact=True)


def shots(page: Page, screenshot, label: str) -> None:
    """At 1280 and 360 px, light and dark."""
    screenshot(page, f"{label}-1280")
    page.set_viewport_size({"width": 360, "height": 800})
    screenshot(page, f"{label}-360")
    page.emulate_media(color_scheme="dark")
    screenshot(page, f"{label}-360-dark")
    page.set_viewport_size({"width": 1280, "height": 800})
    screenshot(page, f"{label}-1280-dark")
    page.emulate_media(color_scheme="light")


def write_formatted(page: Page) -> None:
    area = editor(page, "Message")
    area.click()
    page.keyboard.type("Hello Pat, this is ")
    tool(page, "Bold").click()
    expect(tool(page, "Bold")).to_have_attribute("aria-pressed", "true")
    page.keyboard.type("important")
    tool(page, "Bold").click()
    page.keyboard.press("Enter")
    tool(page, "Bulleted list").click()
    page.keyboard.type("first point")
    page.keyboard.press("Enter")
    page.keyboard.type("second point")
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")  # an empty item ends the list
    page.keyboard.type("Read the terms")
    for _ in range(len("the terms")):
        page.keyboard.press("Shift+ArrowLeft")
    page.once("dialog", lambda dialog: dialog.accept("https://acme.test/terms"))
    tool(page, "Link").click()
    page.keyboard.press("End")
    page.keyboard.press("Enter")
    tool(page, "Quote").click()
    page.keyboard.type("Quoted from the contract")


def test_toolbar_send_read_and_reply(live_server, page, browser, acme, outbox, screenshot,
                                     console_errors):
    sign_in_at(page, live_server, ALICE)
    expect(page.get_by_role("heading", name="Secure messages")).to_be_visible()
    page.goto(f"{live_server}/compose/")
    page.get_by_label("To", exact=True).fill(PAT)
    page.get_by_label("Subject", exact=True).fill(SUBJECT)
    page.get_by_label("CCM mode").select_option(label="External Recipients Only")
    expect(page.locator("textarea[name=body]")).to_be_hidden()
    with page.expect_response(f"{live_server}/compose/draft"):
        write_formatted(page)
    area = editor(page, "Message")
    expect(area.locator("b")).to_have_text("important")
    expect(area.locator("ul li")).to_have_text(["first point", "second point"])
    expect(area.locator("a[href='https://acme.test/terms']")).to_have_text("the terms")
    expect(area.locator("blockquote")).to_have_text("Quoted from the contract")
    expect(page.locator("#draft-state")).to_contain_text("Draft saved at")
    db.session.expire_all()
    draft = db.session.query(Draft).one()
    assert "<b>important</b>" in draft.body_html and "<blockquote>" in draft.body_html
    expect(page.locator("textarea[name=body]")).to_have_value(
        "Hello Pat, this is important\n- first point\n- second point\n"
        "Read the terms <https://acme.test/terms>\n> Quoted from the contract")
    shots(page, screenshot, "compose")

    # The draft comes back formatted.
    page.goto(f"{live_server}/compose/?draft={draft.public_id}")
    expect(editor(page, "Message").locator("b")).to_have_text("important")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("Your message has been sent.")
    outbox()

    # --- pat reads it, formatted, in the portal's frame ---
    pat_context = browser.new_context(viewport={"width": 1280, "height": 800})
    pat_context.set_default_timeout(10_000)
    pat = pat_context.new_page()
    pat.on("console", lambda m: m.type == "error" and console_errors.record(f"pat: {m.text}"))
    try:
        sign_in_at(pat, live_server, PAT)
        pat.get_by_role("link", name=re.compile(SUBJECT)).click()
        expect(pat.get_by_role("heading", name=SUBJECT)).to_be_visible()
        body = pat.frame_locator("iframe.message-frame")
        expect(body.locator("b")).to_have_text("important")
        expect(body.locator("ul li")).to_have_count(2)
        expect(body.locator("a[href='https://acme.test/terms']")).to_have_text("the terms")
        expect(body.locator("blockquote")).to_have_text("Quoted from the contract")
        shots(pat, screenshot, "recipient-view")

        # --- and answers, the original quoted as a <blockquote> ---
        pat.get_by_role("link", name="Reply", exact=True).click()
        reply = editor(pat, "Your reply")
        expect(reply.locator("blockquote")).to_contain_text("- first point")
        expect(reply).to_contain_text(f"{ALICE} wrote:")
        reply.click()
        pat.keyboard.press("Control+Home")
        pat.keyboard.type("Agreed, ")
        tool(pat, "Italic").click()
        pat.keyboard.type("with thanks")
        shots(pat, screenshot, "reply")
        pat.get_by_role("button", name="Send reply").click()
        expect(pat.get_by_role("status")).to_have_text("Your reply has been sent.")
    finally:
        pat_context.close()

    (answer,) = [m for m in outbox() if m["Subject"] == f"Re: {SUBJECT}"]
    assert answer.get_content_type() == "multipart/alternative"
    text = answer.get_body(("plain",)).get_content().replace("\r\n", "\n")
    html = answer.get_body(("html",)).get_content()
    assert text.startswith("Agreed, with thanks\n")
    assert f"{ALICE} wrote:\n> Hello Pat, this is important\n> - first point\n" in text
    assert "<i>with thanks</i>" in html and "<blockquote>" in html


HOSTILE = ('<p style="position:fixed;inset:0">cover</p><img src="https://tracker.test/p.gif" '
           'onerror="alert(1)"><a href="javascript:alert(2)">click</a><script>alert(3)</script>'
           '<svg onload="alert(4)"><text>svg</text></svg><form><input value="x"></form>'
           '<b onclick="alert(5)">bold</b>')


def test_a_hostile_paste_is_cleaned_in_the_editor_and_on_the_server(
        live_server, page, acme, outbox, screenshot):
    page.on("dialog", lambda dialog: (_ for _ in ()).throw(AssertionError(dialog.message)))
    sign_in_at(page, live_server, ALICE)
    expect(page.get_by_role("heading", name="Secure messages")).to_be_visible()
    page.goto(f"{live_server}/compose/")
    page.get_by_label("To", exact=True).fill(PAT)
    page.get_by_label("Subject", exact=True).fill("Pasted")
    editor(page, "Message").click()
    page.evaluate("""(html) => {
      const data = new DataTransfer();
      data.setData("text/html", html);
      data.setData("text/plain", "plain");
      document.querySelector("[data-rich-area]").dispatchEvent(
        new ClipboardEvent("paste", {clipboardData: data, bubbles: true, cancelable: true}));
    }""", HOSTILE)
    inner = page.locator("[data-rich-area]").inner_html()
    for bad in ("<img", "<script", "onerror", "onclick", "onload", "javascript:", "style=",
                "<svg", "<form", "<input"):
        assert bad not in inner, inner
    expect(page.locator("[data-rich-area] b")).to_have_text("bold")
    screenshot(page, "pasted")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("Your message has been sent.")
    db.session.expire_all()
    stored = reading.read_message(db.session.query(Message).order_by(Message.id.desc()).first())
    body = stored.html.lower().split("<body", 1)[1]
    for bad in ("<img", "<script", "onerror", "javascript:", "style=", "<svg", "<form",
                "tracker.test"):
        assert bad not in body, body
    assert "<b>bold</b>" in body


def test_without_javascript_the_textarea_sends_plain_text(live_server, browser, acme, outbox,
                                                          screenshot):
    context = browser.new_context(viewport={"width": 1280, "height": 800},
                                  java_script_enabled=False)
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        sign_in_at(page, live_server, ALICE)
        page.goto(f"{live_server}/compose/")
        expect(page.get_by_role("toolbar", name="Formatting")).to_have_count(0)
        page.get_by_label("To", exact=True).fill(PAT)
        page.get_by_label("Subject", exact=True).fill("Plain")
        page.get_by_label("Message", exact=True).fill("Just text\n> and a line like a quote")
        screenshot(page, "no-js-compose")
        page.get_by_role("button", name="Send", exact=True).click()
        expect(page.get_by_role("status")).to_have_text("Your message has been sent.")
    finally:
        context.close()
    db.session.expire_all()
    message = db.session.query(Message).order_by(Message.id.desc()).first()
    readable = reading.read_message(message)
    assert readable.html is None
    assert readable.text.replace("\r\n", "\n") == "Just text\n> and a line like a quote\n"
