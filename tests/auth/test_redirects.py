"""Where the browser goes after signing in: only ever a path on this portal.

One table of targets, read as a browser reads a URL (WHATWG: C0 controls and spaces
stripped at the ends, tab/CR/LF dropped anywhere, backslash as slash), and every way
back after sign-in tried with all of it.
"""

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
from support import PASSWORD, csrf_token, post_form

from app.domain import second_factor
from app.extensions import db
from app.web.auth.routes import LAST_TENANT_COOKIE
from app.web.rendering import safe_next

#: (next as given, where the browser may be sent: None means "nowhere it names")
TARGETS = [
    ("/inbox/?page=2", "/inbox/?page=2"),
    ("/inbox/#top", "/inbox/"),
    ("/t/acme/sign-in", "/t/acme/sign-in"),
    # tab, CR and LF are dropped by the browser wherever they are
    ("/\t/evil.example/x", None),
    ("/\n/evil.example", None),
    ("/\r\n/evil.example", None),
    ("\t//evil.example", None),
    ("/\t\\evil.example", None),
    # C0 controls and spaces at the ends are stripped
    (" //evil.example", None),
    ("\x00//evil.example", None),
    ("\x1f/\x1f/evil.example", "/%1F/evil.example"),
    ("\x1f/inbox/ \t", "/inbox/"),
    # backslashes are slashes
    ("/\\evil.example", None),
    ("\\\\evil.example", None),
    ("\\/evil.example", None),
    ("/\\/evil.example", None),
    # other sites, schemes, and what is not a path at all
    ("//evil.example", None),
    ("///evil.example", None),
    ("https://evil.example/", None),
    ("HTTPS://evil.example/", None),
    ("http:/evil.example", None),
    ("http:evil.example", None),
    ("javascript:alert(1)", None),
    ("evil.example", None),
    ("inbox/", None),
    ("", None),
    ("\t\r\n ", None),
    # paths on this portal, rebuilt and encoded from the parse
    ("/inbox/\r\nSet-Cookie: stolen=1", "/inbox/Set-Cookie:%20stolen=1"),
    ("/x\x00y", "/x%00y"),
    ("/\x0b/evil.example", "/%0B/evil.example"),
    ("/ /evil.example", "/%20/evil.example"),
    ("/%2F%2Fevil.example", "/%2F%2Fevil.example"),
    ("/caf\u00e9?q=\u00e9t\u00e9 x", "/caf%C3%A9?q=%C3%A9t%C3%A9%20x"),
    ("/\ud800", None),
    ("/" + "a" * 5000, "/" + "a" * 5000),
]


#: what a request can carry to the sign-in forms: a lone surrogate cannot be encoded, and
#: a request with a NUL anywhere is refused whole before any view (app/web/inputs.py)
SENT = [(t, e) for t, e in TARGETS if "\ud800" not in t and "\x00" not in t]


@pytest.mark.parametrize(("target", "expected"), TARGETS)
def test_safe_next_reads_the_target_as_a_browser_would(target, expected):
    assert safe_next(target) == expected


def test_every_answer_is_a_plain_path_a_browser_keeps_on_this_site():
    for target, _ in TARGETS:
        location = safe_next(target)
        if location is not None:
            assert location.startswith("/") and not location.startswith("//")
            assert not any(c <= " " or c in "\\\x7f" for c in location), location
            assert urlsplit(location).netloc == ""


def landing(target: str | None) -> str:
    """Where a successful sign-in sends the browser for this ``next``."""
    return safe_next(target) or "/inbox/"


def sign_in_with_next(client, path: str, target: str, email="alice@partner.test"):
    token = csrf_token(client, path)
    return client.post(path, query_string={"next": target},
                       data={"csrf_token": token, "email": email, "password": PASSWORD})


@pytest.mark.parametrize("path", ["/sign-in", "/t/acme/sign-in"])
def test_sign_in_forms_send_only_to_a_path_here(app, client, alice, path):
    for target, _ in SENT:
        client = app.test_client()
        response = sign_in_with_next(client, path, target)
        assert response.status_code == 302, repr(target)
        assert response.headers["Location"] == landing(target), repr(target)


def test_the_remembered_organisation_passes_on_only_a_safe_next(app, client, alice):
    for target, expected in SENT:
        client = app.test_client()
        client.set_cookie(LAST_TENANT_COOKIE, "acme")
        response = client.get("/sign-in", query_string={"next": target})
        assert response.status_code == 302, repr(target)
        location = urlsplit(response.headers["Location"])
        assert location.path == "/t/acme/sign-in"
        assert parse_qs(location.query).get("next") == ([expected] if expected else None)


def test_choosing_an_organisation_sends_only_to_a_path_here(app, client, alice, make_tenant,
                                                            make_user):
    make_user(make_tenant("globex", domains=["globex.test"]), "alice@partner.test")
    for target, _ in SENT:
        client = app.test_client()
        response = sign_in_with_next(client, "/sign-in", target)
        assert response.headers["Location"] == "/sign-in/organisation"
        chosen = post_form(client, "/sign-in/organisation", {"account": str(alice.id)})
        assert chosen.headers["Location"] == landing(target), repr(target)


def test_the_second_factor_sends_only_to_a_path_here(app, client, alice):
    secret = second_factor.new_secret()
    second_factor.enrol(alice, secret, pyotp.TOTP(secret).at(datetime.now(UTC)))
    db.session.commit()
    for target, _ in SENT:
        client = app.test_client()
        response = sign_in_with_next(client, "/sign-in", target)
        assert response.headers["Location"] == "/sign-in/code"
        alice.totp_last_step = None  # each code works once: forget it was used
        db.session.commit()
        done = post_form(client, "/sign-in/code", {"code": pyotp.TOTP(secret).now()})
        assert done.headers["Location"] == landing(target), repr(target)


def test_a_next_with_a_nul_is_refused_whole(client):
    for target, _ in TARGETS:
        if "\x00" in target:
            assert client.get("/sign-in", query_string={"next": target}).status_code == 400


def test_an_unsafe_next_on_a_page_that_needs_sign_in_is_never_a_server_error(client):
    for target, _ in SENT:
        response = client.get("/sign-in", query_string={"next": target})
        assert response.status_code == 200, repr(target)


def test_the_forced_change_sends_only_to_a_path_here(app, client, acme, make_user):
    """A notification's sign-in carries ``next`` through the new-password page."""
    from app.domain import accounts

    user = make_user(acme, "new@partner.test", password=None)
    for target, _ in SENT:
        given = accounts.set_generated_password(user)
        db.session.commit()
        client = app.test_client()
        signed = post_form(client, "/t/acme/sign-in", {"email": user.email, "password": given},
                           query_string={"next": target})
        assert signed.status_code == 302, (repr(target), signed.get_data(as_text=True)[:300])
        change = signed.headers["Location"]
        assert urlsplit(change).path == "/password/change", repr(target)
        assert parse_qs(urlsplit(change).query).get("next") == (
            [safe_next(target)] if safe_next(target) else None), repr(target)
        done = client.post("/password/change", query_string={"next": target},
                           data={"csrf_token": csrf_token(client, change),
                                 "new": "plum orbit lantern meadow",
                                 "confirm": "plum orbit lantern meadow"})
        assert done.headers["Location"] == landing(target), repr(target)
        db.session.expire_all()
