"""Notifications: what they say, what they never say, and when they are sent."""

import os
import re
from pathlib import Path

import pytest
from sqlalchemy import select
from support import mail, post_form

from app.delivery import mail_templates
from app.domain import passwords
from app.extensions import db
from app.models import NotificationTemplate, OutboundItem, PasswordReset, User

SNAPSHOTS = Path(__file__).parent / "snapshots"
SECRET_SUBJECT = "Merger terms Falcon"
SECRET_BODY = "The price is 42 million; keep it quiet."


@pytest.fixture
def outbox(app, gateway):
    """Notifications go out by CCM_OUTBOUND: here, to a maildir."""
    app.config["OUTBOUND"] = f"maildir:{Path(app.instance_path) / 'outbox'}"

    def read():
        from support import read_outbox

        return read_outbox(app)

    return read


def secure(gateway, to="pat@partner.test", sender="alice@acme.test"):
    return gateway.send(mail(subject=SECRET_SUBJECT, body=SECRET_BODY, to=to, sender=sender),
                        [to], mail_from=sender, mode="external")


def texts(message) -> str:
    parts = [message["Subject"], message["From"]]
    parts += [p.get_content() for p in message.walk() if p.get_content_maintype() == "text"]
    return "\n".join(parts)


def test_the_secure_message_notification_names_no_sender_subject_or_content(gateway, outbox):
    message = secure(gateway)
    notice = next(m for m in outbox()
                  if m["Subject"] == "Secure message from Acme Corp: sign in to read it")
    everything = texts(notice)
    for secret in (SECRET_SUBJECT, SECRET_BODY, "alice", "Falcon", "42 million"):
        assert secret not in everything
    link = f"http://localhost/t/acme/messages/{message.public_id}"  # the message's own
    assert link in notice.get_body(("plain",)).get_content()
    assert notice["Auto-Submitted"] == "auto-generated"
    assert notice["To"] == "pat@partner.test"


def test_the_first_message_brings_a_password_that_works_once_changed(gateway, outbox, client,
                                                                     auth):
    secure(gateway)
    subjects = sorted(m["Subject"] for m in outbox())
    assert subjects == ["Secure message from Acme Corp: sign in to read it",
                        "Your sign-in details for the Acme Corp secure message portal"]
    password_mail = next(m for m in outbox() if "sign-in details" in m["Subject"])
    text = password_mail.get_body(("plain",)).get_content()
    assert "Login name: pat@partner.test" in text
    password = re.search(r"Password:\s+(\S+)", text).group(1)
    assert SECRET_SUBJECT not in texts(password_mail)
    response = auth.sign_in("pat@partner.test", password, slug="acme")
    assert response.headers["Location"] == "/password/change"
    account = gateway.account("pat@partner.test")
    assert (account.kind, account.role, account.must_change_password) == (
        "external", "external", True)


def test_later_messages_send_only_the_secure_message_notification(gateway, outbox):
    secure(gateway)
    first = len(outbox())
    secure(gateway)
    later = outbox()[first:]
    assert [m["Subject"] for m in later] == ["Secure message from Acme Corp: sign in to read it"]


def test_another_tenant_is_a_first_contact_again(gateway, outbox, make_tenant):
    make_tenant("globex", domains=["globex.test"])
    secure(gateway)
    gateway.send(mail(to="pat@partner.test", sender="gina@globex.test"), ["pat@partner.test"],
                 mail_from="gina@globex.test", mode="all")
    passwords = [m for m in outbox() if "sign-in details" in m["Subject"]]
    assert [("Acme" in m["Subject"], "Globex" in m["Subject"]) for m in passwords] == [
        (True, False), (False, True)]
    accounts = db.session.query(User).filter_by(email="pat@partner.test").all()
    assert len(accounts) == 2


def test_activation_link_instead_of_a_password(gateway, outbox, client, auth):
    gateway.tenant.first_contact = "activation_link"
    db.session.commit()
    secure(gateway)
    activation = next(m for m in outbox() if m["Subject"].startswith("Set up your access"))
    text = activation.get_body(("plain",)).get_content()
    assert "Password:" not in text
    link = re.search(r"http://localhost(/password/reset/\S+)", text).group(1)
    for _ in range(3):  # a scanner following the link uses nothing up
        assert client.get(link).status_code == 200
    assert db.session.query(PasswordReset).one().used_at is None
    post_form(client, link, {"new": "plum orbit lantern meadow",
                             "confirm": "plum orbit lantern meadow"})
    auth.sign_in("pat@partner.test", "plum orbit lantern meadow", slug="acme")
    assert client.get("/inbox/").status_code == 200


def test_a_tenants_own_template_is_used(gateway, outbox):
    db.session.add(NotificationTemplate(
        tenant=gateway.tenant, kind="secure_message", subject="Post for you, {{ recipient }}",
        text="See {{ portal_url }}", html="<p>See {{ portal_url }}</p>"))
    db.session.commit()
    secure(gateway)
    assert "Post for you, pat@partner.test" in [m["Subject"] for m in outbox()]


