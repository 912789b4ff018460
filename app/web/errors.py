"""Error pages: plain words, no tracebacks, the same layout as every other page."""

from flask import Flask, render_template
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

MESSAGES = {
    400: ("Something in that request was not right", "Go back, reload the page and try again."),
    403: ("Not allowed", "Your account may not open this page."),
    404: ("Not found", "There is nothing at this address, or it is not yours to see."),
    405: ("Not allowed", "That action is not available here."),
    413: ("Too large", "What you sent is larger than this portal accepts."),
    429: ("Too many attempts", "Wait a minute, then try again."),
    500: ("Something went wrong", "The problem has been logged. Try again in a moment."),
}


def register(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_failed(error):
        return render_template(
            "errors/error.html",
            title="This form has expired",
            detail="For your security, forms stop working after a while or after you sign "
            "out. Reload the page and try again.",
        ), 400

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        title, detail = MESSAGES.get(error.code, (error.name, ""))
        return render_template("errors/error.html", title=title, detail=detail), error.code

