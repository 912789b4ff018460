"""Steps the browser tests share: signing in, and arriving in the inbox."""

from __future__ import annotations

from playwright.sync_api import Page, expect
from support import PASSWORD


def sign_in(page: Page, email: str, password: str = PASSWORD) -> None:
    """Fill and send the sign-in form of the page the browser is on."""
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()


def sign_in_at(page: Page, base_url: str, email: str, password: str = PASSWORD,
               slug: str = "acme") -> None:
    """Open the tenant's sign-in page and sign in there."""
    page.goto(f"{base_url}/t/{slug}/sign-in")
    sign_in(page, email, password)


def expect_inbox(page: Page, base_url: str) -> None:
    expect(page.get_by_role("heading", name="Secure messages")).to_be_visible()
    expect(page).to_have_url(f"{base_url}/inbox/")