def test_notifications_are_queued_unrendered_and_nothing_of_them_stays_once_sent(gateway,
                                                                                 outbox):
    secure(gateway)
    queued = db.session.scalars(select(OutboundItem).where(
        OutboundItem.kind == "notification").order_by(OutboundItem.id)).all()
    # Rendering (templates, MIME, DKIM) waits for the worker: the SMTP answer does not.
    assert [item.notice["kind"] for item in queued] == ["secure_message", "password"]
    assert all(item.raw is None for item in queued)
    # The password is not queued: the worker generates it as it sends the mail.
    assert "password" not in queued[1].notice["context"]
    sent = next(m for m in outbox() if "sign-in details" in m["Subject"])
    password = re.search(r"Password:\s+(\S+)", sent.get_body(("plain",)).get_content())[1]
    assert passwords.verify_password(gateway.account("pat@partner.test").password_hash,
                                     password)
    for item in queued:
        db.session.refresh(item)
        assert (item.state, item.notice, item.raw) == ("done", None, None)


def test_a_template_edited_after_queueing_is_the_one_sent(gateway, outbox):
    secure(gateway)
    db.session.add(NotificationTemplate(
        tenant=gateway.tenant, kind="secure_message", subject="Edited: {{ tenant_name }}",
        text="See {{ portal_url }}", html="<p>See {{ portal_url }}</p>"))
    db.session.commit()
    assert "Edited: Acme Corp" in [m["Subject"] for m in outbox()]


def test_compiled_templates_are_reused_and_an_edit_is_compiled_afresh(app):
    sources = dict(mail_templates.builtin("secure_message"))
    context = {name: mail_templates.SAMPLES[name]
               for name in mail_templates.KINDS["secure_message"]}
    mail_templates.render_sources(sources, context)
    hits = mail_templates._compiled.cache_info().hits
    mail_templates.render_sources(sources, context)
    assert mail_templates._compiled.cache_info().hits == hits + 3
    sources["subject"] = "Changed {{ tenant_name }}"
    assert mail_templates.render_sources(sources, context)["subject"] == "Changed Acme Corp"


@pytest.mark.parametrize("kind", sorted(mail_templates.KINDS))
@pytest.mark.parametrize("part", ["subject", "text", "html"])
def test_built_in_notifications_match_their_snapshots(app, kind, part):
    rendered = mail_templates.render_samples(kind, mail_templates.builtin(kind))[0][part]
    snapshot = SNAPSHOTS / f"{kind}.{part}"
    if os.environ.get("CCM_UPDATE_SNAPSHOTS") == "1":  # after a deliberate change
        snapshot.write_text(rendered)
    assert snapshot.exists(), f"no snapshot {snapshot.name}: run with CCM_UPDATE_SNAPSHOTS=1"
    assert rendered == snapshot.read_text()


def test_no_notification_asks_for_a_password_and_each_shows_the_portal_address(app):
    for kind, variables in mail_templates.KINDS.items():
        rendered = mail_templates.render_sources(
            mail_templates.builtin(kind), {n: mail_templates.SAMPLES[n] for n in variables})
        text = rendered["text"].lower()
        assert "reply with your password" not in text and "send us your password" not in text
        assert mail_templates.SAMPLES["portal_url"] in rendered["text"], kind


def test_every_notification_carries_exactly_its_templates_variables_by_one_route_rule(
        gateway, client, app):
    """Every way a notification is queued (first contact by password and by activation
    link, a later message, an administrator's reset, a forgotten password, an expiry
    warning), for an outside recipient and for a colleague: each holds exactly the
    variables its template documents, names the tenant by its portal name, and goes
    through the internal relay exactly when the addressee is one of the tenant's own."""
    from datetime import timedelta

    from app.clock import utcnow
    from app.domain import expiry, people
    from app.models import Recipient

    gateway.tenant.portal_name = "Acme Secure"
    db.session.commit()
    secure(gateway)  # pat: secure message and password
    secure(gateway)  # pat: a second message, secure message only
    gateway.send(mail(to="bob@acme.test"), ["bob@acme.test"], mode="all")  # a colleague
    gateway.tenant.first_contact = "activation_link"
    db.session.commit()
    secure(gateway, to="sam@partner.test")  # activation link
    people.reset_password(gateway.account("alice@acme.test"))
    db.session.commit()
    for email in ("alice@acme.test", "pat@partner.test"):
        post_form(client, "/t/acme/password/forgot", {"email": email})
    for copy in db.session.scalars(select(Recipient).where(Recipient.route == "ccm")):
        copy.visible_until = utcnow() + timedelta(days=1)
    db.session.commit()
    expiry.warn_unopened()

    notices = db.session.scalars(select(OutboundItem).where(
        OutboundItem.kind == "notification")).all()
    kinds = {item.notice["kind"] for item in notices}
    assert kinds == set(mail_templates.KINDS)
    for item in notices:
        context, kind = item.notice["context"], item.notice["kind"]
        # A variable filled at sending (the password) is not queued; the mails sent
        # carry it (the first-contact and reset tests read the password from them).
        at_sending = mail_templates.AT_SENDING.get(kind, set())
        assert set(context) == set(mail_templates.KINDS[kind]) - at_sending, item.notice
        assert at_sending <= set(mail_templates.KINDS[kind])
        assert context["tenant_name"] == "Acme Secure"
        assert item.route == ("internal" if item.rcpt_to.endswith("@acme.test") else "external")


