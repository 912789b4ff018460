"""Times in the reader's zone: the tenant's, written by the server; the browser's own,
where JavaScript runs (app/static/js/ccm.js)."""

from __future__ import annotations

import pytest
from flows import sign_in_at
from playwright.sync_api import expect
from support import mail

from app.domain import ingest
from app.extensions import db

PAT = "pat@partner.test"
#: 12:00 UTC in July: 14:00 in Berlin (CEST), 21:00 in Tokyo, 08:00 in New York (EDT)
DATE = "Wed, 15 Jul 2026 12:00:00 +0000"


@pytest.fixture
def berlin_mail(live_server, make_tenant, make_user):
    """A message for Pat from Acme, whose pages show Berlin time."""
    acme = make_tenant("acme", domains=["acme.test"], time_zone="Europe/Berlin")
    make_user(acme, "alice@acme.test", role="internal")
    make_user(acme, PAT)
    raw = mail(subject="Summer figures", headers=f"Date: {DATE}\n")
    message = ingest.receive(raw.replace("\n", "\r\n").encode(), "alice@acme.test", [PAT],
                             mode="all")
    db.session.commit()
    return f"{live_server}/inbox/{message.public_id}"


def open_message(browser, live_server, url, **options):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, **options)
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    sign_in_at(page, live_server, PAT)
    expect(page.get_by_role("heading", name="Secure messages")).to_be_visible()
    page.goto(url)
    return context, page, errors


@pytest.mark.parametrize(("zone", "shown", "dark"), [
    ("Asia/Tokyo", "15 Jul 2026, 21:00 GMT+9", False),
    ("America/New_York", "15 Jul 2026, 08:00 GMT-4", True),
])
def test_the_browser_shows_a_time_in_its_own_zone(browser, live_server, berlin_mail,
                                                  screenshot, zone, shown, dark):
    context, page, errors = open_message(
        browser, live_server, berlin_mail, timezone_id=zone,
        color_scheme="dark" if dark else "light")
    try:
        date = page.locator("dd time[data-style=minute]")
        expect(date).to_have_text(shown)
        expect(date).to_have_attribute("datetime", "2026-07-15T12:00:00Z")
        expect(date).to_have_attribute("data-zone", zone)
        expect(date).to_have_attribute("title", zone)
        screenshot(page, zone)
        page.set_viewport_size({"width": 360, "height": 800})
        screenshot(page, f"{zone}-360")
        # what htmx swaps in too: back to the inbox and into the message again, in
        # one page (the marker would not survive a page load)
        page.evaluate("window.stillHere = true")
        page.get_by_role("link", name="All messages").click()
        expect(page.locator("time[data-style=day]").first).to_have_attribute("data-zone", zone)
        page.get_by_role("link", name="Summer figures").click()
        expect(date).to_have_text(shown)
        assert page.evaluate("window.stillHere") is True
        assert errors == []
    finally:
        context.close()


def test_without_javascript_the_tenants_zone_is_shown(browser, live_server, berlin_mail,
                                                      screenshot):
    context, page, errors = open_message(browser, live_server, berlin_mail,
                                         timezone_id="Asia/Tokyo", java_script_enabled=False)
    try:
        date = page.locator("dd time[data-style=minute]")
        expect(date).to_have_text("15 Jul 2026, 14:00 CEST")
        expect(date).to_have_attribute("title", "Europe/Berlin")
        expect(date).to_have_attribute("datetime", "2026-07-15T12:00:00Z")
        screenshot(page, "no-javascript")
        assert errors == []
    finally:
        context.close()
