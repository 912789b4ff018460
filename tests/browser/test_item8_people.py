"""What people see of issue 18 item 8 in Chromium: delivery events in their words, an
attachment under the name it was given, a removed link as plain text, and the static
files fingerprinted, compressed and cached."""

from __future__ import annotations

import re
from email.message import EmailMessage
from email.policy import SMTP

import pytest
from flows import sign_in_at
from playwright.sync_api import expect

from app.domain import ingest
from app.domain.passwords import hash_password
from app.extensions import db
from app.mail.sanitize import LINK_REMOVED
from app.models import Message, User

ALICE, BOB, PAT = "alice@acme.test", "bob@acme.test", "pat@partner.test"
NAMES = ["NDA signed.pdf", "Übersicht März.xlsx", "契約書.pdf"]


@pytest.fixture
def acme(make_tenant, make_user, make_ccm_sender):
    tenant = make_tenant("acme", domains=["acme.test"])
    make_ccm_sender(tenant, ALICE)
    make_user(tenant, BOB, role="internal")
    return tenant


@pytest.fixture
def sent(acme, outbox):
    """Alice's message to pat (CCM) and bob (internal, to the maildir outbox), delivered."""
    message = EmailMessage()
    message["From"], message["To"], message["Cc"] = ALICE, PAT, BOB
    message["Subject"] = "Signed papers"
    message.set_content("The papers, signed.")
    message.add_alternative(
        '<p>The papers, signed. <a href="javascript:alert(document.cookie)" '
        'style="color:#1d4ed8;text-decoration:underline;cursor:pointer">Confirm receipt</a>'
        ' or read <a href="https://example.com/terms">the terms</a>.</p>', subtype="html")
    for n, name in enumerate(NAMES):
        message.add_attachment(b"%%PDF-1.4 %d" % n, maintype="application", subtype="pdf",
                               filename=name)
    ingest.receive(message.as_bytes(policy=SMTP), ALICE, [PAT, BOB], mode="external")
    db.session.commit()
    outbox()  # the queue, run: notifications and bob's copy written to the maildir
    pat = db.session.query(User).filter_by(email=PAT).one()
    pat.password_hash, pat.must_change_password = hash_password("x" * 16), False
    db.session.commit()
    return db.session.query(Message).one()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_sender_reads_delivery_events_without_paths(live_server, browser, sent, app,
                                                        screenshot, scheme):
    context = browser.new_context(viewport={"width": 1280, "height": 900},
                                  color_scheme=scheme)
    page = context.new_page()
    try:
        sign_in_at(page, live_server, ALICE)
        expect(page).to_have_url(f"{live_server}/inbox/")
        page.goto(f"{live_server}/sent/{sent.public_id}")
        bob = page.locator(".delivery").filter(has_text=BOB)
        expect(bob.locator(".delivery-status")).to_have_text("Written to the outbox")
        bob.locator("summary").click()
        expect(bob.locator(".events")).to_contain_text("Written to the outbox (maildir)")
        assert app.instance_path not in page.content()
        screenshot(page, f"sent-{scheme}-1280")
        page.set_viewport_size({"width": 360, "height": 900})
        screenshot(page, f"sent-{scheme}-360")
    finally:
        context.close()


def test_the_recipient_gets_real_names_and_a_dead_link_as_text(live_server, page, sent,
                                                               screenshot, console_errors):
    # reading computed styles inside the frame is script there, which its sandbox refuses
    # (and reports) while still answering Playwright's own isolated world
    console_errors.allow("Blocked script execution")
    sign_in_at(page, live_server, PAT, "x" * 16)
    expect(page).to_have_url(f"{live_server}/inbox/")
    page.goto(f"{live_server}/inbox/{sent.public_id}")
    attachments = page.get_by_role("region", name="Attachments")
    for name in NAMES:
        link = attachments.get_by_role("link", name=name)
        with page.expect_download() as info:
            link.click()
        assert info.value.suggested_filename == name
    body = page.frame_locator("iframe.message-frame")
    removed = body.get_by_text("Confirm receipt")
    expect(removed).to_have_attribute("title", LINK_REMOVED)
    assert removed.evaluate("e => e.tagName") == "SPAN"
    style = removed.evaluate("e => { const s = getComputedStyle(e); "
                             "return [s.cursor, s.textDecorationLine, s.color]; }")
    assert style[:2] == ["auto", "none"] and style[2] == "rgb(31, 41, 51)"  # body text
    real = body.get_by_role("link", name="the terms")
    assert real.evaluate("e => getComputedStyle(e).color") == "rgb(29, 78, 216)"
    removed.hover()
    screenshot(page, "message-1280")
    page.set_viewport_size({"width": 360, "height": 900})
    screenshot(page, "message-360")


def test_chromium_gets_static_files_compressed_and_cached(live_server, page):
    answers = {}
    page.on("response", lambda r: answers.__setitem__(r.url, r) if "/static/" in r.url
            else None)
    page.goto(f"{live_server}/sign-in")
    expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_visible()
    css = next(r for url, r in answers.items() if "/static/css/ccm.css" in url)
    assert re.search(r"\?v=[0-9a-f]{12}$", css.url)
    headers = css.all_headers()
    assert headers["content-encoding"] == "gzip"
    assert headers["cache-control"] == "public, max-age=31536000, immutable"
    # the stylesheet applied: the page is styled, not the browser's default
    assert page.evaluate("getComputedStyle(document.body).display") == "flex"