#: the activation notification's sentences about choosing a password, in English (its
#: heading and button, "Choose your password" and "Choose my password", are checked apart:
#: as words they may be in another sentence)
CHOOSING_A_PASSWORD = [
    "%(tenant_name)s has sent you a secure message. Choose a password to read it.",
    "%(tenant_name)s has sent you a secure message. To read it, choose a password for your "
    "account in its secure message portal.",
    "Opening the link changes nothing until you choose your password on that page."]
#: how each language names a passkey
PASSKEY = {"en": "passkey", "de": "Passkey", "fr": "clé d'accès", "es": "llave de acceso",
           "ar": "مفتاح مرور"}


def activation_mail(outbox):
    mail_ = next(m for m in outbox() if "/password/reset/" in m.get_body(("plain",)).get_content())
    html_ = mail_.get_body(("html",)).get_content()
    return (mail_.get_body(("plain",)).get_content(), html_,
            re.search(r'<div style="display: none;[^>]*>(.*?)&#8203;', html_)[1])  # preheader


def said(sentence: str, language: str) -> str:
    return mail_templates.translations(language).gettext(sentence) % {"tenant_name": "Acme Corp"}


@pytest.mark.parametrize("language", sorted(PASSKEY))
def test_first_contact_by_passkey_speaks_of_creating_a_passkey(gateway, outbox, language):
    """Where the activation link leads to creating a passkey, the first notification says
    so, and nothing of choosing a password, in every language the portal speaks."""
    tenant = gateway.tenant
    tenant.first_contact, tenant.passkey_first_contact = "activation_link", True
    tenant.default_language = language
    db.session.commit()
    secure(gateway)
    text, html_, preheader = activation_mail(outbox)
    for sentence in CHOOSING_A_PASSWORD:
        assert said(sentence, language) not in text + html_, sentence
    heading = re.search(r"<h1[^>]*>(.*?)</h1>", html_)[1]
    button = re.search(r'<td class="ccm-button"[^>]*><a [^>]*>(.*?)</a>', html_)[1]
    assert heading != said("Choose your password", language)
    assert button != said("Choose my password", language)
    for where in (heading, button, preheader, text):
        assert PASSKEY[language].casefold() in where.replace("&#x27;", "'").casefold(), where


def test_where_passkeys_are_off_the_link_still_asks_for_a_password(gateway, outbox):
    """The tenant's choice does nothing for a side where passkeys are off: that link
    leads to a password, and the mail says so."""
    tenant = gateway.tenant
    tenant.first_contact, tenant.passkey_first_contact = "activation_link", True
    tenant.passkeys_external = "off"
    db.session.commit()
    secure(gateway)
    text, html_, preheader = activation_mail(outbox)
    assert "Choose my password" in html_ and "Choose a password to read it." in preheader
    assert "passkey" not in (text + html_).lower()


def test_an_activation_queued_before_the_passkey_wording_asks_for_a_password(gateway, outbox):
    """One queued by an earlier version (no ``passkey`` among its values) still sends."""
    gateway.tenant.first_contact = "activation_link"
    db.session.commit()
    secure(gateway)
    item = db.session.scalar(select(OutboundItem).where(OutboundItem.kind == "notification")
                             .where(OutboundItem.notice["kind"].as_string() == "activation"))
    item.notice = {**item.notice, "context": {
        name: value for name, value in item.notice["context"].items() if name != "passkey"}}
    db.session.commit()
    assert "Choose my password" in activation_mail(outbox)[1]


def test_an_administrators_own_activation_template_is_used_with_passkeys_too(gateway, outbox):
    tenant = gateway.tenant
    tenant.first_contact, tenant.passkey_first_contact = "activation_link", True
    db.session.add(NotificationTemplate(
        tenant=tenant, kind="activation", subject="Welcome to {{ tenant_name }}",
        text="Open {{ activation_url }}{% if passkey %} for your passkey{% endif %}",
        html="<p>Open {{ activation_url }}</p>"))
    db.session.commit()
    secure(gateway)
    welcome = next(m for m in outbox() if m["Subject"] == "Welcome to Acme Corp")
    assert welcome.get_body(("plain",)).get_content().rstrip().endswith(" for your passkey")
