"""Passkeys in Chromium, with its virtual authenticator (DevTools' WebAuthn domain): a
platform authenticator that keeps discoverable credentials and verifies its user.

WebAuthn takes no IP address as relying party, so the portal is opened as
http://localhost (a secure context, like HTTPS) and CCM_BASE_URL says so too.

The virtual authenticator answers at once, even the browser's quiet offer in the email
field (conditional mediation), as if the person had picked the passkey there. So that
the button is what signs in, the tests hide that offer from the page, except the one
test of the offer itself.
"""

from __future__ import annotations

import re

import pytest
from flows import overflow, sign_in
from playwright.sync_api import Page, expect
from support import mail

from app.domain import ingest, passkeys
from app.extensions import db
from app.models import AccessEvent, Passkey, User

PHONE = {"width": 360, "height": 740}


@pytest.fixture
def portal(app, live_server) -> str:
    """The live server as http://localhost:PORT, its CCM_BASE_URL the same."""
    base = live_server.replace("127.0.0.1", "localhost")
    app.config["BASE_URL"] = base
    return base


@pytest.fixture
def world(make_tenant, make_user):
    acme = make_tenant("acme", domains=["acme.test"])
    globex = make_tenant("globex", domains=["globex.test"])
    make_user(acme, "pat@partner.test")
    make_user(globex, "pat@partner.test")
    return acme, globex


NO_OFFER = """PublicKeyCredential.isConditionalMediationAvailable =
  () => Promise.resolve(false);"""


def authenticator(page: Page, offer: bool = False) -> tuple:
    """A virtual platform authenticator for this page: (DevTools session, its id)."""
    if not offer:
        page.add_init_script(NO_OFFER)
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    added = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True,
        "automaticPresenceSimulation": True}})
    return cdp, added["authenticatorId"]


def add_passkey(page: Page, name: str) -> None:
    page.get_by_label("Name for the new passkey").fill(name)
    page.get_by_role("button", name="Add a passkey").click()


def add_phone_passkey(page: Page, portal: str) -> None:
    """Pat signs in at Acme's portal by password and adds a passkey named Phone."""
    page.goto(f"{portal}/t/acme/sign-in")
    sign_in(page, "pat@partner.test")
    expect(page.get_by_role("heading", name="Secure messages")).to_be_visible()
    page.goto(f"{portal}/account/passkeys")
    add_passkey(page, "Phone")
    expect(page.get_by_text("Your passkey “Phone” is ready.")).to_be_visible()


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You have signed out.")).to_be_visible()


def sign_in_by_passkey(page: Page) -> None:
    page.get_by_role("button", name="Sign in with a passkey").click()


def pictures(page: Page, label: str, screenshot) -> None:
    """At 1280 px, at 360 px (which must fit), and at 360 px in the dark scheme."""
    screenshot(page, f"{label}-1280")
    page.set_viewport_size(PHONE)
    assert overflow(page) is None, overflow(page)
    screenshot(page, f"{label}-360")
    page.emulate_media(color_scheme="dark")
    screenshot(page, f"{label}-360-dark")
    page.emulate_media(color_scheme="light")
    page.set_viewport_size({"width": 1280, "height": 800})


