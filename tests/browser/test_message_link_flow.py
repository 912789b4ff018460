"""From a notification's link to its message, in Chromium, counting the screens.

The message goes through the real SMTP ingress; the notifications are read from the
maildir outbox and their link followed as a recipient would. A screen is a page the
browser shows: a navigation of the top frame (redirects and in-place swaps are none).
First contact is three (sign in, new password, the message); a returning recipient's
two (sign in, the message), three with the second factor they set up.
"""

from __future__ import annotations

import re
import smtplib
from datetime import UTC, datetime

import pyotp
import pytest
from flows import sign_in
from playwright.sync_api import Page, expect
from servers import free_port
from sqlalchemy import select
from support import PASSWORD

from app.domain import accounts, isolation, second_factor
from app.extensions import db
from app.models import Message, Recipient, User
from app.smtp import ingress

PAT = "pat@partner.test"
ALICE = "alice@acme.test"
NEW_PASSWORD = "plum orbit lantern meadow"
NOTICE = "Secure message from Acme Corp: sign in to read it"
CHANGED = "Your password has been changed. Other devices have been signed out."


@pytest.fixture
def gateway(app, live_server, make_tenant, make_ccm_sender):
    """``send(subject)``: Alice at Acme sends Pat a message through the SMTP ingress, by CCM
    ("Send Secure"); returns it. The live server is up first, so links point to it."""
    tenant = make_tenant("acme", domains=["acme.test"])
    make_ccm_sender(tenant, ALICE)
    smtp = ingress.controller(app, f"127.0.0.1:{free_port()}")
    smtp.start()

    def send(subject: str) -> Message:
        data = (f"From: {ALICE}\r\nTo: {PAT}\r\nSubject: {subject}\r\nX-CCM-Mode: external\r\n"
                f"Message-ID: <{abs(hash(subject))}@acme.test>\r\n\r\nThe terms, page 1.\r\n")
        with smtplib.SMTP("127.0.0.1", smtp.port, timeout=10) as client:
            assert client.sendmail(ALICE, [PAT], data) == {}
        db.session.expire_all()
        return db.session.scalar(select(Message).where(Message.subject == subject))

    try:
        yield send
    finally:
        smtp.stop()


def text_of(mail) -> str:
    return mail.get_body(preferencelist=("plain",)).get_content()


def notified(outbox, message: Message) -> tuple[str, str | None]:
    """The link in Pat's notification of ``message``, and the password in his sign-in
    details if this was the first contact."""
    link = f"/t/acme/messages/{message.public_id}"
    to_pat = [m for m in outbox() if m["To"] == PAT]
    links = [found for m in to_pat if m["Subject"] == NOTICE
             for found in re.findall(r"https?://\S+", text_of(m)) if found.endswith(link)]
    assert links, [text_of(m) for m in to_pat]
    # the sign-in details given with this message (its first contact) lead to it too
    details = [m for m in to_pat if m["Subject"].startswith("Your sign-in details")
               and link in text_of(m)]
    given = None
    if details:
        given = re.search(r"^Password:\s+(\S+)$", text_of(details[-1]), re.MULTILINE).group(1)
    return links[-1], given


def count_screens(page: Page) -> list[str]:
    """The addresses of the pages the top frame shows from now on, in order."""
    screens: list[str] = []
    page.on("framenavigated",
            lambda frame: screens.append(frame.url) if frame == page.main_frame else None)
    return screens


def expect_message(page: Page, live_server: str, message: Message) -> None:
    expect(page.get_by_role("heading", name=message.subject, level=1)).to_be_visible()
    expect(page).to_have_url(f"{live_server}/inbox/{message.public_id}")


@pytest.mark.parametrize(("width", "scheme"), [(1280, "light"), (360, "light"), (1280, "dark"),
                                               (360, "dark")],
                         ids=["desktop", "phone", "desktop-dark", "phone-dark"])
def test_first_contact_is_three_screens(live_server, page, gateway, outbox, screenshot,
                                        width, scheme):
    page.set_viewport_size({"width": width, "height": 800})
    page.emulate_media(color_scheme=scheme)
    message = gateway("Contract draft")
    link, given = notified(outbox, message)
    assert link.startswith(live_server) and given
    screens = count_screens(page)

    page.goto(link)
    expect(page.get_by_role("heading", name="Sign in to Acme Corp")).to_be_visible()
    screenshot(page, "1-sign-in")
    sign_in(page, PAT, given)

    expect(page.get_by_role("heading", name="Choose your own password")).to_be_visible()
    expect(page.locator("main")).to_contain_text(f"For {PAT}.")
    expect(page.get_by_label("Current password")).to_have_count(0)  # just proven
    new = page.get_by_label("New password", exact=True)
    expect(new).to_be_focused()
    screenshot(page, "2-new-password")
    new.fill(NEW_PASSWORD)
    page.get_by_label("Repeat the new password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Save and continue").click()

    expect_message(page, live_server, message)
    expect(page.get_by_role("status")).to_have_text(CHANGED)
    expect(page.locator(".message-text")).to_contain_text("The terms, page 1.")
    screenshot(page, "3-message")
    assert [urlpath(s) for s in screens] == [
        "/t/acme/sign-in", "/password/change", f"/inbox/{message.public_id}"], screens
    db.session.expire_all()
    pat = db.session.scalar(select(User).where(User.email == PAT))
    assert not pat.must_change_password


