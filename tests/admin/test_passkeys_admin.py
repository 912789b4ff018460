"""The administrator's part in passkeys: the tenant's policy, and removing a person's."""

import re

from support import post_form

from app.domain import passkeys
from app.extensions import db
from app.models import AccessEvent, AuditEvent, Passkey


def test_the_policy_is_set_per_side_and_audited(as_admin, acme):
    page = as_admin.get("/admin/settings").get_data(as_text=True)
    assert "Passkeys for external recipients" in page
    response = post_form(as_admin, "/admin/settings/passkeys",
                         {"passkeys_external": "required", "passkeys_internal": "off"},
                         form_path="/admin/settings")
    assert response.status_code == 302
    db.session.refresh(acme)
    assert (acme.passkeys_external, acme.passkeys_internal) == (passkeys.REQUIRED, passkeys.OFF)
    detail = db.session.scalar(db.select(AuditEvent.detail).filter_by(action="settings changed"))
    assert detail == "passkeys, external: allowed → required; passkeys, internal: allowed → off"
    page = as_admin.get("/admin/settings").get_data(as_text=True)
    assert re.search(r'id="passkeys_external"[^>]*>(\s*<option[^>]*>[^<]*</option>)*?'
                     r'\s*<option selected value="required">', page)


def test_a_policy_that_is_no_choice_is_refused(as_admin, acme):
    post_form(as_admin, "/admin/settings/passkeys",
              {"passkeys_external": "always", "passkeys_internal": "off"},
              form_path="/admin/settings")
    db.session.refresh(acme)
    assert acme.passkeys_external == passkeys.ALLOWED


def test_an_administrator_removes_a_persons_passkeys(as_admin, acme, make_user):
    pat = make_user(acme, "pat@partner.test")
    db.session.add(Passkey(user=pat, tenant_id=acme.id, credential_id=b"c", user_handle=b"h",
                           public_key=b"k", name="Lost phone"))
    db.session.commit()
    assert "Lost phone" in as_admin.get(f"/admin/people/{pat.id}").get_data(as_text=True)
    post_form(as_admin, f"/admin/people/{pat.id}/passkeys/remove", {},
              form_path=f"/admin/people/{pat.id}")
    assert db.session.scalar(db.select(Passkey)) is None
    assert db.session.scalar(db.select(AuditEvent.detail).filter_by(
        action="passkeys removed")) == "pat@partner.test: 1 (Lost phone)"
    assert db.session.scalar(db.select(AccessEvent.detail).filter_by(
        kind="passkey_removed")) == "Lost phone (by admin@acme.test)"


def test_another_tenants_person_is_not_found(as_admin, make_tenant, make_user):
    globex = make_tenant("globex", domains=["globex.test"])
    other = make_user(globex, "pat@partner.test")
    response = post_form(as_admin, f"/admin/people/{other.id}/passkeys/remove", {},
                         form_path="/admin/settings")
    assert response.status_code == 404


def test_the_platform_administrators_passkeys_are_not_a_tenant_administrators_to_remove(
        as_admin, acme, make_user):
    operator = make_user(acme, "operator@acme.test", role="admin", is_platform_admin=True)
    db.session.add(Passkey(user=operator, tenant_id=acme.id, credential_id=b"c",
                           user_handle=b"h", public_key=b"k", name="Operator's key"))
    db.session.commit()
    response = post_form(as_admin, f"/admin/people/{operator.id}/passkeys/remove", {},
                         form_path=f"/admin/people/{operator.id}")
    assert response.status_code == 403
    assert db.session.scalar(db.select(Passkey.name)) == "Operator's key"
