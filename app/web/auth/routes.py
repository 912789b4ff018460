"""Views of the auth blueprint: thin callers of domain.accounts and domain.auth_sessions."""

from __future__ import annotations

import time

from flask import Response, abort, current_app, flash, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import select
from wtforms.fields.choices import SelectChoice

from app.domain import (
    access_log,
    accounts,
    auth_sessions,
    links,
    notices,
    passkeys,
    second_factor,
)
from app.extensions import db, limiter, login_manager
from app.mail import addresses
from app.models import Tenant, User
from app.web.auth import bp
from app.web.auth.forms import (
    ChangePasswordForm,
    ChooseAccountForm,
    CodeForm,
    ForgotForm,
    NewPasswordForm,
    SignInForm,
)
from app.web.languages import N_, say
from app.web.rendering import page, redirect_to, safe_next

#: One message for every refusal, so answers never tell whether an account exists
#: (in English here; each answer translates it).
SIGN_IN_REFUSED = N_(
    "That email address and password do not match an account, or the account is "
    "locked for a few minutes after too many attempts. Try again, or reset your password."
)
#: The organisation this browser last signed in to: its name and logo greet the next visit.
LAST_TENANT_COOKIE = "ccm_last_tenant"
#: How long the "which organisation?" choice stays open after the password was proven.
CHOICE_SECONDS = 300

# Endpoints open to a user held back by any of the steps below (a message's link only
# leads on, to a page that is then held back with the step leading to it).
_OPEN_WHILE_PENDING = {"auth.sign_out", "auth.message_link", "static", "language.choose"}
# Endpoints a user who must change their password may still reach...
_OPEN_WHILE_CHANGE_PENDING = {"auth.change_password", *_OPEN_WHILE_PENDING}
# ...and one who must set up a second factor.
_OPEN_WHILE_ENROLMENT_PENDING = {"auth.enrol", *_OPEN_WHILE_PENDING}
# ...and one whose organisation requires a passkey they do not have yet.
_OPEN_WHILE_PASSKEY_PENDING = {"auth.passkeys_page", "auth.passkey_new_options",
                               "auth.passkey_add", *_OPEN_WHILE_PENDING}
#: a password that opens an account where only a passkey may now (app/domain/passkeys.py)
PASSKEY_ONLY = N_(
    "Your organisation asks you to sign in with your passkey: choose “Sign in with a "
    "passkey”. Lost it? A recovery code, or an administrator, gets you back in.")
# Where a sign-in leads when no other page was asked for.
_LANDINGS = {"auth.home", "inbox.index"}

login_manager.session_protection = None  # sessions are checked server-side instead
login_manager.login_view = "auth.sign_in"
login_manager.login_message = None


@login_manager.user_loader
def load_user(token: str) -> User | None:
    return auth_sessions.resume(token)


@login_manager.unauthorized_handler
def unauthorized():
    """Send the browser to sign in, and back here afterwards; htmx gets HX-Redirect."""
    target = None
    if request.method == "GET":
        target = request.full_path if request.query_string else request.path
    return redirect_to(url_for("auth.sign_in", next=safe_next(target)))


@bp.before_app_request
def require_password_change():
    """Until a forced password change is done, nothing else is reachable.

    Static files are open to all, so they are served without loading the session.
    """
    if request.endpoint == "static" or not current_user.is_authenticated:
        return None
    # The page asked for (a message's link, say) is where each step leads afterwards.
    if current_user.must_change_password:
        # The password first, then any second factor: each step sending to the other
        # was an endless loop for a new recipient where a second factor is required.
        if request.endpoint not in _OPEN_WHILE_CHANGE_PENDING:
            return redirect_to(url_for("auth.change_password", next=_asked_for()))
        return None
    if passkeys.must_enrol(current_user):
        if request.endpoint not in _OPEN_WHILE_PASSKEY_PENDING:
            return redirect_to(url_for("auth.passkeys_page", next=_asked_for()))
        return None
    if (
        second_factor.must_enrol(current_user)
        and request.endpoint not in _OPEN_WHILE_ENROLMENT_PENDING
        and not passkeys.stands_in_for_second_factor(current_user)
    ):
        return redirect_to(url_for("auth.enrol", next=_asked_for()))
    return None


