"""People of the tenant and their application settings profiles."""

from __future__ import annotations

from flask import abort, flash, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from app.domain import audit, people, second_factor
from app.extensions import db
from app.models import ApplicationSettings, Role, Side
from app.web.admin import bp
from app.web.admin.forms import ActionForm, NewUserForm, ProfileForm, UserForm
from app.web.languages import say
from app.web.rendering import page, redirect_to

_OVERRIDE = {"": None, "yes": True, "no": False}


def _profiles() -> list[ApplicationSettings]:
    return list(current_user.tenant.application_settings)


def _profile_choices(form: UserForm) -> None:
    form.application_settings.choices = [("", _("The tenant's default"))] + [
        (str(p.id), p.name) for p in _profiles()]


def _user(user_id: int):
    user = people.user_of(current_user.tenant, user_id)
    if user is None:
        abort(404)
    if request.method == "POST" and user.is_platform_admin and \
            not current_user.is_platform_admin:
        abort(403)  # the operator's own account: a tenant's administrators only see it
    return user


def _apply(form: UserForm, user) -> None:
    chosen = next((p for p in _profiles() if str(p.id) == form.application_settings.data), None)
    if user.kind == Side.INTERNAL:
        user.role = form.role.data
    user.application_settings = chosen
    user.portal_ccm_override = _OVERRIDE[form.portal_ccm.data]
    user.send_secure_override = _OVERRIDE[form.send_secure.data]
    people.disable(user, form.disabled.data)


@bp.route("/people")
def people_list():
    """Internal and external users of the tenant, searchable."""
    query = request.args.get("q", "")
    return page("admin/people.html", {"people": "admin/_people.html",
                                      None: "admin/_people_page.html"},
                users=people.search(current_user.tenant, query), query=query)


@bp.route("/people/new", methods=["GET", "POST"])
def new_user():
    """Create an internal user or administrator, with a password to change at first use."""
    form = NewUserForm()
    _profile_choices(form)
    if form.validate_on_submit():
        try:
            user, password = people.create_internal(current_user.tenant, form.email.data,
                                                    form.role.data)
        except people.CannotCreate as refused:
            form.email.errors = [*form.email.errors, say(refused.args[0])]
        else:
            _apply(form, user)
            audit.record("user created", f"{user.email} as {user.role}",
                         tenant=current_user.tenant)
            db.session.commit()
            return page("admin/password_shown.html", "admin/_password_shown.html",
                        user=user, password=password)
    return page("admin/user_new.html", "admin/_user_new.html", form=form)


@bp.route("/people/<int:user_id>", methods=["GET", "POST"])
def user(user_id: int):
    """One person: role, application settings, overrides, and account actions."""
    person = _user(user_id)
    form = UserForm(obj=None)
    _profile_choices(form)
    if request.method == "GET":
        form.role.data = person.role if person.role != Role.EXTERNAL else Role.INTERNAL
        form.application_settings.data = str(person.application_settings_id or "")
        form.portal_ccm.data = {None: "", True: "yes", False: "no"}[person.portal_ccm_override]
        form.send_secure.data = {None: "", True: "yes", False: "no"}[person.send_secure_override]
        form.disabled.data = person.disabled
    elif form.validate_on_submit():
        if person.id == current_user.id and (form.disabled.data or form.role.data != Role.ADMIN):
            form.form_errors.append(_("You cannot disable yourself or give up your own role."))
        else:
            _apply(form, person)
            audit.record("user changed", f"{person.email}: role {person.role}, "
                         f"disabled {person.disabled}", tenant=current_user.tenant)
            db.session.commit()
            flash(_("%(email)s saved.", email=person.email), "success")
            return redirect_to(url_for("admin.user", user_id=person.id))
    return page("admin/user.html", "admin/_user.html", form=form, person=person,
                action=ActionForm(), locked=people.accounts.is_locked(person))


@bp.route("/people/<int:user_id>/reset", methods=["POST"])
def reset_password(user_id: int):
    """Send a new generated password; it must be changed at the next sign-in."""
    person = _user(user_id)
    if ActionForm().validate_on_submit():
        people.reset_password(person)
        audit.record("password reset", person.email, tenant=current_user.tenant)
        db.session.commit()
        flash(_("A new password is on its way to %(email)s.", email=person.email), "success")
    return redirect_to(url_for("admin.user", user_id=person.id))


@bp.route("/people/<int:user_id>/second-factor", methods=["POST"])
def reset_second_factor(user_id: int):
    """Remove a lost second factor; the person sets up a new one at next sign-in."""
    person = _user(user_id)
    if ActionForm().validate_on_submit():
        second_factor.reset(person)
        audit.record("second factor reset", person.email, tenant=current_user.tenant)
        db.session.commit()
        flash(_("%(email)s can sign in with the password alone until a new factor is set up.",
                email=person.email), "success")
    return redirect_to(url_for("admin.user", user_id=person.id))


@bp.route("/people/<int:user_id>/unlock", methods=["POST"])
def unlock(user_id: int):
    person = _user(user_id)
    if ActionForm().validate_on_submit():
        people.unlock(person)
        audit.record("account unlocked", person.email, tenant=current_user.tenant)
        db.session.commit()
        flash(_("%(email)s can sign in again.", email=person.email), "success")
    return redirect_to(url_for("admin.user", user_id=person.id))


# --- application settings profiles ------------------------------------------------------


def _own_profile(profile_id: int) -> ApplicationSettings:
    profile = db.session.scalar(select(ApplicationSettings).where(
        ApplicationSettings.id == profile_id,
        ApplicationSettings.tenant_id == current_user.tenant_id))
    if profile is None:
        abort(404)
    return profile


@bp.route("/profiles")
def profiles():
    """Application settings: named permission profiles given to users."""
    return page("admin/profiles.html", "admin/_profiles.html", profiles=_profiles())


@bp.route("/profiles/new", methods=["GET", "POST"])
@bp.route("/profiles/<int:profile_id>", methods=["GET", "POST"])
def profile(profile_id: int | None = None):
    existing = _own_profile(profile_id) if profile_id else None
    form = ProfileForm(obj=existing)
    if form.validate_on_submit():
        name = form.name.data.strip()
        if any(p.name == name and p is not existing for p in _profiles()):
            form.name.errors = [*form.name.errors, _("Another profile has this name.")]
        else:
            target = existing or ApplicationSettings(tenant=current_user.tenant)
            target.name, target.portal_ccm = name, form.portal_ccm.data
            target.send_secure = form.send_secure.data
            if form.is_default.data:
                for other in _profiles():
                    other.is_default = False
            target.is_default = form.is_default.data
            db.session.add(target)
            audit.record("application settings saved",
                         f"{name}: portal CCM {target.portal_ccm}, Send Secure "
                         f"{target.send_secure}, default {target.is_default}",
                         tenant=current_user.tenant)
            db.session.commit()
            flash(_("Application settings “%(name)s” saved.", name=name), "success")
            return redirect_to(url_for("admin.profiles"))
    return page("admin/profile.html", "admin/_profile_form.html", form=form, profile=existing)
