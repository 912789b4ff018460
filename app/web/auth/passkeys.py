"""Passkeys: the owner's list (add, rename, remove) and signing in with one.

Thin callers of app/domain/passkeys.py. The browser's side is app/static/js/passkeys.js:
it asks for options, hands them to ``navigator.credentials``, and posts the answer back as
JSON with the CSRF token in a header, as htmx does. A new passkey's challenge stays in
the session until the answer comes back. A sign-in's rides in a signed cookie of its
own, good for one answer and a few minutes: the sign-in page asks for it as it loads
(for the browser's offer in the email field), and a write to the session then could
land after the password sign-in's own and undo it.
"""

from __future__ import annotations

from flask import abort, current_app, flash, jsonify, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from itsdangerous import BadSignature, URLSafeTimedSerializer

from app import metrics
from app.domain import access_log, accounts, audit, passkeys
from app.extensions import db, limiter
from app.web.auth import bp
from app.web.auth.routes import _sign_in_as, _tenant
from app.web.languages import N_, say
from app.web.rendering import page, redirect_to, safe_next

#: the session key of a new passkey's ceremony, and the cookie of a sign-in's
_NEW, _SIGN_IN = "passkey_new", "ccm_passkey_sign_in"


@bp.app_context_processor
def passkey_helpers() -> dict:
    """What the sign-in form and the Security page ask of passkeys."""
    return {"passkeys_offered": passkeys.offered_at, "passkey_policy": passkeys.policy_for,
            "passkey_name_length": passkeys.NAME_LENGTH}


def _refused(refused: passkeys.PasskeyRefused, status: int = 200):
    """A refusal in words, with 200 as a refused form gets: the page says it, the browser's
    console does not call it an error."""
    return jsonify(error=say(refused.reason)), status


def _json(text: str):
    return current_app.response_class(text, mimetype="application/json")


# --- the owner's passkeys -------------------------------------------------------------


@bp.route("/account/passkeys")
@login_required
def passkeys_page():
    """The person's passkeys; where a tenant that requires one sends them to add it."""
    user = current_user._get_current_object()
    required = passkeys.must_enrol(user)
    # after the enrolment a tenant requires, on to the page asked for, or the inbox
    next_url = safe_next(request.args.get("next")) or (url_for("inbox.index") if required
                                                        else None)
    return page("auth/passkeys.html", "auth/_passkeys.html", user=user,
                passkey_required=required, own_page=True, next_url=next_url)


@bp.route("/account/passkeys/options", methods=["POST"])
@login_required
@limiter.limit("10/minute")
def passkey_new_options():
    """Options for creating a passkey for the signed-in person."""
    user = current_user._get_current_object()
    if passkeys.policy_for(user) == passkeys.OFF:
        return _refused(passkeys.PasskeyRefused(passkeys.TURNED_OFF), 403)
    options, session[_NEW] = passkeys.registration_options(user)
    return _json(options)


@bp.route("/account/passkeys", methods=["POST"])
@login_required
@limiter.limit("10/minute")
def passkey_add():
    """Keep the passkey the browser created, under the name given (JSON)."""
    user = current_user._get_current_object()
    body = request.get_json(silent=True) or {}
    try:
        passkey = passkeys.register(user, body.get("credential") or {}, session.pop(_NEW, None),
                                    body.get("name", ""))
    except passkeys.PasskeyRefused as refused:
        db.session.rollback()
        return _refused(refused)
    access_log.record("passkey_added", tenant=user.tenant, user=user, detail=passkey.name)
    audit.record("passkey registered", f"{user.email}: {passkey.name}", tenant=user.tenant)
    db.session.commit()
    flash(_("Your passkey “%(name)s” is ready. Next time, sign in with it.", name=passkey.name),
          "success")
    return jsonify(redirect=safe_next(body.get("next")) or url_for("auth.passkeys_page"))


def _own(passkey_id: int):
    passkey = passkeys.of_user(current_user, passkey_id)
    if passkey is None:
        abort(404)
    return passkey


def _back():
    return redirect_to(safe_next(request.form.get("next")) or url_for("auth.passkeys_page"))