def test_register_sign_out_and_sign_in_by_passkey(app, portal, page, world, screenshot):
    cdp, authenticator_id = authenticator(page)
    page.goto(f"{portal}/t/acme/sign-in")
    sign_in(page, "pat@partner.test")
    page.get_by_role("link", name="Security").click()
    expect(page.get_by_role("heading", name="Passkeys")).to_be_visible()
    expect(page.get_by_text("You have no passkey yet.")).to_be_visible()

    # Without a name, nothing is asked of the authenticator.
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.get_by_text("Give the passkey a name.")).to_be_visible()
    add_passkey(page, "Work laptop")
    expect(page.get_by_text("Your passkey “Work laptop” is ready.")).to_be_visible()
    expect(page.locator("p.passkey-name")).to_have_text("Work laptop")
    expect(page.get_by_text("not used yet")).to_be_visible()
    assert len(cdp.send("WebAuthn.getCredentials",
                        {"authenticatorId": authenticator_id})["credentials"]) == 1
    pictures(page, "passkeys", screenshot)

    sign_out(page)
    expect(page.get_by_role("button", name="Sign in with a passkey")).to_be_visible()
    expect(page.get_by_label("Email address")).to_have_attribute("autocomplete",
                                                                 "username webauthn")
    pictures(page, "sign-in", screenshot)
    sign_in_by_passkey(page)
    expect(page.get_by_role("heading", name="Secure messages")).to_be_visible()
    expect(page).to_have_url(f"{portal}/inbox/")

    page.goto(f"{portal}/account/passkeys")
    expect(page.get_by_text("last used")).to_be_visible()
    db.session.expire_all()
    events = db.session.scalars(db.select(AccessEvent.kind).order_by(AccessEvent.id)).all()
    assert events == ["sign_in", "passkey_added", "sign_in"]

    # Removed, it signs in no more.
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Remove Work laptop").click()
    expect(page.get_by_text("Passkey “Work laptop” removed.")).to_be_visible()
    sign_out(page)
    sign_in_by_passkey(page)
    expect(page.get_by_text("This passkey is not known here")).to_be_visible()


def test_another_tenants_passkey_and_a_copied_one_are_refused(app, portal, page, world,
                                                              screenshot):
    authenticator(page)
    add_phone_passkey(page, portal)
    sign_out(page)

    # Globex's portal: the browser offers the passkey it has, Acme's, and Globex refuses it.
    page.goto(f"{portal}/t/globex/sign-in")
    sign_in_by_passkey(page)
    expect(page.get_by_text("This passkey belongs to another organisation's portal.")) \
        .to_be_visible()
    expect(page).to_have_url(f"{portal}/t/globex/sign-in")
    screenshot(page, "other-tenant")

    # A copy of the key used elsewhere meanwhile: the server has seen a higher count.
    db.session.expire_all()
    stored = db.session.scalar(db.select(Passkey))
    stored.sign_count += 100
    db.session.commit()
    page.goto(f"{portal}/t/acme/sign-in")
    sign_in_by_passkey(page)
    expect(page.get_by_text("its use counter went backwards")).to_be_visible()
    expect(page).to_have_url(f"{portal}/t/acme/sign-in")
    db.session.expire_all()
    assert db.session.scalar(db.select(AccessEvent.detail).filter_by(kind="sign_in_failed")) \
        == "passkey refused"


def test_a_tenant_that_requires_passkeys_enrols_then_refuses_the_password_alone(
        app, portal, page, world, screenshot):
    acme, _ = world
    acme.passkeys_external = passkeys.REQUIRED
    db.session.commit()
    authenticator(page)
    page.goto(f"{portal}/t/acme/sign-in?next=/account/activity")
    sign_in(page, "pat@partner.test")
    expect(page.get_by_text("Acme Corp asks you to add a passkey before you continue."))\
        .to_be_visible()
    page.goto(f"{portal}/inbox/")  # nothing else is reachable meanwhile
    expect(page.get_by_text("Acme Corp asks you to add a passkey")).to_be_visible()
    pictures(page, "required", screenshot)
    add_passkey(page, "Phone")
    expect(page.get_by_role("heading", name="Secure messages")).to_be_visible()
    sign_out(page)

    sign_in(page, "pat@partner.test")
    expect(page.get_by_text("Your organisation asks you to sign in with your passkey")) \
        .to_be_visible()
    screenshot(page, "password-refused")
    sign_in_by_passkey(page)
    expect(page.get_by_role("heading", name="Secure messages")).to_be_visible()


def test_the_browser_offers_the_passkey_in_the_email_field(app, portal, page, world):
    authenticator(page, offer=True)
    add_phone_passkey(page, portal)
    page.context.clear_cookies()
    # the authenticator takes the offer as soon as the page makes it
    page.goto(f"{portal}/t/acme/sign-in?next=/account/activity")
    expect(page.get_by_role("heading", name="Recent sign-ins")).to_be_visible()


