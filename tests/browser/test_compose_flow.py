"""Composing in Chromium: a CCM message from alice to pat, tracked, answered and withdrawn.

Alice (internal, profile "Legal" with portal CCM) writes from the portal; pat is a new
external recipient who signs in with the generated password from the notification email,
in a browser context of his own. Notifications land in the maildir outbox (the default
``OUTBOUND``) and ``outbox()`` runs the queue as the worker would.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, quote

import pytest
from flows import rich_editor, sign_in_at
from playwright.sync_api import BrowserContext, Page, expect

from app.domain.composing import MAX_BODY
from app.extensions import db
from app.models import Draft

ALICE = "alice@acme.test"
BOB = "bob@acme.test"
PAT = "pat@partner.test"
PAT_PASSWORD = "plum orbit lantern meadow"
SUBJECT = "Draft settlement terms"
BODY = "Hello Pat,\n\nThe draft settlement terms are attached.\n\nAlice"
REPLY = "Thanks Alice, we will come back to you by Friday."
ATTACHMENT = {
    "name": "terms.txt",
    "mimeType": "text/plain",
    "buffer": b"Clause 1. The parties agree to settle.\n",
}
VIEWPORT = {"width": 1280, "height": 800}

# --- helpers ---------------------------------------------------------------------------


def open_compose(page: Page) -> None:
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="New message").click()
    expect(page.get_by_role("heading", name="New message")).to_be_visible()


def message_text(page: Page):
    """The text of the message as the form posts it: the editor keeps the (hidden)
    textarea up to date with its own text."""
    return page.locator("#compose-form textarea[name=body]")


def delivery(page: Page, address: str):
    """The panel of one recipient on a sent message page."""
    return page.locator("li.delivery").filter(has=page.get_by_text(address, exact=True))


def new_context(browser, console_errors) -> tuple[BrowserContext, Page]:
    """A second browser context whose console errors fail the test like the first's."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(10_000)
    tab = context.new_page()

    def on_console(message) -> None:
        if message.type == "error":
            where = (message.location or {}).get("url")
            console_errors.record(
                f"console (2nd context): {message.text}" + (f" ({where})" if where else "")
            )

    tab.on("console", on_console)
    tab.on("pageerror", lambda error: console_errors.record(f"page error (2nd context): {error}"))
    return context, tab


def generated_password(messages, address: str) -> str:
    """The password in the "sign-in details" notification for ``address``."""
    found = [m for m in messages if m["To"] == address and "sign-in details" in m["Subject"]]
    assert len(found) == 1, [(m["To"], m["Subject"]) for m in messages]
    text = found[0].get_body(preferencelist=("plain",)).get_content()
    match = re.search(r"^Password:\s*(\S+)\s*$", text, re.MULTILINE)
    assert match, text
    return match.group(1)


# --- fixtures --------------------------------------------------------------------------


@pytest.fixture
def acme(make_tenant, make_ccm_sender):
    """Tenant acme with a "Legal" profile allowing portal CCM, and alice on it."""
    tenant = make_tenant("acme", domains=["acme.test"])
    make_ccm_sender(tenant, ALICE)
    return tenant


# --- tests -----------------------------------------------------------------------------


