"""Forms of the administrator console. Policy rules live in app/domain/policy_rules.py.

Labels and messages are lazy: the form classes are built at import, before any locale.
"""

from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import (
    DataRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
    ValidationError,
)
from wtforms.widgets import CheckboxInput, ListWidget

from app import clock
from app.delivery import destinations
from app.mail import addresses
from app.models import Fallback, Mode, PolicyKind, RecipientState, Role, Route, TlsLevel
from app.web.inputs import Form
from app.web.languages import LANGUAGES, say


def relay_syntax(form, field) -> None:
    """``smtp://host[:port]`` as the transport reads it; where it may point is the
    settings view's to judge, since that depends on who sets it."""
    try:
        destinations.parse_relay(field.data.strip())
    except ValueError as error:
        raise ValidationError(say(error.args[0])) from None


ADDRESS = Regexp(r"^[^@\s]+@[^@\s]+$", message=_l("Enter an email address."))
KIND_LABELS = {PolicyKind.ROUTE: _l("Route (who to whom)"),
               PolicyKind.CONTENT: _l("Content (a word or phrase)"),
               PolicyKind.SECURE_DELIVERY: _l("Secure delivery (TLS required)")}


class PolicyForm(Form):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    kind = SelectField(_l("Kind"), choices=[SelectChoice(k, v) for k, v in KIND_LABELS.items()])
    enabled = BooleanField(_l("Enabled"), default=True)
    from_pattern = StringField(_l("From"), validators=[Length(max=320)])
    to_pattern = StringField(_l("To"), validators=[Length(max=320)])
    phrases = TextAreaField(_l("Words or phrases, one per line"), validators=[Length(max=20_000)])
    where = SelectMultipleField(
        _l("Look in"),
        choices=[SelectChoice("subject", _l("Subject")), SelectChoice("body", _l("Body"))],
        default=["subject", "body"], widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput())
    tls = SelectField(_l("TLS"), choices=[
        SelectChoice(TlsLevel.ENCRYPT, _l("Encrypt (any certificate)")),
        SelectChoice(TlsLevel.VERIFY, _l("Verify (valid certificate)"))])
    fallback = SelectField(_l("When TLS cannot be had"),
                           choices=[SelectChoice(Fallback.CCM, _l("Deliver by CCM")),
                                    SelectChoice(Fallback.BOUNCE, _l("Bounce to the sender"))])
    visibility_days = IntegerField(_l("Visibility window (days)"),
                                   validators=[Optional(), NumberRange(1, 3650)])


class TesterForm(Form):
    sender = StringField(_l("Sender"), validators=[DataRequired(), ADDRESS])
    recipients = StringField(_l("Recipients"), validators=[DataRequired(), Length(max=5000)])
    subject = StringField(_l("Subject"), validators=[Length(max=998)])
    body = TextAreaField(_l("Body"), validators=[Length(max=200_000)])
    mode = SelectField(_l("CCM mode"), choices=[
        SelectChoice("", _l("As a mail client asks (the X-CCM-Mode header, if allowed)")),
        SelectChoice(Mode.OFF, _l("Off (portal composer)")),
        SelectChoice(Mode.EXTERNAL, _l("External Recipients Only (portal composer)")),
        SelectChoice(Mode.ALL, _l("All Recipients (portal composer)"))], default="")
    eml = FileField(_l("Or a message file (.eml)"))


class UserForm(Form):
    role = SelectField(_l("Role"), choices=[SelectChoice(Role.INTERNAL, _l("Internal user")),
                                        SelectChoice(Role.ADMIN, _l("Administrator"))])
    application_settings = SelectField(_l("Application settings"), coerce=str)
    portal_ccm = SelectField(_l("May use CCM mode in the portal"), choices=[
        SelectChoice("", _l("As the application settings say")), SelectChoice("yes", _l("Allow")),
        SelectChoice("no", _l("Deny"))])
    send_secure = SelectField(_l("May Send Secure from a mail client"), choices=[
        SelectChoice("", _l("As the application settings say")), SelectChoice("yes", _l("Allow")),
        SelectChoice("no", _l("Deny"))])
    disabled = BooleanField(_l("Disabled (cannot sign in)"))


class NewUserForm(UserForm):
    email = StringField(_l("Email address"), validators=[DataRequired(), Length(max=320), ADDRESS])


class ActionForm(Form):
    """A button that changes something: only its CSRF token matters."""


class ProfileForm(Form):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=100)])
    portal_ccm = BooleanField(_l("May use CCM mode when composing in the portal"))
    send_secure = BooleanField(_l('May "Send Secure" from a mail client (X-CCM-Mode)'))
    is_default = BooleanField(_l("Default for users without application settings of their own"))


class TemplateForm(Form):
    subject = StringField(_l("Subject"), validators=[DataRequired(), Length(max=998)])
    text = TextAreaField(_l("Text version"), validators=[DataRequired(), Length(max=100_000)])
    html = TextAreaField(_l("HTML version"), validators=[DataRequired(), Length(max=200_000)])


