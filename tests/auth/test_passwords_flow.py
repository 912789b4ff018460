"""Forced change, voluntary change and reset links, through real requests."""

import re
from datetime import timedelta

import pytest
from support import PASSWORD, post_form, read_outbox, without_csrf_tokens

from app.clock import utcnow
from app.domain import accounts
from app.extensions import db
from app.models import PasswordReset, User

NEW = "plum orbit lantern meadow"


def change(client, current, new, confirm=None, **kwargs):
    return post_form(client, "/password/change",
                     {"current": current, "new": new, "confirm": confirm or new}, **kwargs)


# --- forced change -----------------------------------------------------------------


@pytest.fixture
def newcomer(acme, make_user):
    user = make_user(acme, "new@partner.test", password=None)
    password = accounts.set_generated_password(user)
    db.session.commit()
    return user, password


def test_generated_password_forces_a_change_before_anything_else(client, auth, newcomer):
    user, password = newcomer
    response = auth.sign_in(user.email, password)
    assert response.headers["Location"] == "/password/change"
    for path in ("/inbox/", "/"):
        assert client.get(path).headers["Location"] == "/password/change"
    page = client.get("/password/change").get_data(as_text=True)
    assert "Choose your own password" in page


def test_forced_change_also_applies_to_htmx_requests(client, auth, newcomer):
    user, password = newcomer
    auth.sign_in(user.email, password)
    response = client.get("/inbox/", headers={"HX-Request": "true"})
    assert response.headers["HX-Redirect"] == "/password/change"


def test_after_the_forced_change_the_portal_opens(client, auth, newcomer):
    user, password = newcomer
    auth.sign_in(user.email, password)
    response = change(client, password, NEW)
    assert response.headers["Location"] == "/inbox/"
    assert client.get("/inbox/").status_code == 200
    assert db.session.get(User, user.id).must_change_password is False


def test_sign_out_stays_possible_during_a_forced_change(client, auth, newcomer):
    user, password = newcomer
    auth.sign_in(user.email, password)
    post_form(client, "/sign-out", {}, form_path="/password/change")
    assert client.get("/inbox/").status_code == 302
    assert client.get("/inbox/").headers["Location"].startswith("/sign-in")


# --- password rules ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("new", "problem"),
    [
        ("short one", "at least 12 characters"),
        ("passwordpassword", "too common"),
        ("alice@partner.test", "email address"),
        ("x" * 129, "at most 128"),
    ],
)
def test_weak_new_passwords_are_refused_with_the_reason(client, auth, alice, new, problem):
    auth.sign_in(alice.email)
    response = change(client, PASSWORD, new)
    assert response.status_code == 200
    assert problem in response.get_data(as_text=True)
    assert accounts.passwords.verify_password(db.session.get(User, alice.id).password_hash,
                                              PASSWORD)


def test_long_passwords_and_any_characters_are_welcome(client, auth, alice):
    auth.sign_in(alice.email)
    new = "ünïcødé 🔐 and spaces " * 4  # 88 characters, no composition rules
    assert change(client, PASSWORD, new).status_code == 302
    auth.sign_out()
    auth.sign_in(alice.email, new)
    assert client.get("/inbox/").status_code == 200


def test_the_change_needs_the_current_password(client, auth, alice):
    auth.sign_in(alice.email)
    response = change(client, "not my password at all", NEW)
    assert "current password is not right" in response.get_data(as_text=True)


def test_mismatched_repeat_is_refused(client, auth, alice):
    auth.sign_in(alice.email)
    response = change(client, PASSWORD, NEW, confirm=NEW + "x")
    assert "The two passwords differ" in response.get_data(as_text=True)


def test_a_change_ends_every_other_session_and_keeps_this_one(app, client, auth, alice):
    other = app.test_client()
    post_form(other, "/sign-in", {"email": alice.email, "password": PASSWORD})
    assert other.get("/inbox/").status_code == 200
    auth.sign_in(alice.email)
    change(client, PASSWORD, NEW)
    assert other.get("/inbox/").status_code == 302
    assert client.get("/inbox/").status_code == 200


def test_change_without_csrf_token_is_refused(client, auth, alice):
    auth.sign_in(alice.email)
    response = client.post("/password/change",
                           data={"current": PASSWORD, "new": NEW, "confirm": NEW})
    assert response.status_code == 400
    assert accounts.passwords.verify_password(db.session.get(User, alice.id).password_hash,
                                              PASSWORD)


# --- forgotten password ------------------------------------------------------------------


def ask_for_reset(client, email, slug=None):
    path = f"/t/{slug}/password/forgot" if slug else "/password/forgot"
    return post_form(client, path, {"email": email})


def reset_link(message) -> str:
    text = message.get_body(("plain",)).get_content()
    return re.search(r"http://localhost(/password/reset/\S+)", text).group(1)


