"""Which language a page speaks: the account's choice, else the chooser's cookie, else the
browser's Accept-Language, else English; and the chooser that sets the first two."""

import re
from datetime import UTC, datetime

import pytest
from support import PASSWORD, csrf_token, post_form
from test_redirects import SENT

from app.extensions import db
from app.web import filters
from app.web.languages import COOKIE


def html_lang(response) -> tuple[str, str]:
    match = re.search(r'<html lang="([^"]+)" dir="([^"]+)">', response.get_data(as_text=True))
    assert match, "no <html lang dir>"
    return match.group(1), match.group(2)


def heading(response) -> str:
    return re.search(r"<h1>(.*?)</h1>", response.get_data(as_text=True)).group(1)


@pytest.mark.parametrize(("header", "expected"), [
    ("de-DE,de;q=0.9,en;q=0.5", ("de", "Anmelden")),
    ("fr-CA", ("fr", "Se connecter")),
    ("es;q=0.4, fr;q=0.3, ja", ("es", "Iniciar sesión")),
    ("ar", ("ar", "تسجيل الدخول")),
    ("en-GB,de;q=0.8", ("en", "Sign in")),
    ("ja, zh;q=0.8", ("en", "Sign in")),  # nothing offered: English
    ("de;q=nonsense, ;;, *", ("en", "Sign in")),  # malformed: ignored
    ("", ("en", "Sign in")),
])
def test_the_browser_language_is_the_best_match_offered(client, header, expected):
    response = client.get("/sign-in", headers={"Accept-Language": header})
    assert response.status_code == 200
    assert (html_lang(response)[0], heading(response)) == expected


def test_arabic_pages_read_right_to_left(client):
    response = client.get("/sign-in", headers={"Accept-Language": "ar"})
    assert html_lang(response) == ("ar", "rtl")
    assert html_lang(client.get("/sign-in", headers={"Accept-Language": "de"})) == ("de", "ltr")


def test_the_chooser_is_on_every_page_before_sign_in(client):
    for path in ("/sign-in", "/password/forgot", "/no-such-page"):
        page = client.get(path).get_data(as_text=True)
        assert 'action="/language"' in page, path
        assert all(f'<option value="{code}" lang="{code}"' in page
                   for code in ("en", "de", "fr", "es", "ar")), path


