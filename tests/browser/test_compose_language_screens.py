"""The internal user's compose, drafts, Sent and reply pages in German and Arabic, in
Chromium at 1280 and 360 px: the editor's toolbar, its link prompt and the composer's
refusals speak the language, nothing runs off the page, and Arabic reads right to left.

Alice writes to pat and her colleague bob with "All Recipients" (so bob reads it in the
portal too); bob answers it with the reply form, CCM mode and toolbar included.
"""

from __future__ import annotations

import pytest
from flows import cut_off, overflow
from playwright.sync_api import BrowserContext, Page, expect
from support import PASSWORD

ALICE = "alice@acme.test"
BOB = "bob@acme.test"
PAT = "pat@partner.test"
SUBJECT = "Vergleichsentwurf"
WIDE = {"width": 1280, "height": 800}
NARROW = {"width": 360, "height": 740}

#: what each language calls what the test looks for
WORDS = {
    "de": {
        "new": "Neue Nachricht", "to": "An", "subject": "Betreff", "mode": "CCM-Modus",
        "all": "Alle Empfänger", "send": "Senden", "sent": "Ihre Nachricht wurde gesendet.",
        "saved": "Entwurf um", "wrong": "Keine E-Mail-Adresse: not-an-address",
        "toolbar": "Formatierung", "bold": ("Fett", "F"), "italic": ("Kursiv", "K"),
        "bullets": ("Liste mit Aufzählungszeichen", "• Liste"), "quote": ("Zitat", "❝ Zitat"),
        "link": ("Link", "Link"), "prompt": "Linkadresse (https://… oder mailto:…)",
        "refused": "Ein Link muss mit https://, http:// oder mailto: beginnen.",
        "sent-list": "Gesendet", "sent-on": "Gesendet am", "drafts": "Entwürfe",
        "no-drafts": "Keine Entwürfe", "room": "Entwürfe: 1 von höchstens 50. Löschen Sie "
        "die, die Sie nicht mehr brauchen.", "reply": "Antworten", "your-reply": "Ihre Antwort",
        "send-reply": "Antwort senden", "replied": "Ihre Antwort wurde gesendet.",
        "reply-title": f"Antworten: {SUBJECT}",
    },
    "ar": {
        "new": "رسالة جديدة", "to": "إلى", "subject": "الموضوع", "mode": "وضع CCM",
        "all": "جميع المستلمين", "send": "إرسال", "sent": "تم إرسال رسالتك.",
        "saved": "حُفظت المسودة في", "wrong": "ليس عنوان بريد إلكتروني: not-an-address",
        "toolbar": "التنسيق", "bold": ("غامق", "غ"), "italic": ("مائل", "م"),
        "bullets": ("قائمة نقطية", "• قائمة"), "quote": ("اقتباس", "❝ اقتباس"),
        "link": ("رابط", "رابط"), "prompt": "عنوان الرابط (https://… أو mailto:…)",
        "refused": "يجب أن يبدأ الرابط بـ https:// أو http:// أو mailto:.",
        "sent-list": "المرسلة", "sent-on": "أُرسلت في", "drafts": "المسودات",
        "no-drafts": "لا توجد مسودات",
        "room": "المسودات: 1 من أصل 50 كحد أقصى. احذف ما لم تعد بحاجة إليه.",
        "reply": "ردّ", "your-reply": "ردّك",
        "send-reply": "إرسال الرد", "replied": "تم إرسال ردّك.",
        "reply-title": f"ردّ: {SUBJECT}",
    },
}


@pytest.fixture
def acme(make_tenant, make_user, make_ccm_sender):
    """Tenant acme: alice and bob may choose a CCM mode; pat is external."""
    tenant = make_tenant("acme", domains=["acme.test"])
    make_ccm_sender(tenant, ALICE)
    make_ccm_sender(tenant, BOB)
    make_user(tenant, PAT)
    return tenant


def context_in(browser, language: str, console_errors) -> tuple[BrowserContext, Page]:
    """A browser whose language is ``language``; its console errors fail the test."""
    context = browser.new_context(locale=language, viewport=WIDE)
    context.set_default_timeout(10_000)
    tab = context.new_page()
    tab.on("console", lambda m: m.type == "error" and console_errors.record(
        f"console ({language}): {m.text}"))
    tab.on("pageerror", lambda error: console_errors.record(f"page error: {error}"))
    return context, tab


def sign_in(page: Page, base_url: str, email: str) -> None:
    page.goto(f"{base_url}/t/acme/sign-in")
    page.locator("#email").fill(email)
    page.locator("#password").fill(PASSWORD)
    page.locator("main form button[type=submit]").click()
    expect(page.locator("nav[aria-label]").first).to_be_visible()


def looked_at(page: Page, screenshot, label: str, language: str) -> None:
    """In the language and its direction, fitting 1280 and 360 px (light and dark)."""
    html = page.locator("html")
    expect(html).to_have_attribute("lang", language)
    expect(html).to_have_attribute("dir", "rtl" if language == "ar" else "ltr")
    for size, name in ((WIDE, "1280"), (NARROW, "360")):
        page.set_viewport_size(size)
        assert overflow(page) is None, (label, name, overflow(page))
        assert cut_off(page) == [], (label, name, cut_off(page))
        screenshot(page, f"{label}-{name}")
    page.emulate_media(color_scheme="dark")
    screenshot(page, f"{label}-360-dark")
    page.emulate_media(color_scheme="light")
    page.set_viewport_size(WIDE)


def tool(page: Page, words: dict, name: str):
    return page.get_by_role("toolbar", name=words["toolbar"], exact=True).get_by_role(
        "button", name=words[name][0], exact=True)


