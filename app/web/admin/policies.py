"""Policies in evaluation order, their editor, and the policy tester."""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP

from flask import abort, flash, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from app.domain import audit, composing, ingest, policy_rules
from app.extensions import db
from app.models import Fallback, Policy, PolicyKind, TlsLevel
from app.web.admin import bp
from app.web.admin.forms import ActionForm, PolicyForm, TesterForm
from app.web.languages import say
from app.web.rendering import page, redirect_to


def _policy(policy_id: int) -> Policy:
    policy = db.session.scalar(select(Policy).where(Policy.id == policy_id,
                                                    Policy.tenant_id == current_user.tenant_id))
    if policy is None:
        abort(404)
    return policy


@bp.route("/")
def home():
    return redirect_to(url_for("admin.policies"))


@bp.route("/policies")
def policies():
    """The tenant's policies, in the order the gateway evaluates them."""
    return page("admin/policies.html", "admin/_policies.html",
                policies=current_user.tenant.policies, form=ActionForm())


@bp.route("/policies/new", methods=["GET", "POST"])
@bp.route("/policies/<int:policy_id>", methods=["GET", "POST"])
def policy(policy_id: int | None = None):
    """Create or edit a policy; each field is checked by the rules the importer uses."""
    existing = _policy(policy_id) if policy_id else None
    form = PolicyForm(obj=existing)
    if request.method == "GET" and existing is not None:
        form.phrases.data = "\n".join(existing.phrases or [])
        form.where.data = list(existing.where or [])
        form.tls.data = existing.tls or TlsLevel.ENCRYPT
        form.fallback.data = existing.fallback or Fallback.CCM
    if form.validate_on_submit():
        kind = form.kind.data
        content, secure = kind == PolicyKind.CONTENT, kind == PolicyKind.SECURE_DELIVERY
        # Only the fields of the chosen kind count: the others are hidden in the form.
        values = {
            "from_pattern": (form.from_pattern.data or "").strip() or None,
            "to_pattern": (form.to_pattern.data or "").strip() or None,
            "phrases": [p.strip() for p in (form.phrases.data or "").splitlines() if p.strip()]
            if content else None,
            "where": form.where.data if content else None,
            "tls": form.tls.data if secure else None,
            "fallback": form.fallback.data if secure else None,
            "visibility_days": form.visibility_days.data,
        }
        problems = policy_rules.problems(kind, **values)
        values["phrases"] = values["phrases"] or []
        values["where"] = values["where"] or ["subject", "body"]
        fields = {"from": form.from_pattern, "to": form.to_pattern, "phrases": form.phrases,
                  "where": form.where, "tls": form.tls, "fallback": form.fallback,
                  "visibility_days": form.visibility_days, "kind": form.kind}
        for name, problem in problems.items():
            said = say(problem)  # a phrase the importer also writes after a line number
            fields[name].errors = [*fields[name].errors, said[:1].upper() + said[1:] + "."]
        if not problems:
            target = existing or Policy(tenant=current_user.tenant,
                                        position=len(current_user.tenant.policies))
            for name, value in {"name": form.name.data.strip(), "kind": kind,
                                "enabled": form.enabled.data, **values}.items():
                setattr(target, name, value)
            db.session.add(target)
            audit.record("policy saved" if existing else "policy created",
                         f"{target.name} ({kind})", tenant=current_user.tenant)
            db.session.commit()
            flash(_("Policy “%(name)s” saved.", name=target.name), "success")
            return redirect_to(url_for("admin.policies"))
    return page("admin/policy.html", "admin/_policy_form.html", form=form, policy=existing)


def _ordered() -> list[Policy]:
    return list(current_user.tenant.policies)


@bp.route("/policies/<int:policy_id>/move", methods=["POST"])
def move_policy(policy_id: int):
    """Move a policy one place up or down the evaluation order."""
    policy = _policy(policy_id)
    if ActionForm().validate_on_submit():
        ordered = _ordered()
        index = ordered.index(policy)
        other = index - 1 if request.form.get("direction") == "up" else index + 1
        if 0 <= other < len(ordered):
            ordered[index], ordered[other] = ordered[other], ordered[index]
            for position, each in enumerate(ordered):
                each.position = position
            audit.record("policy moved", f"{policy.name} to position {other + 1}",
                         tenant=current_user.tenant)
            db.session.commit()
    return policies()


@bp.route("/policies/<int:policy_id>/toggle", methods=["POST"])
def toggle_policy(policy_id: int):
    policy = _policy(policy_id)
    if ActionForm().validate_on_submit():
        policy.enabled = not policy.enabled
        audit.record("policy enabled" if policy.enabled else "policy disabled", policy.name,
                     tenant=current_user.tenant)
        db.session.commit()
    return policies()


@bp.route("/policies/<int:policy_id>/delete", methods=["POST"])
def delete_policy(policy_id: int):
    policy = _policy(policy_id)
    if ActionForm().validate_on_submit():
        audit.record("policy deleted", policy.name, tenant=current_user.tenant)
        db.session.delete(policy)
        db.session.flush()
        for position, each in enumerate(_ordered()):
            each.position = position
        db.session.commit()
        flash(_("Policy “%(name)s” deleted.", name=policy.name), "success")
    return redirect_to(url_for("admin.policies"))


@bp.route("/policies/test", methods=["GET", "POST"])
def tester():
    """Per recipient, the route the gateway would take: computed by the gateway's code."""
    form = TesterForm()
    result = None
    if form.validate_on_submit():
        try:
            recipients = composing.addresses(form.recipients.data)
        except composing.ComposeRefused as refused:
            form.recipients.errors = [*form.recipients.errors, say(refused.words)]
        else:
            raw = _tester_message(form)
            result = ingest.plan(current_user.tenant, raw, form.sender.data.strip().lower(),
                                 recipients, mode=form.mode.data or None)
    return page("admin/tester.html", "admin/_tester.html", form=form, result=result)


def _tester_message(form: TesterForm) -> bytes:
    upload = form.eml.data
    if upload and getattr(upload, "filename", ""):
        return upload.read()
    message = EmailMessage()
    message["From"] = form.sender.data
    message["Subject"] = form.subject.data or ""
    message.set_content(form.body.data or "")
    return message.as_bytes(policy=SMTP)