def test_compose_track_reply_and_withdraw(
    live_server, page, browser, acme, outbox, screenshot, console_errors
):
    # --- alice writes the message ---
    sign_in_at(page, live_server, ALICE)
    expect(page.get_by_role("heading", name="Secure messages")).to_be_visible()
    open_compose(page)
    expect(page).to_have_url(f"{live_server}/compose/")
    expect(page.locator("#draft-state")).to_contain_text("Drafts are saved as you type.")

    page.get_by_label("To", exact=True).fill(PAT)
    page.get_by_label("Cc", exact=True).fill(BOB)
    page.get_by_label("Subject", exact=True).fill(SUBJECT)
    page.get_by_label("CCM mode").select_option(label="External Recipients Only")
    page.get_by_label("Attach files").set_input_files(files=[ATTACHMENT])
    # The autosave fires 1.5 s after the last input: after the message text.
    with page.expect_response(lambda r: r.url == f"{live_server}/compose/draft") as saved:
        rich_editor(page, "Message").fill(BODY)
    assert saved.value.status == 200
    expect(page.locator("#draft-state")).to_contain_text(
        re.compile(r"Draft saved at \d\d:\d\d:\d\d UTC")
    )
    draft_id = page.locator("#draft-state input[name=draft]").input_value()
    assert draft_id
    screenshot(page, "compose")

    page.get_by_role("button", name="Send", exact=True).click()

    # --- the sent message page ---
    expect(page.get_by_role("status")).to_have_text("Your message has been sent.")
    expect(page).to_have_url(re.compile(rf"^{re.escape(live_server)}/sent/[^/]+$"))
    expect(page.get_by_role("heading", name=SUBJECT)).to_be_visible()
    sent_url = page.url
    pat_row, bob_row = delivery(page, PAT), delivery(page, BOB)
    expect(pat_row).to_contain_text("Secure portal (CCM)")
    expect(bob_row).to_contain_text("Internal relay")
    expect(pat_row.locator(".delivery-status")).to_have_text("Held, notification queued")

    # The draft went with the sending.
    page.goto(f"{live_server}/compose/drafts")
    expect(page.get_by_role("heading", name="No drafts")).to_be_visible()

    messages = outbox()
    page.goto(sent_url)
    expect(pat_row.locator(".delivery-status")).to_have_text("Notified")
    expect(bob_row.locator(".delivery-status")).to_have_text("Written to the outbox")
    password = generated_password(messages, PAT)

    # --- pat, in a browser of his own ---
    pat_context, pat = new_context(browser, console_errors)
    try:
        sign_in_at(pat, live_server, PAT, password)
        expect(pat.get_by_role("heading", name="Choose your own password")).to_be_visible()
        pat.get_by_label("New password", exact=True).fill(PAT_PASSWORD)
        pat.get_by_label("Repeat the new password").fill(PAT_PASSWORD)
        pat.get_by_role("button", name="Save and continue").click()
        expect(pat.get_by_role("heading", name="Secure messages")).to_be_visible()

        pat.get_by_role("link", name=re.compile(re.escape(SUBJECT))).click()
        expect(pat.get_by_role("heading", name=SUBJECT)).to_be_visible()
        expect(pat.locator(".message-text")).to_contain_text("The draft settlement terms")
        expect(pat.get_by_role("link", name=ATTACHMENT["name"])).to_be_visible()
        message_url = pat.url

        # Alice sees it opened.
        page.reload()
        expect(pat_row.locator(".delivery-status")).to_have_text(
            re.compile(r"^Opened \d\d \w{3},? \d\d:\d\d UTC$")
        )

        pat.get_by_role("link", name="Reply", exact=True).click()
        expect(pat.get_by_role("heading", name=f"Reply: {SUBJECT}")).to_be_visible()
        expect(pat.get_by_role("checkbox", name=ALICE)).to_be_checked()
        rich_editor(pat, "Your reply").fill(REPLY)
        pat.get_by_role("button", name="Send reply").click()
        expect(pat.get_by_role("status")).to_have_text("Your reply has been sent.")

        # Alice sees it answered, and the whole history.
        page.reload()
        expect(pat_row.locator(".delivery-status")).to_have_text(
            re.compile(r"^Replied \d\d \w{3},? \d\d:\d\d UTC$")
        )
        pat_row.get_by_text("Delivery events").click()
        events = pat_row.locator("ol.events")
        expect(events).to_be_visible()
        expect(events).to_contain_text("Delivered to CCM isolation area")
        expect(events).to_contain_text("Opened by the recipient")
        expect(events).to_contain_text(f"Replied by the recipient to {ALICE}")
        screenshot(page, "sent-message")

        # --- alice withdraws it from pat ---
        page.once("dialog", lambda dialog: dialog.accept())  # "Withdraw ...?" confirmation
        pat_row.get_by_role("button", name=f"Withdraw from {PAT}").click()
        expect(page.get_by_role("status")).to_have_text(f"Withdrawn from {PAT}.")
        expect(pat_row.locator(".delivery-status")).to_have_text(
            re.compile(r"^Withdrawn \d\d \w{3},? \d\d:\d\d UTC$")
        )
        expect(pat_row.get_by_role("button", name=f"Withdraw from {PAT}")).to_have_count(0)

        # The withdrawn page answers 410, which Chromium logs on the console.
        console_errors.allow(r"status of 410")
        response = pat.goto(message_url)
        assert response is not None and response.status == 410
        expect(
            pat.get_by_role("heading", name="This message was withdrawn by the sender")
        ).to_be_visible()
        expect(pat.locator(".gone-fate")).to_have_text(
            re.compile(r"^The sender withdrew it on \d\d \w+ \d{4}\.$")
        )
        expect(pat.get_by_text("The draft settlement terms")).to_have_count(0)
        screenshot(pat, "withdrawn")
    finally:
        pat_context.close()


