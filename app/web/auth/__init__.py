"""Sign-in, sign-out, password change and reset."""

from flask import Blueprint

bp = Blueprint("auth", __name__)

from app.web.auth import passkeys, routes  # noqa: E402,F401  (routes attach themselves to bp)
