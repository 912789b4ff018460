"""The audit log of administrator actions, searchable."""

from flask import request
from flask_login import current_user

from app.domain import access_log, audit
from app.web.admin import bp
from app.web.rendering import page


@bp.route("/audit")
def audit_log():
    """Who did what, when and from where, in this tenant (and platform-wide for operators)."""
    query = request.args.get("q", "")
    events = audit.search(current_user.tenant, query)
    platform = audit.search(None, query) if current_user.is_platform_admin else []
    return page("admin/audit.html", {"audit": "admin/_audit.html", None: "admin/_audit.html"},
                events=events, platform=platform, query=query)


@bp.route("/access")
def access():
    """Every sign-in, opening, download and reply in the tenant, searchable."""
    query = request.args.get("q", "")
    return page("admin/access.html", "admin/access.html",
                events=access_log.search(current_user.tenant, query), query=query)
