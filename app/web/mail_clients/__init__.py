"""The mail client buttons as the portal serves them: the Outlook add-in's manifest and
the Thunderbird extension to download, and the pages Outlook itself loads."""

from flask import Blueprint

bp = Blueprint("mail_clients", __name__)

from app.web.mail_clients import routes  # noqa: E402,F401  (routes attach themselves to bp)