def test_first_contact_by_passkey_has_no_password_at_all(app, portal, page, make_tenant,
                                                        make_ccm_sender, outbox, screenshot,
                                                        console_errors):
    """The activation link of a first message leads to creating a passkey, then to it."""
    console_errors.allow(r"status of 404 .*/password/reset/")  # the used link, at the end
    acme = make_tenant("acme", domains=["acme.test"], first_contact="activation_link",
                       passkey_first_contact=True)
    make_ccm_sender(acme, "alice@acme.test")
    message = ingest.receive(mail(subject="Contract").replace("\n", "\r\n").encode(),
                             "alice@acme.test", ["pat@partner.test"], mode="all")
    db.session.commit()
    links = [found for m in outbox() if m["To"] == "pat@partner.test"
             for found in re.findall(r"https?://\S+/password/reset/\S+",
                                     m.get_body(preferencelist=("plain",)).get_content())]
    assert links
    authenticator(page)
    page.goto(links[0])
    expect(page.get_by_role("heading", name="Open your secure message")).to_be_visible()
    pictures(page, "first-contact", screenshot)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_text("Acme Corp asks you to add a passkey")).to_be_visible()
    add_passkey(page, "Phone")
    expect(page.get_by_role("heading", name="Contract")).to_be_visible()
    assert message.public_id in page.url
    db.session.expire_all()
    pat = db.session.scalar(db.select(User).filter_by(email="pat@partner.test"))
    assert pat.password_hash is None and len(pat.passkeys) == 1

    # the link is used up; the passkey is the way back in
    sign_out(page)
    page.goto(links[0])
    expect(page.get_by_role("heading", name="Open your secure message")).to_have_count(0)
    page.goto(f"{portal}/t/acme/sign-in")
    sign_in_by_passkey(page)
    expect(page.get_by_role("heading", name="Secure messages")).to_be_visible()


def test_the_administrator_sets_the_policy_and_removes_a_lost_passkey(
        app, portal, page, world, make_user, screenshot):
    acme, _ = world
    make_user(acme, "admin@acme.test", role="admin")
    pat = db.session.scalar(db.select(User).filter_by(email="pat@partner.test",
                                                      tenant_id=acme.id))
    db.session.add(Passkey(user=pat, tenant_id=acme.id, credential_id=b"lost", user_handle=b"h",
                           public_key=b"k", name="Phone left on the train"))
    db.session.commit()
    page.goto(f"{portal}/t/acme/sign-in")
    sign_in(page, "admin@acme.test")
    expect(page.get_by_role("heading", name="Secure messages")).to_be_visible()

    page.goto(f"{portal}/admin/settings")
    page.get_by_label("Passkeys for external recipients").select_option("required")
    page.get_by_label("First contact by passkey").check()
    page.get_by_role("button", name="Save passkey settings").click()
    expect(page.get_by_text("Passkey settings saved.")).to_be_visible()
    expect(page.get_by_label("Passkeys for external recipients")).to_have_value("required")
    pictures(page, "admin-settings", screenshot)
    section = page.locator("section[aria-labelledby=passkey-policy-title]")
    for width, scheme in ((1280, "light"), (360, "dark")):
        page.set_viewport_size({**PHONE, "width": width})
        page.emulate_media(color_scheme=scheme)
        section.screenshot(path=str(screenshot(page, f"admin-settings-{width}-{scheme}")
                                    .with_suffix(".section.png")))
    page.emulate_media(color_scheme="light")
    page.set_viewport_size({"width": 1280, "height": 800})

    page.goto(f"{portal}/admin/people/{pat.id}")
    expect(page.get_by_text("Phone left on the train")).to_be_visible()
    pictures(page, "admin-person", screenshot)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Remove all passkeys").click()
    expect(page.get_by_text("pat@partner.test's passkeys are removed.")).to_be_visible()
    expect(page.get_by_text("No passkeys.")).to_be_visible()
    db.session.expire_all()
    assert db.session.scalar(db.select(Passkey)) is None
