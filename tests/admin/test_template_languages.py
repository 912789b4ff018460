"""The template editor per language (issue 19, part 2): each language's built-in version
to start from, a preview in the language chosen, a version saved for that language only,
and the tenant's default language of notifications on the settings page."""

from __future__ import annotations

import html

from support import csrf_token

from app.extensions import db
from app.models import NotificationTemplate

KIND = "secure_message"


def page_of(client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200
    return html.unescape(response.get_data(as_text=True))


def versions() -> set[tuple[str, str | None, str]]:
    db.session.expire_all()
    return {(t.kind, t.language, t.subject) for t in db.session.query(NotificationTemplate)}


def test_the_editor_shows_the_built_in_version_of_the_language_chosen(as_admin):
    german = page_of(as_admin, f"/admin/templates/{KIND}?language=de")
    assert 'value="Sichere Nachricht von {{ tenant_name }}: Melden Sie sich an' in german
    assert "Preview in Deutsch, with sample data" in german  # the page in the admin's own
    assert "Sichere Nachricht von Acme Corp" in german  # the preview in German
    assert '<a href="/admin/templates/secure_message?language=de" lang="de" ' \
           'aria-current="page">Deutsch</a>' in german
    english = page_of(as_admin, f"/admin/templates/{KIND}")  # the tenant's default
    assert "Secure message from {{ tenant_name }}: sign in to read it" in english


def test_the_live_preview_shows_the_language_chosen(as_admin):
    token = csrf_token(as_admin, f"/admin/templates/{KIND}?language=ar")
    response = as_admin.post(f"/admin/templates/{KIND}/preview?language=ar", data={
        "csrf_token": token, "subject": "{{ visible_until }}", "text": "{{ tenant_name }}",
        "html": '<html lang="ar" dir="rtl"><p>{{ visible_until }}</p></html>'})
    preview = html.unescape(response.get_data(as_text=True))
    assert response.status_code == 200 and "cannot be used" not in preview
    assert "30 ديسمبر 2026، 02:00 UTC" in preview  # the sample moment, in the tenant's zone


def test_saving_makes_a_version_for_that_language_only(as_admin, client):
    token = csrf_token(as_admin, f"/admin/templates/{KIND}?language=fr")
    response = as_admin.post(f"/admin/templates/{KIND}?language=fr", data={
        "csrf_token": token, "subject": "Pour vous, {{ recipient }}",
        "text": "{{ portal_url }}", "html": "<p>{{ portal_url }}</p>"})
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/admin/templates/{KIND}?language=fr")
    assert versions() == {(KIND, "fr", "Pour vous, {{ recipient }}")}
    assert "Your own version in Français: notifications to people who read Français use it." \
        in page_of(as_admin, f"/admin/templates/{KIND}?language=fr")
    assert "The built-in version in Deutsch." in page_of(
        as_admin, f"/admin/templates/{KIND}?language=de")
    listing = page_of(as_admin, "/admin/templates")
    assert "Your own version in Français" in listing
    assert listing.count("Built-in, in every language") == 4
    # restoring the French one leaves the others alone
    token = csrf_token(as_admin, f"/admin/templates/{KIND}?language=fr")
    as_admin.post(f"/admin/templates/{KIND}/restore?language=fr", data={"csrf_token": token})
    assert versions() == set()


def test_a_version_for_every_language_is_shown_until_one_of_the_language_is_saved(
        as_admin, acme):
    db.session.add(NotificationTemplate(tenant=acme, kind=KIND, language=None,
                                        subject="Old {{ tenant_name }}", text="t", html="h"))
    db.session.commit()
    german = page_of(as_admin, f"/admin/templates/{KIND}?language=de")
    assert 'value="Old {{ tenant_name }}"' in german
    assert "This is your version for every language that has none of its own." in german
    assert "Your own version, in every language" in page_of(as_admin, "/admin/templates")
    token = csrf_token(as_admin, f"/admin/templates/{KIND}?language=de")
    as_admin.post(f"/admin/templates/{KIND}?language=de", data={
        "csrf_token": token, "subject": "Neu {{ tenant_name }}", "text": "t", "html": "h"})
    assert versions() == {(KIND, None, "Old {{ tenant_name }}"),
                          (KIND, "de", "Neu {{ tenant_name }}")}
    assert "Your own version in Deutsch, and one for every other language" in page_of(
        as_admin, "/admin/templates")


def test_a_language_not_offered_is_not_found(as_admin):
    assert as_admin.get(f"/admin/templates/{KIND}?language=xx").status_code == 404


def test_the_settings_page_sets_the_default_language_of_notifications(as_admin, acme):
    page = page_of(as_admin, "/admin/settings")
    assert "Language of notifications" in page
    assert '<option lang="es" value="es">Español</option>' in page
    form = {"csrf_token": csrf_token(as_admin, "/admin/settings"), "name": acme.name,
            "domains": "acme.test", "visibility_days": 30, "expiry_warning_days": 3,
            "first_contact": "password", "activation_hours": 72,
            "second_factor_external": "optional", "second_factor_internal": "optional",
            "time_zone": "UTC", "default_language": "es"}
    assert as_admin.post("/admin/settings", data=form).status_code == 302
    db.session.expire_all()
    assert acme.default_language == "es"
    form["default_language"] = "xx"
    refused = as_admin.post("/admin/settings", data=form)
    assert refused.status_code == 200 and "Not a valid choice" in refused.get_data(as_text=True)
    # the editor opens in the tenant's default language
    assert "Preview in Español" in page_of(as_admin, f"/admin/templates/{KIND}")


def test_the_activation_preview_speaks_of_a_passkey_where_the_link_leads_to_one(as_admin,
                                                                                 acme):
    """The preview shows what the tenant's recipients get: with first contact by passkey,
    the built-in wording of creating a passkey; the editor's source keeps both."""
    def preview(language: str) -> str:
        page = page_of(as_admin, f"/admin/templates/activation?language={language}")
        return page[page.index('class="preview-subject"'):]

    assert "Mein Passwort wählen" in preview("de") and "Passkey" not in preview("de")
    acme.first_contact, acme.passkey_first_contact = "activation_link", True
    db.session.commit()
    for language, button in (("de", "Meinen Passkey erstellen"), ("ar", "إنشاء مفتاح مرور"),
                             ("en", "Create my passkey")):
        assert button in preview(language)
        assert "{% if passkey %}" in page_of(
            as_admin, f"/admin/templates/activation?language={language}")
    acme.passkeys_external = "off"  # the sample recipient is outside: a password again
    db.session.commit()
    assert "Choose my password" in preview("en")
