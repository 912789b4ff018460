"""Limits every input meets before a view uses it: NUL anywhere, numbers in URLs, and
form fields by kind.

Each check here holds for every route and every form, so that a page added later gets it
without asking: a hostile value is refused with a 400, a 404 or a form error, never a 500.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from flask import Flask, abort, request
from flask_wtf import FlaskForm
from werkzeug.routing import IntegerConverter
from wtforms import DateTimeField, IntegerField, StringField
from wtforms.validators import ValidationError
from wtforms.widgets import Input

#: the largest value of an Integer column on every database CCM runs on. PostgreSQL's
#: integer has 32 bits, and SQLAlchemy sends each value there cast to it, so a larger one
#: is an error ("integer out of range"); SQLite overflows only past 64 bits.
INTEGER_MAX = 2**31 - 1
#: the years a date typed into a form may have: any message's, with room to spare; the
#: ends of Python's calendar (year 1, year 9999) overflow as soon as a day is added
FIRST_YEAR, LAST_YEAR = 1900, 2999
#: line breaks (CR, LF, NEL and Unicode's separators) and the other control characters
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")
#: text inputs of one line; a password is never written anywhere, a hidden field is ours
_SINGLE_LINE = {"text", "email", "search", "tel", "url"}


def register(app: Flask) -> None:
    """Refuse NUL before any other code of the application reads the request."""
    app.before_request(refuse_nul)


def refuse_nul() -> None:
    """A request with a NUL character anywhere a view may read it is refused (400).

    No one types one, and PostgreSQL can neither store nor compare text holding one
    ("PostgreSQL text fields cannot contain NUL (0x00) bytes"): refused here, it reaches
    no query, whichever path, search, form, cookie or header carries it.
    """
    if any("\x00" in text for text in _request_text()):
        abort(400)


def _request_text() -> Iterator[str]:
    yield request.path
    for name, value in request.headers:
        yield name
        yield value
    for values in (request.args, request.form, request.cookies):
        for name, value in values.items(multi=True):
            yield name
            yield value
    for name, upload in request.files.items(multi=True):
        yield name
        yield upload.filename or ""
        yield upload.content_type or ""


class IdConverter(IntegerConverter):
    """``<int:...>`` in every route: a number no row can have is simply not found (404),
    before it reaches the database, where SQLite overflows and PostgreSQL refuses it."""

    def __init__(self, map, fixed_digits=0, min=None, max=INTEGER_MAX, signed=False):
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def one_line(form, field) -> None:
    """A single-line field holds one line: a line break would end a mail header early and
    start another, made by whoever typed it."""
    if field.data and _CONTROL.search(field.data):
        raise ValidationError("Use one line of text, without line breaks or control "
                              "characters.")


def plausible_date(form, field) -> None:
    if field.data is not None and not FIRST_YEAR <= field.data.year <= LAST_YEAR:
        raise ValidationError(f"Use a date between the years {FIRST_YEAR} and {LAST_YEAR}.")


def storable_integer(form, field) -> None:
    if field.data is not None and not -INTEGER_MAX - 1 <= field.data <= INTEGER_MAX:
        raise ValidationError("That number is too large.")


def checks_for(field) -> list:
    """The checks every field of this kind gets, after its own validators."""
    if isinstance(field, DateTimeField):  # DateField too
        return [plausible_date]
    if isinstance(field, IntegerField):
        return [storable_integer]
    if isinstance(field, StringField) and isinstance(field.widget, Input) and \
            field.widget.input_type in _SINGLE_LINE:
        return [one_line]
    return []


class Form(FlaskForm):
    """Every form of the portal: a FlaskForm whose fields also get :func:`checks_for`."""

    class Meta:
        def render_field(self, field, render_kw):
            # The CSRF token field has no id: a page with several forms would repeat it.
            if field.type == "CSRFTokenField":
                render_kw = {"id": False, **render_kw}
            return super().render_field(field, render_kw)

    def validate(self, extra_validators=None) -> bool:
        extra = extra_validators or {}
        return super().validate({name: [*checks_for(field), *extra.get(name, ())]
                                 for name, field in self._fields.items()})
