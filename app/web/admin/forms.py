"""Forms of the administrator console. Policy rules live in app/domain/policy_rules.py."""

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
from app.web.languages import LANGUAGES


def relay_syntax(form, field) -> None:
    """``smtp://host[:port]`` as the transport reads it; where it may point is the
    settings view's to judge, since that depends on who sets it."""
    try:
        destinations.parse_relay(field.data.strip())
    except ValueError as error:
        raise ValidationError(str(error)) from None


ADDRESS = Regexp(r"^[^@\s]+@[^@\s]+$", message="Enter an email address.")
KIND_LABELS = {PolicyKind.ROUTE: "Route (who to whom)",
               PolicyKind.CONTENT: "Content (a word or phrase)",
               PolicyKind.SECURE_DELIVERY: "Secure delivery (TLS required)"}


class PolicyForm(Form):
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    kind = SelectField("Kind", choices=[SelectChoice(k, v) for k, v in KIND_LABELS.items()])
    enabled = BooleanField("Enabled", default=True)
    from_pattern = StringField("From", validators=[Length(max=320)])
    to_pattern = StringField("To", validators=[Length(max=320)])
    phrases = TextAreaField("Words or phrases, one per line", validators=[Length(max=20_000)])
    where = SelectMultipleField(
        "Look in", choices=[SelectChoice("subject", "Subject"), SelectChoice("body", "Body")],
        default=["subject", "body"], widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput())
    tls = SelectField("TLS", choices=[SelectChoice(TlsLevel.ENCRYPT, "Encrypt (any certificate)"),
                                      SelectChoice(TlsLevel.VERIFY, "Verify (valid certificate)")])
    fallback = SelectField("When TLS cannot be had",
                           choices=[SelectChoice(Fallback.CCM, "Deliver by CCM"),
                                    SelectChoice(Fallback.BOUNCE, "Bounce to the sender")])
    visibility_days = IntegerField("Visibility window (days)",
                                   validators=[Optional(), NumberRange(1, 3650)])


class TesterForm(Form):
    sender = StringField("Sender", validators=[DataRequired(), ADDRESS])
    recipients = StringField("Recipients", validators=[DataRequired(), Length(max=5000)])
    subject = StringField("Subject", validators=[Length(max=998)])
    body = TextAreaField("Body", validators=[Length(max=200_000)])
    mode = SelectField("CCM mode", choices=[
        SelectChoice("", "As a mail client asks (the X-CCM-Mode header, if allowed)"),
        SelectChoice(Mode.OFF, "Off (portal composer)"),
        SelectChoice(Mode.EXTERNAL, "External Recipients Only (portal composer)"),
        SelectChoice(Mode.ALL, "All Recipients (portal composer)")], default="")
    eml = FileField("Or a message file (.eml)")


class UserForm(Form):
    role = SelectField("Role", choices=[SelectChoice(Role.INTERNAL, "Internal user"),
                                        SelectChoice(Role.ADMIN, "Administrator")])
    application_settings = SelectField("Application settings", coerce=str)
    portal_ccm = SelectField("May use CCM mode in the portal", choices=[
        SelectChoice("", "As the application settings say"), SelectChoice("yes", "Allow"),
        SelectChoice("no", "Deny")])
    send_secure = SelectField("May Send Secure from a mail client", choices=[
        SelectChoice("", "As the application settings say"), SelectChoice("yes", "Allow"),
        SelectChoice("no", "Deny")])
    disabled = BooleanField("Disabled (cannot sign in)")


class NewUserForm(UserForm):
    email = StringField("Email address", validators=[DataRequired(), Length(max=320), ADDRESS])


class ActionForm(Form):
    """A button that changes something: only its CSRF token matters."""


class ProfileForm(Form):
    name = StringField("Name", validators=[DataRequired(), Length(max=100)])
    portal_ccm = BooleanField("May use CCM mode when composing in the portal")
    send_secure = BooleanField('May "Send Secure" from a mail client (X-CCM-Mode)')
    is_default = BooleanField("Default for users without application settings of their own")


class TemplateForm(Form):
    subject = StringField("Subject", validators=[DataRequired(), Length(max=998)])
    text = TextAreaField("Text version", validators=[DataRequired(), Length(max=100_000)])
    html = TextAreaField("HTML version", validators=[DataRequired(), Length(max=200_000)])


