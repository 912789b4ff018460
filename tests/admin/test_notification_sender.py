"""The settings page: the notification sender address, and the audit log's account of
every setting a save changed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from support import post_form

from app.delivery import dkim_signing
from app.extensions import db
from app.models import AuditEvent, Tenant, User
from app.web.admin import settings as settings_view

FORM = {"name": "Acme Corp", "portal_name": "", "domains": "acme.test", "internal_relay": "",
        "visibility_days": "30", "expiry_warning_days": "3", "first_contact": "password",
        "activation_hours": "72", "second_factor_external": "optional",
        "second_factor_internal": "optional", "mail_from": ""}


def save(client, **changes):
    return post_form(client, "/admin/settings", {**FORM, **changes})


def saved_detail() -> str:
    return db.session.query(AuditEvent).filter_by(action="settings saved") \
        .order_by(AuditEvent.id.desc()).first().detail


@pytest.mark.parametrize(("address", "error"), [
    ("notifications@globex.test",
     "notifications@globex.test is not at one of your domains (acme.test). Use an address "
     "such as notifications@acme.test, or leave this empty for the gateway&#39;s own."),
    ("notifications@mail.acme.test", "is not at one of your domains (acme.test)"),
    ("notifications<@acme.test", "notifications&lt;@acme.test cannot be a sender address: "
                                 "before the @, use letters"),
    ("no tifications@acme.test", "Enter an email address."),
    ("notifications@acme", "notifications@acme cannot be a sender address: acme is not a "
                           "domain name. Use one such as notifications@acme.test."),
    ("notifications", "Enter an email address."),
    # a malformed From (unsigned, while the DKIM panel said signed)
    ("x@evil.example@acme.test", "Enter an email address."),
    ('"x@evil.example"@acme.test', "Enter an email address."),
    ('"x"@acme.test', "cannot be a sender address"),
    # old relays read these as routes to another host
    ("x%evil.example@acme.test", "(no spaces, quotes, % or !)"),
    ("evil.example!x@acme.test", "(no spaces, quotes, % or !)"),
    # the worker could not encode the From line: every notification failed
    ("ü@acme.test", "ü@acme.test cannot be a sender address: use only ASCII"),
    ("x\u202egnp.exe@acme.test", "xU+202Egnp.exe@acme.test cannot be a sender address"),
    ("x\x1b@acme.test", "Use one line of text, without line breaks or control"),
    ("x..y@acme.test", "dots (not first, last or two together)"),
    (".x@acme.test", "dots (not first, last or two together)"),
])
def test_a_sender_address_must_be_at_one_of_the_tenants_domains(as_admin, acme, address,
                                                                error):
    response = save(as_admin, mail_from=address)
    assert response.status_code == 200
    assert error in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Tenant, acme.id).mail_from is None


@pytest.mark.parametrize("address", ["x\x00@acme.test", "x\x00y@acme.test"])
def test_a_nul_in_the_sender_address_is_refused_before_any_check(as_admin, acme, address):
    assert save(as_admin, mail_from=address).status_code == 400
    db.session.expire_all()
    assert db.session.get(Tenant, acme.id).mail_from is None


@pytest.mark.parametrize("field", ["name", "portal_name"])
@pytest.mark.parametrize(("name", "shown"), [
    ("Bank <security@bank.example>", "&lt; &gt; @"), ("security@bank.example", "@"),
    ('Bank "Security"', "&#34;"), ("Acme\u202eknaB", "U+202E"), ("Acme\u2066", "U+2066"),
    ("Acme\x1b[2J", "Use one line of text"), ("Acme\tCorp", "U+0009"),
])
def test_a_name_notifications_would_show_as_their_sender_is_checked(as_admin, acme, field,
                                                                     name, shown):
    response = save(as_admin, **{field: name})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "cannot hold" in page or "Use one line of text" in page
    assert shown in page
    db.session.expire_all()
    tenant = db.session.get(Tenant, acme.id)
    assert (tenant.name, tenant.portal_name) == ("Acme Corp", None)


def test_a_platform_administrator_cannot_name_a_tenant_as_another_sender(as_admin, acme):
    from app.models import User

    db.session.query(User).filter_by(email="admin@acme.test").one().is_platform_admin = True
    db.session.commit()
    response = post_form(as_admin, "/admin/tenants/new", {
        "name": "Bank <security@bank.example>", "slug": "bank", "domains": "bank.test",
        "admin_email": "boss@bank.test"})
    assert "cannot hold &lt; &gt; @." in response.get_data(as_text=True)
    assert db.session.query(Tenant).filter_by(slug="bank").count() == 0


def test_the_import_refuses_a_name_that_would_fake_the_sender(app):
    from app.domain import config_checks, config_file

    with pytest.raises(config_checks.ConfigFileError, match="cannot hold < > @"):
        config_file.import_text("tenants:\n  - slug: bank\n"
                                "    name: 'Bank <security@bank.example>'\n"
                                "    domains: [bank.test]\n")


def test_a_sender_address_at_a_domain_added_in_the_same_save_is_taken(as_admin, acme):
    # from the platform administrator, whose domains need no DNS proof (a tenant
    # administrator's wait for it: tests/admin/test_domain_proof.py)
    admin = db.session.scalar(db.select(User).filter_by(email="admin@acme.test"))
    admin.is_platform_admin = True
    db.session.commit()
    response = save(as_admin, domains="acme.test\nacme.example",
                    mail_from="Notifications@ACME.example")
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Tenant, acme.id).mail_from == "notifications@acme.example"
    page = as_admin.get("/admin/settings").get_data(as_text=True)
    assert "Notification sender address" in page
    assert "Acme Corp &lt;notifications@acme.example&gt;" in page


def test_the_audit_log_names_every_changed_setting_old_and_new(as_admin, acme):
    save(as_admin)  # the form as the page shows it: saving it changes nothing
    assert saved_detail() == "no changes"
    save(as_admin, name="Acme Corporation", portal_name="Acme Secure", visibility_days="14",
         mail_from="notifications@acme.test", second_factor_external="required",
         domains="acme.test\nacme.example")
    assert saved_detail() == (
        "organisation name: Acme Corp → Acme Corporation; portal name: none → Acme Secure; "
        "internal domains: acme.test → acme.example (pending DNS proof), acme.test; "
        "visibility window (days): 30 → 14; second factor, external: optional → required; "
        "notification sender address: none → notifications@acme.test")
    save(as_admin, name="Acme Corporation", portal_name="Acme Secure", visibility_days="14",
         second_factor_external="required", domains="acme.test\nacme.example")
    assert saved_detail() == "notification sender address: notifications@acme.test → none"


def test_a_new_logo_is_logged_by_type_size_and_digest_not_its_bytes(as_admin, acme):
    from io import BytesIO

    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
    save(as_admin, logo=(BytesIO(png), "logo.png", "image/png"))
    assert saved_detail().startswith("logo: none → image/png, 72 bytes, sha256 ")


def test_secrets_in_a_setting_are_masked_in_the_audit_log():
    tenant = SimpleNamespace(
        name="Acme", portal_name=None, domains=[], visibility_days=30, expiry_warning_days=3,
        first_contact="password", activation_hours=72, second_factor_external="optional",
        second_factor_internal="optional", mail_from=None, logo_type=None, logo=None,
        internal_relay=None, internal_relay_trusted=False, time_zone="UTC",
        default_language="en")
    before = settings_view.snapshot(tenant)
    tenant.internal_relay = "smtp://relay:s3cret@relay.acme.test:25"
    detail = settings_view.changes(before, settings_view.snapshot(tenant))
    assert "s3cret" not in detail and detail.startswith("internal relay: none → smtp://")


def test_the_dkim_panel_says_when_notifications_go_unsigned(as_admin, acme, app):
    app.config["MAIL_FROM"] = "securemail@gateway.example"
    dkim_signing.generate(acme)
    dkim_signing.activate(acme, "acme.test")
    db.session.commit()
    page = as_admin.get("/admin/settings").get_data(as_text=True)
    assert "which is not at one of your domains, so they go unsigned" in page
    assert "to have them signed with your key." in page
    save(as_admin, mail_from="notifications@acme.test")
    page = as_admin.get("/admin/settings").get_data(as_text=True)
    assert "are signed with selector" in page and "._domainkey.acme.test" in page


def test_a_generated_key_waits_on_the_panel_until_check_dns_now_finds_it(
        as_admin, acme, app):
    from servers import DnsServer

    save(as_admin, mail_from="notifications@acme.test")
    response = post_form(as_admin, "/admin/settings/dkim", {}, form_path="/admin/settings",
                         follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "CCM starts signing with it once it sees the record" in page
    assert "New key, waiting for its DNS record" in page and "go unsigned." in page
    db.session.expire_all()
    tenant = db.session.get(Tenant, acme.id)
    name, value = dkim_signing.dns_record(tenant, "acme.test", waiting=True)
    assert f"<code>{name}</code>" in page
    assert as_admin.post("/admin/settings/dkim/check").status_code == 400  # no CSRF token
    with DnsServer() as dns:
        app.config["DNS_SERVERS"] = dns.address
        response = post_form(as_admin, "/admin/settings/dkim/check", {},
                             form_path="/admin/settings", follow_redirects=True)
        assert f"The record at {name} is not published yet." in response.get_data(as_text=True)
        dns.add_txt(name, value)
        response = post_form(as_admin, "/admin/settings/dkim/check", {},
                             form_path="/admin/settings", follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "notifications are signed with selector" in page
    assert "are signed with selector" in page and "New key, waiting" not in page
    db.session.expire_all()
    tenant = db.session.get(Tenant, acme.id)
    assert tenant.dkim_selector and tenant.dkim_next_selector is None
    actions = [e.action for e in db.session.scalars(db.select(AuditEvent))]
    assert actions[-3:] == ["DKIM key generated", "DKIM record check failed",
                            "DKIM key published"]


def test_the_settings_page_shows_the_sender_as_people_read_it(as_admin, acme):
    assert save(as_admin, portal_name="Müller, Söhne & Co.",
                mail_from="notifications@acme.test").status_code == 302
    page = as_admin.get("/admin/settings").get_data(as_text=True)
    assert "Müller, Söhne &amp; Co. &lt;notifications@acme.test&gt;" in page
    assert "=?utf-8?" not in page  # not the header's encoded words