class TrackingForm(Form):
    class Meta:
        csrf = False  # a search changes nothing

    sender = StringField(_l("Sender"), validators=[Optional(), Length(max=320)])
    recipient = StringField(_l("Recipient"), validators=[Optional(), Length(max=320)])
    subject = StringField(_l("Subject"), validators=[Optional(), Length(max=200)])
    since = DateField(_l("Received from"), validators=[Optional()])
    until = DateField(_l("Received until"), validators=[Optional()])
    route = SelectField(_l("Route"), choices=[
        SelectChoice("", _l("Any")), SelectChoice(Route.CCM, "CCM"),
        SelectChoice(Route.INTERNAL, _l("Internal relay")), SelectChoice(Route.EXTERNAL, "MX")],
        validators=[Optional()])
    state = SelectField(_l("Recipient state"), choices=[SelectChoice("", _l("Any"))] + [
        SelectChoice(state, label) for state, label in (
            (RecipientState.QUEUED, _l("Queued")), (RecipientState.DEFERRED, _l("Deferred")),
            (RecipientState.DELIVERED, _l("Delivered")), (RecipientState.BOUNCED, _l("Bounced")),
            (RecipientState.HELD, _l("In the isolation area")),
            (RecipientState.REVOKED, _l("Withdrawn")), (RecipientState.EXPIRED, _l("Expired")))],
        validators=[Optional()])
    message_id = StringField(_l("Message-ID"), validators=[Optional(), Length(max=998)])
    #: the platform administrator's: every tenant's messages (ignored for anyone else)
    every_tenant = BooleanField(_l("Every tenant"))


class RevokeForm(Form):
    recipient = HiddenField(validators=[DataRequired()])


def time_zone_name(form, field) -> None:
    """An IANA time zone name this system knows (app/clock.py)."""
    if problem := clock.zone_problem((field.data or "").strip()):
        raise ValidationError(say(problem))


def sender_name(form, field) -> None:
    """A name notifications may show as their sender (the portal's, else the
    organisation's): nothing that reads as an address or a control character."""
    if problem := addresses.display_name_problem(field.data or ""):
        raise ValidationError(say(problem))


SECOND_FACTOR_CHOICES = [SelectChoice("off", _l("Off")), SelectChoice("optional", _l("Optional")),
                         SelectChoice("required", _l("Required"))]


class SettingsForm(Form):
    name = StringField(_l("Organisation name"),
                       validators=[DataRequired(), Length(max=200), sender_name])
    portal_name = StringField(_l("Portal name (on the sign-in page and in notifications)"),
                              validators=[Optional(), Length(max=200), sender_name])
    domains = TextAreaField(_l("Internal domains, one per line"), validators=[DataRequired()])
    internal_relay = StringField(_l("Internal relay (smtp://host:port)"),
                                 validators=[Optional(), Length(max=255), relay_syntax])
    visibility_days = IntegerField(_l("Visibility window (days)"),
                                   validators=[DataRequired(), NumberRange(1, 3650)])
    expiry_warning_days = IntegerField(_l("Warn about unopened messages this many days "
                                          "before they expire (0: never)"),
                                       validators=[Optional(), NumberRange(0, 365)])
    first_contact = SelectField(_l("First contact"), choices=[
        SelectChoice("password", _l("Email a generated password")),
        SelectChoice("activation_link", _l("Email a link to choose a password"))])
    activation_hours = IntegerField(_l("Activation link valid for (hours)"),
                                    validators=[DataRequired(), NumberRange(1, 720)])
    logo = FileField(_l("Logo (PNG or JPEG, up to 200 KB)"))
    second_factor_external = SelectField(_l("Second factor for external recipients"),
                                         choices=SECOND_FACTOR_CHOICES)
    second_factor_internal = SelectField(_l("Second factor for internal users"),
                                         choices=SECOND_FACTOR_CHOICES)
    mail_from = StringField(_l("Notification sender address"),
                            validators=[Optional(), Length(max=320), ADDRESS])
    time_zone = StringField(_l("Time zone of the portal's pages"),
                            validators=[DataRequired(), Length(max=64), time_zone_name])
    default_language = SelectField(_l("Language of notifications"), choices=[
        SelectChoice(code, name, render_kw={"lang": code}) for code, name in LANGUAGES.items()])


class TenantForm(Form):
    slug = StringField(_l("Short name (in portal addresses)"), validators=[
        DataRequired(), Length(max=63),
        Regexp(r"^[a-z0-9-]+$", message=_l("Use lower-case letters, digits and '-'."))])
    name = StringField(_l("Organisation name"),
                       validators=[DataRequired(), Length(max=200), sender_name])
    domains = TextAreaField(_l("Internal domains, one per line"), validators=[DataRequired()])
    admin_email = StringField(_l("First administrator's address"),
                              validators=[DataRequired(), Length(max=320), ADDRESS])