def test_the_chooser_sets_a_cookie_that_beats_the_browser(client):
    token = csrf_token(client, "/sign-in")
    response = client.post("/language", data={"csrf_token": token, "language": "fr",
                                               "next": "/password/forgot"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/password/forgot"
    assert f"{COOKIE}=fr" in response.headers["Set-Cookie"]
    assert "HttpOnly" in response.headers["Set-Cookie"]
    page = client.get("/sign-in", headers={"Accept-Language": "de"})
    assert html_lang(page)[0] == "fr"


def test_the_chooser_needs_its_csrf_token(client):
    response = client.post("/language", data={"language": "fr", "next": "/sign-in"})
    assert response.status_code == 400
    assert "Set-Cookie" not in response.headers or COOKIE not in response.headers["Set-Cookie"]


@pytest.mark.parametrize("value", ["xx", "", "EN", "de-DE", "../../etc", "fr\u202e"])
def test_a_language_not_offered_is_refused_with_a_clear_answer(client, value):
    token = csrf_token(client, "/sign-in")
    response = client.post("/language", headers={"Accept-Language": "de"},
                           data={"csrf_token": token, "language": value, "next": "/sign-in"})
    assert response.status_code == 303
    assert COOKIE not in response.headers.get("Set-Cookie", "")
    page = client.get(response.headers["Location"], headers={"Accept-Language": "de"})
    assert "Diese Sprache wird hier nicht angeboten. Die Seite bleibt auf Deutsch." in (
        page.get_data(as_text=True))


@pytest.mark.parametrize("value", ["xx", "", "de;fr", "ar\x00"])
def test_a_cookie_naming_no_language_offered_is_ignored(client, value):
    client.set_cookie(COOKIE, value)
    page = client.get("/sign-in", headers={"Accept-Language": "es"})
    assert html_lang(page)[0] == "es"


def test_the_chooser_sends_back_only_to_a_path_here(app, client):
    for target, expected in SENT:
        client = app.test_client()
        token = csrf_token(client, "/sign-in")
        response = client.post("/language", data={"csrf_token": token, "language": "de",
                                                   "next": target})
        assert response.status_code == 303, repr(target)
        assert response.headers["Location"] == (expected or "/"), repr(target)


def test_the_language_is_remembered_for_the_account(app, client, auth, alice):
    auth.sign_in("alice@partner.test")
    chosen = post_form(client, "/language", {"language": "es", "next": "/inbox/"},
                       form_path="/inbox/")
    assert chosen.headers["Location"] == "/inbox/"
    db.session.refresh(alice)
    assert alice.language == "es"

    # Another browser, which says it prefers German and has never used the chooser
    other = app.test_client()
    post_form(other, "/sign-in", {"email": "alice@partner.test", "password": PASSWORD})
    inbox = other.get("/inbox/", headers={"Accept-Language": "de"})
    assert html_lang(inbox)[0] == "es"
    assert "Mensajes seguros" in inbox.get_data(as_text=True)
    # ...even over that browser's own cookie: the account's choice is the later word
    other.set_cookie(COOKIE, "fr")
    assert html_lang(other.get("/inbox/"))[0] == "es"


def test_an_account_language_no_longer_offered_falls_back(client, auth, alice):
    alice.language = "tlh"
    db.session.commit()
    auth.sign_in("alice@partner.test")
    assert html_lang(client.get("/inbox/", headers={"Accept-Language": "fr"}))[0] == "fr"


def test_the_chooser_works_while_a_password_change_is_due(app, client, make_user, acme):
    user = make_user(acme, "bob@partner.test", must_change=True)
    client = app.test_client()
    post_form(client, "/sign-in", {"email": "bob@partner.test", "password": PASSWORD})
    chosen = post_form(client, "/language", {"language": "de", "next": "/password/change"},
                       form_path="/password/change")
    assert chosen.headers["Location"] == "/password/change"
    page = client.get("/password/change")
    assert "Wählen Sie Ihr eigenes Passwort" in page.get_data(as_text=True)
    db.session.refresh(user)
    assert user.language == "de"


def test_form_errors_and_flashes_speak_the_language(client, alice):
    headers = {"Accept-Language": "fr"}
    token = csrf_token(client, "/sign-in")
    refused = client.post("/sign-in", headers=headers, data={
        "csrf_token": token, "email": "alice@partner.test", "password": "wrong" * 3})
    text = refused.get_data(as_text=True)
    assert "ne correspondent à aucun compte" in text
    empty = client.post("/sign-in", headers=headers, data={"csrf_token": token, "email": "x"})
    assert "Saisissez une adresse e-mail." in empty.get_data(as_text=True)


def test_error_pages_speak_the_language(client):
    page = client.get("/no-such-page", headers={"Accept-Language": "es"})
    assert page.status_code == 404
    assert "No encontrado" in page.get_data(as_text=True)


@pytest.mark.parametrize(("language", "style", "expected"), [
    ("en", "date", "06 December 2026"),
    ("en", "minute", "06 Dec 2026, 14:05 UTC"),
    ("de", "date", "6. Dezember 2026"),
    ("de", "minute", "6. Dez. 2026, 14:05 UTC"),
    ("fr", "day", "6 déc."),
    ("es", "date", "6 de diciembre de 2026"),
    ("ar", "time", "14:05:09 UTC"),
])
def test_moments_are_written_in_the_page_language(app, language, style, expected):
    moment = datetime(2026, 12, 6, 14, 5, 9)
    with app.test_request_context(headers={"Accept-Language": language}):
        assert filters.shown_in(moment, UTC, style) == expected
        tag = str(filters.moment(moment, style))
        assert 'datetime="2026-12-06T14:05:09Z"' in tag  # the machine's reading stays UTC
        assert tag.endswith(f">{expected}</time>")


def test_a_translated_sentence_escapes_what_it_holds(client):
    """The markup of the translation stays; the address put into it is escaped."""
    token = csrf_token(client, "/password/forgot")
    sent = client.post("/password/forgot", headers={"Accept-Language": "fr"},
                       data={"csrf_token": token, "email": "a<i>b@x.test"})
    assert "Si <strong>a&lt;i&gt;b@x.test</strong> a un compte" in sent.get_data(as_text=True)


def test_password_refusals_speak_the_language(client, auth, alice):
    auth.sign_in("alice@partner.test")
    refused = post_form(client, "/password/change", {
        "current": PASSWORD, "new": "short", "confirm": "short"},
        headers={"Accept-Language": "de"})
    assert "Verwenden Sie mindestens 12 Zeichen." in refused.get_data(as_text=True)
