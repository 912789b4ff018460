"""Error pages: plain words, no tracebacks, the same layout as every other page."""

import logging

from flask import Flask, render_template
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from app.extensions import login_manager
from app.web.languages import N_

log = logging.getLogger(__name__)

#: Titles and details in English, marked for translation; each page translates them.
MESSAGES = {
    400: (N_("Something in that request was not right"),
          N_("Go back, reload the page and try again.")),
    403: (N_("Not allowed"), N_("Your account may not open this page.")),
    404: (N_("Not found"), N_("There is nothing at this address, or it is not yours to see.")),
    405: (N_("Not allowed"), N_("That action is not available here.")),
    413: (N_("Too large"), N_("What you sent is larger than this portal accepts.")),
    429: (N_("Too many attempts"), N_("Wait a minute, then try again.")),
    500: (N_("Something went wrong"), N_("The problem has been logged. Try again in a moment.")),
}
#: how long a client is asked to wait while the database cannot be reached
RETRY_AFTER_SECONDS = 30


def register(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_failed(error):
        return render_template(
            "errors/error.html",
            title=_("This form has expired"),
            detail=_("For your security, forms stop working after a while or after you sign "
                     "out. Reload the page and try again."),
        ), 400

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        title, detail = MESSAGES.get(error.code, (error.name, ""))
        return render_template("errors/error.html", title=_(title) if title else title,
                               detail=_(detail) if detail else detail), error.code

    app.register_error_handler(DBAPIError, database_unavailable)
    app.register_error_handler(PoolTimeout, database_unavailable)


def database_unavailable(error: Exception):
    """503 and a page asking to come back, while the database cannot be reached (down,
    unreachable, or every pooled connection busy): one line in the log, no traceback,
    since the cause is outside the code and the same for every request meanwhile."""
    if not is_outage(error):
        raise error  # a fault in the code: a 500, and its traceback in the log
    reason = str(getattr(error, "orig", None) or error).strip().splitlines()
    log.warning("database unavailable, answered 503: %s", reason[0] if reason else "")
    # The page is drawn as for a visitor who is not signed in: who is signed in is
    # in the database too.
    page = render_template(
        "errors/error.html", current_user=login_manager.anonymous_user(),
        title=_("Temporarily unavailable"),
        detail=_("The portal cannot reach its data just now. Try again in a minute."))
    return page, 503, {"Retry-After": str(RETRY_AFTER_SECONDS)}


def is_outage(error: Exception) -> bool:
    """Whether ``error`` says the database cannot be used now, rather than that the code
    asked it something wrong."""
    if isinstance(error, PoolTimeout) or getattr(error, "connection_invalidated", False):
        return True
    if not isinstance(error, OperationalError):
        return False
    # SQLite raises OperationalError for a mistake in the SQL too (no such column), with
    # its generic code; what stops it working has codes of its own (CANTOPEN, BUSY,
    # IOERR, FULL, READONLY...).
    return getattr(error.orig, "sqlite_errorname", None) != "SQLITE_ERROR"
