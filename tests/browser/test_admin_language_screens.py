"""The administrator's pages in German (the longest words of the four languages), in
Chromium at 1280 and 360 px: every section speaks German, nothing runs off the page or
is cut off, and the words the domain says (a policy's problem, the tester's reasons) come
in German too. Arabic's right-to-left console is looked at once, at both widths."""

from __future__ import annotations

import re

import pytest
from flows import cut_off, overflow
from playwright.sync_api import Page, expect
from support import PASSWORD
from test_admin_flow import PAT, POLICY, acme, falcon  # noqa: F401 (fixtures)

from app.domain import domain_proof
from app.extensions import db

WIDE = {"width": 1280, "height": 800}
NARROW = {"width": 360, "height": 740}
ROOT = "root@acme.test"


@pytest.fixture
def console(request, make_user):
    """acme with the falcon policy and its message, a platform administrator, and a
    domain waiting for its DNS proof (so Settings shows the proof section)."""
    tenant = request.getfixturevalue("falcon")
    make_user(tenant, ROOT, role="admin", is_platform_admin=True)
    tenant.domains.append(domain_proof.pending("acme-neu.test"))
    db.session.commit()
    return tenant


def signed_in(browser, locale: str, email: str = ROOT):
    context = browser.new_context(locale=locale, viewport=WIDE)
    context.set_default_timeout(10_000)
    page = context.new_page()
    return context, page, email


def sign_in(page: Page, live_server: str, email: str, button: str) -> None:
    page.goto(f"{live_server}/t/acme/sign-in")
    page.locator("#email").fill(email)
    page.locator("#password").fill(PASSWORD)
    page.get_by_role("button", name=button, exact=True).click()
    expect(page).not_to_have_url(re.compile("sign-in"))


def looks_right(page: Page, screenshot, label: str, language: str = "de") -> None:
    """At 1280 and at 360 px: in the language, nothing sticks out sideways, nothing is
    cut off; a screenshot of each width."""
    expect(page.locator("html")).to_have_attribute("lang", language)
    for size, name in ((WIDE, "wide"), (NARROW, "narrow")):
        page.set_viewport_size(size)
        assert overflow(page) is None, (label, size["width"], overflow(page))
        assert cut_off(page) == [], (label, size["width"], cut_off(page))
        screenshot(page, f"{label}-{name}")
    page.set_viewport_size(WIDE)


#: each section: its address and its German heading
SECTIONS = [
    ("policies", "/admin/policies", "Richtlinien"),
    ("new-policy", "/admin/policies/new", "Neue Richtlinie"),
    ("tester", "/admin/policies/test", "Richtlinientest"),
    ("people", "/admin/people", "Personen"),
    ("new-user", "/admin/people/new", "Neuer interner Benutzer"),
    ("profiles", "/admin/profiles", "Anwendungseinstellungen"),
    ("new-profile", "/admin/profiles/new", "Neues Profil"),
    ("tracking", "/admin/tracking?subject=falcon", "Nachrichtenverfolgung"),
    ("settings", "/admin/settings", "Einstellungen"),
    ("audit", "/admin/audit", "Prüfprotokoll"),
    ("access", "/admin/access", "Zugriffsprotokoll"),
    ("tenants", "/admin/tenants", "Mandanten"),
    ("new-tenant", "/admin/tenants/new", "Neuer Mandant"),
]


@pytest.mark.usefixtures("console")
def test_every_administrator_page_in_german_fits(live_server, browser, screenshot):
    context, page, email = signed_in(browser, "de-DE")
    try:
        sign_in(page, live_server, email, "Anmelden")
        for label, url, heading in SECTIONS:
            page.goto(f"{live_server}{url}")
            expect(page.get_by_role("heading", name=heading, level=1)).to_be_visible()
            expect(page.get_by_role("navigation", name="Verwaltung")).to_contain_text(
                "Nachrichtenverfolgung")
            looks_right(page, screenshot, label)

        # one person's page, and a tracked message with its delivery events
        page.goto(f"{live_server}/admin/people?q=pat")
        page.get_by_role("region", name="Personen").get_by_role("link", name=PAT).click()
        expect(page.get_by_role("heading", name=PAT, level=1)).to_be_visible()
        expect(page.get_by_text("Letzte Anmeldung")).to_be_visible()
        looks_right(page, screenshot, "user")
        page.goto(f"{live_server}/admin/tracking?subject=falcon")
        page.get_by_role("region", name="Gefundene Nachrichten").get_by_role("link").first.click()
        expect(page.get_by_text("Umschlag-Absender")).to_be_visible()
        page.locator("details summary").first.click()  # the delivery events, open
        looks_right(page, screenshot, "tracked")
        page.emulate_media(color_scheme="dark")
        page.set_viewport_size(NARROW)
        screenshot(page, "tracked-narrow-dark")
        page.emulate_media(color_scheme="light")
    finally:
        context.close()


@pytest.mark.usefixtures("console")
def test_the_domains_words_come_in_german_too(live_server, browser, screenshot):
    """A policy's problem (app/domain/policy_rules.py) and the tester's reason
    (app/domain/routing.py) are said in English by the domain, in German on the page."""
    context, page, email = signed_in(browser, "de-DE")
    try:
        sign_in(page, live_server, email, "Anmelden")
        page.goto(f"{live_server}/admin/policies/new")
        page.get_by_label("Name", exact=True).fill("Kaputt")
        page.get_by_label("Von", exact=True).fill("not a pattern")
        page.get_by_role("button", name="Richtlinie speichern").click()
        expect(page.locator(".field-errors").first).to_have_text(
            "Erwartet: eine Adresse, *@domain, internal, external oder *.")
        looks_right(page, screenshot, "policy-refused")

        page.goto(f"{live_server}/admin/policies/test")
        page.get_by_label("Absender").fill("alice@acme.test")
        page.get_by_label("Empfänger", exact=True).fill(f"{PAT}, bob@acme.test")
        page.get_by_label("Betreff").fill("project falcon")
        page.get_by_role("button", name="Testen").click()
        result = page.get_by_role("region", name="Ergebnis")
        expect(result).to_contain_text(
            f"Inhalts-Richtlinie '{POLICY}' hat gegriffen: 'project falcon' gefunden")
        expect(result).to_contain_text("Interner Empfänger: internes Relay")
        looks_right(page, screenshot, "tester-result")
    finally:
        context.close()


@pytest.mark.usefixtures("console")
def test_the_console_reads_right_to_left_in_arabic(live_server, browser, screenshot):
    context, page, email = signed_in(browser, "ar")
    try:
        sign_in(page, live_server, email, "تسجيل الدخول")
        for label, url, heading in (("policies", "/admin/policies", "السياسات"),
                                    ("settings", "/admin/settings", "الإعدادات")):
            page.goto(f"{live_server}{url}")
            expect(page.locator("html")).to_have_attribute("dir", "rtl")
            expect(page.get_by_role("heading", name=heading, level=1)).to_be_visible()
            looks_right(page, screenshot, f"ar-{label}", language="ar")
    finally:
        context.close()