def _asked_for() -> str | None:
    """The page this GET asked for, as a safe way back; None for anything else, and for
    the front door and the inbox, where a sign-in leads anyway."""
    if request.method != "GET" or request.endpoint in _LANDINGS:
        return None
    return safe_next(request.full_path if request.query_string else request.path)


def _tenant(slug: str | None) -> Tenant | None:
    if slug is None:
        return None
    tenant = db.session.scalar(select(Tenant).where(Tenant.slug == slug))
    if tenant is None:
        abort(404)
    return tenant


def _client() -> dict:
    return {"client_address": request.remote_addr, "user_agent": request.user_agent.string}


def _sign_in_as(user: User, next_url: str | None = None, *, factor_checked: bool = False,
                detail: str = ""):
    """Replace whatever session this browser had with a new one for ``user``.

    With a second factor set up, the password alone opens nothing: the code comes first.
    ``detail`` goes on the access log's line (how, when not by password).
    """
    session.clear()
    if second_factor.enrolled(user) and not factor_checked:
        session["factor"] = {"user": user.id, "until": time.time() + CHOICE_SECONDS,
                             "next": safe_next(next_url)}
        return redirect_to(url_for("auth.code"))
    access_log.record("sign_in", tenant=user.tenant, user=user, detail=detail)
    remember_tenant = user.tenant.slug
    auth_sessions.start(user, **_client())
    accounts.signed_in(user)
    db.session.commit()
    login_user(user)
    session.permanent = True
    if user.must_change_password:
        response = redirect_to(url_for("auth.change_password", next=safe_next(next_url)))
    else:
        response = redirect_to(safe_next(next_url) or url_for("inbox.index"))
    # Next time, the sign-in page can show this organisation's name and logo at once.
    response.set_cookie(LAST_TENANT_COOKIE, remember_tenant, max_age=365 * 86400,
                        secure=current_app.config["HTTPS"], httponly=True, samesite="Lax")
    return response


@bp.route("/")
def home():
    """The portal's front door."""
    if current_user.is_authenticated:
        return redirect_to(url_for("inbox.index"))
    return redirect_to(url_for("auth.sign_in"))


@bp.route("/t/<slug>/messages/<public_id>")
def message_link(slug: str, public_id: str):
    """A notification's link: the message, by way of its tenant's sign-in page.

    The message is not looked up here. Signed in at this tenant, the browser goes to the
    inbox's page for it, which alone decides, with one "not found" for a message that is
    missing and for one that is someone else's; otherwise to the tenant's sign-in page,
    which leads there afterwards. So no answer here depends on the message.
    """
    tenant = _tenant(slug)
    target = url_for("inbox.message", public_id=public_id)
    if current_user.is_authenticated and current_user.tenant_id == tenant.id:
        return redirect_to(target)
    return redirect_to(url_for("auth.sign_in", slug=tenant.slug, next=target))


@bp.route("/sign-in", methods=["GET", "POST"])
@bp.route("/t/<slug>/sign-in", methods=["GET", "POST"])
@limiter.limit(accounts.SIGN_IN_LIMIT, methods=["POST"])
def sign_in(slug: str | None = None):
    """Sign in with an email address and password, at one tenant or at whichever matches."""
    tenant = _tenant(slug)
    remembered = request.cookies.get(LAST_TENANT_COOKIE)
    if tenant is None and request.method == "GET" and remembered and "any" not in request.args:
        known = db.session.scalar(select(Tenant).where(Tenant.slug == remembered))
        if known is not None:
            return redirect_to(url_for("auth.sign_in", slug=known.slug,
                                       next=safe_next(request.args.get("next"))))
    form = SignInForm()
    if form.validate_on_submit():
        matched = accounts.check_credentials(form.email.data, form.password.data, tenant)
        db.session.commit()  # failures count even though we refuse
        if not matched:
            for account in accounts.accounts_for(form.email.data, tenant):
                access_log.record("sign_in_failed", tenant=account.tenant, user=account)
            db.session.commit()
        if len(matched) == 1 and passkeys.password_alone_refused(matched[0]):
            form.form_errors.append(_(PASSKEY_ONLY))
        elif len(matched) == 1:
            return _sign_in_as(matched[0], request.args.get("next"))
        elif matched:
            # The password is proven for several organisations: only now may we ask which.
            session["choose"] = {
                "accounts": [u.id for u in matched],
                "until": time.time() + CHOICE_SECONDS,
                "next": safe_next(request.args.get("next")),
            }
            return redirect_to(url_for("auth.choose_account"))
        else:
            form.form_errors.append(_(SIGN_IN_REFUSED))
    return page("auth/sign_in.html", "auth/_sign_in_form.html", form=form, tenant=tenant)


