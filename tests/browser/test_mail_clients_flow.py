"""The mail client buttons in Chromium: the administrator finds the page in the side
menu and downloads both packages; a user allowed to Send Secure finds them on the
Security page, from the link on the compose page."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pytest
from axe import check_accessibility, summary
from flows import sign_in_at
from playwright.sync_api import Page, expect

from app import mail_clients

PHONE = {"width": 360, "height": 740}
WIDE = {"width": 1280, "height": 800}


@pytest.fixture
def people(acme, make_user, make_ccm_sender):
    make_user(acme, "admin@acme.test", role="admin")
    make_ccm_sender(acme, "alice@acme.test")
    return acme


def pictures(page: Page, screenshot, label: str) -> None:
    """1280 and 360 px, light and dark."""
    for size in (WIDE, PHONE):
        page.set_viewport_size(size)
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            screenshot(page, f"{label}-{size['width']}-{scheme}")
    page.emulate_media(color_scheme="light")
    page.set_viewport_size(WIDE)


def download(page: Page, name: str) -> tuple[str, bytes]:
    with page.expect_download() as started:
        page.get_by_role("link", name=name).click()
    done = started.value
    return done.suggested_filename, Path(done.path()).read_bytes()


def test_the_administrator_downloads_both_buttons(app, live_server, page, people,
                                                  screenshot):
    sign_in_at(page, live_server, "admin@acme.test")
    page.wait_for_url(lambda url: "/sign-in" not in url)
    page.goto(f"{live_server}/admin/")
    page.get_by_role("navigation", name="Administration").get_by_role(
        "link", name="Mail client buttons").click()
    expect(page).to_have_url(f"{live_server}/admin/mail-clients")
    expect(page.get_by_role("heading", name="Mail client buttons", level=1)).to_be_visible()
    expect(page.get_by_text("Upload custom apps")).to_be_visible()
    expect(page.get_by_text("Install Add-on From File")).to_be_visible()
    pictures(page, screenshot, "admin-mail-clients")
    violations = check_accessibility(page)
    assert not violations, summary(violations)

    name, data = download(page, "Download the Outlook add-in")
    assert name == "send-secure-outlook.xml"
    root = ElementTree.fromstring(data)  # noqa: S314  (the portal's own answer)
    portal = app.config["BASE_URL"]
    assert data == mail_clients.outlook_manifest(portal)
    assert portal + mail_clients.OUTLOOK_COMMANDS_PATH in data.decode()
    assert root.get("{http://www.w3.org/2001/XMLSchema-instance}type") == "MailApp"

    name, data = download(page, "Download the Thunderbird extension")
    assert name == "send-secure-thunderbird.xpi"
    package = zipfile.ZipFile(io.BytesIO(data))
    assert json.loads(package.read("manifest.json"))["homepage_url"] == portal


def test_a_send_secure_user_finds_them_from_the_compose_page(live_server, page, people,
                                                             screenshot):
    sign_in_at(page, live_server, "alice@acme.test")
    page.wait_for_url(lambda url: "/sign-in" not in url)
    page.goto(f"{live_server}/compose/")
    page.get_by_role("link", name="Send Secure from your mail client").click()
    section = page.locator("#mail-clients")
    expect(section.get_by_role("heading", name="Send Secure from your mail client")).to_be_visible()
    expect(section.get_by_role("link", name="Download the Thunderbird extension")).to_be_visible()
    expect(section.get_by_text("Add a custom add-in")).to_be_visible()
    section.scroll_into_view_if_needed()
    pictures(page, screenshot, "security-mail-clients")
    violations = check_accessibility(page)
    assert not violations, summary(violations)
    name, data = download(page, "Download the Outlook add-in")
    assert name == "send-secure-outlook.xml" and data.startswith(b"<?xml")
