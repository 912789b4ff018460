"""The administrator's part in passkeys: the tenant's policy for each side, and removing a
person's passkeys (one who lost their device). Both on the audit log."""

from __future__ import annotations

from flask import flash, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import BooleanField, SelectField
from wtforms.fields.choices import SelectChoice

from app.domain import access_log, audit, passkeys
from app.extensions import db
from app.web.admin import bp
from app.web.admin.forms import ActionForm
from app.web.admin.people import _user
from app.web.admin.settings import changes
from app.web.inputs import Form
from app.web.rendering import redirect_to

_CHOICES = [SelectChoice(passkeys.OFF, _l("Off")),
            SelectChoice(passkeys.ALLOWED, _l("Allowed")),
            SelectChoice(passkeys.REQUIRED, _l("Required"))]


class PasskeyPolicyForm(Form):
    """Off, allowed or required for each side (a SelectField takes only its choices)."""

    passkeys_external = SelectField(_l("Passkeys for external recipients"), choices=_CHOICES)
    passkeys_internal = SelectField(_l("Passkeys for internal users"), choices=_CHOICES)
    passkey_first_contact = BooleanField(_l("First contact by passkey: the activation link "
                                            "leads to creating a passkey, with no password"))


def _audited(tenant) -> dict[str, str]:
    """The policy as the audit log names it (app/web/admin/settings.py's ``changes``)."""
    return {"passkeys, external": tenant.passkeys_external,
            "passkeys, internal": tenant.passkeys_internal,
            "first contact by passkey": str(tenant.passkey_first_contact)}


@bp.context_processor
def passkey_policy_form() -> dict:
    """The policy's form as admin/_passkey_policy.html shows it, filled from the tenant."""
    return {"passkey_policy_form": lambda: PasskeyPolicyForm(formdata=None,
                                                             obj=current_user.tenant)}


@bp.route("/settings/passkeys", methods=["POST"])
def passkey_policy():
    """Set the tenant's passkey policy for external recipients and for internal users."""
    tenant = current_user.tenant
    form = PasskeyPolicyForm()
    if not form.validate_on_submit():
        flash(_("Choose off, allowed or required for each side."), "error")
        return redirect_to(url_for("admin.settings"))
    before = _audited(tenant)
    tenant.passkeys_external = form.passkeys_external.data
    tenant.passkeys_internal = form.passkeys_internal.data
    tenant.passkey_first_contact = form.passkey_first_contact.data
    audit.record("settings changed", changes(before, _audited(tenant)), tenant=tenant)
    db.session.commit()
    flash(_("Passkey settings saved."), "success")
    return redirect_to(url_for("admin.settings"))


@bp.route("/people/<int:user_id>/passkeys/remove", methods=["POST"])
def remove_passkeys(user_id: int):
    """Remove every passkey of a person: a lost device no longer signs in, and where
    passkeys are required the person adds a new one at their next sign-in."""
    person = _user(user_id)  # 404 for another tenant's, 403 for the operator's own
    if ActionForm().validate_on_submit():
        names = ", ".join(p.name for p in person.passkeys)
        count = passkeys.remove_all(person)
        access_log.record("passkey_removed", tenant=person.tenant, user=person,
                          detail=f"{names} (by {current_user.email})")
        audit.record("passkeys removed", f"{person.email}: {count} ({names})",
                     tenant=current_user.tenant)
        db.session.commit()
        flash(_("%(email)s's passkeys are removed.", email=person.email), "success")
    return redirect_to(url_for("admin.user", user_id=person.id))
