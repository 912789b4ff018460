"""The signed-in user's secure messages."""

from flask import Blueprint

bp = Blueprint("inbox", __name__, url_prefix="/inbox")

from app.web.inbox import routes  # noqa: E402,F401  (routes attach themselves to bp)
