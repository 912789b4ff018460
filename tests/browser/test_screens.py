"""Every page fits a phone: nothing wider than 360 px, and controls large enough to tap.

"Fits" is two things: the page does not scroll sideways (and the test names what sticks
out when it does), and no box cuts off part of what it holds (a table past its panel's
hidden edge). Wide data may scroll inside a container of its own.

The pages come from ``app.url_map``: each page a browser can open (a GET route) is
visited by whoever can see it, or named in ``NOT_PAGES`` with the reason it is not a page
a person reads. The address the browser ends up at tells which route a visit reached, so
a page added later without a visit fails ``test_every_page_fits_the_screen``.

The world is made to provoke overflow: long unbroken addresses, subjects, file names and
policy names, the sort of text real mail brings. With ``CCM_SCREENSHOTS=1`` the test also
saves a picture of every page at its width, at 1280 px and in the dark scheme, to look at
(tests/artifacts/).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from urllib.parse import urlsplit

import pyotp
import pytest
from flows import cut_off, overflow, sign_in, sign_in_at
from playwright.sync_api import Page, expect
from werkzeug.exceptions import HTTPException

from app import clock
from app.domain import accounts, composing, ingest, second_factor
from app.extensions import db
from app.models import ApplicationSettings, Policy, RecipientState, User

PHONE = {"width": 360, "height": 740}
WIDE = {"width": 1280, "height": 800}

#: GET routes that are not pages a person reads, and why each is left out
NOT_PAGES = {
    "static": "stylesheets, scripts and images",
    "auth.logo": "a tenant's logo, an image",
    "auth.home": "sends the browser on to sign in or to the inbox, shows nothing",
    "auth.message_link": "a notification's link: sends the browser on to sign in or to the "
                         "message, shows nothing (tests/browser/test_message_link_flow.py)",
    "admin.home": "sends the browser on to Policies, shows nothing",
    "inbox.attachment": "a download",
    "inbox.inline": "an image inside a message body",
    "inbox.body": "the message body, a document inside the message page's frame: "
                  "test_with_script_the_frame_fits_the_whole_body measures it there",
    "compose.sent_attachment": "a download",
    "compose.sent_inline": "an image inside a message body",
    "compose.sent_body": "the sent message's body, the same document as inbox.body, "
                         "inside the Sent page's frame",
    "mail_clients.outlook_manifest": "a download (the Outlook add-in's manifest)",
    "mail_clients.thunderbird_xpi": "a download (the Thunderbird extension)",
    "mail_clients.outlook_script": "a script Outlook loads",
    "mail_clients.icon": "an image Outlook shows on its buttons",
    "mail_clients.outlook_commands": "Outlook's function file: runs the add-in's script in "
                                     "Outlook, shows nothing (tests/test_mail_clients.py)",
}

LONG_LOCAL = "quarterly.reporting.distribution.list.for.the.board"
SENDER = f"{LONG_LOCAL}@acme.test"
SUBJECT = "Figures:" + "Q3-revenue-by-region-and-product-line-" * 3 + "final"
FILE_NAME = "board-pack-" + "quarterly-figures-" * 5 + "final-v12.xlsx"
#: no hyphen to break at: a flex item's min width was the whole name (595 px at 360)
UNBROKEN_NAME = "Quarterly_Financial_Report_Final_Version_Approved_by_Board_2026-12-06_v3.pdf"
#: padded with Braille blanks, which are no spaces to a browser's line breaking
PADDED_NAME = "invoice.pdf" + "\u2800" * 60 + ".exe"
POLICY_NAME = "Partners-of-the-north-western-region-with-a-rather-long-name"
PASSWORD_OF = "correct horse battery staple"


# --- the world --------------------------------------------------------------------------


@dataclass
class World:
    message: str
    withdrawn: str
    expired: str
    draft: str
    token: str
    user_id: int
    policy_id: int
    profile_id: int


def _mail(subject: str, body_lines: int = 3) -> bytes:
    message = EmailMessage()
    message["From"] = f'"{LONG_LOCAL}" <{SENDER}>'
    message["To"] = ", ".join(f"partner-{n}-{LONG_LOCAL}@partner.test" for n in range(3))
    message["Cc"] = "admin@acme.test"
    message["Subject"] = subject
    paragraphs = "\n".join(f"<p>Paragraph {n}: the numbers for the quarter, region by "
                           f"region.</p>" for n in range(body_lines))
    message.set_content("The figures.")
    message.add_alternative(f"<p>See https://example.test/{'x' * 120}</p>{paragraphs}"
                            "<p>The last paragraph.</p>", subtype="html")
    message.add_attachment(b"a,b\n1,2\n", "text", "csv", filename=FILE_NAME)
    message.add_attachment(b"%PDF-1.4\n", "application", "pdf", filename=UNBROKEN_NAME)
    message.add_attachment(b"MZ", "application", "octet-stream", filename=PADDED_NAME)
    return message.as_bytes().replace(b"\n", b"\r\n")


def _receive(subject: str, body_lines: int = 3) -> str:
    # from alice, so that her Sent shows it; its From line is the long address
    message = ingest.receive(_mail(subject, body_lines), "alice@acme.test",
                             ["pat@partner.test", "alice@acme.test", "admin@acme.test"],
                             mode="all")
    return message.public_id


@pytest.fixture
def world(app, make_tenant, make_user) -> World:
    acme = make_tenant("acme", domains=["acme.test"])
    globex = make_tenant("globex", domains=["globex.test"])
    make_user(acme, "admin@acme.test", role="admin")
    make_user(acme, "root@acme.test", role="admin", is_platform_admin=True)
    make_user(acme, "alice@acme.test", role="internal")
    make_user(acme, SENDER, role="internal")
    colleague = make_user(acme, f"{LONG_LOCAL}.deputy@acme.test", role="internal")
    make_user(acme, "pat@partner.test")
    make_user(globex, "pat@partner.test")  # one password, two organisations: "which one?"
    with_factor = make_user(acme, "factor@acme.test", role="internal")
    secret = second_factor.new_secret()
    second_factor.enrol(with_factor, secret, pyotp.TOTP(secret).now())
    token = accounts.start_reset(make_user(acme, "reset@acme.test", role="internal"))
    make_user(acme, "first@acme.test", role="internal", must_change=True)
    profile = ApplicationSettings(tenant=acme, name="Senders-of-the-board-pack-" * 2,
                                  portal_ccm=True, send_secure=True)
    db.session.add_all([
        Policy(tenant=acme, position=0, name=POLICY_NAME, kind="route",
               to_pattern="*@partner.test", phrases=[], where=["subject", "body"]),
        Policy(tenant=acme, position=1, name="Words", kind="content",
               phrases=["board-pack-confidential-figures"], where=["subject", "body"]),
        profile,
    ])
    db.session.flush()
    message = _receive(SUBJECT, body_lines=60)
    withdrawn, expired = _receive("Withdrawn"), _receive("Expired")
    alice = db.session.scalar(db.select(User).filter_by(email="alice@acme.test"))
    alice.application_settings = profile  # may Send Secure: the mail client buttons show
    draft = composing.save_draft(alice, None, to=f"partner-{LONG_LOCAL}@partner.test", cc="",
                                 subject=SUBJECT, body="Unfinished", mode="off")
    db.session.commit()
    from app.models import Message
    for public_id, change in ((withdrawn, "revoked"), (expired, "expired")):
        found = db.session.scalar(db.select(Message).filter_by(public_id=public_id))
        for copy in found.recipients:
            if change == "revoked":
                copy.state = RecipientState.REVOKED
            else:
                copy.visible_until = clock.utcnow() - timedelta(seconds=1)
    db.session.commit()
    return World(message=message, withdrawn=withdrawn, expired=expired,
                 draft=draft.public_id, token=token, user_id=colleague.id,
                 policy_id=acme.policies[0].id, profile_id=profile.id)


# --- visits -----------------------------------------------------------------------------


@dataclass
class Visit:
    """One screen: an address to open, or steps that lead to it."""

    label: str
    go: str | Callable[[Page, str, World], None]
    #: the status the page is answered with (an error page's is its error)
    status: int = 200


def _tester_result(page: Page, base: str, world: World) -> None:
    page.goto(f"{base}/admin/policies/test")
    page.get_by_label("Sender", exact=True).fill(SENDER)
    page.get_by_label("Recipients", exact=True).fill(
        f"partner-{LONG_LOCAL}@partner.test, {LONG_LOCAL}.deputy@acme.test")
    page.get_by_label("Subject", exact=True).fill("board-pack-confidential-figures")
    page.get_by_role("button", name="Test", exact=True).click()
    expect(page.get_by_role("region", name="Result")).to_be_visible()


def _template_preview(page: Page, base: str, world: World) -> None:
    page.goto(f"{base}/admin/templates/secure_message")
    page.wait_for_load_state("load")


def _tracking_results(page: Page, base: str, world: World) -> None:
    page.goto(f"{base}/admin/tracking?sender={SENDER}")


def _account_created(page: Page, base: str, world: World) -> None:
    page.goto(f"{base}/admin/people/new")
    page.get_by_label("Email address").fill(f"{LONG_LOCAL}.new@acme.test")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name="Account created")).to_be_visible()


def _recovery_codes(page: Page, base: str, world: World) -> None:
    page.goto(f"{base}/account/second-factor")
    secret = page.locator("code.secret").inner_text()
    page.get_by_label("Code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on").click()
    expect(page.get_by_role("heading", name="Keep these recovery codes")).to_be_visible()


def _password_reset(page: Page, base: str, world: World) -> None:
    page.goto(f"{base}/admin/people/{world.user_id}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Reset password").click()
    page.wait_for_load_state("load")


def _code(page: Page, base: str, world: World) -> None:
    sign_in_at(page, base, "factor@acme.test")
    page.wait_for_url("**/sign-in/code")


def _choose(page: Page, base: str, world: World) -> None:
    page.goto(f"{base}/sign-in")
    sign_in(page, "pat@partner.test")
    page.wait_for_url("**/sign-in/organisation")


def _forgot_sent(page: Page, base: str, world: World) -> None:
    page.goto(f"{base}/t/acme/password/forgot")
    page.get_by_label("Email address").fill(f"{LONG_LOCAL}.nobody@acme.test")
    page.get_by_role("button").last.click()
    page.wait_for_load_state("load")


def _sign_out(page: Page, base: str, world: World) -> None:
    page.context.clear_cookies()


def _signed_in(email: str) -> Callable[[Page, str, World], None]:
    def go(page: Page, base: str, world: World) -> None:
        page.context.clear_cookies()
        sign_in_at(page, base, email)
        page.wait_for_url(lambda url: "/sign-in" not in url)
    return go


VISITOR = [
    Visit("sign in", "/sign-in"),
    Visit("a tenant's sign in", "/t/acme/sign-in"),
    Visit("forgotten password", "/password/forgot"),
    Visit("a tenant's forgotten password", "/t/acme/password/forgot"),
    Visit("reset link sent", _forgot_sent),
    Visit("reset password", "/password/reset/{token}"),
    Visit("reset link not valid", "/password/reset/not-a-token", 404),
    Visit("page not found", f"/no-such-page/{LONG_LOCAL}", 404),
    Visit("second factor code", _code),
    Visit("which organisation", _choose),
    Visit("a password to change at first sign-in", _signed_in("first@acme.test")),
]
EXTERNAL = [
    Visit("sign in as pat", _signed_in("pat@partner.test")),
    Visit("inbox", "/inbox/"),
    Visit("message", "/inbox/{message}"),
    Visit("reply", "/inbox/{message}/reply"),
    Visit("reply all", "/inbox/{message}/reply?all=1"),
    Visit("withdrawn", "/inbox/{withdrawn}", 410),
    Visit("expired", "/inbox/{expired}", 410),
    Visit("second factor set-up", "/account/second-factor"),
    Visit("passkeys", "/account/passkeys"),
    Visit("change password", "/password/change"),
    Visit("activity", "/account/activity"),
    Visit("recovery codes", _recovery_codes),
]
INTERNAL = [
    Visit("sign in as alice", _signed_in("alice@acme.test")),
    Visit("compose", "/compose/"),
    Visit("drafts", "/compose/drafts"),
    Visit("sent", "/sent/"),
    Visit("a sent message", "/sent/{message}"),
    Visit("a message not found", "/inbox/no-such-message", 404),
    Visit("security, with the mail client buttons", "/account/second-factor"),
]
ADMINISTRATOR = [
    Visit("sign in as the administrator", _signed_in("admin@acme.test")),
    Visit("policies", "/admin/policies"),
    Visit("a policy", "/admin/policies/{policy_id}"),
    Visit("new policy", "/admin/policies/new"),
    Visit("policy tester", "/admin/policies/test"),
    Visit("policy tester result", _tester_result),
    Visit("people", "/admin/people"),
    Visit("a person", "/admin/people/{user_id}"),
    Visit("a password reset", _password_reset),
    Visit("account created", _account_created),
    Visit("new person", "/admin/people/new"),
    Visit("application settings", "/admin/profiles"),
    Visit("a profile", "/admin/profiles/{profile_id}"),
    Visit("new profile", "/admin/profiles/new"),
    Visit("notifications", "/admin/templates"),
    Visit("template editor", _template_preview),
    Visit("message tracking", "/admin/tracking"),
    Visit("message tracking results", _tracking_results),
    Visit("a tracked message", "/admin/tracking/{message}"),
    Visit("settings", "/admin/settings"),
    Visit("audit log", "/admin/audit"),
    Visit("access log", "/admin/access"),
    Visit("mail client buttons", "/admin/mail-clients"),
]
PLATFORM_ADMINISTRATOR = [
    Visit("sign in as the platform administrator", _signed_in("root@acme.test")),
    Visit("tenants", "/admin/tenants"),
    Visit("new tenant", "/admin/tenants/new"),
]
EVERYONE = VISITOR + EXTERNAL + INTERNAL + ADMINISTRATOR + PLATFORM_ADMINISTRATOR


def visit(page: Page, base: str, world: World, step: Visit) -> None:
    if callable(step.go):
        step.go(page, base, world)
    else:
        page.goto(base + step.go.format(**vars(world)))
    page.wait_for_load_state("load")
    status = page.evaluate("performance.getEntriesByType('navigation')[0].responseStatus")
    assert status == step.status, f"{step.label}: answered {status}, not {step.status}"


def endpoint_of(app, url: str) -> str:
    """The route that answered ``url`` (the page the browser is on), or "error"."""
    parts = urlsplit(url)
    try:
        endpoint, _ = app.url_map.bind("localhost").match(parts.path, query_args=parts.query)
    except HTTPException:
        return "error"
    return endpoint


def pictures(page: Page, label: str, screenshot) -> None:
    """The page as it is, at 1280 px, and as it is in the dark scheme."""
    size = page.viewport_size
    screenshot(page, f"{label}-{size['width']}")
    page.set_viewport_size(WIDE)
    screenshot(page, f"{label}-1280")
    page.set_viewport_size(size)
    page.emulate_media(color_scheme="dark")
    screenshot(page, f"{label}-{size['width']}-dark")
    page.emulate_media(color_scheme="light")


# --- the tests --------------------------------------------------------------------------


#: a phone, and the narrowest window that has the administrator's console beside its menu
@pytest.mark.parametrize("width", [360, 820])
def test_every_page_fits_the_screen(app, live_server, page, world, screenshot, console_errors,
                                    width):
    console_errors.allow(r"the server responded with a status of (404|410)")
    page.set_viewport_size({**PHONE, "width": width})
    reached: set[str] = set()
    problems = []
    for step in EVERYONE:
        visit(page, live_server, world, step)
        if step.status < 400:  # an error page is no proof its route's page was seen
            reached.add(endpoint_of(app, page.url))
        if os.environ.get("CCM_SCREENSHOTS"):
            pictures(page, step.label, screenshot)
        if (found := overflow(page)) is not None:
            screenshot(page, step.label)
            problems.append(f"{step.label} ({urlsplit(page.url).path}): {found}")
        if hidden := cut_off(page):
            screenshot(page, step.label)
            problems.append(f"{step.label} ({urlsplit(page.url).path}): cut off: "
                            + "; ".join(hidden))
    pages = {rule.endpoint for rule in app.url_map.iter_rules() if "GET" in rule.methods}
    assert not pages - set(NOT_PAGES) - reached, (
        "pages no visit reached: add a Visit (or, for a route that is no page, a reason "
        "in NOT_PAGES)")
    assert not problems, f"pages that do not fit {width} px:\n  " + "\n  ".join(problems)


#: the pages people use most, where every control is measured for its size
MAIN_PAGES = ["sign in", "forgotten password", "second factor code", "sign in as pat", "inbox",
              "message", "reply", "second factor set-up", "change password", "activity",
              "sign in as alice", "compose", "drafts", "sent", "a sent message",
              "sign in as the administrator", "policies", "policy tester result", "people",
              "a person", "template editor", "message tracking results", "settings",
              "audit log"]

#: links and buttons smaller than 24 x 24 CSS px (WCAG 2.2, 2.5.8), except a link inside
#: running text, which WCAG exempts: one whose paragraph (or list item, or cell) holds
#: words besides the link
TOO_SMALL = """() => {
  const controls = document.querySelectorAll(
    "a[href], button, input[type=submit], input[type=button], input[type=file], select, summary");
  const inText = (el) => {
    if (el.tagName !== "A") return false;
    const block = el.closest("p, li, td, dd");
    return block !== null && block.textContent.trim().length > el.textContent.trim().length;
  };
  const name = (el) => el.tagName.toLowerCase() + [...el.classList].map((c) => "." + c).join("") +
    ` "${(el.innerText || el.value || el.getAttribute("aria-label") || "").trim().slice(0, 30)}"`;
  return [...controls].filter((el) => {
    if (el.closest(".skip-link, .visually-hidden") || el.matches(".skip-link")) return false;
    const box = el.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) return false;  // not shown
    return !inText(el) && (box.width < 23.5 || box.height < 23.5);
  }).map((el) => {
    const box = el.getBoundingClientRect();
    return `${name(el)} ${Math.round(box.width)} x ${Math.round(box.height)}`;
  });
}"""


def test_links_and_buttons_are_large_enough_to_tap(app, live_server, page, world):
    page.set_viewport_size(PHONE)
    problems = []
    for step in EVERYONE:
        if step.label not in MAIN_PAGES and not step.label.startswith("sign in as"):
            continue
        visit(page, live_server, world, step)
        if small := page.evaluate(TOO_SMALL):
            problems.append(f"{step.label}: " + "; ".join(small))
    visited = {step.label for step in EVERYONE}
    assert not set(MAIN_PAGES) - visited, "MAIN_PAGES names a page no visit has"
    assert not problems, "controls under 24 x 24 px:\n  " + "\n  ".join(problems)


# --- the message body without script, and on paper ----------------------------------------


def _open_message(page: Page, base: str, world: World) -> None:
    sign_in_at(page, base, "pat@partner.test")
    page.wait_for_url(f"{base}/inbox/")
    page.goto(f"{base}/inbox/{world.message}")


def test_without_script_the_whole_body_shows(app, live_server, browser, world, screenshot):
    context = browser.new_context(java_script_enabled=False, viewport=PHONE)
    try:
        page = context.new_page()
        _open_message(page, live_server, world)
        expect(page.get_by_role("heading", name=SUBJECT)).to_be_visible()
        # the frame cannot be sized without script: the body's text stands in for it
        expect(page.locator("iframe.message-frame")).to_be_hidden()
        for words in ("Paragraph 0:", "Paragraph 59:", "The last paragraph."):
            expect(page.get_by_text(words)).to_be_visible()
        assert overflow(page) is None
        screenshot(page, "no-script")
    finally:
        context.close()


def test_with_script_the_frame_fits_the_whole_body(app, live_server, page, world):
    _open_message(page, live_server, world)
    frame = page.locator("iframe.message-frame")
    expect(frame).to_be_visible()
    expect(page.frame_locator("iframe.message-frame").get_by_text("The last paragraph.")
           ).to_be_attached()
    expect(page.locator(".message-text-fallback")).to_be_hidden()
    assert frame_fits(page)
    page.set_viewport_size(PHONE)  # narrower, so taller: the frame follows
    assert frame_fits(page)
    assert overflow(page) is None
    body = page.frame_locator("iframe.message-frame").locator("html")
    assert body.evaluate("html => html.scrollWidth <= html.clientWidth"), \
        "the body is wider than its frame"
    page.set_viewport_size(WIDE)  # wider, so shorter: the frame shrinks, leaving no gap
    assert frame_fits(page, tight=True)


def frame_fits(page: Page, tight: bool = False) -> bool:
    """Whether the body's frame is as tall as what it shows (and, ``tight``, no more than
    a few pixels taller), within five seconds (polled here: the page's policy refuses the
    eval that wait_for_function needs)."""
    fits = """(tight) => { const frame = document.querySelector("iframe.message-frame");
        const html = frame.contentDocument.documentElement;
        return html.scrollHeight <= frame.clientHeight &&
          (!tight || frame.clientHeight <= html.getBoundingClientRect().height + 16); }"""
    for _ in range(50):
        if page.evaluate(fits, tight):
            return True
        page.wait_for_timeout(100)
    return False


def test_a_printed_message_has_its_headers_body_and_attachments_only(
        app, live_server, page, world, screenshot):
    _open_message(page, live_server, world)
    # a reader in the dark scheme still prints black on white
    page.emulate_media(media="print", color_scheme="dark")
    colours = page.evaluate("""() => [getComputedStyle(document.body).color,
                                      getComputedStyle(document.body).backgroundColor]""")
    assert colours == ["rgb(0, 0, 0)", "rgb(255, 255, 255)"]
    expect(page.get_by_role("heading", name=SUBJECT)).to_be_visible()
    for header in ("From", "To", "Date"):
        expect(page.get_by_role("term").filter(has_text=header).first).to_be_visible()
    for words in ("Paragraph 0:", "The last paragraph.", FILE_NAME):
        expect(page.get_by_text(words)).to_be_visible()
    expect(page.locator("iframe.message-frame")).to_be_hidden()
    for chrome in ("header.topbar", "footer", "nav", "form", "button", ".button"):
        for element in page.locator(chrome).all():
            expect(element).to_be_hidden()
    assert overflow(page) is None
    picture = screenshot(page, "print")
    pdf = page.pdf(format="A4")
    picture.with_suffix(".pdf").write_bytes(pdf)
    pages = len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf))
    assert pages >= 2, "the long body is cut at the end of the first page"