@bp.route("/account/passkeys/<int:passkey_id>/rename", methods=["POST"])
@login_required
def passkey_rename(passkey_id: int):
    """Give one of one's passkeys another name."""
    passkey = _own(passkey_id)
    try:
        passkeys.rename(passkey, request.form.get("name", ""))
    except passkeys.PasskeyRefused as refused:
        flash(say(refused.reason), "error")
    else:
        db.session.commit()
        flash(_("Passkey renamed."), "success")
    return _back()


@bp.route("/account/passkeys/<int:passkey_id>/remove", methods=["POST"])
@login_required
def passkey_remove(passkey_id: int):
    """Remove one of one's passkeys: it no longer signs in."""
    user = current_user._get_current_object()
    passkey = _own(passkey_id)
    name = passkey.name
    passkeys.remove(passkey)
    access_log.record("passkey_removed", tenant=user.tenant, user=user, detail=name)
    audit.record("passkey removed", f"{user.email}: {name}", tenant=user.tenant)
    db.session.commit()
    flash(_("Passkey “%(name)s” removed.", name=name), "info")
    return _back()


# --- first contact without a password -------------------------------------------------


@bp.route("/password/reset/<token>/passkey", methods=["POST"])
@limiter.limit("10/minute")
def passkey_first_contact(token: str):
    """An activation link's button, where the tenant chose passkeys for first contact:
    signed in by the link, the person adds a passkey, then reads the message."""
    reset = accounts.find_reset(token)
    if reset is None or not passkeys.first_contact_by_passkey(reset):
        return page("auth/reset_invalid.html", "auth/_reset_invalid.html"), 404
    user = passkeys.begin_without_password(reset)
    db.session.commit()
    return _sign_in_as(user, request.args.get("next"), factor_checked=True,
                       detail=N_("activation link"))


# --- signing in -----------------------------------------------------------------------


@bp.route("/sign-in/passkey/options", methods=["POST"])
@limiter.limit("30/minute")
def passkey_sign_in_options():
    """Options for signing in with whichever passkey of this portal the browser holds."""
    options, state = passkeys.authentication_options()
    response = _json(options)
    response.set_cookie(_SIGN_IN, _ceremonies().dumps(state), max_age=passkeys.CEREMONY_SECONDS,
                        secure=current_app.config["HTTPS"], httponly=True, samesite="Strict")
    return response


def _ceremonies() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt="passkey sign-in")


def _sign_in_state() -> dict | None:
    """The state the sign-in options left in this browser, while it is good."""
    try:
        return _ceremonies().loads(request.cookies.get(_SIGN_IN, ""),
                                   max_age=passkeys.CEREMONY_SECONDS)
    except BadSignature:
        return None


@bp.route("/sign-in/passkey", methods=["POST"])
@bp.route("/t/<slug>/sign-in/passkey", methods=["POST"])
@limiter.limit(accounts.SIGN_IN_LIMIT)
def passkey_sign_in(slug: str | None = None):
    """Sign in with a passkey: no password, no separate second factor (JSON)."""
    tenant = _tenant(slug)
    answer = request.get_json(silent=True) or {}
    try:
        passkey = passkeys.authenticate(answer, _sign_in_state(), tenant)
    except passkeys.PasskeyRefused as refused:
        db.session.rollback()
        known = passkeys.credential_of(answer)
        if known is not None:
            access_log.record("sign_in_failed", tenant=known.user.tenant, user=known.user,
                              detail=N_("passkey refused"))
        metrics.sign_in_failed("passkey")
        db.session.commit()
        response = _refused(refused)[0]
        response.delete_cookie(_SIGN_IN)
        return response
    user = passkey.user
    response = _sign_in_as(user, request.args.get("next"), factor_checked=True,
                           detail=N_("with a passkey"))
    answer = jsonify(redirect=response.headers.get("HX-Redirect") or response.location)
    for cookie in response.headers.getlist("Set-Cookie"):
        answer.headers.add("Set-Cookie", cookie)
    answer.delete_cookie(_SIGN_IN)  # one answer per challenge
    return answer
