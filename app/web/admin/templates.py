"""Notification templates: edit with a live preview rendered in Jinja's sandbox."""

from __future__ import annotations

from flask import abort, flash, request, url_for
from flask_login import current_user
from sqlalchemy import select

from app.delivery import mail_templates
from app.domain import audit
from app.extensions import db, limiter
from app.models import NotificationTemplate
from app.web.admin import bp
from app.web.admin.forms import ActionForm, TemplateForm
from app.web.rendering import page, redirect_to

TITLES = {
    "secure_message": "Secure message notification",
    "password": "Password notification",
    "activation": "Activation link",
    "password_reset": "Password reset",
    "expiry_warning": "Expiry warning",
}
#: the editor page shows the admin's own HTML in a sandboxed srcdoc frame, which takes
#: its CSP from this page: inline styles are allowed here, scripts never
EDITOR_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                 "img-src 'self' data:; connect-src 'self'; frame-src 'self'; "
                 "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def _kind(kind: str) -> str:
    if kind not in mail_templates.KINDS:
        abort(404)
    return kind


def _own(kind: str) -> NotificationTemplate | None:
    return db.session.scalar(select(NotificationTemplate).where(
        NotificationTemplate.tenant_id == current_user.tenant_id,
        NotificationTemplate.kind == kind))


@bp.route("/templates")
def templates():
    """Every notification, and whether the tenant has its own version."""
    own = {t.kind for t in db.session.scalars(select(NotificationTemplate).where(
        NotificationTemplate.tenant_id == current_user.tenant_id))}
    return page("admin/templates.html", "admin/_templates.html", titles=TITLES, own=own)


def _preview(kind: str, form: TemplateForm) -> tuple[dict | None, str | None]:
    return mail_templates.render_samples(kind, {
        "subject": form.subject.data or "", "text": form.text.data or "",
        "html": form.html.data or ""})


@bp.route("/templates/<kind>", methods=["GET", "POST"])
def template(kind: str):
    """Edit one template; a syntax error or forbidden construct is shown and not saved."""
    kind = _kind(kind)
    form = TemplateForm()
    if request.method == "GET":
        current = mail_templates.sources(kind, current_user.tenant)
        form.subject.data, form.text.data, form.html.data = (
            current["subject"], current["text"], current["html"])
    rendered, problem = _preview(kind, form)
    if form.validate_on_submit() and problem is None:
        own = _own(kind) or NotificationTemplate(tenant_id=current_user.tenant_id, kind=kind)
        own.subject, own.text, own.html = form.subject.data, form.text.data, form.html.data
        db.session.add(own)
        audit.record("template saved", TITLES[kind], tenant=current_user.tenant)
        db.session.commit()
        flash(f"{TITLES[kind]} saved: the next one sent uses it.", "success")
        return redirect_to(url_for("admin.template", kind=kind))
    response = page("admin/template.html", "admin/_template_form.html", form=form, kind=kind,
                    title=TITLES[kind], variables=mail_templates.KINDS[kind],
                    filters=sorted(mail_templates.FILTERS),
                    methods=sorted(mail_templates.METHODS),
                    limit=mail_templates.MAX_RENDERED, seconds=mail_templates.RENDER_SECONDS,
                    rendered=rendered, problem=problem, own=_own(kind) is not None,
                    restore=ActionForm())
    response.headers["Content-Security-Policy"] = EDITOR_POLICY
    return response


@bp.route("/templates/<kind>/preview", methods=["POST"])
# Compiling a large template takes seconds of CPU before any render limit applies: a
# typing administrator sends a few previews a second at most, a flood is refused.
@limiter.limit("120/minute")
def preview(kind: str):
    """The live preview (htmx, as the administrator types): never saves anything."""
    kind = _kind(kind)
    form = TemplateForm()
    if form.validate():
        rendered, problem = _preview(kind, form)
    else:
        empty = [str(f.label.text) for f in (form.subject, form.text, form.html) if f.errors]
        rendered, problem = None, f"{', '.join(empty)} cannot be empty."
    return page("admin/_template_preview.html", "admin/_template_preview.html",
                rendered=rendered, problem=problem)


@bp.route("/templates/<kind>/restore", methods=["POST"])
def restore(kind: str):
    """Go back to the built-in template."""
    kind = _kind(kind)
    if ActionForm().validate_on_submit() and (own := _own(kind)) is not None:
        db.session.delete(own)
        audit.record("template restored to default", TITLES[kind], tenant=current_user.tenant)
        db.session.commit()
        flash(f"{TITLES[kind]}: the built-in version is back.", "success")
    return redirect_to(url_for("admin.template", kind=kind))
