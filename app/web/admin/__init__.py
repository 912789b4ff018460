"""The administrator console: a tenant's policies, people, templates, tracking and settings.

Every page here needs an administrator of the tenant; a platform administrator also
manages tenants. Every change is written to the audit log.
"""

from flask import Blueprint, abort
from flask_login import current_user

from app.extensions import login_manager

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def administrators_only():
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if not current_user.is_admin:
        abort(403)
    return None


import app.web.admin.mail_clients  # noqa: E402  (the mail client buttons' page)
import app.web.admin.passkeys  # noqa: E402,F401  (passkey policy and removal)
from app.web.admin import audit_log, people, policies, settings, templates, tenants, tracking  # noqa: E402,F401  (each attaches its routes to bp)
