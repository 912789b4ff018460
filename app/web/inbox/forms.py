"""Forms of the inbox. Who a reply may go to is decided in app/domain/replies.py, not here."""

import json

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.file import MultipleFileField
from wtforms import SelectField, SelectMultipleField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget

from app.domain import composing
from app.models import Mode
from app.web.inputs import Form

#: the name under which the editor (end of app/static/js/ccm.js) posts its HTML
RICH_FIELD = "body_html"


def rich_editor(field, html: str) -> None:
    """Mark a textarea for the editor, which starts from ``html`` (already safe) and posts
    its HTML as RICH_FIELD, its toolbar speaking the page's language. Without script the
    textarea is all there is, posting text."""
    field.render_kw = {**(field.render_kw or {}), "data-rich": RICH_FIELD,
                       "data-rich-html": html,
                       "data-rich-words": json.dumps(editor_words(), ensure_ascii=False)}


def editor_words() -> dict[str, str]:
    """What the editor's toolbar says, in the request's language: a button's name (its
    title and accessible name), and the ``…Text`` it shows, which that name starts with
    or holds, so that a spoken command naming what is seen finds it."""
    return {
        "toolbar": _("Formatting"),
        "bold": _("Bold"),
        "boldText": _("B"),  # the letter a word processor in the language shows for bold
        "italic": _("Italic"),
        "italicText": _("I"),  # ...and for italic
        "insertUnorderedList": _("Bulleted list"),
        "insertUnorderedListText": _("• List"),
        "insertOrderedList": _("1. List, numbered"),
        "insertOrderedListText": _("1. List"),
        "link": _("Link"),
        "linkText": _("Link"),
        "quote": _("Quote"),
        "quoteText": _("❝ Quote"),
        "linkPrompt": _("Link address (https://… or mailto:…)"),
        "linkRefused": _("A link must start with https://, http:// or mailto:."),
    }


def sent_again(form) -> str:
    """The editor's HTML a form was posted with, sanitized, to show a refused form again
    as it was written; empty when there was none (a GET, or no script)."""
    rich = composing.formatted_or_none(form.body_html.data)
    return rich.html if rich else ""


MODE_LABELS = {Mode.OFF: _l("Off"), Mode.EXTERNAL: _l("External Recipients Only"),
               Mode.ALL: _l("All Recipients")}


class ReplyForm(Form):
    recipients = SelectMultipleField(
        _l("Send to"), validate_choice=False,  # a forged address gets replies.py's clear refusal
        widget=ListWidget(prefix_label=False), option_widget=CheckboxInput(),
    )
    body = TextAreaField(_l("Your reply"), validators=[DataRequired(), Length(max=200_000)])
    # Never rendered: only the editor's script adds it, so a page without script posts
    # text alone. Checked and sanitized in app/domain/composing.py (formatted).
    body_html = TextAreaField()
    attachments = MultipleFileField(_l("Attach files"))
    mode = SelectField(_l("CCM mode"), choices=[SelectChoice(m, MODE_LABELS[m]) for m in Mode],
                       default=Mode.EXTERNAL)
