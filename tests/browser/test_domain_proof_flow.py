"""Domain verification in Settings, in Chromium: add a domain, see the TXT record to
publish, check it against a real DNS server on loopback; at 1280 and 360 px, light and
dark."""

from __future__ import annotations

import pytest
from axe import check_accessibility, summary
from flows import overflow, sign_in_at
from playwright.sync_api import Page, expect
from servers import DnsServer

from app.extensions import db
from app.models import Domain

ADMIN = "admin@acme.test"


@pytest.fixture
def acme(live_server, make_tenant, make_user):
    tenant = make_tenant("acme", domains=["acme.test"])
    make_user(tenant, ADMIN, role="admin")
    return tenant


@pytest.fixture
def dns_server(app):
    with DnsServer() as server:
        app.config["DNS_SERVERS"] = server.address
        yield server


def add_domain(page: Page, base_url: str, name: str) -> None:
    page.goto(f"{base_url}/admin/settings")
    domains = page.get_by_label("Internal domains")
    domains.fill(domains.input_value() + "\n" + name)
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Settings saved.")).to_be_visible()


@pytest.mark.parametrize(("width", "scheme"), [(1280, "light"), (360, "light"),
                                               (360, "dark"), (1280, "dark")])
def test_a_pending_domain_shows_its_record_and_is_proven_with_check_now(
        live_server, page, acme, dns_server, screenshot, width, scheme):
    page.emulate_media(color_scheme=scheme)
    page.set_viewport_size({"width": width, "height": 800})
    sign_in_at(page, live_server, ADMIN)
    expect(page.get_by_role("navigation", name="Account")).to_contain_text(ADMIN)
    add_domain(page, live_server, "acme-mail-for-a-long-subsidiary-name.example")
    proof = page.locator("section", has=page.get_by_role("heading",
                                                         name="Domain verification"))
    expect(proof).to_contain_text("_ccm-challenge.acme-mail-for-a-long-subsidiary-name.example")
    expect(proof).to_contain_text("pending")
    assert overflow(page) is None, overflow(page)
    violations = check_accessibility(page)
    assert not violations, summary(violations)
    proof.scroll_into_view_if_needed()
    path = screenshot(page, f"{width}-{scheme}")
    proof.screenshot(path=str(path.with_name(path.stem + "-section.png")))  # to look at

    page.get_by_role("button", name="Check now").click()
    expect(page.get_by_text("No TXT record ccm-verification=")).to_be_visible()
    db.session.expire_all()
    token = db.session.scalar(db.select(Domain.proof_token).where(Domain.proof_token.is_not(None)))
    dns_server.add_txt("_ccm-challenge.acme-mail-for-a-long-subsidiary-name.example",
                       f"ccm-verification={token}")
    page.get_by_role("button", name="Check now").click()
    expect(page.get_by_text("acme-mail-for-a-long-subsidiary-name.example is verified."))\
        .to_be_visible()
    expect(page.get_by_role("heading", name="Domain verification")).to_have_count(0)


@pytest.mark.parametrize(("width", "scheme"), [(1280, "light"), (360, "dark")])
def test_a_new_dkim_key_waits_for_its_record_then_signs(
        live_server, page, acme, dns_server, screenshot, width, scheme):
    """The DKIM panel: the key in use, a new one waiting with its record and Check DNS
    now; found in DNS, it signs."""
    from app.delivery import dkim_signing
    from app.models import Tenant

    acme.mail_from = "notifications@acme.test"
    dkim_signing.generate(acme)
    dkim_signing.activate(acme, "acme.test")
    db.session.commit()
    page.emulate_media(color_scheme=scheme)
    page.set_viewport_size({"width": width, "height": 800})
    sign_in_at(page, live_server, ADMIN)
    expect(page.get_by_role("navigation", name="Account")).to_contain_text(ADMIN)
    page.goto(f"{live_server}/admin/settings")
    page.once("dialog", lambda dialog: dialog.accept())  # no confirmation: none waits
    page.get_by_role("button", name="Generate a new key").click()
    expect(page.get_by_text("CCM starts signing with it once it sees the record")) \
        .to_be_visible()
    panel = page.locator("section", has=page.get_by_role(
        "heading", name="DKIM signing of notifications"))
    expect(panel).to_contain_text("New key, waiting for its DNS record")
    expect(panel).to_contain_text("Until then the key above signs")
    assert overflow(page) is None, overflow(page)
    panel.scroll_into_view_if_needed()
    path = screenshot(page, f"{width}-{scheme}")
    panel.screenshot(path=str(path.with_name(path.stem + "-dkim.png")))  # to look at

    db.session.expire_all()
    tenant = db.session.get(Tenant, acme.id)
    dns_server.add_txt(*dkim_signing.dns_record(tenant, "acme.test", waiting=True))
    page.get_by_role("button", name="Check DNS now").click()
    expect(page.get_by_text("notifications are signed with selector")).to_be_visible()
    expect(panel).not_to_contain_text("New key, waiting")