@bp.route("/t/<slug>/logo")
def logo(slug: str):
    """The tenant's logo, shown on its sign-in page: public, like any letterhead."""
    tenant = _tenant(slug)
    if not tenant.logo_type:
        abort(404)
    response = Response(tenant.logo, mimetype=tenant.logo_type)
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


@bp.route("/sign-in/organisation", methods=["GET", "POST"])
@limiter.limit("10/minute", methods=["POST"])
def choose_account():
    """After a password that opens several tenants' accounts: pick one."""
    pending = session.get("choose")
    if not pending or pending["until"] < time.time():
        session.pop("choose", None)
        return redirect_to(url_for("auth.sign_in"))
    users = [db.session.get(User, user_id) for user_id in pending["accounts"]]
    users = [u for u in users if u is not None and not u.disabled]
    form = ChooseAccountForm()
    form.account.choices = [SelectChoice(u.id, u.tenant.name) for u in users]
    if form.validate_on_submit():
        session.pop("choose", None)
        chosen = next(u for u in users if u.id == form.account.data)
        if passkeys.password_alone_refused(chosen):
            flash(_(PASSKEY_ONLY), "error")
            return redirect_to(url_for("auth.sign_in", slug=chosen.tenant.slug))
        return _sign_in_as(chosen, pending.get("next"))
    return page("auth/choose.html", "auth/_choose_form.html", form=form)


@bp.route("/sign-in/code", methods=["GET", "POST"])
@limiter.limit(accounts.SIGN_IN_LIMIT, methods=["POST"])
def code():
    """The second step of signing in: a code from the authenticator app, or a recovery code."""
    pending = session.get("factor")
    user = db.session.get(User, pending["user"]) if pending else None
    if user is None or pending["until"] < time.time() or user.disabled:
        session.pop("factor", None)
        return redirect_to(url_for("auth.sign_in"))
    form = CodeForm()
    if form.validate_on_submit():
        if not accounts.is_locked(user) and second_factor.verify(user, form.code.data):
            return _sign_in_as(user, pending.get("next"), factor_checked=True)
        accounts.record_failure(user)
        access_log.record("sign_in_failed", tenant=user.tenant, user=user,
                          detail=N_("second factor refused"))
        db.session.commit()
        form.form_errors.append(_("That code did not work. Codes change every 30 seconds and "
                                  "work once; try the next one, or a recovery code."))
    return page("auth/code.html", "auth/_code_form.html", form=form, tenant=user.tenant)


@bp.route("/account/second-factor", methods=["GET", "POST"])
@login_required
@limiter.limit("10/minute", methods=["POST"])
def enrol():
    """Set up (or review) the second factor: scan the code, prove it with one code; then
    on to the page asked for, if any."""
    user = current_user._get_current_object()
    next_url = safe_next(request.args.get("next"))
    form = CodeForm()
    if second_factor.enrolled(user):
        return page("auth/second_factor.html", "auth/_second_factor.html", user=user,
                    policy=second_factor.policy_for(user), form=form)
    secret = session.get("enrol_secret") or second_factor.new_secret()
    session["enrol_secret"] = secret
    if form.validate_on_submit():
        codes = second_factor.enrol(user, secret, form.code.data)
        if codes:
            session.pop("enrol_secret", None)
            db.session.commit()
            return page("auth/recovery_codes.html", "auth/_recovery_codes.html", codes=codes,
                        next_url=next_url)
        form.code.errors = [*form.code.errors, _("That code does not match. Check the time on "
                            "your phone and enter the code now shown.")]
    return page("auth/enrol.html", "auth/_enrol.html", form=form, secret=secret,
                qr=second_factor.enrolment_qr(user, secret),
                required=second_factor.policy_for(user) == "required", next_url=next_url)


@bp.route("/account/second-factor/off", methods=["POST"])
@login_required
def second_factor_off():
    """Turn the second factor off, where the organisation leaves it optional."""
    user = current_user._get_current_object()
    if second_factor.policy_for(user) != "required":  # CSRFProtect checked the token
        second_factor.reset(user)
        db.session.commit()
        flash(_("The second factor is off."), "info")
    return redirect_to(url_for("auth.enrol"))


