"""Views of the inbox blueprint."""

from flask_login import login_required

from ..rendering import page
from . import bp


@bp.route("/")
@login_required
def index():
    """The landing page after sign-in: the user's secure messages."""
    return page("inbox/index.html", "inbox/_messages.html", messages=[])
