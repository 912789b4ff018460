"""Sign-in, lock-out, sessions and tenants, through real requests."""

from datetime import timedelta

import pytest
from support import PASSWORD, csrf_token, post_form, statements, without_csrf_tokens

from app.clock import utcnow
from app.extensions import db
from app.models import AuthSession, User
from app.web.auth.routes import SIGN_IN_REFUSED


def refused(response) -> bool:
    return response.status_code == 200 and SIGN_IN_REFUSED in response.get_data(as_text=True)


def test_right_password_signs_in_and_lands_on_the_inbox(client, auth, alice):
    response = auth.sign_in("alice@partner.test")
    assert response.status_code == 302
    assert response.headers["Location"] == "/inbox/"
    assert auth.signed_in()
    assert db.session.get(User, alice.id).last_signin_at is not None


def test_address_is_matched_without_regard_to_case_or_spaces(client, auth, alice):
    auth.sign_in("  Alice@Partner.TEST ")
    assert auth.signed_in()


def test_wrong_password_is_refused_with_the_generic_message(client, auth, alice):
    assert refused(auth.sign_in("alice@partner.test", "not the password at all"))
    assert not auth.signed_in()
    assert db.session.get(User, alice.id).failed_signins == 1


def test_unknown_address_gets_exactly_the_answer_a_wrong_password_gets(client, auth, alice):
    def answer(email):
        text = auth.sign_in(email, "not the password at all").get_data(as_text=True)
        return without_csrf_tokens(text)

    assert answer("nobody@partner.test") == answer("alice@partner.test").replace(
        "alice@partner.test", "nobody@partner.test"
    )


