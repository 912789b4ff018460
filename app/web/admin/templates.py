"""Notification templates: edit with a live preview rendered in Jinja's sandbox, one
version per language (the preview shows the language chosen)."""

from __future__ import annotations

from flask import abort, flash, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from app.delivery import mail_templates
from app.domain import audit, passkeys
from app.extensions import db, limiter
from app.models import NotificationTemplate, Side
from app.web.admin import bp
from app.web.admin.forms import ActionForm, TemplateForm
from app.web.languages import LANGUAGES, N_
from app.web.rendering import page, redirect_to

#: each kind's name, in English for the audit log; pages show it translated
TITLES = {
    "secure_message": N_("Secure message notification"),
    "password": N_("Password notification"),
    "activation": N_("Activation link"),
    "password_reset": N_("Password reset"),
    "expiry_warning": N_("Expiry warning"),
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


def _language() -> str:
    """The language asked for (``?language=``), else the tenant's default language."""
    asked = request.args.get("language")
    if asked is not None and asked not in LANGUAGES:
        abort(404)
    default = current_user.tenant.default_language
    return asked or (default if default in LANGUAGES else mail_templates.DEFAULT_LANGUAGE)


@bp.route("/templates")
def templates():
    """Every notification, and in which languages the tenant has its own version (the
    languages named; "" for its version for every other language)."""
    own: dict[str, list[str]] = {}
    for version in db.session.scalars(select(NotificationTemplate).where(
            NotificationTemplate.tenant_id == current_user.tenant_id)):
        own.setdefault(version.kind, []).append(LANGUAGES.get(version.language or "", ""))
    return page("admin/templates.html", "admin/_templates.html", titles=TITLES,
                own={kind: sorted(names) for kind, names in own.items()})


def _preview(kind: str, form: TemplateForm, language: str) -> tuple[dict | None, str | None]:
    tenant = current_user.tenant
    # as the sample recipient (outside the tenant) would get it
    tenant_values = {"passkey": passkeys.activation_by_passkey(tenant, Side.EXTERNAL)}
    return mail_templates.render_samples(kind, {
        "subject": form.subject.data or "", "text": form.text.data or "",
        "html": form.html.data or ""}, language, tenant.time_zone, tenant_values)


@bp.route("/templates/<kind>", methods=["GET", "POST"])
def template(kind: str):
    """Edit one template in one language; a syntax error or forbidden construct is shown
    and not saved."""
    kind, language = _kind(kind), _language()
    tenant = current_user.tenant
    form = TemplateForm()
    if request.method == "GET":
        current = mail_templates.sources(kind, tenant, language)
        form.subject.data, form.text.data, form.html.data = (
            current["subject"], current["text"], current["html"])
    rendered, problem = _preview(kind, form, language)
    if form.validate_on_submit() and problem is None:
        own = mail_templates.own(kind, tenant, language) or NotificationTemplate(
            tenant_id=tenant.id, kind=kind, language=language)
        own.subject, own.text, own.html = form.subject.data, form.text.data, form.html.data
        db.session.add(own)
        audit.record("template saved", f"{TITLES[kind]} ({language})", tenant=tenant)
        db.session.commit()
        flash(_("%(title)s in %(language)s saved: the next one sent in this language uses it.",
                title=_(TITLES[kind]), language=LANGUAGES[language]), "success")
        return redirect_to(url_for("admin.template", kind=kind, language=language))
    in_force = mail_templates.in_force(kind, tenant, language)
    response = page("admin/template.html", "admin/_template_form.html", form=form, kind=kind,
                    title=_(TITLES[kind]), variables=mail_templates.KINDS[kind],
                    filters=sorted(mail_templates.FILTERS),
                    methods=sorted(mail_templates.METHODS),
                    limit=mail_templates.MAX_RENDERED, seconds=mail_templates.RENDER_SECONDS,
                    rendered=rendered, problem=problem, own=in_force is not None,
                    for_every_language=in_force is not None and in_force.language is None,
                    language=language, direction=mail_templates.direction(language),
                    languages=LANGUAGES, restore=ActionForm())
    response.headers["Content-Security-Policy"] = EDITOR_POLICY
    return response


@bp.route("/templates/<kind>/preview", methods=["POST"])
# Compiling a large template takes seconds of CPU before any render limit applies: a
# typing administrator sends a few previews a second at most, a flood is refused.
@limiter.limit("120/minute")
def preview(kind: str):
    """The live preview (htmx, as the administrator types): never saves anything."""
    kind, language = _kind(kind), _language()
    form = TemplateForm()
    if form.validate():
        rendered, problem = _preview(kind, form, language)
    else:
        empty = [str(f.label.text) for f in (form.subject, form.text, form.html) if f.errors]
        rendered, problem = None, _("%(fields)s cannot be empty.", fields=", ".join(empty))
    return page("admin/_template_preview.html", "admin/_template_preview.html",
                rendered=rendered, problem=problem, language=language,
                direction=mail_templates.direction(language))


@bp.route("/templates/<kind>/restore", methods=["POST"])
def restore(kind: str):
    """Go back to the built-in template in one language: throw away the tenant's version
    in force there (its own for the language, else the one for every language)."""
    kind, language = _kind(kind), _language()
    tenant = current_user.tenant
    if ActionForm().validate_on_submit() and (
            own := mail_templates.in_force(kind, tenant, language)) is not None:
        db.session.delete(own)
        audit.record("template restored to default",
                     f"{TITLES[kind]} ({own.language or 'every language'})", tenant=tenant)
        db.session.commit()
        flash(_("%(title)s: the built-in version is back.", title=_(TITLES[kind])), "success")
    return redirect_to(url_for("admin.template", kind=kind, language=language))