class TrackingForm(Form):
    class Meta:
        csrf = False  # a search changes nothing

    sender = StringField("Sender", validators=[Optional(), Length(max=320)])
    recipient = StringField("Recipient", validators=[Optional(), Length(max=320)])
    subject = StringField("Subject", validators=[Optional(), Length(max=200)])
    since = DateField("Received from", validators=[Optional()])
    until = DateField("Received until", validators=[Optional()])
    route = SelectField("Route", choices=[
        SelectChoice("", "Any"), SelectChoice(Route.CCM, "CCM"),
        SelectChoice(Route.INTERNAL, "Internal relay"), SelectChoice(Route.EXTERNAL, "MX")],
        validators=[Optional()])
    state = SelectField("Recipient state", choices=[SelectChoice("", "Any")] + [
        SelectChoice(state, label) for state, label in (
            (RecipientState.QUEUED, "Queued"), (RecipientState.DEFERRED, "Deferred"),
            (RecipientState.DELIVERED, "Delivered"), (RecipientState.BOUNCED, "Bounced"),
            (RecipientState.HELD, "In the isolation area"), (RecipientState.REVOKED, "Withdrawn"),
            (RecipientState.EXPIRED, "Expired"))], validators=[Optional()])
    message_id = StringField("Message-ID", validators=[Optional(), Length(max=998)])
    #: the platform administrator's: every tenant's messages (ignored for anyone else)
    every_tenant = BooleanField("Every tenant")


class RevokeForm(Form):
    recipient = HiddenField(validators=[DataRequired()])


def time_zone_name(form, field) -> None:
    """An IANA time zone name this system knows (app/clock.py)."""
    if problem := clock.zone_problem((field.data or "").strip()):
        raise ValidationError(problem)


def sender_name(form, field) -> None:
    """A name notifications may show as their sender (the portal's, else the
    organisation's): nothing that reads as an address or a control character."""
    if problem := addresses.display_name_problem(field.data or ""):
        raise ValidationError(problem)


class SettingsForm(Form):
    name = StringField("Organisation name",
                       validators=[DataRequired(), Length(max=200), sender_name])
    portal_name = StringField("Portal name (on the sign-in page and in notifications)",
                              validators=[Optional(), Length(max=200), sender_name])
    domains = TextAreaField("Internal domains, one per line", validators=[DataRequired()])
    internal_relay = StringField("Internal relay (smtp://host:port)",
                                 validators=[Optional(), Length(max=255), relay_syntax])
    visibility_days = IntegerField("Visibility window (days)",
                                   validators=[DataRequired(), NumberRange(1, 3650)])
    expiry_warning_days = IntegerField("Warn about unopened messages this many days before "
                                       "they expire (0: never)",
                                       validators=[Optional(), NumberRange(0, 365)])
    first_contact = SelectField("First contact", choices=[
        SelectChoice("password", "Email a generated password"),
        SelectChoice("activation_link", "Email a link to choose a password")])
    activation_hours = IntegerField("Activation link valid for (hours)",
                                    validators=[DataRequired(), NumberRange(1, 720)])
    logo = FileField("Logo (PNG or JPEG, up to 200 KB)")
    second_factor_external = SelectField("Second factor for external recipients",
                                         choices=[SelectChoice(v, v.capitalize()) for v in
                                                  ("off", "optional", "required")])
    second_factor_internal = SelectField("Second factor for internal users",
                                         choices=[SelectChoice(v, v.capitalize()) for v in
                                                  ("off", "optional", "required")])
    mail_from = StringField("Notification sender address",
                            validators=[Optional(), Length(max=320), ADDRESS])
    time_zone = StringField("Time zone of the portal's pages",
                            validators=[DataRequired(), Length(max=64), time_zone_name])
    default_language = SelectField(_l("Language of notifications"), choices=[
        SelectChoice(code, name, render_kw={"lang": code}) for code, name in LANGUAGES.items()])


class TenantForm(Form):
    slug = StringField("Short name (in portal addresses)", validators=[
        DataRequired(), Length(max=63),
        Regexp(r"^[a-z0-9-]+$", message="Use lower-case letters, digits and '-'.")])
    name = StringField("Organisation name",
                       validators=[DataRequired(), Length(max=200), sender_name])
    domains = TextAreaField("Internal domains, one per line", validators=[DataRequired()])
    admin_email = StringField("First administrator's address",
                              validators=[DataRequired(), Length(max=320), ADDRESS])
