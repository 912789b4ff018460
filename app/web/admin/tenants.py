"""Tenants, for the platform administrator who runs this installation."""

from __future__ import annotations

from flask import abort
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from app.domain import audit, people
from app.extensions import db
from app.mail import addresses
from app.models import ApplicationSettings, Domain, Role, Tenant
from app.web.admin import bp
from app.web.admin.forms import TenantForm
from app.web.admin.settings import domains_problem
from app.web.languages import say
from app.web.rendering import page


def _platform_only() -> None:
    if not current_user.is_platform_admin:
        abort(403)


@bp.route("/tenants")
def tenants():
    _platform_only()
    return page("admin/tenants.html", "admin/_tenants.html",
                tenants=list(db.session.scalars(select(Tenant).order_by(Tenant.name))))


@bp.route("/tenants/new", methods=["GET", "POST"])
def new_tenant():
    """A new organisation, with its domains and a first administrator."""
    _platform_only()
    form = TenantForm()
    if form.validate_on_submit():
        names = list(dict.fromkeys(n.strip().lower() for n in form.domains.data.splitlines()
                                   if n.strip()))
        tenant = Tenant(slug=form.slug.data, name=form.name.data.strip())
        if db.session.scalar(select(Tenant.id).where(Tenant.slug == tenant.slug)):
            form.slug.errors = [*form.slug.errors, _("Another organisation has this short name.")]
        elif problem := domains_problem(tenant, names):
            form.domains.errors = [*form.domains.errors, say(problem)]
        elif addresses.domain_of(form.admin_email.data) not in names:
            form.admin_email.errors = [*form.admin_email.errors,
                                       _("Use an address at one of the domains above.")]
        else:
            tenant.domains = [Domain(name=n) for n in names]
            tenant.application_settings = [ApplicationSettings(name="Default", is_default=True)]
            db.session.add(tenant)
            admin, password = people.create_internal(tenant, form.admin_email.data, Role.ADMIN)
            db.session.flush()
            audit.record("tenant created", f"{tenant.slug} ({tenant.name}), administrator "
                         f"{admin.email}")
            audit.record("tenant created", f"by the platform administrator; administrator "
                         f"{admin.email}", tenant=tenant)
            db.session.commit()
            return page("admin/password_shown.html", "admin/_password_shown.html",
                        user=admin, password=password)
    return page("admin/tenant_new.html", "admin/_tenant_new.html", form=form)
