"""The recipient's pages in German, French, Spanish and Arabic, in Chromium at 1280 and
360 px: the browser's language is taken, nothing runs off the page (German's long words
included), Arabic reads right to left, and the chooser works without JavaScript."""

from __future__ import annotations

import re

import pyotp
import pytest
from flows import cut_off, overflow
from playwright.sync_api import expect
from support import PASSWORD
from test_inbox_flow import NARROW, PAT, WIDE, acme, mailbox  # noqa: F401 (fixtures)

#: what each language calls the sign-in button and the inbox, and a month it writes
WORDS = {
    "de": ("Anmelden", "Sichere Nachrichten", "Vom Absender am"),
    "fr": ("Se connecter", "Messages sécurisés", "Retiré par l\u2019expéditeur le"),
    "es": ("Iniciar sesión", "Mensajes seguros", "Retirado por el remitente el"),
    "ar": ("تسجيل الدخول", "الرسائل الآمنة", "سحبها المرسل في"),
}


def fits(page, label: str) -> None:
    """At 1280 and at 360 px: nothing sticks out sideways and nothing is cut off."""
    for size in (WIDE, NARROW):
        page.set_viewport_size(size)
        assert overflow(page) is None, (label, size["width"], overflow(page))
        assert cut_off(page) == [], (label, size["width"], cut_off(page))


@pytest.mark.usefixtures("mailbox")
@pytest.mark.parametrize("language", sorted(WORDS))
def test_sign_in_and_inbox_in_each_language(live_server, browser, screenshot, language):
    sign_in_word, inbox_heading, withdrawn = WORDS[language]
    context = browser.new_context(locale=language, viewport=WIDE)
    context.set_default_timeout(10_000)
    try:
        page = context.new_page()
        page.goto(f"{live_server}/t/acme/sign-in")
        html = page.locator("html")
        expect(html).to_have_attribute("lang", language)
        expect(html).to_have_attribute("dir", "rtl" if language == "ar" else "ltr")
        expect(page.get_by_role("button", name=sign_in_word, exact=True)).to_be_visible()
        fits(page, "sign-in")
        for size, name in ((WIDE, "wide"), (NARROW, "narrow")):
            page.set_viewport_size(size)
            screenshot(page, f"sign-in-{name}")
        page.emulate_media(color_scheme="dark")
        screenshot(page, "sign-in-narrow-dark")
        page.emulate_media(color_scheme="light")

        # A wrong password: the refusal and the field errors in the language too
        page.locator("#email").fill(PAT)
        page.locator("#password").fill("not the password at all")
        page.get_by_role("button", name=sign_in_word, exact=True).click()
        expect(page.get_by_role("alert")).not_to_contain_text("do not match")
        fits(page, "sign-in refused")
        page.set_viewport_size(NARROW)
        screenshot(page, "sign-in-refused-narrow")

        page.locator("#password").fill(PASSWORD)
        page.get_by_role("button", name=sign_in_word, exact=True).click()
        expect(page.get_by_role("heading", name=inbox_heading)).to_be_visible()
        expect(page.locator("li.message-gone").filter(has_text="Sent in error")
               ).to_contain_text(withdrawn)
        if language == "ar":
            direction = page.evaluate("getComputedStyle(document.body).direction")
            assert direction == "rtl"
            page.set_viewport_size(WIDE)
            brand = page.locator(".brand").bounding_box()
            assert brand["x"] > WIDE["width"] / 2  # the start of a line is on the right
        fits(page, "inbox")
        for size, name in ((WIDE, "wide"), (NARROW, "narrow")):
            page.set_viewport_size(size)
            screenshot(page, f"inbox-{name}")
        page.set_viewport_size(WIDE)
        page.locator("li.message-row:not(.message-gone) a").first.click()
        expect(page.locator(".message-meta")).to_be_visible()
        fits(page, "message")
        page.set_viewport_size(NARROW)
        screenshot(page, "message-narrow")
    finally:
        context.close()


@pytest.mark.usefixtures("acme")
def test_the_chooser_works_without_javascript(live_server, browser):
    context = browser.new_context(locale="en-GB", java_script_enabled=False, viewport=NARROW)
    try:
        page = context.new_page()
        page.goto(f"{live_server}/password/forgot")
        page.get_by_label("Language").select_option("de")
        page.get_by_role("button", name="Change").click()
        expect(page).to_have_url(f"{live_server}/password/forgot")
        expect(page.get_by_role("heading", name="Passwort vergessen")).to_be_visible()
        expect(page.get_by_label("Sprache")).to_have_value("de")
        page.goto(f"{live_server}/t/acme/sign-in")  # the choice stays with the browser
        expect(page.locator("html")).to_have_attribute("lang", "de")
        expect(page.get_by_role("heading", name=re.compile("anmelden"))).to_be_visible()
    finally:
        context.close()


@pytest.mark.usefixtures("mailbox")
def test_every_recipient_page_fits_a_phone_in_german(live_server, browser, screenshot):
    """German has the longest words of the four (Wiederherstellungscodes, Authenticator-App):
    each page of the recipient's way in, at 360 px, with nothing sticking out or cut off."""
    context = browser.new_context(locale="de-DE", viewport=NARROW)
    context.set_default_timeout(10_000)
    try:
        page = context.new_page()

        def visit(label: str, url: str | None = None) -> None:
            if url:
                page.goto(f"{live_server}{url}")
            expect(page.locator("html")).to_have_attribute("lang", "de")
            assert overflow(page) is None, (label, overflow(page))
            assert cut_off(page) == [], (label, cut_off(page))
            screenshot(page, label)

        visit("forgot", "/t/acme/password/forgot")
        page.locator("#email").fill(PAT)
        page.get_by_role("button", name="Link per E-Mail senden").click()
        expect(page.get_by_role("heading", name="Sehen Sie in Ihr Postfach")).to_be_visible()
        visit("forgot-sent")
        visit("reset-invalid", "/password/reset/not-a-token")
        visit("not-found", "/no-such-page")
        page.goto(f"{live_server}/t/acme/sign-in")
        page.locator("#email").fill(PAT)
        page.locator("#password").fill(PASSWORD)
        page.get_by_role("button", name="Anmelden", exact=True).click()
        expect(page.get_by_role("heading", name="Sichere Nachrichten")).to_be_visible()
        visit("activity", "/account/activity")
        visit("change-password", "/password/change")
        visit("enrol", "/account/second-factor")
        secret = page.locator("code.secret").inner_text().replace(" ", "")
        page.locator("#code").fill(pyotp.TOTP(secret).now())
        page.get_by_role("button", name="Einschalten").click()
        # a soft hyphen in the heading: Wiederherstellungs-codes breaks there on a phone
        expect(page.get_by_role("heading", name=re.compile("Bewahren Sie diese Wieder"))
               ).to_be_visible()
        visit("recovery-codes")
        visit("second-factor", "/account/second-factor")
        page.goto(f"{live_server}/inbox/")
        page.locator("li.message-gone").filter(has_text="Sent in error").get_by_role(
            "link").click()
        expect(page.get_by_role("heading", name="Der Absender hat diese Nachricht zurückgezogen")
               ).to_be_visible()
        visit("withdrawn")
    finally:
        context.close()
