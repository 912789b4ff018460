"""The administrator console through real requests: every page, its guard, its effects."""

import re

import pytest
from support import PASSWORD, mail, post_form, read_outbox

from app.domain import ingest, passwords
from app.extensions import db
from app.models import AuditEvent, NotificationTemplate, Policy, Tenant, User

PAGES = ["/admin/", "/admin/policies", "/admin/policies/new", "/admin/policies/test",
         "/admin/people", "/admin/people/new", "/admin/profiles", "/admin/profiles/new",
         "/admin/templates", "/admin/templates/secure_message", "/admin/tracking",
         "/admin/settings", "/admin/audit"]


@pytest.fixture
def acme(acme, make_user):
    """tests/admin/conftest.py's, with an internal user."""
    make_user(acme, "alice@acme.test", role="internal")
    return acme


@pytest.mark.parametrize("path", PAGES)
def test_every_page_opens_for_an_administrator(as_admin, path):
    response = as_admin.get(path, follow_redirects=True)
    assert response.status_code == 200, path


@pytest.mark.parametrize("path", [*PAGES, "/admin/tenants"])
def test_everyone_else_gets_403(client, auth, acme, make_user, path):
    make_user(acme, "pat@partner.test")
    for email in ("alice@acme.test", "pat@partner.test"):
        auth.sign_in(email, slug="acme")
        assert client.get(path).status_code == 403, (email, path)
        auth.sign_out()


def test_signed_out_visitors_are_sent_to_sign_in(client, acme):
    assert client.get("/admin/policies").headers["Location"].startswith("/sign-in")


def test_tenants_are_for_platform_administrators_only(as_admin, acme):
    assert as_admin.get("/admin/tenants").status_code == 403
    admin = db.session.query(User).filter_by(email="admin@acme.test").one()
    admin.is_platform_admin = True
    db.session.commit()
    assert as_admin.get("/admin/tenants").status_code == 200


def save_policy(client, **fields):
    data = {"name": "Keyword", "kind": "content", "enabled": "y", "from_pattern": "",
            "to_pattern": "", "phrases": "confidential", "where": ["subject", "body"],
            "tls": "encrypt", "fallback": "ccm", "visibility_days": "", **fields}
    return post_form(client, "/admin/policies/new", data)


def test_creating_a_policy_changes_what_the_gateway_does(as_admin, acme):
    assert save_policy(as_admin).status_code == 302
    message = ingest.receive(mail(body="This is CONFIDENTIAL").replace("\n", "\r\n").encode(),
                             "alice@acme.test", ["pat@partner.test"])
    db.session.commit()
    assert message.recipients[0].route == "ccm"
    assert message.recipients[0].policy.name == "Keyword"
    entry = db.session.query(AuditEvent).one()
    assert (entry.actor, entry.action) == ("admin@acme.test", "policy created")


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"kind": "content", "phrases": ""}, "Expected a list of words or phrases."),
        ({"kind": "route", "to_pattern": "nobody"}, "Expected an address, *@domain"),
        ({"kind": "route", "visibility_days": "0"}, "Number must be between 1 and 3650."),
        ({"name": ""}, "This field is required."),
    ],
)
def test_policy_mistakes_are_shown_inline_and_nothing_is_saved(as_admin, fields, error):
    response = save_policy(as_admin, **fields)
    assert response.status_code == 200
    assert error in response.get_data(as_text=True)
    assert db.session.query(Policy).count() == 0


def test_policies_reorder_toggle_and_delete(as_admin, acme):
    for name in ("First", "Second", "Third"):
        save_policy(as_admin, name=name, kind="route", to_pattern=f"*@{name.lower()}.test",
                    phrases="")
    third = db.session.query(Policy).filter_by(name="Third").one()
    post_form(as_admin, f"/admin/policies/{third.id}/move", {"direction": "up"},
              form_path="/admin/policies")
    db.session.expire_all()
    assert [p.name for p in db.session.get(Tenant, acme.id).policies] == [
        "First", "Third", "Second"]
    post_form(as_admin, f"/admin/policies/{third.id}/toggle", {}, form_path="/admin/policies")
    assert db.session.get(Policy, third.id).enabled is False
    post_form(as_admin, f"/admin/policies/{third.id}/delete", {}, form_path="/admin/policies")
    db.session.expire_all()
    assert [p.name for p in db.session.get(Tenant, acme.id).policies] == ["First", "Second"]
    assert [p.position for p in db.session.get(Tenant, acme.id).policies] == [0, 1]