def test_autosave_keeps_the_form(live_server, page, acme, screenshot):
    sign_in_at(page, live_server, ALICE)
    expect(page.get_by_role("heading", name="Secure messages")).to_be_visible()
    open_compose(page)
    page.get_by_label("To", exact=True).fill(PAT)
    page.get_by_label("Subject", exact=True).fill(SUBJECT)
    rich_editor(page, "Message").fill(BODY)
    expect(page.locator("#draft-state")).to_contain_text("Draft saved at")
    screenshot(page, "after-autosave")
    expect(page.get_by_label("To", exact=True)).to_have_value(PAT, timeout=2_000)
    expect(message_text(page)).to_have_value(BODY, timeout=2_000)
    expect(page.get_by_role("button", name="Send", exact=True)).to_be_visible(timeout=2_000)


def autosave(page: Page, base_url: str, label: str, text: str) -> int:
    """Type ``text`` into the editor ``label`` and wait for the autosave's answer."""
    with page.expect_response(f"{base_url}/compose/draft") as saved:
        rich_editor(page, label).fill(text)
    return saved.value.status


def only_draft() -> Draft:
    db.session.expire_all()
    (draft,) = db.session.query(Draft).all()
    return draft


def test_autosaves_update_one_draft(live_server, page, acme):
    sign_in_at(page, live_server, ALICE)
    expect(page.get_by_role("heading", name="Secure messages")).to_be_visible()
    open_compose(page)
    page.get_by_label("To", exact=True).fill(PAT)
    for typed in ("Hello", "Hello Pat", BODY):
        assert autosave(page, live_server, "Message", typed) == 200
        expect(page.locator("#draft-state")).to_contain_text("Draft saved at")
    draft = only_draft()
    assert (draft.to, draft.body) == (PAT, BODY)
    assert page.locator("#draft-state input[name=draft]").input_value() == draft.public_id


def test_what_is_typed_while_a_save_is_on_its_way_is_saved_into_the_same_draft(
    live_server, page, acme
):
    sign_in_at(page, live_server, ALICE)
    expect(page.get_by_role("heading", name="Secure messages")).to_be_visible()
    open_compose(page)
    draft_url = f"{live_server}/compose/draft"
    held: list = []

    def hold_the_first(route) -> None:
        if held:
            route.continue_()
        else:
            held.append(route)  # let go below

    page.route(draft_url, hold_the_first)
    page.get_by_label("To", exact=True).fill(PAT)
    with page.expect_request(draft_url):
        rich_editor(page, "Message").fill("Hello")
    rich_editor(page, "Message").fill("Second thoughts")
    page.wait_for_timeout(2_000)  # past the autosave's delay: this save waits its turn
    with page.expect_response(
        lambda r: r.url == draft_url
        and parse_qs(r.request.post_data or "").get("body") == ["Second thoughts"]
    ) as second:
        held[0].continue_()
    assert second.value.status == 200
    expect(page.locator("#draft-state")).to_contain_text("Draft saved at")
    draft = only_draft()
    assert draft.body == "Second thoughts"
    assert page.locator("#draft-state input[name=draft]").input_value() == draft.public_id


def test_text_over_the_limit_is_refused_in_the_composer_and_the_draft_kept(
    live_server, page, app, acme, screenshot, console_errors
):
    sign_in_at(page, live_server, ALICE)
    expect(page.get_by_role("heading", name="Secure messages")).to_be_visible()
    open_compose(page)
    page.get_by_label("To", exact=True).fill(PAT)
    page.get_by_label("Subject", exact=True).fill(SUBJECT)
    assert autosave(page, live_server, "Message", BODY) == 200
    state = page.locator("#draft-state")
    expect(state).to_contain_text("Draft saved at")

    # Pasted text one character over: said where the saving is shown; nothing lost.
    assert autosave(page, live_server, "Message", "x" * (MAX_BODY + 1)) == 200
    expect(state.get_by_role("alert")).to_have_text(re.compile(
        r"^Not saved: Message is too long: 500,001 characters, the most is 500,000\. "
        r"The draft saved at \d\d:\d\d:\d\d UTC is kept\.$"))
    screenshot(page, "draft-refused")
    assert only_draft().body == BODY

    # Sending it says so beside the text, which is still there to shorten.
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.locator("#body-error")).to_have_text(
        "Message is too long: 500,001 characters, the most is 500,000.")
    expect(message_text(page)).to_have_value("x" * (MAX_BODY + 1))
    screenshot(page, "send-refused")

    # Shortened, it saves again, into the same draft.
    assert autosave(page, live_server, "Message", "x" * MAX_BODY) == 200
    expect(state).to_contain_text("Draft saved at")
    expect(state.get_by_role("alert")).to_have_count(0)
    assert len(only_draft().body) == MAX_BODY

    # Past the portal's request limit the server answers 413, and the page says why.
    console_errors.allow(r"(status of|Error Code) 413")
    app.config["MAX_CONTENT_LENGTH"] = 50_000
    assert autosave(page, live_server, "Message", "y" * 60_000) == 413
    expect(page.locator("#request-error")).to_have_text(
        "What you sent is larger than this portal accepts.")
    screenshot(page, "request-too-large")
    assert len(only_draft().body) == MAX_BODY


