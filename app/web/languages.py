"""The portal's languages: which one a request is answered in, and the chooser.

The language is, in order: the one the signed-in person chose (``User.language``), the
chooser's cookie (for visitors not signed in, and across sign-out), the best match of the
browser's ``Accept-Language``, else English. A value that is not one of
:data:`LANGUAGES` is ignored wherever it comes from, and the next source speaks.
"""

from babel import Locale
from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    g,
    has_request_context,
    redirect,
    request,
    url_for,
)
from flask_babel import format_number, get_locale
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import babel, db
from app.web.rendering import safe_next
from app.words import N_ as N_  # the views mark with it too
from app.words import Words, whole_number

#: Every language the portal speaks, each named in itself (as the chooser shows it).
#: To add one, see "Languages" in the README.
LANGUAGES = {
    "en": "English",
    "de": "Deutsch",
    "fr": "Français",
    "es": "Español",
    "ar": "العربية",
}
DEFAULT = "en"
#: The chooser's cookie: a visitor's choice before (and after) signing in.
COOKIE = "ccm_language"
COOKIE_SECONDS = 365 * 24 * 3600

bp = Blueprint("language", __name__)


def say(words) -> str:
    """What the domain said (a :class:`~app.words.Words`) in this request's language, its
    values put back (said in the language too, where they are words themselves, and
    numbers written as it writes them); any other text as it is."""
    if not isinstance(words, Words):
        return words
    return _(words.template, **{
        name: format_number(value) if whole_number(value) else say(value)
        for name, value in words.values.items()})


def select_locale() -> str:
    """The language of this request (see the module's docstring); English outside one
    (a job or the shell that says something a page would also say)."""
    if not has_request_context():
        return DEFAULT
    chosen = _remembered()
    if chosen in LANGUAGES:
        return chosen
    if request.cookies.get(COOKIE) in LANGUAGES:
        return request.cookies[COOKIE]
    return _best_accepted() or DEFAULT


def _best_accepted() -> str | None:
    """The first language offered in the browser's order of preference, by its primary
    subtag (``en-GB`` is English, before a German the browser ranks lower)."""
    for value, _quality in request.accept_languages:  # highest quality first
        primary = value.split("-")[0].split("_")[0].lower()
        if primary in LANGUAGES:
            return primary
    return None


def _remembered() -> str | None:
    """The signed-in person's language; None for visitors, and while the database cannot
    say who is signed in (the error page for that is drawn in the cookie's language)."""
    try:
        return current_user.language if current_user.is_authenticated else None
    except SQLAlchemyError:
        return None


@bp.post("/language")
def choose():
    """Switch the portal's language, remember it, and go back to the page it was asked on."""
    code = request.form.get("language", "")
    back = safe_next(request.form.get("next")) or url_for("auth.home")
    if code not in LANGUAGES:
        flash(_("That language is not offered here. The page stays in %(language)s.",
                language=LANGUAGES[str(get_locale())]), "error")
        return redirect(back, 303)
    if current_user.is_authenticated:
        current_user.language = code
        db.session.commit()
    response = redirect(back, 303)
    response.set_cookie(COOKIE, code, max_age=COOKIE_SECONDS, samesite="Lax", httponly=True,
                        secure=current_app.config["HTTPS"])
    return response


def _page_language() -> dict:
    """``<html lang dir>`` and the chooser's choices, for every page."""
    if "page_language" not in g:
        locale = get_locale() or Locale.parse(DEFAULT)
        g.page_language = {
            "html_lang": str(locale).replace("_", "-"),
            "html_dir": locale.text_direction,
            "languages": LANGUAGES,
        }
    return g.page_language


def script_words() -> dict[str, str]:
    """What app/static/js/ccm.js says by itself, in the page's language: base.html gives
    it as JSON in ``<body data-words>`` (the script keeps English for a key it lacks)."""
    return {
        "filesTooLarge": _("These files are too large."),
        "tooLarge": _("What you sent is larger than this portal accepts."),
        "tooMany": _("Too many attempts. Wait a minute, then try again."),
        "expired": _("This form has expired. Reload the page and try again."),
        "notFound": _("Not found: it is no longer there, or it is not yours to see."),
        "failed": _("Something went wrong. Try again in a moment."),
    }


def register(app: Flask) -> None:
    babel.init_app(app, locale_selector=select_locale, default_locale=DEFAULT)
    app.register_blueprint(bp)
    app.context_processor(_page_language)
    app.add_template_filter(say)
    app.add_template_global(script_words)
