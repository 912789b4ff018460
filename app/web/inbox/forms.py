"""Forms of the inbox. Who a reply may go to is decided in app/domain/replies.py, not here."""

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
    its HTML as RICH_FIELD. Without script the textarea is all there is, posting text."""
    field.render_kw = {**(field.render_kw or {}), "data-rich": RICH_FIELD,
                       "data-rich-html": html}


def sent_again(form) -> str:
    """The editor's HTML a form was posted with, sanitized, to show a refused form again
    as it was written; empty when there was none (a GET, or no script)."""
    rich = composing.formatted_or_none(form.body_html.data)
    return rich.html if rich else ""


MODE_LABELS = {Mode.OFF: "Off", Mode.EXTERNAL: "External Recipients Only",
               Mode.ALL: "All Recipients"}


class ReplyForm(Form):
    recipients = SelectMultipleField(
        "Send to", validate_choice=False,  # a forged address gets replies.py's clear refusal
        widget=ListWidget(prefix_label=False), option_widget=CheckboxInput(),
    )
    body = TextAreaField("Your reply", validators=[DataRequired(), Length(max=200_000)])
    # Never rendered: only the editor's script adds it, so a page without script posts
    # text alone. Checked and sanitized in app/domain/composing.py (formatted).
    body_html = TextAreaField()
    attachments = MultipleFileField("Attach files")
    mode = SelectField("CCM mode", choices=[SelectChoice(m, MODE_LABELS[m]) for m in Mode],
                       default=Mode.EXTERNAL)
