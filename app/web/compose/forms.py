"""Forms of the compose pages. Addresses, limits and permissions are checked in
app/domain/composing.py, for drafts as for sending.

Labels are lazy: the form classes are built at import, before any locale.
"""

from flask_babel import lazy_gettext as _l
from flask_wtf.file import MultipleFileField
from wtforms import HiddenField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired

from app.models import Mode
from app.web.inbox.forms import MODE_LABELS
from app.web.inputs import Form


class ComposeForm(Form):
    draft = HiddenField()
    to = StringField(_l("To"), validators=[DataRequired()])
    cc = StringField(_l("Cc"))
    subject = StringField(_l("Subject"))
    body = TextAreaField(_l("Message"))
    # Never rendered: only the editor's script adds it (see rich_editor).
    body_html = TextAreaField()
    attachments = MultipleFileField(_l("Attach files"))
    mode = SelectField(_l("CCM mode"), choices=[SelectChoice(m, MODE_LABELS[m]) for m in Mode],
                       default=Mode.OFF)


class RevokeForm(Form):
    recipient = HiddenField(validators=[DataRequired()])