@bp.route("/account/activity")
@login_required
def activity():
    """Recent sign-ins to this account, so the owner can spot one that was not them."""
    return page("auth/activity.html", "auth/_activity.html",
                events=access_log.sign_ins(current_user))


@bp.route("/sign-out", methods=["POST"])
def sign_out():
    """End this browser's session."""
    slug = None
    if current_user.is_authenticated:
        slug = current_user.tenant.slug
        auth_sessions.end(current_user.session_token)
        db.session.commit()
        logout_user()
    session.clear()
    flash(_("You have signed out."), "info")
    return redirect_to(url_for("auth.sign_in", slug=slug))


@bp.route("/password/change", methods=["GET", "POST"])
@login_required
@limiter.limit("10/minute", methods=["POST"])
def change_password():
    """Change the password; forced after a generated password or an administrator reset.

    Right after signing in with a given password, its forced change does not ask for it
    again (accounts.just_proven); then, or later, it leads to the page asked for.
    """
    user = current_user._get_current_object()
    next_url = safe_next(request.args.get("next"))
    forced = user.must_change_password
    proven = accounts.just_proven(user)
    form = ChangePasswordForm()
    if proven:
        del form.current
    if form.validate_on_submit():
        try:
            if proven:
                accounts.replace_given_password(user, form.new.data)
            else:
                accounts.change_password(user, form.current.data, form.new.data)
        except accounts.PasswordRejected as rejected:
            db.session.rollback()
            form.new.errors = [*form.new.errors, *map(say, rejected.problems)]
        else:
            # Every session of this user ended with the change; this browser gets a new one
            # (which clears the old session, so the notice comes after).
            response = _sign_in_as(user, next_url, factor_checked=True)
            flash(_("Your password has been changed. Other devices have been signed out."),
                  "success")
            return response
    return page("auth/change_password.html", "auth/_change_password_form.html",
                form=form, forced=forced, next_url=next_url, email=user.email)


def _form_address() -> str:
    """Throttle key for reset requests: the address asked for, so no inbox gets flooded."""
    return addresses.normalise(request.form.get("email", ""))


@bp.route("/password/forgot", methods=["GET", "POST"])
@bp.route("/t/<slug>/password/forgot", methods=["GET", "POST"])
@limiter.limit("5/minute;30/hour", methods=["POST"])
@limiter.limit("3/hour", key_func=_form_address, methods=["POST"])
def forgot_password(slug: str | None = None):
    """Ask for a reset link. The answer is the same whether or not the account exists."""
    tenant = _tenant(slug)
    form = ForgotForm()
    if form.validate_on_submit():
        for user in accounts.accounts_for(form.email.data, tenant):
            notices.password_reset(user, links.set_password(accounts.start_reset(user)))
        db.session.commit()
        return page("auth/forgot_sent.html", "auth/_forgot_sent.html",
                    email=form.email.data, tenant=tenant)
    return page("auth/forgot.html", "auth/_forgot_form.html", form=form, tenant=tenant)


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
@limiter.limit("10/minute", methods=["POST"])
def reset_password(token: str):
    """Choose a new password from a reset link. Opening the link (GET) uses nothing up."""
    reset = accounts.find_reset(token)
    then = safe_next(request.args.get("next"))
    if reset is None:
        return page("auth/reset_invalid.html", "auth/_reset_invalid.html"), 404
    if passkeys.first_contact_by_passkey(reset) and "password" not in request.args:
        return page("auth/passkey_first_contact.html", "auth/_passkey_first_contact.html",
                    user=reset.user, tenant=reset.user.tenant, token=token, then=then)
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            accounts.complete_reset(reset, form.new.data)
        except accounts.PasswordRejected as rejected:
            db.session.rollback()
            form.new.errors = [*form.new.errors, *map(say, rejected.problems)]
        else:
            slug = reset.user.tenant.slug
            db.session.commit()
            flash(_("Your new password is set. Sign in with it."), "success")
            # an activation link's message (its own link leads through sign-in)
            return redirect_to(then or url_for("auth.sign_in", slug=slug))
    return page("auth/reset.html", "auth/_reset_form.html", form=form, user=reset.user,
                action=url_for("auth.reset_password", token=token, next=then))
