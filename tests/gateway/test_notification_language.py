"""Notifications in the recipient's language (issue 19, part 2): the language they chose
in the portal, else their tenant's default; a tenant's own version per language; dates
and durations in the language; Content-Language, and lang and dir on the HTML."""

from __future__ import annotations

import email
from datetime import datetime
from email.policy import default

import pytest

from app.delivery import mail_templates, queue
from app.extensions import db
from app.models import NotificationTemplate

UNTIL = datetime(2026, 12, 30, 2, 0)  # 29 December, 21:00 in New York


def sent(kind: str, tenant, to: str = "pat@partner.test", **values):
    """The notification as its recipient's server receives it."""
    context = {name: mail_templates.SAMPLES[name] for name in mail_templates.KINDS[kind]
               if name not in mail_templates.AT_SENDING[kind]}
    context.update(tenant_name=tenant.display_name, **values)
    raw = queue.signed(mail_templates.build(kind, to, tenant, **context), tenant)
    return email.message_from_bytes(raw, policy=default)


def parts(message) -> tuple[str, str, str]:
    return (str(message["Subject"]), message.get_body(("plain",)).get_content(),
            message.get_body(("html",)).get_content())


@pytest.fixture
def acme(make_tenant):
    return make_tenant("acme", name="Acme Corp", time_zone="America/New_York")


def test_a_recipient_who_chose_german_gets_it_in_german(acme, make_user):
    make_user(acme, "pat@partner.test", language="de")
    message = sent("secure_message", acme, visible_until=UNTIL.isoformat())
    subject, text, html = parts(message)
    assert message["Content-Language"] == "de"
    assert subject == "Sichere Nachricht von Acme Corp: Melden Sie sich an, um sie zu lesen"
    assert "Acme Corp hat Ihnen eine sichere Nachricht gesendet." in text
    assert "Lesbar bis: 29. Dezember 2026, 21:00 EST" in text  # the tenant's zone
    assert "So erkennen Sie, dass diese E-Mail echt ist:" in " ".join(text.split())
    assert '<html lang="de" dir="ltr">' in html and "Nachricht lesen</a>" in html
    assert "You have" not in text + html and "secure message" not in text


def test_without_a_chosen_language_the_tenants_default_speaks(acme, make_user):
    acme.default_language = "fr"
    db.session.commit()
    make_user(acme, "pat@partner.test")  # has not chosen one
    message = sent("expiry_warning", acme, visible_until=UNTIL.isoformat())
    subject = parts(message)[0]
    assert message["Content-Language"] == "fr"
    assert subject == ("Message sécurisé non lu de Acme Corp : connectez-vous pour le lire "
                       "avant le 29 décembre 2026, 21:00 EST")
    # someone with no account at all (a first notification): the same
    assert sent("secure_message", acme, to="new@partner.test")["Content-Language"] == "fr"


def test_english_by_default_and_for_a_language_not_offered(acme, make_user):
    make_user(acme, "pat@partner.test", language="xx")
    message = sent("secure_message", acme, visible_until=UNTIL.isoformat())
    assert message["Content-Language"] == "en"
    assert parts(message)[0] == "Secure message from Acme Corp: sign in to read it"
    assert "Readable until: 29 December 2026, 21:00 EST" in parts(message)[1]


def test_the_arabic_mail_reads_right_to_left(acme, make_user):
    make_user(acme, "pat@partner.test", language="ar")
    message = sent("password", acme, password="kM7pQ2xW9rT4vN8bH3cZ")
    subject, text, html = parts(message)
    assert message["Content-Language"] == "ar"
    assert '<html lang="ar" dir="rtl">' in html
    assert "<title>&#x2068;Acme Corp&#x2069;</title>" in html  # its own direction, isolated
    assert "أرسل إليك Acme Corp رسالة آمنة." in html and "kM7pQ2xW9rT4vN8bH3cZ" in text
    assert subject == "بيانات تسجيل الدخول إلى بوابة الرسائل الآمنة لدى Acme Corp"


