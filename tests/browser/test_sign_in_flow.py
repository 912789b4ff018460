"""Signing in, the forced first password change and the forgotten-password link, in Chromium."""

from __future__ import annotations

import re

import pytest
from flows import expect_inbox, sign_in
from playwright.sync_api import expect

from app.domain import passwords
from app.domain.accounts import set_generated_password
from app.extensions import db
from app.web.auth.routes import SIGN_IN_REFUSED

EMAIL = "ann@example.org"
OLD_PASSWORD = "correct horse battery staple"  # make_user's default
NEW_PASSWORD = "plum orbit lantern meadow"


@pytest.fixture
def generated_user(make_tenant, make_user):
    """A user of tenant "acme" whose password was generated: (user, that password)."""
    user = make_user(make_tenant(), EMAIL, password=None)
    password = set_generated_password(user)
    db.session.commit()
    return user, password


def test_first_sign_in_forces_a_password_change(live_server, page, generated_user, screenshot):
    user, generated = generated_user
    page.goto(f"{live_server}/t/acme/sign-in")
    expect(page.get_by_role("heading", name="Sign in to Acme Corp")).to_be_visible()
    sign_in(page, EMAIL, generated)

    change_url = f"{live_server}/password/change"
    expect(page.get_by_role("heading", name="Choose your own password")).to_be_visible()
    expect(page).to_have_url(change_url)
    screenshot(page, "change-page")

    # Nothing else is reachable until the password is changed.
    page.goto(f"{live_server}/inbox/")
    expect(page).to_have_url(change_url)
    expect(page.get_by_role("heading", name="Choose your own password")).to_be_visible()
    expect(page.get_by_role("link", name="Change password")).to_have_count(0)

    # The password just used to sign in is not asked for again.
    expect(page.get_by_label("Current password")).to_have_count(0)
    expect(page.get_by_label("New password", exact=True)).to_be_focused()

    # Too short: refused inline, on the field, without leaving the page.
    page.get_by_label("New password", exact=True).fill("too short")
    page.get_by_label("Repeat the new password").fill("too short")
    page.get_by_role("button", name="Save and continue").click()
    new_field = page.get_by_label("New password", exact=True)
    expect(page.locator("#new-error")).to_have_text("Use at least 12 characters.")
    expect(new_field).to_have_attribute("aria-invalid", "true")
    expect(new_field).to_have_attribute("aria-describedby", "new-hint new-error")
    expect(page).to_have_url(change_url)
    screenshot(page, "too-short")

    # Password fields come back empty.
    new_field.fill(NEW_PASSWORD)
    page.get_by_label("Repeat the new password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Save and continue").click()
    expect_inbox(page, live_server)
    expect(page.get_by_role("navigation", name="Account")).to_contain_text(EMAIL)
    expect(page.get_by_role("link", name="Change password")).to_be_visible()
    screenshot(page, "inbox")

    db.session.expire_all()
    assert not user.must_change_password
    assert passwords.verify_password(user.password_hash, NEW_PASSWORD)

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{live_server}/t/acme/sign-in")
    expect(page.get_by_role("status")).to_have_text("You have signed out.")

    # The session is over: the inbox asks to sign in, and afterwards leads back to it.
    page.goto(f"{live_server}/inbox/")
    expect(page).to_have_url(re.compile(r"/sign-in\?next="))
    sign_in(page, EMAIL, NEW_PASSWORD)
    expect(page.get_by_role("heading", name="Secure messages")).to_be_visible()
    expect(page).to_have_url(f"{live_server}/inbox/")


def test_sign_in_returns_to_the_page_asked_for(live_server, page, make_tenant, make_user):
    make_user(make_tenant(), EMAIL)
    page.goto(f"{live_server}/inbox/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    sign_in(page, EMAIL, OLD_PASSWORD)
    expect_inbox(page, live_server)


def test_the_forced_change_is_confirmed_on_the_inbox(live_server, page, generated_user):
    _user, generated = generated_user
    page.goto(f"{live_server}/t/acme/sign-in")
    sign_in(page, EMAIL, generated)
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Repeat the new password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Save and continue").click()
    expect_inbox(page, live_server)
    expect(page.get_by_role("status")).to_have_text(
        "Your password has been changed. Other devices have been signed out.", timeout=2_000
    )


def test_forgotten_password(
    live_server, page, make_tenant, make_user, outbox, screenshot, console_errors
):
    user = make_user(make_tenant(), EMAIL)
    page.goto(f"{live_server}/t/acme/sign-in")
    page.get_by_role("link", name="I have forgotten my password").click()
    expect(page.get_by_role("heading", name="Forgotten password")).to_be_visible()
    expect(page).to_have_url(f"{live_server}/t/acme/password/forgot")
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_role("button", name="Email me a link").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text(EMAIL)
    screenshot(page, "check-your-email")

    messages = outbox()
    assert len(messages) == 1
    message = messages[0]
    assert message["To"] == EMAIL
    text = message.get_body(preferencelist=("plain",)).get_content()
    found = re.search(r"https?://\S+/password/reset/\S+", text)
    assert found, text
    link = found.group(0)
    assert link.startswith(f"{live_server}/password/reset/")

    page.goto(link)
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    expect(page.locator("main")).to_contain_text(f"For {EMAIL} at Acme Corp.")
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Repeat the new password").fill(NEW_PASSWORD)
    screenshot(page, "reset-page")
    page.get_by_role("button", name="Save new password").click()

    expect(page).to_have_url(f"{live_server}/t/acme/sign-in")
    expect(page.get_by_role("status")).to_have_text("Your new password is set. Sign in with it.")
    screenshot(page, "new-password-set")
    db.session.expire_all()
    assert not passwords.verify_password(user.password_hash, OLD_PASSWORD)

    sign_in(page, EMAIL, NEW_PASSWORD)
    expect_inbox(page, live_server)

    # The link works once. Its page answers 404, which Chromium logs on the console.
    console_errors.allow(r"status of 404")
    response = page.goto(link)
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="This link no longer works")).to_be_visible()
    screenshot(page, "link-used")


def test_wrong_password_is_refused_inline(live_server, page, make_tenant, make_user, screenshot):
    make_user(make_tenant(), EMAIL)
    page.goto(f"{live_server}/t/acme/sign-in")
    # A marker that a full page load would wipe out: the refusal must be an htmx swap.
    page.evaluate("window.ccmMarker = 'still here'")

    sign_in(page, EMAIL, "not my password at all")
    expect(page.get_by_role("alert")).to_have_text(SIGN_IN_REFUSED)
    assert page.evaluate("window.ccmMarker") == "still here"
    expect(page).to_have_url(f"{live_server}/t/acme/sign-in")
    expect(page.get_by_label("Email address")).to_have_value(EMAIL)
    password = page.get_by_label("Password", exact=True)
    expect(password).to_have_value("")
    expect(password).to_be_focused()
    screenshot(page, "refused")

    # The swapped-in form works: the right password now signs in.
    password.fill(OLD_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect_inbox(page, live_server)


def test_a_next_that_a_browser_reads_as_another_site_leads_to_the_inbox(
        live_server, page, make_tenant, make_user):
    """Chromium drops the tab of ``/%09/evil.example/x`` and would go to //evil.example."""
    make_user(make_tenant(), EMAIL)
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{live_server}/t/acme/sign-in?next=/%09/evil.example/x")
    sign_in(page, EMAIL, OLD_PASSWORD)
    expect_inbox(page, live_server)
    assert not [url for url in requested if "evil.example" in url.split("?")[0]]
