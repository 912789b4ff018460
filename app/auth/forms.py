"""Forms of the auth pages. Password rules live in app/passwords.py, not here."""

from flask_wtf import FlaskForm
from wtforms import PasswordField, RadioField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, Regexp

ADDRESS = Regexp(r"^[^@\s]+@[^@\s]+$", message="Enter an email address.")


def _strip(value: str | None) -> str | None:
    return value.strip() if value else value


class SignInForm(FlaskForm):
    email = StringField(
        "Email address", filters=[_strip], validators=[DataRequired(), Length(max=320), ADDRESS]
    )
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class ChooseAccountForm(FlaskForm):
    account = RadioField("Organisation", coerce=int, validators=[DataRequired()])


class NewPasswordForm(FlaskForm):
    new = PasswordField("New password", validators=[DataRequired(), Length(max=1024)])
    confirm = PasswordField(
        "Repeat the new password",
        validators=[DataRequired(), EqualTo("new", message="The two passwords differ.")],
    )


class ChangePasswordForm(NewPasswordForm):
    current = PasswordField("Current password", validators=[DataRequired(), Length(max=1024)])


class ForgotForm(FlaskForm):
    email = StringField(
        "Email address", filters=[_strip], validators=[DataRequired(), Length(max=320), ADDRESS]
    )


class CodeForm(FlaskForm):
    code = StringField("Code", filters=[_strip], validators=[DataRequired(), Length(max=20)])
