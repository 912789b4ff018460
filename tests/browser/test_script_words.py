"""What ccm.js says by itself, in German and Arabic in Chromium: files over the limit
refused in the browser, and an htmx request the server refused (a draft deleted in
another tab), said in the page's language (base.html's ``<body data-words>``)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from support import PASSWORD

from app.extensions import db
from app.models import Draft

ALICE = "alice@acme.test"
WIDE = {"width": 1280, "height": 800}
NARROW = {"width": 360, "height": 740}
WORDS = {
    "de": {"message": "Nachricht", "too-large": "Diese Dateien sind zu groß.",
           "gone": "Nicht gefunden: Es ist nicht mehr da, oder es ist nicht für Sie bestimmt."},
    "ar": {"message": "الرسالة", "too-large": "هذه الملفات كبيرة جدًا.",
           "gone": "غير موجود: لم يعد موجودًا، أو أنه ليس مما يحق لك رؤيته."},
}


@pytest.fixture
def acme(make_tenant, make_user):
    tenant = make_tenant("acme", domains=["acme.test"])
    make_user(tenant, ALICE, role="internal")
    return tenant


def sign_in(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/t/acme/sign-in")
    page.locator("#email").fill(ALICE)
    page.locator("#password").fill(PASSWORD)
    page.locator("main form button[type=submit]").click()
    expect(page.locator("nav[aria-label]").first).to_be_visible()


def autosave(page: Page, base_url: str, words: dict, text: str) -> int:
    editor = page.locator("[data-rich-area]").and_(
        page.get_by_role("textbox", name=words["message"]))
    with page.expect_response(f"{base_url}/compose/draft") as saved:
        editor.fill(text)
    return saved.value.status


@pytest.mark.parametrize("language", sorted(WORDS))
def test_the_script_speaks_the_page_language(live_server, browser, acme, console_errors,
                                             screenshot, language):
    words = WORDS[language]
    context = browser.new_context(locale=language, viewport=WIDE)
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.on("console", lambda m: m.type == "error" and console_errors.record(m.text))
    page.on("pageerror", lambda error: console_errors.record(f"page error: {error}"))
    try:
        sign_in(page, live_server)
        page.goto(f"{live_server}/compose/")
        expect(page.locator("html")).to_have_attribute("lang", language)

        # Files over the limit: the browser refuses them in the language
        files = page.locator("input[type=file][data-max-bytes]")
        files.evaluate("input => input.setAttribute('data-max-bytes', '10')")
        files.set_input_files({"name": "big.txt", "mimeType": "text/plain",
                               "buffer": b"more than ten bytes"})
        assert files.evaluate("input => input.validationMessage") == words["too-large"]
        files.set_input_files([])

        # A draft deleted in another tab: the server answers 404, the page says so
        page.locator("#to").fill("pat@partner.test")
        assert autosave(page, live_server, words, "Hallo") == 200
        db.session.query(Draft).delete()
        db.session.commit()
        console_errors.allow(r"(status of|Error Code) 404")
        assert autosave(page, live_server, words, "Hallo Pat") == 404
        expect(page.locator("#request-error")).to_have_text(words["gone"])
        for size, name in ((WIDE, "1280"), (NARROW, "360")):
            page.set_viewport_size(size)
            screenshot(page, f"request-error-{name}")
        page.emulate_media(color_scheme="dark")
        screenshot(page, "request-error-360-dark")
    finally:
        context.close()
