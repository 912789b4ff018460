"""Forms of the compose pages. Addresses and permissions are checked in app/composing.py."""

from flask_wtf.file import MultipleFileField
from wtforms import HiddenField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from ..gateway.policies import MODES
from ..inbox.forms import MODE_LABELS
from ..inputs import Form


class ComposeForm(Form):
    draft = HiddenField()
    to = StringField("To", validators=[DataRequired(), Length(max=5000)])
    cc = StringField("Cc", validators=[Length(max=5000)])
    subject = StringField("Subject", validators=[Length(max=998)])
    body = TextAreaField("Message", validators=[Length(max=500_000)])
    attachments = MultipleFileField("Attach files")
    mode = SelectField("CCM mode", choices=[SelectChoice(m, MODE_LABELS[m]) for m in MODES],
                       default="off")


class RevokeForm(Form):
    recipient = HiddenField(validators=[DataRequired()])
