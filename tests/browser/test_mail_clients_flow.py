"""The mail client buttons in Chromium: the administrator finds the page in the side
menu and downloads both packages; a user allowed to Send Secure finds them on the
Security page, from the link on the compose page. Then the buttons' own pages, with
fakes of the mail clients' APIs: Outlook's function file under its own CSP, and the
Thunderbird extension's popup."""

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


# --- the buttons' pages in Chromium, with fakes of the mail clients' APIs --------------

#: Office.js as the function file meets it: a compose item (tests/js/fake_office.js) that
#: records its headers and info bar
FAKE_OFFICE_JS = (Path(__file__).parents[1] / "js" / "fake_office.js").read_text() + """
window.recorded = fakeItem();
window.associated = {};
window.Office = {
  context: {mailbox: {item: recorded}},
  actions: {associate(name, handler) { associated[name] = handler; }},
  onReady() { return Promise.resolve({host: "Outlook"}); },
};
"""


def test_the_function_file_runs_office_js_and_the_menu_under_its_own_policy(
        live_server, page, console_errors):
    """The page's own CSP lets Office.js (here a fake, served at Microsoft's address)
    and the add-in's script run; a script from anywhere else is refused."""
    served = []

    def office_js(route):
        served.append(route.request.url)
        route.fulfill(body=FAKE_OFFICE_JS, content_type="text/javascript")

    page.route("https://appsforoffice.microsoft.com/**", office_js)
    page.goto(live_server + mail_clients.OUTLOOK_COMMANDS_PATH)
    assert served == ["https://appsforoffice.microsoft.com/lib/1/hosted/office.js"]
    assert page.evaluate("Object.keys(associated).sort()") == [
        "sendSecureAll", "sendSecureExternal", "sendSecureOff"]
    for name, expected in (("sendSecureExternal", {"X-CCM-Mode": "external"}),
                           ("sendSecureAll", {"X-CCM-Mode": "all"}),
                           ("sendSecureOff", {})):
        page.evaluate(f"new Promise((done) => window.{name}({{completed: done}}))")
        assert page.evaluate("recorded.headers") == expected
    assert "off" in page.evaluate("recorded.notices.ccmSendSecure.message")

    console_errors.allow("Content Security Policy")
    page.route("https://elsewhere.example/**", lambda route: route.fulfill(
        body="window.elsewhere = true;", content_type="text/javascript"))
    page.evaluate("""() => new Promise((done) => {
        const script = document.createElement("script");
        script.src = "https://elsewhere.example/x.js";
        script.onload = script.onerror = done;
        document.head.append(script);
    })""")
    assert page.evaluate("window.elsewhere === undefined")


#: the parts of Thunderbird's API the popup uses, recording what it sets
FAKE_MESSENGER = """
window.recorded = {
  headers: [{name: "X-Other", value: "kept"}, {name: "X-Ccm-Mode", value: "external"}],
  badge: null, title: null, closed: false,
};
window.messenger = {
  // the messages of Thunderbird's language: the package's _locales/<language> (below)
  i18n: {getMessage(key) { return (localeMessages[key] || {message: ""}).message; }},
  tabs: {async query(which) { return [{id: 3, type: "messageCompose"}]; }},
  compose: {
    async getComposeDetails(tabId) { return {customHeaders: recorded.headers}; },
    async setComposeDetails(tabId, details) { recorded.headers = details.customHeaders; },
  },
  composeAction: {
    async setBadgeText({text}) { recorded.badge = text; },
    async setTitle({title}) { recorded.title = title; },
  },
};
window.close = () => { recorded.closed = true; };
"""


#: what the popup says in each language: its buttons, the title then set
POPUP_WORDS = {
    "en": ("All recipients", "External recipients only", "Send Secure: All recipients"),
    "ar": ("جميع المستلمين", "المستلمون الخارجيون فقط", "إرسال آمن: جميع المستلمين"),
}


@pytest.mark.parametrize("language", list(POPUP_WORDS))
def test_the_thunderbird_popup_shows_and_sets_the_choice(page, screenshot, language):
    package = zipfile.ZipFile(io.BytesIO(mail_clients.thunderbird_xpi("https://portal.test")))
    all_recipients, external_only, title = POPUP_WORDS[language]
    types = {"html": "text/html", "css": "text/css", "js": "text/javascript"}

    def extension(route):
        name = route.request.url.removeprefix("https://extension.test/")
        route.fulfill(body=package.read(name), content_type=types[name.rsplit(".", 1)[1]])

    page.route("https://extension.test/**", extension)
    messages = package.read(f"_locales/{language}/messages.json").decode()
    page.add_init_script(f"window.localeMessages = {messages};" + FAKE_MESSENGER)
    page.set_viewport_size({"width": 320, "height": 200})
    page.goto("https://extension.test/popup.html")
    external = page.get_by_role("button", name=external_only)
    expect(external).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_role("button", name=all_recipients)).to_have_attribute(
        "aria-pressed", "false")
    assert page.evaluate("recorded.badge") == "EXT"
    assert page.evaluate("[document.documentElement.lang, document.documentElement.dir]") \
        == [language, "rtl" if language == "ar" else "ltr"]
    screenshot(page, "thunderbird-popup")
    page.get_by_role("button", name=all_recipients).click()
    page.wait_for_function("recorded.closed")
    assert page.evaluate("recorded.headers") == [{"name": "X-Other", "value": "kept"},
                                                 {"name": "X-CCM-Mode", "value": "all"}]
    assert page.evaluate("recorded.badge") == "ALL"
    assert page.evaluate("recorded.title") == title