def urlpath(url: str) -> str:
    return re.sub(r"^https?://[^/]+|\?.*$", "", url)


@pytest.fixture
def returning(app, gateway, outbox):
    """Pat, who chose his password at the first message; ``returning`` sends another."""
    gateway("First contact")
    outbox()
    pat = db.session.scalar(select(User).where(User.email == PAT))
    accounts.set_password(pat, PASSWORD)
    db.session.commit()
    return gateway


def test_a_returning_recipient_is_two_screens(live_server, page, returning, outbox,
                                              screenshot):
    message = returning("Second thoughts")
    link, given = notified(outbox, message)
    assert given is None, "no new sign-in details for a known recipient"
    screens = count_screens(page)
    page.goto(link)
    expect(page.get_by_role("heading", name="Sign in to Acme Corp")).to_be_visible()
    screenshot(page, "1-sign-in")
    sign_in(page, PAT, PASSWORD)
    expect_message(page, live_server, message)
    screenshot(page, "2-message")
    assert [urlpath(s) for s in screens] == ["/t/acme/sign-in", f"/inbox/{message.public_id}"]

    # Still signed in, the next link is one screen: the message.
    later = returning("Third thoughts")
    link, _ = notified(outbox, later)
    screens.clear()
    page.goto(link)
    expect_message(page, live_server, later)
    assert [urlpath(s) for s in screens] == [f"/inbox/{later.public_id}"]


def test_with_a_second_factor_the_code_comes_between(live_server, page, returning, outbox,
                                                     screenshot):
    pat = db.session.scalar(select(User).where(User.email == PAT))
    secret = second_factor.new_secret()
    second_factor.enrol(pat, secret, pyotp.TOTP(secret).at(datetime.now(UTC)))
    pat.totp_last_step = None
    db.session.commit()
    message = returning("Under lock")
    link, _ = notified(outbox, message)
    screens = count_screens(page)
    page.goto(link)
    sign_in(page, PAT, PASSWORD)
    expect(page.get_by_label("Code")).to_be_visible()
    screenshot(page, "code")
    page.get_by_label("Code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Continue").click()
    expect_message(page, live_server, message)
    assert [urlpath(s) for s in screens] == [
        "/t/acme/sign-in", "/sign-in/code", f"/inbox/{message.public_id}"]


@pytest.mark.parametrize(("width", "scheme"), [(1280, "light"), (360, "dark")],
                         ids=["desktop", "phone-dark"])
def test_a_withdrawn_message_s_link_says_so_after_sign_in(
        live_server, page, returning, outbox, screenshot, console_errors, width, scheme):
    page.set_viewport_size({"width": width, "height": 800})
    page.emulate_media(color_scheme=scheme)
    message = returning("Sent in error")
    link, _ = notified(outbox, message)
    copy = db.session.scalar(select(Recipient).where(Recipient.message_id == message.id))
    assert isolation.revoke(copy, by=ALICE)
    db.session.commit()

    console_errors.allow(r"status of 410")
    page.goto(link)
    expect(page.get_by_role("heading", name="Sign in to Acme Corp")).to_be_visible()
    sign_in(page, PAT, PASSWORD)
    expect(page.get_by_role("heading", name="This message was withdrawn by the sender")
           ).to_be_visible()
    expect(page).to_have_url(f"{live_server}/inbox/{message.public_id}")
    expect(page.locator("main")).not_to_contain_text("The terms, page 1.")
    screenshot(page, "withdrawn")


def test_someone_else_s_link_is_not_found_after_sign_in(live_server, page, returning, outbox,
                                                        make_user, console_errors,
                                                        screenshot):
    """Sam, at Acme too, opens Pat's link: the same "not found" as a message never sent."""
    message = returning("For Pat only")
    link, _ = notified(outbox, message)
    sam = make_user(message.tenant, "sam@partner.test")
    console_errors.allow(r"status of 404")
    page.goto(link)
    sign_in(page, sam.email, PASSWORD)
    expect(page).to_have_url(f"{live_server}/inbox/{message.public_id}")
    theirs = page.locator("main").inner_text()
    assert "For Pat only" not in theirs
    screenshot(page, "not-found")
    page.goto(f"{live_server}/t/acme/messages/never-sent-AAAAAAAAAAAAAAA")
    expect(page).to_have_url(f"{live_server}/inbox/never-sent-AAAAAAAAAAAAAAA")
    assert page.locator("main").inner_text() == theirs


def test_signed_in_elsewhere_the_link_asks_to_sign_in_here(
        live_server, page, returning, outbox, make_tenant, make_user, screenshot):
    """Pat has an account at Globex too and is signed in there: Acme's link asks him to
    sign in to Acme, whatever the message, and then opens it."""
    globex = make_tenant("globex", domains=["globex.test"])
    make_user(globex, PAT)
    message = returning("From Acme")
    link, _ = notified(outbox, message)
    page.set_viewport_size({"width": 360, "height": 800})
    page.emulate_media(color_scheme="dark")
    page.goto(f"{live_server}/t/globex/sign-in")
    sign_in(page, PAT, PASSWORD)
    expect(page.get_by_role("heading", name="Secure messages")).to_be_visible()
    page.goto(link)
    expect(page.get_by_role("heading", name="Sign in to Acme Corp")).to_be_visible()
    expect(page.get_by_text("You are signed in to Globex Corp.")).to_be_visible()
    screenshot(page, "sign-in-here")
    sign_in(page, PAT, PASSWORD)
    expect_message(page, live_server, message)