def test_the_answer_is_the_same_whether_or_not_the_account_exists(app, client, alice):
    def answer(email):
        return ask_for_reset(client, email).get_data(as_text=True).replace(email, "ADDRESS")

    known, unknown = answer(alice.email), answer("nobody@partner.test")
    assert without_csrf_tokens(known) == without_csrf_tokens(unknown)
    assert [m["To"] for m in read_outbox(app)] == [alice.email]


def test_reset_mail_carries_a_link_and_no_password(app, client, alice):
    ask_for_reset(client, alice.email)
    (message,) = read_outbox(app)
    assert message["Auto-Submitted"] == "auto-generated"
    text = message.get_body(("plain",)).get_content()
    assert "/password/reset/" in text
    assert PASSWORD not in text


def test_opening_the_link_changes_nothing_and_posting_uses_it_once(app, client, auth, alice):
    ask_for_reset(client, alice.email)
    link = reset_link(read_outbox(app)[0])
    # Mail scanners and previews fetch links: a GET, however many, must not use it up.
    for _ in range(3):
        assert client.get(link).status_code == 200
    assert db.session.query(PasswordReset).one().used_at is None
    response = post_form(client, link, {"new": NEW, "confirm": NEW})
    assert response.headers["Location"] == "/t/acme/sign-in"
    assert client.get(link).status_code == 404
    again = post_form(client, link, {"new": "another good password",
                                     "confirm": "another good password"},
                      form_path="/password/forgot")
    assert again.status_code == 404
    auth.sign_in(alice.email, NEW)
    assert client.get("/inbox/").status_code == 200


def test_an_expired_link_does_not_work(app, client, alice):
    ask_for_reset(client, alice.email)
    link = reset_link(read_outbox(app)[0])
    reset = db.session.query(PasswordReset).one()
    reset.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    page = client.get(link)
    assert page.status_code == 404
    assert "This link no longer works" in page.get_data(as_text=True)


def test_a_guessed_link_does_not_work(client, alice):
    assert client.get("/password/reset/not-a-real-token").status_code == 404


def test_a_reset_lifts_a_lock_and_ends_sessions(app, client, auth, alice):
    other = app.test_client()
    post_form(other, "/sign-in", {"email": alice.email, "password": PASSWORD})
    for _ in range(6):
        auth.sign_in(alice.email, "wrong password here")
    ask_for_reset(client, alice.email)
    link = reset_link(read_outbox(app)[0])
    post_form(client, link, {"new": NEW, "confirm": NEW})
    user = db.session.get(User, alice.id)
    assert (user.failed_signins, user.locked_until) == (0, None)
    assert other.get("/inbox/").status_code == 302


def test_using_one_link_voids_the_others(app, client, alice):
    ask_for_reset(client, alice.email)
    ask_for_reset(client, alice.email)
    first, second = (reset_link(m) for m in read_outbox(app))
    post_form(client, second, {"new": NEW, "confirm": NEW})
    assert client.get(first).status_code == 404


def test_a_weak_password_on_the_reset_page_keeps_the_link_alive(app, client, alice):
    ask_for_reset(client, alice.email)
    link = reset_link(read_outbox(app)[0])
    response = post_form(client, link, {"new": "short", "confirm": "short"})
    assert "at least 12 characters" in response.get_data(as_text=True)
    assert client.get(link).status_code == 200


def test_generic_forgot_page_mails_every_account_of_the_address(app, client, make_tenant,
                                                                make_user):
    make_user(make_tenant("acme", domains=["acme.test"]), "bob@partner.test")
    make_user(make_tenant("globex", domains=["globex.test"]), "bob@partner.test")
    ask_for_reset(client, "bob@partner.test")
    texts = [m.get_body(("plain",)).get_content() for m in read_outbox(app)]
    assert sorted("Acme Corp" in t for t in texts) == [False, True]
    assert any("Globex Corp" in t for t in texts)


def test_tenant_forgot_page_mails_only_that_tenants_account(app, client, make_tenant,
                                                            make_user):
    make_user(make_tenant("acme", domains=["acme.test"]), "bob@partner.test")
    make_user(make_tenant("globex", domains=["globex.test"]), "bob@partner.test")
    ask_for_reset(client, "bob@partner.test", slug="globex")
    (message,) = read_outbox(app)
    assert "Globex Corp" in message.get_body(("plain",)).get_content()


def test_no_mail_is_sent_when_the_request_fails(app, client, alice):
    client.post("/password/forgot", data={"email": alice.email})  # no CSRF token
    assert read_outbox(app) == []


@pytest.mark.parametrize("app", [{"RATELIMIT_ENABLED": True}], indirect=True)
def test_reset_requests_for_one_address_are_throttled(app, client, alice):
    for _ in range(3):
        assert ask_for_reset(client, alice.email).status_code == 200
    assert ask_for_reset(client, alice.email).status_code == 429
    assert len(read_outbox(app)) == 3