def test_the_policy_tester_shows_routes_and_reasons(as_admin, acme):
    save_policy(as_admin)
    response = post_form(as_admin, "/admin/policies/test", {
        "sender": "alice@acme.test", "recipients": "pat@partner.test, bob@acme.test",
        "subject": "Confidential figures", "body": "", "mode": "off"})
    text = response.get_data(as_text=True)
    assert "Content policy &#39;Keyword&#39; matched" in text or \
        "Content policy 'Keyword' matched" in text
    assert "Internal recipient: internal relay" in text
    assert db.session.query(db.func.count()).select_from(Policy).scalar() == 1
    from app.models import Message

    assert db.session.query(Message).count() == 0  # the tester sends nothing


def test_the_policy_tester_refuses_addresses_in_the_page_language(as_admin, acme):
    response = post_form(as_admin, "/admin/policies/test", {
        "sender": "alice@acme.test", "recipients": "pat@partner.test, nobody",
        "subject": "Figures", "body": "", "mode": "off"}, headers={"Accept-Language": "de"})
    assert "Keine E-Mail-Adresse: nobody" in response.get_data(as_text=True)


def test_an_administrator_creates_an_internal_user_and_sees_the_password_once(as_admin):
    response = post_form(as_admin, "/admin/people/new", {
        "email": "carol@acme.test", "role": "internal", "application_settings": "",
        "portal_ccm": "yes", "send_secure": ""})
    text = response.get_data(as_text=True)
    password = re.search(r'<code class="secret">([^<]+)</code>', text).group(1)
    carol = db.session.query(User).filter_by(email="carol@acme.test").one()
    assert carol.must_change_password and carol.portal_ccm_override is True
    assert passwords.verify_password(carol.password_hash, password)


def test_accounts_and_the_notification_sender_stay_at_the_tenants_own_domains(
        as_admin, acme, make_tenant):
    make_tenant("globex", domains=["globex.test"])
    response = post_form(as_admin, "/admin/people/new", {
        "email": "ceo@globex.test", "role": "internal", "application_settings": "",
        "portal_ccm": "", "send_secure": ""})
    assert "ceo@globex.test is not at one of this organisation&#39;s domains." in \
        response.get_data(as_text=True)
    assert db.session.query(User).filter_by(email="ceo@globex.test").count() == 0
    response = post_form(as_admin, "/admin/settings", {
        "name": "Acme", "portal_name": "", "domains": "acme.test", "internal_relay": "",
        "visibility_days": "30", "expiry_warning_days": "3", "first_contact": "password",
        "activation_hours": "72", "second_factor_external": "off",
        "second_factor_internal": "off", "mail_from": "ceo@globex.test"})
    assert "ceo@globex.test is not at one of your domains (acme.test)." in \
        response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Tenant, acme.id).mail_from is None


def test_a_tenant_administrator_cannot_change_the_platform_administrator(
        as_admin, acme, make_user):
    operator = make_user(acme, "operator@acme.test", role="admin", is_platform_admin=True)
    page = as_admin.get(f"/admin/people/{operator.id}")
    assert page.status_code == 200  # seen, as every account of the tenant
    form_path = f"/admin/people/{operator.id}"
    for action in ("", "/reset", "/second-factor", "/unlock"):
        response = post_form(as_admin, f"/admin/people/{operator.id}{action}", {
            "role": "internal", "application_settings": "", "portal_ccm": "",
            "send_secure": "", "disabled": "y"}, form_path=form_path)
        assert response.status_code == 403, action
    db.session.expire_all()
    operator = db.session.get(User, operator.id)
    assert (operator.role, operator.disabled) == ("admin", False)


def test_reset_password_sends_a_password_notification_and_forces_a_change(app, as_admin, acme):
    alice = db.session.query(User).filter_by(email="alice@acme.test").one()
    post_form(as_admin, f"/admin/people/{alice.id}/reset", {},
              form_path=f"/admin/people/{alice.id}")
    (notice,) = read_outbox(app)
    text = notice.get_body(("plain",)).get_content()
    assert "has reset the password" in text
    password = re.search(r"Password:\s+(\S+)", text).group(1)
    db.session.expire_all()
    alice = db.session.get(User, alice.id)
    assert alice.must_change_password
    assert passwords.verify_password(alice.password_hash, password)
    assert not passwords.verify_password(alice.password_hash, PASSWORD)


