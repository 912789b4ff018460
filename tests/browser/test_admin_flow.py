"""The administrator console in Chromium: policies, tester, templates, people, settings, audit.

An administrator of acme (admin@acme.test) works in the console; mail arrives the way
the gateway takes it (``ingest.receive`` from alice@acme.test), so routes, accounts and
notifications are the real ones. Notifications land in the maildir outbox (the default
``OUTBOUND``); ``outbox()`` runs the queue as the worker would.
"""

from __future__ import annotations

import re
import struct
import zlib

import pytest
from axe import check_accessibility, summary
from flows import sign_in_at
from playwright.sync_api import BrowserContext, Page, expect
from sqlalchemy import select
from support import mail

from app.domain import ingest
from app.extensions import db
from app.models import Policy

ADMIN = "admin@acme.test"
ALICE = "alice@acme.test"
BOB = "bob@acme.test"
PAT = "pat@partner.test"
PHRASE = "project falcon"
POLICY = "Project Falcon"
REASON = f"Content policy '{POLICY}' matched: found '{PHRASE}'"
NEW_SUBJECT = "Secure post for {{ recipient }}"
BROKEN = "{{ ''.__class__ }}"
PORTAL_NAME = "Acme Secure Mail"
PAT_PASSWORD = "plum orbit lantern meadow"
VIEWPORT = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


# --- helpers ---------------------------------------------------------------------------


