"""Composing in the portal, drafts, and the sender's sent items with revocation."""

from flask import Blueprint

bp = Blueprint("compose", __name__)

from app.web.compose import routes  # noqa: E402,F401  (routes attach themselves to bp)