def test_unlock_and_disable(as_admin, acme):
    alice = db.session.query(User).filter_by(email="alice@acme.test").one()
    alice.failed_signins, alice.locked_until = 9, db.func.now()
    db.session.commit()
    post_form(as_admin, f"/admin/people/{alice.id}/unlock", {},
              form_path=f"/admin/people/{alice.id}")
    db.session.expire_all()
    assert db.session.get(User, alice.id).failed_signins == 0
    post_form(as_admin, f"/admin/people/{alice.id}", {
        "role": "internal", "application_settings": "", "portal_ccm": "", "send_secure": "",
        "disabled": "y"})
    db.session.expire_all()
    assert db.session.get(User, alice.id).disabled


def test_an_administrator_cannot_lock_themselves_out(as_admin, acme):
    admin = db.session.query(User).filter_by(email="admin@acme.test").one()
    response = post_form(as_admin, f"/admin/people/{admin.id}", {
        "role": "internal", "application_settings": "", "portal_ccm": "", "send_secure": ""})
    assert "cannot disable yourself" in response.get_data(as_text=True)
    assert db.session.get(User, admin.id).role == "admin"


def test_a_saved_template_is_what_the_next_notification_uses(app, as_admin, acme):
    response = post_form(as_admin, "/admin/templates/secure_message", {
        "subject": "Secure post from {{ tenant_name }}", "text": "See {{ portal_url }}",
        "html": "<p>See {{ portal_url }}</p>"})
    assert response.status_code == 302
    ingest.receive(mail().replace("\n", "\r\n").encode(), "alice@acme.test",
                   ["pat@partner.test"], mode="external")
    db.session.commit()
    assert "Secure post from Acme Corp" in [m["Subject"] for m in read_outbox(app)]
    post_form(as_admin, "/admin/templates/secure_message/restore", {},
              form_path="/admin/templates/secure_message")
    assert db.session.query(NotificationTemplate).count() == 0


def test_a_broken_template_is_shown_and_not_saved(as_admin):
    response = post_form(as_admin, "/admin/templates/secure_message", {
        "subject": "{{ ''.__class__.__mro__ }}", "text": "x", "html": "x"})
    assert response.status_code == 200
    assert "cannot be used" in response.get_data(as_text=True)
    assert db.session.query(NotificationTemplate).count() == 0


def test_the_live_preview_renders_sample_data(as_admin):
    response = post_form(as_admin, "/admin/templates/password/preview", {
        "subject": "Hi {{ login }}", "text": "Your password: {{ password }}", "html": "<b>x</b>"},
        form_path="/admin/templates/password")
    text = response.get_data(as_text=True)
    assert "Hi pat@example.com" in text and "kM7pQ2xW9rT4vN8bH3cZ" in text
    assert db.session.query(NotificationTemplate).count() == 0


def test_tracking_finds_messages_and_shows_the_events(as_admin, acme):
    message = ingest.receive(mail(subject="Quarterly figures").replace("\n", "\r\n").encode(),
                             "alice@acme.test", ["pat@partner.test"], mode="external")
    db.session.commit()
    found = as_admin.get("/admin/tracking?subject=quarterly&route=ccm").get_data(as_text=True)
    assert message.public_id in found
    nothing = as_admin.get("/admin/tracking?subject=quarterly&route=internal")
    assert message.public_id not in nothing.get_data(as_text=True)
    page = as_admin.get(f"/admin/tracking/{message.public_id}").get_data(as_text=True)
    assert "Delivered to CCM isolation area" in page
    post_form(as_admin, f"/admin/tracking/{message.public_id}/revoke", {"recipient": "all"},
              form_path=f"/admin/tracking/{message.public_id}")
    db.session.refresh(message.recipients[0])
    assert message.recipients[0].state == "revoked"
    assert db.session.query(AuditEvent).filter_by(action="message revoked").count() == 1


def test_settings_change_domains_window_and_logo(as_admin, acme):
    from io import BytesIO

    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
    response = post_form(as_admin, "/admin/settings", {
        "name": "Acme Corporation", "portal_name": "Acme Secure",
        "domains": "acme.test\nacme.example",
        "internal_relay": "SMTP://93.184.215.14", "visibility_days": "14",
        "expiry_warning_days": "2", "first_contact": "activation_link",
        "activation_hours": "48", "logo": (BytesIO(png), "logo.png", "image/png")})
    assert response.status_code == 302
    db.session.expire_all()
    tenant = db.session.get(Tenant, acme.id)
    assert sorted(d.name for d in tenant.domains) == ["acme.example", "acme.test"]
    assert (tenant.visibility_days, tenant.first_contact, tenant.logo_type) == (
        14, "activation_link", "image/png")
    assert tenant.internal_relay == "smtp://93.184.215.14:25"  # as the transport reads it
    page = as_admin.get("/t/acme/sign-in").get_data(as_text=True)
    assert "Acme Secure" in page and "/t/acme/logo" in page
    logo = as_admin.get("/t/acme/logo")
    assert logo.mimetype == "image/png" and logo.data == png


