"""Forms of the inbox. Who a reply may go to is decided in app/domain/replies.py, not here."""

from flask_wtf.file import MultipleFileField
from wtforms import SelectField, SelectMultipleField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget

from app.models import Mode
from app.web.inputs import Form

MODE_LABELS = {Mode.OFF: "Off", Mode.EXTERNAL: "External Recipients Only",
               Mode.ALL: "All Recipients"}


class ReplyForm(Form):
    recipients = SelectMultipleField(
        "Send to", validate_choice=False,  # a forged address gets replies.py's clear refusal
        widget=ListWidget(prefix_label=False), option_widget=CheckboxInput(),
    )
    body = TextAreaField("Your reply", validators=[DataRequired(), Length(max=200_000)])
    attachments = MultipleFileField("Attach files")
    mode = SelectField("CCM mode", choices=[SelectChoice(m, MODE_LABELS[m]) for m in Mode],
                       default=Mode.EXTERNAL)
