"""The notification editor per language in Chromium (issue 19, part 2): choose a
language, the preview shows it (Arabic right to left), save a version for that language
only; the editor fits a phone in the dark."""

from __future__ import annotations

import pytest
from axe import check_accessibility, summary
from playwright.sync_api import Page, expect
from test_admin_flow import (
    ADMIN,
    follow,
    open_secure_message_template,
    overflows,
    screenshot_tall,
    sign_in_as_admin,
)

from app.extensions import db
from app.models import NotificationTemplate


@pytest.fixture
def acme(live_server, make_tenant, make_user):
    tenant = make_tenant("acme", name="Acme Corp", domains=["acme.test"],
                         time_zone="Europe/Berlin")
    make_user(tenant, ADMIN, role="admin")
    return tenant


def choose(page: Page, language: str) -> None:
    follow(page, page.get_by_role("navigation", name="Language of this version").get_by_role(
        "link", name=language, exact=True))


def test_the_preview_shows_the_language_chosen_and_saving_keeps_to_it(
        live_server, page, acme, screenshot):
    sign_in_as_admin(page, live_server)
    open_secure_message_template(page)
    subject = page.locator("#preview .preview-subject")
    expect(subject).to_have_text("Subject: Secure message from Acme Corp: sign in to read it")

    choose(page, "Deutsch")
    expect(page.get_by_role("link", name="Deutsch", exact=True)).to_have_attribute(
        "aria-current", "page")
    expect(page.get_by_role("heading", name="Preview in Deutsch, with sample data")
           ).to_be_visible()
    expect(subject).to_have_text(
        "Subject: Sichere Nachricht von Acme Corp: Melden Sie sich an, um sie zu lesen")
    frame = page.frame_locator("iframe.preview-frame")
    expect(frame.locator("html")).to_have_attribute("lang", "de")
    expect(frame.locator("body")).to_contain_text("Lesbar bis")
    expect(frame.locator("body")).to_contain_text("30. Dezember 2026, 03:00 CET")  # Berlin

    field = page.get_by_label("Subject", exact=True)
    field.fill("Neue sichere Nachricht für {{ recipient }}")
    expect(subject).to_have_text("Subject: Neue sichere Nachricht für pat@example.com",
                                 timeout=5_000)
    screenshot_tall(page, screenshot, "german")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status")).to_have_text(
        "Secure message notification in Deutsch saved: the next one sent in this language "
        "uses it.")
    db.session.expire_all()
    assert [(t.language, t.subject) for t in db.session.query(NotificationTemplate)] == [
        ("de", "Neue sichere Nachricht für {{ recipient }}")]

    choose(page, "English")  # untouched
    expect(subject).to_have_text("Subject: Secure message from Acme Corp: sign in to read it")

    choose(page, "العربية")
    expect(frame.locator("html")).to_have_attribute("dir", "rtl")
    assert frame.locator("body").evaluate("body => getComputedStyle(body).direction") == "rtl"
    expect(subject).to_contain_text("رسالة آمنة من Acme Corp")
    screenshot_tall(page, screenshot, "arabic")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_editor_with_its_languages_fits_a_phone(live_server, page, acme, screenshot,
                                                   scheme):
    page.emulate_media(color_scheme=scheme)
    sign_in_as_admin(page, live_server)
    page.set_viewport_size({"width": 360, "height": 800})
    open_secure_message_template(page)
    choose(page, "Deutsch")
    expect(page.locator("#preview .preview-subject")).to_contain_text("Sichere Nachricht")
    assert overflows(page) == []
    screenshot_tall(page, screenshot, f"{scheme}-phone")
    violations = check_accessibility(page)
    assert not violations, summary(violations)