def test_settings_refuse_a_fake_logo_and_a_stolen_domain(as_admin, make_tenant):
    from io import BytesIO

    make_tenant("globex", domains=["globex.test"])
    base = {"name": "Acme", "portal_name": "", "internal_relay": "", "visibility_days": "30",
            "expiry_warning_days": "3", "first_contact": "password", "activation_hours": "72"}
    stolen = post_form(as_admin, "/admin/settings", {**base, "domains": "acme.test\nglobex.test"})
    assert "Already the domain of another organisation: globex.test" in stolen.get_data(
        as_text=True)
    fake = post_form(as_admin, "/admin/settings", {
        **base, "domains": "acme.test",
        "logo": (BytesIO(b"<svg onload=alert(1)>"), "logo.png", "image/png")})
    assert "Use a PNG or JPEG file" in fake.get_data(as_text=True)


def test_every_change_is_in_the_audit_log_with_who_and_where(as_admin, acme):
    save_policy(as_admin)
    page = as_admin.get("/admin/audit?q=policy").get_data(as_text=True)
    assert "admin@acme.test" in page and "policy created" in page and "127.0.0.1" in page


def test_a_platform_administrator_creates_a_tenant(as_admin, acme):
    admin = db.session.query(User).filter_by(email="admin@acme.test").one()
    admin.is_platform_admin = True
    db.session.commit()
    response = post_form(as_admin, "/admin/tenants/new", {
        "name": "Initech", "slug": "initech", "domains": "initech.test",
        "admin_email": "boss@initech.test"})
    assert '<code class="secret">' in response.get_data(as_text=True)
    tenant = db.session.query(Tenant).filter_by(slug="initech").one()
    assert [d.name for d in tenant.domains] == ["initech.test"]
    boss = db.session.query(User).filter_by(email="boss@initech.test").one()
    assert (boss.tenant_id, boss.role) == (tenant.id, "admin")
    response = post_form(as_admin, "/admin/tenants/new", {
        "name": "Hooli", "slug": "hooli", "domains": "hooli.test",
        "admin_email": "boss@initech.test"})  # someone else's address
    assert "Use an address at one of the domains above." in response.get_data(as_text=True)
    assert db.session.query(Tenant).filter_by(slug="hooli").count() == 0


def test_the_side_navigation_says_where_you_are_on_every_page(as_admin, acme):
    """Each page, a detail page too, marks its own section, and only that one."""
    db.session.add(Policy(tenant=acme, name="Partners", kind="route", to_pattern="*@p.test",
                          position=0))
    db.session.commit()
    policy = db.session.query(Policy).one()
    alice = db.session.query(User).filter_by(email="alice@acme.test").one()
    expected = {
        "/admin/policies": "Policies", "/admin/policies/new": "Policies",
        f"/admin/policies/{policy.id}": "Policies", "/admin/policies/test": "Policy tester",
        "/admin/people": "People", "/admin/people/new": "People",
        f"/admin/people/{alice.id}": "People", "/admin/profiles/new": "Application settings",
        "/admin/templates/secure_message": "Notifications", "/admin/tracking": "Message tracking",
        "/admin/settings": "Settings", "/admin/audit": "Audit log", "/admin/access": "Access log",
    }
    for path, section in expected.items():
        page = as_admin.get(path).get_data(as_text=True)
        current = re.findall(r'aria-current="page">([^<]+)</a>', page)
        assert section in current and len([c for c in current if c in expected.values()]) == 1, \
            (path, current)


def test_a_tracked_message_is_opened_by_its_subject(as_admin, acme):
    raw = mail(subject="Board minutes").replace("\n", "\r\n").encode()
    message = ingest.receive(raw, "alice@acme.test", ["pat@partner.test"])
    db.session.commit()
    page = as_admin.get("/admin/tracking").get_data(as_text=True)
    assert f'<a href="/admin/tracking/{message.public_id}"><bdi>Board minutes</bdi></a>' in page
