"""Mail client buttons: the Outlook add-in and the Thunderbird extension to download."""

from __future__ import annotations

from app.web.admin import bp
from app.web.rendering import page


@bp.route("/mail-clients")
def mail_clients():
    """The Send Secure buttons for Outlook and Thunderbird, and how to install them."""
    return page("admin/mail_clients.html", "_mail_clients.html")