@pytest.mark.parametrize(("language", "hours", "written"), [
    ("de", 72, "72 Stunden"), ("es", 1, "1 hora"), ("fr", 48, "48 heures"),
    ("en", 1, "1 hour")])
def test_a_links_lifetime_is_written_in_the_language(acme, make_user, language, hours,
                                                     written):
    make_user(acme, "pat@partner.test", language=language)
    message = sent("activation", acme, lifetime_hours=hours)
    assert written in " ".join(parts(message)[1].split())


def own(tenant, kind: str, language: str | None, subject: str) -> None:
    db.session.add(NotificationTemplate(tenant=tenant, kind=kind, language=language,
                                        subject=subject, text="{{ portal_url }}",
                                        html="<p>{{ portal_url }}</p>"))
    db.session.commit()


def test_a_version_for_one_language_is_used_for_that_language_only(acme, make_user):
    own(acme, "secure_message", "de", "Neu bei {{ tenant_name }}")
    for address, language in (("de@partner.test", "de"), ("fr@partner.test", "fr"),
                              ("en@partner.test", "en")):
        make_user(acme, address, language=language)
    subjects = {language: str(sent("secure_message", acme, to=f"{language}@partner.test")[
        "Subject"]) for language in ("de", "fr", "en")}
    assert subjects == {"de": "Neu bei Acme Corp",
                        "fr": "Message sécurisé de Acme Corp : connectez-vous pour le lire",
                        "en": "Secure message from Acme Corp: sign in to read it"}


def test_a_version_for_every_language_gives_way_to_one_of_the_language(acme, make_user):
    """A version from before there were languages stays what everyone gets, except in a
    language that has a version of its own."""
    own(acme, "secure_message", None, "For everyone at {{ tenant_name }}")
    own(acme, "secure_message", "es", "Para {{ recipient }}")
    make_user(acme, "es@partner.test", language="es")
    make_user(acme, "de@partner.test", language="de")
    spanish = sent("secure_message", acme, to="es@partner.test")
    assert spanish["Subject"] == "Para pat@example.com" and spanish["Content-Language"] == "es"
    german = sent("secure_message", acme, to="de@partner.test")
    assert german["Subject"] == "For everyone at Acme Corp"
    # written in whatever language its administrator chose: the mail claims none
    assert german["Content-Language"] is None


def test_every_built_in_notification_renders_in_every_language(app):
    for language in ("en", "de", "fr", "es", "ar"):
        for kind in mail_templates.KINDS:
            templates = mail_templates.builtin(kind, language)
            rendered, problem = mail_templates.render_samples(kind, templates, language)
            assert problem is None, (kind, language, problem)
            assert f'<html lang="{language}"' in rendered["html"]
            assert "[%" not in "".join(templates.values()), (kind, language)


def test_a_date_queued_written_out_before_this_release_is_sent_as_it_was(acme):
    """Notifications queued by the release before carry the date as English words."""
    message = sent("secure_message", acme, visible_until="29 December 2026, 21:00 EST")
    assert "Readable until: 29 December 2026, 21:00 EST" in parts(message)[1]


def test_no_translation_of_a_notification_could_be_read_as_code_or_markup():
    """A built-in template's translations become the sandbox's source, unescaped: none may
    hold a brace (a {{ }} or {% %} of its own), an angle bracket or an ampersand."""
    from babel.messages.pofile import read_po
    from test_i18n import TRANSLATED, TRANSLATIONS, _marked

    words = [message for message, where in _marked().items() if "/email/" in where]
    assert len(words) > 40
    for language in TRANSLATED:
        with open(TRANSLATIONS / language / "LC_MESSAGES" / "messages.po", "rb") as file:
            catalog = read_po(file, locale=language)
        for message in words:
            translated = catalog.get(message).string
            assert not set(translated) & set("{}<>&"), (language, translated)