def test_autosave_of_a_draft_deleted_elsewhere_says_so(
    live_server, page, acme, console_errors, screenshot
):
    sign_in_at(page, live_server, ALICE)
    expect(page.get_by_role("heading", name="Secure messages")).to_be_visible()
    open_compose(page)
    page.get_by_label("To", exact=True).fill(PAT)
    assert autosave(page, live_server, "Message", "Hello") == 200
    db.session.delete(only_draft())  # as if deleted in another tab
    db.session.commit()
    console_errors.allow(r"(status of|Error Code) 404")
    assert autosave(page, live_server, "Message", "Hello Pat") == 404
    expect(page.locator("#request-error")).to_have_text(
        "Not found: it is no longer there, or it is not yours to see.")
    expect(message_text(page)).to_have_value("Hello Pat")
    screenshot(page, "draft-gone")


def test_autosave_does_not_upload_the_attachments(live_server, page, acme):
    sign_in_at(page, live_server, ALICE)
    expect(page.get_by_role("heading", name="Secure messages")).to_be_visible()
    open_compose(page)
    bodies: list[bytes] = []

    def keep_body(route) -> None:  # only a route sees a multipart body reliably
        bodies.append(route.request.post_data_buffer or b"")
        route.continue_()

    page.route(f"{live_server}/compose/draft", keep_body)
    page.get_by_label("Attach files").set_input_files(
        files=[{"name": "big.bin", "mimeType": "application/octet-stream", "buffer": b"x" * 20_000}]
    )
    with page.expect_response(f"{live_server}/compose/draft") as saved:
        page.get_by_label("To", exact=True).fill(PAT)
    assert saved.value.status == 200
    assert bodies and quote(PAT).encode() in bodies[-1]
    # Addresses, subject, text and the draft's id, not the 20 kB file.
    assert b"big.bin" not in bodies[-1]
    assert len(bodies[-1]) < 5_000


def test_attachments_over_the_limit_are_refused_before_uploading(
    live_server, page, app, acme, screenshot
):  # the autosave would otherwise remove the form
    sign_in_at(page, live_server, ALICE)
    expect(page.get_by_role("heading", name="Secure messages")).to_be_visible()
    app.config["MAX_MESSAGE_BYTES"] = 2000
    page.goto(f"{live_server}/compose/")
    expect(page.locator("#attachments-hint")).to_have_text("Up to 1.4 kB in all.")

    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)

    error = page.locator("#attachments-error")
    expect(error).to_be_hidden()
    page.get_by_label("To", exact=True).fill(PAT)
    files = page.get_by_label("Attach files")
    files.set_input_files(
        files=[{"name": "big.bin", "mimeType": "application/octet-stream", "buffer": b"x" * 5000}]
    )
    expect(error).to_be_visible()
    expect(error).to_contain_text("larger than")

    page.get_by_role("button", name="Send", exact=True).click()
    expect(files).to_be_focused()
    expect(error).to_be_visible()
    screenshot(page, "too-large")
    # Let any request the click could have caused show itself (autosave fires at 1.5 s).
    page.wait_for_timeout(2_000)
    assert f"{live_server}/compose/" not in posts
    expect(page).to_have_url(f"{live_server}/compose/")

    # Removing the file clears the error.
    files.set_input_files(files=[])
    expect(error).to_be_hidden()


def test_without_the_permission_there_is_no_ccm_mode(
    live_server, page, acme, make_user, screenshot
):
    make_user(acme, BOB, role="internal")
    sign_in_at(page, live_server, BOB)
    expect(page.get_by_role("heading", name="Secure messages")).to_be_visible()
    open_compose(page)
    expect(page.get_by_label("To", exact=True)).to_be_visible()
    expect(rich_editor(page, "Message")).to_be_visible()
    expect(page.get_by_label("CCM mode")).to_have_count(0)
    expect(page.get_by_text("CCM mode")).to_have_count(0)
    screenshot(page, "compose")