def check_toolbar(page: Page, words: dict) -> None:
    """Each button shows the language's mark and is named (title, aria-label) in it."""
    for name in ("bold", "italic", "bullets", "quote", "link"):
        label, text = words[name]
        button = tool(page, words, name)
        expect(button).to_have_text(text)
        expect(button).to_have_attribute("title", label)


@pytest.mark.parametrize("language", sorted(WORDS))
def test_compose_and_reply_in_the_language(live_server, browser, acme, outbox, screenshot,
                                           console_errors, language):
    words = WORDS[language]
    context, page = context_in(browser, language, console_errors)
    try:
        sign_in(page, live_server, ALICE)
        page.goto(f"{live_server}/compose/")
        expect(page.get_by_role("heading", name=words["new"], exact=True)).to_be_visible()
        expect(page.locator("label[for=to]")).to_have_text(words["to"])
        expect(page.locator("label[for=subject]")).to_have_text(words["subject"])
        expect(page.locator("label[for=mode]")).to_have_text(words["mode"])
        check_toolbar(page, words)
        if language == "ar":
            toolbar = page.get_by_role("toolbar", name=words["toolbar"]).bounding_box()
            first = tool(page, words, "bold").bounding_box()
            # the first button stands at the toolbar's start: on the right
            assert first["x"] + first["width"] > toolbar["x"] + toolbar["width"] - 40

        # A wrong address, refused in the language beside its field
        page.locator("#to").fill("not-an-address")
        page.locator("#subject").fill(SUBJECT)
        page.locator("#mode").select_option(label=words["all"])
        page.locator("[data-rich-area]").click()
        with page.expect_response(f"{live_server}/compose/draft"):
            page.keyboard.type("Hallo, ")
            tool(page, words, "bold").click()
            page.keyboard.type("wichtig")
            tool(page, words, "bold").click()
        expect(page.locator("#draft-state")).to_contain_text(words["saved"])
        # the link prompt, and the refusal of an address that is no link, in the language
        dialogs: list[str] = []

        def answer(dialog) -> None:
            dialogs.append(dialog.message)
            dialog.accept("javascript:alert(1)" if dialog.type == "prompt" else None)

        page.on("dialog", answer)
        tool(page, words, "link").click()
        for _ in range(100):  # the alert follows the prompt's answer
            if len(dialogs) == 2:
                break
            page.wait_for_timeout(50)
        page.remove_listener("dialog", answer)
        assert dialogs == [words["prompt"], words["refused"]]
        page.keyboard.press("Enter")
        tool(page, words, "quote").click()
        page.keyboard.type("Zitat aus dem Vertrag")
        page.get_by_role("button", name=words["send"], exact=True).click()
        expect(page.locator("#to-error")).to_have_text(words["wrong"])
        check_toolbar(page, words)  # the form shown again keeps its toolbar
        looked_at(page, screenshot, "compose-refused", language)

        # The draft, listed with the room left, and picked up again
        page.goto(f"{live_server}/compose/drafts")
        expect(page.get_by_role("heading", name=words["drafts"], exact=True)).to_be_visible()
        expect(page.locator(".drafts-room")).to_have_text(words["room"])
        looked_at(page, screenshot, "drafts", language)
        page.locator("li.draft-row a").filter(has_text=SUBJECT).click()
        expect(page.locator("[data-rich-area] b")).to_have_text("wichtig")
        check_toolbar(page, words)

        page.locator("#to").fill(f"{PAT}, {BOB}")
        page.get_by_role("button", name=words["send"], exact=True).click()
        expect(page.get_by_role("status")).to_have_text(words["sent"])
        expect(page.locator(".lede")).to_contain_text(words["sent-on"])
        looked_at(page, screenshot, "sent-message", language)
        page.goto(f"{live_server}/sent/")
        expect(page.get_by_role("heading", name=words["sent-list"], exact=True)).to_be_visible()
        looked_at(page, screenshot, "sent", language)
        page.goto(f"{live_server}/compose/drafts")
        expect(page.get_by_role("heading", name=words["no-drafts"])).to_be_visible()
        looked_at(page, screenshot, "no-drafts", language)
        outbox()
    finally:
        context.close()

    context, page = context_in(browser, language, console_errors)
    try:
        sign_in(page, live_server, BOB)
        page.goto(f"{live_server}/inbox/")
        page.locator("li.message-row a").filter(has_text=SUBJECT).click()
        page.get_by_role("link", name=words["reply"], exact=True).click()
        expect(page.get_by_role("heading", name=words["reply-title"])).to_be_visible()
        check_toolbar(page, words)
        area = page.locator("[data-rich-area]")
        expect(area.locator("blockquote")).to_contain_text("Hallo, wichtig")
        area.click()
        page.keyboard.press("Control+Home")
        tool(page, words, "italic").click()
        page.keyboard.type("Einverstanden")
        expect(area.locator("i")).to_have_text("Einverstanden")
        tool(page, words, "italic").click()
        page.keyboard.press("Enter")
        tool(page, words, "bullets").click()
        page.keyboard.type("erster Punkt")
        expect(area.locator("ul li")).to_have_text("erster Punkt")
        # the quote's bar and the list's bullets stand at the start of the line
        side = "right" if language == "ar" else "left"
        bar = area.locator("blockquote").evaluate(
            f"(quote) => getComputedStyle(quote).border{side.title()}Width")
        assert bar == "3px", (side, bar)
        room = area.locator("ul").evaluate(
            f"(list) => parseFloat(getComputedStyle(list).padding{side.title()})")
        assert room > 10, (side, room)
        looked_at(page, screenshot, "reply", language)
        page.get_by_role("button", name=words["send-reply"], exact=True).click()
        expect(page.get_by_role("status")).to_have_text(words["replied"])
    finally:
        context.close()
