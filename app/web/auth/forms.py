"""Forms of the auth pages. Password rules live in app/domain/passwords.py, not here."""

from wtforms import PasswordField, RadioField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, Regexp

from app.web.inputs import Form

ADDRESS = Regexp(r"^[^@\s]+@[^@\s]+$", message="Enter an email address.")


def _strip(value: str | None) -> str | None:
    return value.strip() if value else value


class SignInForm(Form):
    email = StringField(
        "Email address", filters=[_strip], validators=[DataRequired(), Length(max=320), ADDRESS]
    )
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class ChooseAccountForm(Form):
    account = RadioField("Organisation", coerce=int, validators=[DataRequired()])


class NewPasswordForm(Form):
    new = PasswordField("New password", validators=[DataRequired(), Length(max=1024)])
    confirm = PasswordField(
        "Repeat the new password",
        validators=[DataRequired(), EqualTo("new", message="The two passwords differ.")],
    )


class ChangePasswordForm(NewPasswordForm):
    current = PasswordField("Current password", validators=[DataRequired(), Length(max=1024)])


class ForgotForm(Form):
    email = StringField(
        "Email address", filters=[_strip], validators=[DataRequired(), Length(max=320), ADDRESS]
    )


class CodeForm(Form):
    code = StringField("Code", filters=[_strip], validators=[DataRequired(), Length(max=20)])
