"""Forms of the auth pages. Password rules live in app/domain/passwords.py, not here.

Labels and messages are lazy: the form classes are built at import, before any locale.
"""

from flask_babel import lazy_gettext as _l
from wtforms import PasswordField, RadioField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, Regexp

from app.web.inputs import Form

ADDRESS = Regexp(r"^[^@\s]+@[^@\s]+$", message=_l("Enter an email address."))


def _strip(value: str | None) -> str | None:
    return value.strip() if value else value


class SignInForm(Form):
    email = StringField(
        _l("Email address"), filters=[_strip], validators=[DataRequired(), Length(max=320), ADDRESS]
    )
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=1024)])


class ChooseAccountForm(Form):
    account = RadioField(_l("Organisation"), coerce=int, validators=[DataRequired()])


class NewPasswordForm(Form):
    new = PasswordField(_l("New password"), validators=[DataRequired(), Length(max=1024)])
    confirm = PasswordField(
        _l("Repeat the new password"),
        validators=[DataRequired(), EqualTo("new", message=_l("The two passwords differ."))],
    )


class ChangePasswordForm(NewPasswordForm):
    current = PasswordField(_l("Current password"), validators=[DataRequired(), Length(max=1024)])


class ForgotForm(Form):
    email = StringField(
        _l("Email address"), filters=[_strip], validators=[DataRequired(), Length(max=320), ADDRESS]
    )


class CodeForm(Form):
    code = StringField(_l("Code"), filters=[_strip], validators=[DataRequired(), Length(max=20)])