def test_htmx_sign_in_answers_with_hx_redirect(client, alice):
    token = csrf_token(client, "/sign-in")
    response = client.post(
        "/sign-in",
        data={"csrf_token": token, "email": "alice@partner.test", "password": PASSWORD},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    assert response.headers["HX-Redirect"] == "/inbox/"


def test_htmx_refusal_returns_only_the_form(client, alice):
    token = csrf_token(client, "/sign-in")
    response = client.post(
        "/sign-in",
        data={"csrf_token": token, "email": "alice@partner.test", "password": "wrong wrong"},
        headers={"HX-Request": "true"},
    )
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert SIGN_IN_REFUSED in text
    assert "<html" not in text
    assert "HX-Request" in response.headers["Vary"]


def test_five_failures_lock_the_account_even_against_the_right_password(client, auth, alice):
    for _ in range(5):
        assert refused(auth.sign_in("alice@partner.test", "wrong password here"))
    user = db.session.get(User, alice.id)
    assert user.locked_until is not None
    assert refused(auth.sign_in("alice@partner.test"))
    assert not auth.signed_in()


def test_the_lock_ends_by_itself_and_the_right_password_then_works(client, auth, alice):
    for _ in range(5):
        auth.sign_in("alice@partner.test", "wrong password here")
    user = db.session.get(User, alice.id)
    user.locked_until = utcnow() - timedelta(seconds=1)
    db.session.commit()
    auth.sign_in("alice@partner.test")
    assert auth.signed_in()
    user = db.session.get(User, alice.id)
    assert (user.failed_signins, user.locked_until) == (0, None)


def test_attempts_during_a_lock_do_not_extend_it(client, auth, alice):
    for _ in range(5):
        auth.sign_in("alice@partner.test", "wrong password here")
    until = db.session.get(User, alice.id).locked_until
    for _ in range(10):
        auth.sign_in("alice@partner.test", "wrong password here")
    db.session.expire_all()
    assert db.session.get(User, alice.id).locked_until == until


def test_failures_recorded_at_the_same_moment_each_count(app, alice):
    """Two attempts that read the account before either wrote: both failures count."""
    from support import in_app_context

    from app.domain import accounts

    user = db.session.get(User, alice.id)
    assert user.failed_signins == 0  # this session has read it...

    def fail_elsewhere() -> None:  # ...when another attempt records its failure
        accounts.record_failure(db.session.get(User, alice.id))
        db.session.commit()

    in_app_context(app, fail_elsewhere)
    accounts.record_failure(user)
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(User, alice.id).failed_signins == 2


def test_disabled_accounts_cannot_sign_in(client, auth, alice):
    alice.disabled = True
    db.session.commit()
    assert refused(auth.sign_in("alice@partner.test"))


def test_each_sign_in_starts_a_new_server_side_session(client, auth, alice):
    auth.sign_in("alice@partner.test")
    auth.sign_in("alice@partner.test")
    assert db.session.query(AuthSession).filter_by(user_id=alice.id).count() == 2


def test_sign_out_ends_the_session_so_a_copied_cookie_is_useless(app, client, auth, alice):
    auth.sign_in("alice@partner.test")
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"]).value
    auth.sign_out()
    assert not auth.signed_in()
    thief = app.test_client()
    thief.set_cookie(app.config["SESSION_COOKIE_NAME"], cookie)
    assert thief.get("/inbox/").status_code == 302


def test_idle_session_expires(client, auth, alice):
    auth.sign_in("alice@partner.test")
    record = db.session.query(AuthSession).filter_by(user_id=alice.id).one()
    record.last_seen_at = utcnow() - timedelta(minutes=31)
    db.session.commit()
    assert not auth.signed_in()


def test_session_expires_after_the_absolute_limit_even_when_busy(client, auth, alice):
    auth.sign_in("alice@partner.test")
    record = db.session.query(AuthSession).filter_by(user_id=alice.id).one()
    record.created_at = utcnow() - timedelta(hours=12, seconds=1)
    db.session.commit()
    assert not auth.signed_in()


def test_disabling_an_account_ends_its_sessions_at_once(client, auth, alice):
    auth.sign_in("alice@partner.test")
    alice.disabled = True
    db.session.commit()
    assert not auth.signed_in()


def test_a_page_checks_its_session_user_and_tenant_in_one_query(client, auth, alice):
    auth.sign_in("alice@partner.test")
    client.get("/inbox/")
    with statements() as seen:
        assert client.get("/account/activity").status_code == 200
    checks = [s for s in seen if "auth_session" in s]
    assert len(checks) == 1
    assert "users" in checks[0] and "tenant" in checks[0]
    assert not [s for s in seen if s.lstrip().startswith("SELECT users.id")]


def test_static_files_are_served_without_touching_the_session(client, auth, alice):
    auth.sign_in("alice@partner.test")
    with statements() as seen:
        response = client.get("/static/css/ccm.css")
    response.close()
    assert response.status_code == 200
    assert seen == []


def test_unauthenticated_page_redirects_to_sign_in_and_back(client, alice):
    response = client.get("/inbox/?page=2")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/sign-in?next=")
    token = csrf_token(client, response.headers["Location"])
    back = client.post(response.headers["Location"],
                       data={"csrf_token": token, "email": "alice@partner.test",
                             "password": PASSWORD})
    assert back.headers["Location"] == "/inbox/?page=2"


def test_unauthenticated_htmx_request_gets_hx_redirect_not_a_swapped_page(client):
    response = client.get("/inbox/", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response.headers["HX-Redirect"].startswith("/sign-in")
    assert response.get_data() == b""


@pytest.mark.parametrize("target", ["//evil.test/x", "https://evil.test/", "/\\evil.test"])
def test_next_never_leads_off_the_site(client, alice, target):
    token = csrf_token(client, "/sign-in")
    response = client.post("/sign-in", query_string={"next": target},
                           data={"csrf_token": token, "email": "alice@partner.test",
                                 "password": PASSWORD})
    assert response.headers["Location"] == "/inbox/"


def test_sign_in_without_csrf_token_is_refused(client, alice, auth):
    response = client.post("/sign-in", data={"email": "alice@partner.test",
                                             "password": PASSWORD})
    assert response.status_code == 400
    assert "This form has expired" in response.get_data(as_text=True)
    assert not auth.signed_in()


def test_sign_in_with_another_sessions_csrf_token_is_refused(app, client, alice):
    other = app.test_client()
    token = csrf_token(other, "/sign-in")
    response = client.post("/sign-in", data={"csrf_token": token,
                                             "email": "alice@partner.test",
                                             "password": PASSWORD})
    assert response.status_code == 400


def test_sign_out_without_csrf_token_is_refused(client, auth, alice):
    auth.sign_in("alice@partner.test")
    assert client.post("/sign-out").status_code == 400
    assert auth.signed_in()


def test_sign_out_by_get_is_not_possible(client, auth, alice):
    auth.sign_in("alice@partner.test")
    assert client.get("/sign-out").status_code == 405
    assert auth.signed_in()


# --- two tenants, one address ----------------------------------------------------------


@pytest.fixture
def two_accounts(make_tenant, make_user):
    acme = make_tenant("acme", domains=["acme.test"])
    globex = make_tenant("globex", domains=["globex.test"])
    at_acme = make_user(acme, "bob@partner.test", password="acme password for bob")
    at_globex = make_user(globex, "bob@partner.test", password="globex password for bob")
    return at_acme, at_globex


def current_tenant(client) -> str:
    return client.get("/inbox/").get_data(as_text=True)


def test_same_address_at_two_tenants_is_two_independent_accounts(client, auth, two_accounts):
    at_acme, at_globex = two_accounts
    assert at_acme.id != at_globex.id
    assert refused(auth.sign_in("bob@partner.test", "globex password for bob", slug="acme"))
    auth.sign_in("bob@partner.test", "acme password for bob", slug="acme")
    assert "Acme Corp" in current_tenant(client)


def test_failures_at_one_tenant_do_not_lock_the_other(client, auth, two_accounts):
    for _ in range(6):
        auth.sign_in("bob@partner.test", "wrong password here", slug="acme")
    auth.sign_in("bob@partner.test", "globex password for bob", slug="globex")
    assert "Globex Corp" in current_tenant(client)


def test_generic_sign_in_picks_the_tenant_whose_password_matches(client, auth, two_accounts):
    auth.sign_in("bob@partner.test", "globex password for bob")
    assert "Globex Corp" in current_tenant(client)
    # The correct password for Globex is no failure at Acme.
    assert db.session.get(User, two_accounts[0].id).failed_signins == 0


def test_generic_sign_in_asks_which_tenant_only_after_the_password_fits_both(
    client, auth, make_tenant, make_user
):
    acme = make_tenant("acme", domains=["acme.test"])
    globex = make_tenant("globex", domains=["globex.test"])
    make_user(acme, "carol@partner.test")
    at_globex = make_user(globex, "carol@partner.test")
    response = auth.sign_in("carol@partner.test")
    assert response.headers["Location"] == "/sign-in/organisation"
    page = client.get("/sign-in/organisation").get_data(as_text=True)
    assert "Acme Corp" in page and "Globex Corp" in page
    assert not auth.signed_in()
    post_form(client, "/sign-in/organisation", {"account": at_globex.id})
    assert "Globex Corp" in current_tenant(client)


def test_choosing_an_account_the_password_did_not_open_is_refused(
    client, auth, make_tenant, make_user
):
    acme = make_tenant("acme", domains=["acme.test"])
    globex = make_tenant("globex", domains=["globex.test"])
    initech = make_tenant("initech", domains=["initech.test"])
    make_user(acme, "carol@partner.test")
    make_user(globex, "carol@partner.test")
    other = make_user(initech, "carol@partner.test", password="a different password")
    auth.sign_in("carol@partner.test")
    response = post_form(client, "/sign-in/organisation", {"account": other.id})
    assert response.status_code == 200
    assert not auth.signed_in()


def test_the_organisation_page_without_a_proven_password_sends_back(client):
    assert client.get("/sign-in/organisation").headers["Location"] == "/sign-in"


def test_unknown_tenant_sign_in_page_is_not_found(client):
    assert client.get("/t/nosuch/sign-in").status_code == 404


# --- throttling --------------------------------------------------------------------


@pytest.mark.parametrize("app", [{"RATELIMIT_ENABLED": True}], indirect=True)
def test_one_client_address_is_throttled_across_accounts(client, auth, alice):
    answers = [
        auth.sign_in(f"user{n}@partner.test", "wrong password here").status_code
        for n in range(11)
    ]
    assert answers[:10] == [200] * 10
    assert answers[10] == 429