def png(width: int = 24, height: int = 12) -> bytes:
    """A small valid PNG: opaque blue, RGB."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, truecolour
    rows = b"".join(b"\x00" + b"\x1d\x4e\xd8" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def send(subject: str, to: str = PAT, body: str = "Numbers attached.") -> None:
    """Mail from alice through the gateway, committed as the SMTP ingress would."""
    raw = mail(subject=subject, body=body, to=to).replace("\n", "\r\n").encode()
    ingest.receive(raw, ALICE, [to])
    db.session.commit()


def sign_in_as_admin(page: Page, base_url: str) -> None:
    sign_in_at(page, base_url, ADMIN)
    expect(page.get_by_role("navigation", name="Account")).to_contain_text(ADMIN)
    page.get_by_role("navigation", name="Sections").get_by_role(
        "link", name="Administration").click()
    page.wait_for_url("**/admin/policies")
    expect(page.get_by_role("heading", name="Policies", level=1)).to_be_visible()


def follow(page: Page, link) -> None:
    """Click a link and wait for its page to load, htmx included.

    Playwright types faster than anyone: into a field whose page is still loading, before
    htmx (a deferred script) listens to it, and the search or preview never happens.
    """
    href = link.get_attribute("href")
    link.click()
    page.wait_for_url(f"**{href}")


def section(page: Page, name: str) -> None:
    """Open a section of the console from its side navigation."""
    follow(page, page.get_by_role("navigation", name="Administration").get_by_role(
        "link", name=name, exact=True))


def open_secure_message_template(page: Page) -> None:
    section(page, "Notifications")
    follow(page, page.get_by_role("link", name=re.compile("^Secure message notification")))
    expect(page.get_by_role("heading", name="Secure message notification", level=1)
           ).to_be_visible()


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


def text_of(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def screenshot_tall(page: Page, screenshot, label: str) -> None:
    """A full-page screenshot with the viewport as tall as the page.

    Chromium paints a sandboxed (opaque-origin, out-of-process) frame only inside the
    viewport: in an ordinary full-page screenshot the HTML preview below the fold is blank.
    """
    size = page.viewport_size
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": height})
    try:
        expect(page.frame_locator("iframe.preview-frame").locator("body")).to_be_visible()
        screenshot(page, label)
    finally:
        page.set_viewport_size(size)


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


# --- what the console does, step by step -----------------------------------------------


def create_content_policy(page: Page, screenshot=None, while_open=None) -> None:
    """Policies, New policy, fill it in, Save; ``while_open(page)`` runs on the open form."""
    section(page, "Policies")
    follow(page, page.get_by_role("link", name="New policy"))
    expect(page.get_by_role("heading", name="New policy", level=1)).to_be_visible()
    page.get_by_label("Name", exact=True).fill(POLICY)
    if while_open:
        while_open(page)
    page.get_by_label("Kind").select_option(label="Content (a word or phrase)")
    page.get_by_label("Words or phrases, one per line").fill(PHRASE)
    if screenshot:
        screenshot(page, "policy-form")
    page.get_by_role("button", name="Save policy").click()
    expect(page.get_by_role("status")).to_have_text(f"Policy “{POLICY}” saved.")
    expect(page.get_by_role("heading", name="Policies", level=1)).to_be_visible()


def save_template(page: Page) -> None:
    open_secure_message_template(page)
    page.get_by_label("Subject", exact=True).fill(NEW_SUBJECT)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status")).to_have_text(
        "Secure message notification in English saved: the next one sent in this language "
        "uses it.")


def reset_pats_password(page: Page, dialogs: list[str] | None = None) -> None:
    section(page, "People")
    page.get_by_role("searchbox", name="Search by address").fill("pat")
    people = page.get_by_role("region", name="People")
    expect(people.get_by_role("link")).to_have_count(1)
    follow(page, people.get_by_role("link", name=PAT))
    expect(page.get_by_role("heading", name=PAT, level=1)).to_be_visible()

    def accept(dialog) -> None:
        if dialogs is not None:
            dialogs.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.get_by_role("button", name="Reset password").click()
    expect(page.get_by_role("status")).to_have_text(f"A new password is on its way to {PAT}.")


def save_settings(page: Page, logo: bytes | None = None) -> None:
    section(page, "Settings")
    expect(page.get_by_role("heading", name="Settings", level=1)).to_be_visible()
    page.get_by_label("Portal name").fill(PORTAL_NAME)
    if logo is not None:
        page.get_by_label("Logo").set_input_files(
            files=[{"name": "logo.png", "mimeType": "image/png", "buffer": logo}])
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_have_text("Settings saved.")


# --- fixtures --------------------------------------------------------------------------


@pytest.fixture
def acme(live_server, make_tenant, make_user):
    """Tenant acme with its administrator and alice; no policies yet."""
    tenant = make_tenant("acme", domains=["acme.test"])
    make_user(tenant, ADMIN, role="admin")
    make_user(tenant, ALICE, role="internal")
    return tenant


@pytest.fixture
def falcon(acme):
    """The "Project Falcon" content policy, and one message from alice to pat it caught."""
    acme.policies.append(Policy(name=POLICY, kind="content", phrases=[PHRASE],
                                where=["subject", "body"], position=0))
    db.session.commit()
    send(f"Re: {PHRASE} timeline")
    return acme


# --- the tests -------------------------------------------------------------------------


def test_a_content_policy_sends_by_ccm_and_tracking_shows_it(
    live_server, page, acme, screenshot
):
    def only_the_kinds_fields(page: Page) -> None:
        """The secure-delivery fields show only for that kind (CSS :has, no script)."""
        kind, tls = page.get_by_label("Kind"), page.get_by_label("TLS", exact=True)
        fallback = page.get_by_label("When TLS cannot be had")
        phrases = page.get_by_label("Words or phrases, one per line")
        kind.select_option(label="Content (a word or phrase)")
        expect(tls).to_be_hidden()
        expect(fallback).to_be_hidden()
        expect(phrases).to_be_visible()
        kind.select_option(label="Secure delivery (TLS required)")
        expect(tls).to_be_visible()
        expect(fallback).to_be_visible()
        expect(phrases).to_be_hidden()
        kind.select_option(label="Content (a word or phrase)")
        expect(tls).to_be_hidden()
        expect(fallback).to_be_hidden()

    sign_in_as_admin(page, live_server)
    create_content_policy(page, screenshot, while_open=only_the_kinds_fields)
    policies = page.get_by_role("region", name="Policies in evaluation order")
    row = policies.get_by_role("listitem").filter(has_text=POLICY)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Content")
    expect(row).to_contain_text(f"when {PHRASE} appears in the subject or body")
    screenshot(page, "policies")
    # Only the chosen kind's fields count: the TLS choices seen on the way are not kept.
    db.session.expire_all()
    saved = db.session.scalars(select(Policy)).one()
    assert (saved.kind, saved.phrases, saved.where, saved.tls, saved.fallback) == (
        "content", [PHRASE], ["subject", "body"], None, None)

    subject = f"Budget for {PHRASE.title()}"
    send(subject)

    section(page, "Message tracking")
    expect(page.get_by_role("heading", name="Message tracking", level=1)).to_be_visible()
    page.get_by_label("Subject", exact=True).fill("budget for project")
    page.get_by_role("button", name="Search", exact=True).click()
    results = page.get_by_role("region", name="Messages found")
    expect(results.get_by_role("row")).to_have_count(2)  # the header and the message
    found = results.get_by_role("row").filter(has_text=subject)
    expect(found).to_contain_text(PAT)
    expect(found).to_contain_text("CCM")
    screenshot(page, "tracking")

    found.get_by_role("link").click()
    expect(page.get_by_role("heading", name=subject, level=1)).to_be_visible()
    delivery = page.locator("li.delivery").filter(has=page.get_by_text(PAT, exact=True))
    expect(delivery).to_contain_text("Secure portal (CCM)")
    events = delivery.locator("ol.events")
    expect(events).to_be_hidden()
    delivery.get_by_text("Delivery events").click()
    expect(events).to_be_visible()
    expect(events).to_contain_text(REASON)
    expect(events).to_contain_text("Delivered to CCM isolation area")
    screenshot(page, "tracked-message")


def test_the_policy_tester_shows_each_recipients_route(live_server, page, falcon, screenshot):
    sign_in_as_admin(page, live_server)
    section(page, "Policy tester")
    expect(page.get_by_role("heading", name="Policy tester", level=1)).to_be_visible()
    page.get_by_label("Sender", exact=True).fill(ALICE)
    page.get_by_label("Recipients", exact=True).fill(f"{BOB}, {PAT}")
    page.get_by_label("Subject", exact=True).fill(f"Notes on {PHRASE.upper()}")
    page.get_by_role("button", name="Test", exact=True).click()

    result = page.get_by_role("region", name="Result")
    expect(result).to_be_visible()
    rows = result.get_by_role("row")
    expect(rows).to_have_count(3)
    external = rows.filter(has_text=PAT)
    expect(external.get_by_role("cell")).to_have_text([PAT, "CCM", REASON])
    internal = rows.filter(has_text=BOB)
    expect(internal.get_by_role("cell")).to_have_text(
        [BOB, "Internal relay", "Internal recipient: internal relay"])
    # The form keeps what was asked, for another try.
    expect(page.get_by_label("Recipients", exact=True)).to_have_value(f"{BOB}, {PAT}")
    screenshot(page, "tester-result")


def test_the_template_editor_previews_live_and_the_next_notification_uses_it(
    live_server, page, falcon, outbox, screenshot
):
    sign_in_as_admin(page, live_server)
    open_secure_message_template(page)
    preview = page.locator("#preview")
    preview_subject = preview.locator(".preview-subject")
    expect(preview_subject).to_have_text(
        "Subject: Secure message from Acme Corp: sign in to read it")

    # Typing updates the preview, debounced, without saving anything.
    page.get_by_label("Subject", exact=True).fill(NEW_SUBJECT)
    expect(preview_subject).to_have_text("Subject: Secure post for pat@example.com",
                                         timeout=5_000)
    screenshot_tall(page, screenshot, "template-editor")

    text = page.get_by_label("Text version")
    original = text.input_value()
    text.click()
    text.press("Control+End")
    text.press_sequentially(f"\n{BROKEN}")
    problem = preview.get_by_role("alert")
    expect(problem).to_contain_text("This template cannot be used", timeout=5_000)
    expect(preview_subject).to_have_count(0)
    screenshot(page, "template-error")
    text.fill(original)
    expect(preview_subject).to_have_text("Subject: Secure post for pat@example.com",
                                         timeout=5_000)
    expect(problem).to_have_count(0)

    # Nothing was saved by previewing: the last notification still has the old subject.
    send(f"More on {PHRASE}")
    to_pat = [m for m in outbox() if m["To"] == PAT]
    assert [m["Subject"] for m in to_pat if "Secure post" in m["Subject"]] == []

    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status")).to_have_text(
        "Secure message notification in English saved: the next one sent in this language "
        "uses it.")
    expect(page.get_by_label("Subject", exact=True)).to_have_value(NEW_SUBJECT)
    expect(page.get_by_label("Text version")).to_have_value(original)

    before = len(outbox())
    send(f"Final word on {PHRASE}")
    new = [m for m in outbox()[before:] if m["To"] == PAT]
    assert [m["Subject"] for m in new] == [f"Secure post for {PAT}"], [
        m["Subject"] for m in new]


def test_an_administrator_resets_a_recipients_password(
    live_server, page, browser, falcon, outbox, screenshot, console_errors
):
    sign_in_as_admin(page, live_server)
    section(page, "People")
    expect(page.get_by_role("heading", name="People", level=1)).to_be_visible()
    screenshot(page, "people")
    before = len(outbox())
    reset_pats_password(page)
    expect(page.get_by_role("definition").filter(has_text="Must be changed at next sign-in")
           ).to_have_count(1)
    screenshot(page, "user")

    found = [m for m in outbox()[before:]
             if m["To"] == PAT and "has reset the password" in text_of(m)]
    assert len(found) == 1, [(m["To"], m["Subject"]) for m in outbox()]
    password = re.search(r"^Password:\s*(\S+)\s*$", text_of(found[0]), re.MULTILINE)
    assert password, text_of(found[0])

    pat_context, pat = new_context(browser, console_errors)
    try:
        sign_in_at(pat, live_server, PAT, password.group(1))
        expect(pat.get_by_role("heading", name="Choose your own password")).to_be_visible()
        pat.get_by_label("New password", exact=True).fill(PAT_PASSWORD)
        pat.get_by_label("Repeat the new password").fill(PAT_PASSWORD)
        pat.get_by_role("button", name="Save and continue").click()
        expect(pat.get_by_role("heading", name="Secure messages")).to_be_visible()
    finally:
        pat_context.close()


def restore_the_builtin_template(page: Page, dialogs: list[str]) -> None:
    save_template(page)
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name="Restore the built-in version").click()
    expect(page.get_by_role("status")).to_have_text(
        "Secure message notification: the built-in version is back.")


CONFIRMATIONS = {
    "reset password": (reset_pats_password,
                       f"Send {PAT} a new password? Their current one stops working at once."),
    "restore template": (restore_the_builtin_template,
                         "Throw away your version and use the built-in one?"),
}


@pytest.mark.parametrize("action", list(CONFIRMATIONS))
def test_irreversible_buttons_ask_first(live_server, page, falcon, action):
    sign_in_as_admin(page, live_server)
    act, question = CONFIRMATIONS[action]
    dialogs: list[str] = []
    act(page, dialogs)
    assert dialogs == [question]


def test_an_empty_subject_is_explained_in_the_preview(live_server, page, acme, console_errors):
    # Today the preview answers 400: Chromium and htmx log it. Allowed here so the test
    # fails on what the administrator sees, not on the console.
    console_errors.allow(r"status of 400 .*/admin/templates/secure_message/preview")
    console_errors.allow(r"Response Status Error Code 400 from /admin/templates/")
    sign_in_as_admin(page, live_server)
    open_secure_message_template(page)
    subject = page.get_by_label("Subject", exact=True)
    with page.expect_response(re.compile(r"/preview(\?language=\w+)?$")) as answer:
        subject.fill("")
    assert answer.value.status == 200, answer.value.status
    expect(page.locator("#preview").get_by_role("alert")).to_contain_text("Subject")
    expect(page.get_by_text("This form has expired")).to_be_hidden()


def test_settings_name_and_logo_show_on_the_sign_in_page(
    live_server, page, browser, acme, screenshot, console_errors
):
    sign_in_as_admin(page, live_server)
    save_settings(page, png())
    expect(page.get_by_label("Portal name")).to_have_value(PORTAL_NAME)
    current = page.locator("img.logo-preview")
    expect(current).to_be_visible()
    screenshot(page, "settings")

    visitor_context, visitor = new_context(browser, console_errors)
    try:
        visitor.goto(f"{live_server}/t/acme/sign-in")
        expect(visitor.get_by_role("heading", name=f"Sign in to {PORTAL_NAME}")).to_be_visible()
        logo = visitor.locator("img.brand-logo")
        expect(logo).to_have_attribute("src", "/t/acme/logo")
        expect(logo).to_be_visible()
        assert logo.evaluate("img => img.complete && img.naturalWidth") == 24
        screenshot(visitor, "sign-in")
    finally:
        visitor_context.close()


def test_the_notification_sender_hint_says_what_empty_means(live_server, page, acme):
    sign_in_as_admin(page, live_server)
    section(page, "Settings")
    expect(page.get_by_label("Notification sender address")).to_have_accessible_description(
        re.compile(r"^Notifications come from your portal name at this address \(now: Acme "
                   r"Corp <postmaster@127\.0\.0\.1>\)\..* Empty: the gateway's postmaster "
                   r"address\.$"))


def test_the_audit_log_names_the_administrator(live_server, page, acme, screenshot):
    sign_in_as_admin(page, live_server)
    create_content_policy(page)
    send(f"About {PHRASE}")  # caught by the policy: pat gets an account to reset
    save_template(page)
    reset_pats_password(page)
    save_settings(page)

    section(page, "Audit log")
    expect(page.get_by_role("heading", name="Audit log", level=1)).to_be_visible()
    log = page.get_by_role("region", name="This organisation")
    rows = log.get_by_role("row")
    for action, detail in [("policy created", f"{POLICY} (content)"),
                           ("template saved", "Secure message notification"),
                           ("password reset", PAT),
                           ("settings saved", f"portal name: none → {PORTAL_NAME}")]:
        row = rows.filter(has_text=action)
        expect(row).to_have_count(1)
        cells = row.get_by_role("cell")
        expect(cells.nth(1)).to_have_text(ADMIN)
        expect(cells.nth(2)).to_have_text("127.0.0.1")
        expect(cells.nth(3)).to_have_text(action)
        expect(cells.nth(4)).to_contain_text(detail)
    # Newest first.
    expect(rows.nth(1).get_by_role("cell").nth(3)).to_have_text("settings saved")
    screenshot(page, "audit-log")

    page.get_by_role("searchbox", name="Search the audit log").fill("reset")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page).to_have_url(f"{live_server}/admin/audit?q=reset")
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text("password reset")


def test_the_policies_page_at_phone_width(live_server, page, falcon, screenshot):
    falcon.policies.append(Policy(name="Everything to the board", kind="route",
                                  to_pattern="*@board.example", position=1))
    db.session.commit()
    page.set_viewport_size(PHONE)
    sign_in_as_admin(page, live_server)
    policies = page.get_by_role("region", name="Policies in evaluation order")
    expect(policies).to_contain_text(POLICY)
    expect(policies.get_by_role("button", name=f"Move down: {POLICY}")).to_be_visible()
    screenshot(page, "policies-phone")
    assert not overflows(page), overflows(page)


def squeezed_policy_names(page: Page) -> list[str]:
    """Policies whose name does not fit its column, or runs under the buttons beside it."""
    return page.evaluate("""() => [...document.querySelectorAll(".policy-row")].flatMap(row => {
        const what = row.querySelector(".policy-what");
        const name = what.querySelector("a");
        const buttons = row.querySelector(".policy-actions").getBoundingClientRect();
        const overlaps = [...name.getClientRects()].some(r => r.right > buttons.left + 1
            && r.left < buttons.right && r.bottom > buttons.top && r.top < buttons.bottom);
        return what.scrollWidth > what.clientWidth + 1 || overlaps
            ? [`${name.textContent.trim()}: column ${what.clientWidth}px, `
               + `needs ${what.scrollWidth}px`] : [];
    })""")


def test_policy_names_fit_beside_their_buttons_at_phone_width(live_server, page, falcon):
    falcon.policies.append(Policy(name="Everything to the board", kind="route",
                                  to_pattern="*@board.example", position=1))
    db.session.commit()
    page.set_viewport_size(PHONE)
    sign_in_as_admin(page, live_server)
    expect(page.get_by_role("region", name="Policies in evaluation order")
           ).to_contain_text("Everything to the board")
    assert not squeezed_policy_names(page), squeezed_policy_names(page)


# --- accessibility -----------------------------------------------------------------------


def _policies(page: Page) -> None:
    section(page, "Policies")
    expect(page.get_by_role("region", name="Policies in evaluation order")).to_contain_text(POLICY)


def _policy_form(page: Page) -> None:
    section(page, "Policies")
    page.get_by_role("link", name="New policy").click()
    expect(page.get_by_role("heading", name="New policy", level=1)).to_be_visible()


def _tester(page: Page) -> None:
    section(page, "Policy tester")
    page.get_by_label("Sender", exact=True).fill(ALICE)
    page.get_by_label("Recipients", exact=True).fill(f"{BOB}, {PAT}")
    page.get_by_label("Subject", exact=True).fill(PHRASE)
    page.get_by_role("button", name="Test", exact=True).click()
    expect(page.get_by_role("region", name="Result")).to_contain_text(REASON)


def _template(page: Page) -> None:
    open_secure_message_template(page)
    expect(page.locator("#preview .preview-subject")).to_be_visible()


def _people(page: Page) -> None:
    section(page, "People")
    expect(page.get_by_role("region", name="People")).to_contain_text(PAT)


def _user(page: Page) -> None:
    _people(page)
    page.get_by_role("region", name="People").get_by_role("link", name=PAT).click()
    expect(page.get_by_role("heading", name=PAT, level=1)).to_be_visible()


def _tracking(page: Page) -> None:
    section(page, "Message tracking")
    page.get_by_label("Subject", exact=True).fill(PHRASE)
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.get_by_role("region", name="Messages found").get_by_role("link")
           ).to_have_count(1)


def _tracked(page: Page) -> None:
    _tracking(page)
    page.get_by_role("region", name="Messages found").get_by_role("link").click()
    page.get_by_text("Delivery events").click()
    expect(page.locator("ol.events")).to_contain_text("Delivered to CCM isolation area")


def _settings(page: Page) -> None:
    section(page, "Settings")
    expect(page.get_by_role("heading", name="Settings", level=1)).to_be_visible()


def _audit(page: Page) -> None:
    section(page, "Audit log")
    expect(page.get_by_role("heading", name="Audit log", level=1)).to_be_visible()


PAGES = {
    "policies": _policies,
    "policy-form": _policy_form,
    "tester": _tester,
    "template": _template,
    "people": _people,
    "user": _user,
    "tracking": _tracking,
    "tracked": _tracked,
    "settings": _settings,
    "audit": _audit,
}


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("where", list(PAGES))
def test_accessibility(live_server, page, falcon, where, scheme, screenshot):
    """axe, colour contrast included, on every console page in either scheme."""
    page.emulate_media(color_scheme=scheme)
    sign_in_as_admin(page, live_server)
    PAGES[where](page)
    if scheme == "dark":
        screenshot(page, where)
    violations = check_accessibility(page)
    assert not violations, f"axe found problems on {where}:\n{summary(violations)}"
