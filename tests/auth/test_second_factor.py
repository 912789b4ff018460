"""The second factor (RFC 6238): enrolment, sign-in, replay, drift, recovery, enforcement."""

import re
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from support import PASSWORD, post_form

from app.domain import second_factor
from app.extensions import db
from app.models import AccessEvent, User


def code_at(secret: str, moment: datetime) -> str:
    return pyotp.TOTP(secret).at(moment)


@pytest.fixture
def enrolled(alice):
    """Alice with a second factor set up; her secret and recovery codes."""
    secret = second_factor.new_secret()
    # Enrolled with the previous step's code, so the current one is still unused.
    codes = second_factor.enrol(alice, secret, code_at(secret, datetime.now(UTC)
                                                       - timedelta(seconds=30)))
    db.session.commit()
    return secret, codes


def test_enrolment_shows_a_server_rendered_qr_and_needs_a_working_code(client, auth, alice):
    auth.sign_in(alice.email)
    page = client.get("/account/second-factor").get_data(as_text=True)
    assert 'src="data:image/svg+xml' in page  # rendered here, no outside service
    secret = re.search(r'<code class="secret">([A-Z2-7]+)</code>', page).group(1)
    wrong = post_form(client, "/account/second-factor", {"code": "000000"})
    assert "does not match" in wrong.get_data(as_text=True)
    done = post_form(client, "/account/second-factor",
                     {"code": code_at(secret, datetime.now(UTC))})
    codes = re.findall(r"<li><code>([0-9a-f]{6}-[0-9a-f]{6})</code></li>", done.get_data(
        as_text=True))
    assert len(codes) == 10
    assert db.session.get(User, alice.id).totp_secret == secret


def test_the_password_alone_opens_nothing_once_a_factor_is_set_up(client, auth, enrolled):
    secret, _ = enrolled
    response = auth.sign_in("alice@partner.test")
    assert response.headers["Location"] == "/sign-in/code"
    assert not auth.signed_in()
    post_form(client, "/sign-in/code", {"code": code_at(secret, datetime.now(UTC))})
    assert auth.signed_in()


def test_without_a_factor_the_password_is_enough(client, auth, alice):
    auth.sign_in("alice@partner.test")
    assert auth.signed_in()


def test_a_used_code_cannot_be_replayed(client, auth, app, enrolled):
    secret, _ = enrolled
    code = code_at(secret, datetime.now(UTC))
    auth.sign_in("alice@partner.test")
    post_form(client, "/sign-in/code", {"code": code})
    assert auth.signed_in()
    other = app.test_client()
    post_form(other, "/sign-in", {"email": "alice@partner.test", "password": PASSWORD})
    response = post_form(other, "/sign-in/code", {"code": code})
    assert "That code did not work" in response.get_data(as_text=True)
    assert other.get("/inbox/").status_code == 302


@pytest.mark.parametrize(("offset", "accepted"),
                         [(-60, False), (-30, True), (0, True), (30, True), (60, False)])
def test_one_step_of_drift_is_accepted_and_two_refused(alice, offset, accepted):
    secret = second_factor.new_secret()
    now = datetime(2026, 11, 30, 12, 0, 15, tzinfo=UTC)
    alice.totp_secret, alice.totp_last_step = secret, None
    assert second_factor.verify(alice, code_at(secret, now + timedelta(seconds=offset)),
                                now=now) is accepted


def test_a_recovery_code_works_once(client, auth, app, enrolled):
    _, codes = enrolled
    auth.sign_in("alice@partner.test")
    post_form(client, "/sign-in/code", {"code": codes[0]})
    assert auth.signed_in()
    other = app.test_client()
    post_form(other, "/sign-in", {"email": "alice@partner.test", "password": PASSWORD})
    post_form(other, "/sign-in/code", {"code": codes[0]})
    assert other.get("/inbox/").status_code == 302


def test_wrong_codes_are_throttled_like_passwords(client, auth, enrolled):
    secret, _ = enrolled
    auth.sign_in("alice@partner.test")
    for _ in range(5):
        post_form(client, "/sign-in/code", {"code": "123456"})
    # Locked now: even the right code is refused for a while.
    post_form(client, "/sign-in/code", {"code": code_at(secret, datetime.now(UTC))})
    assert not auth.signed_in()
    assert db.session.get(User, enrolled_user_id(client)).locked_until is not None


def enrolled_user_id(client) -> int:
    return db.session.query(User).filter_by(email="alice@partner.test").one().id


def test_the_code_page_without_a_proven_password_sends_back(client):
    assert client.get("/sign-in/code").headers["Location"] == "/sign-in"


@pytest.mark.parametrize("kind", ["external", "internal"])
def test_a_tenant_can_require_it_before_any_page(client, auth, acme, alice, make_user, kind):
    email = "alice@partner.test" if kind == "external" else "ian@acme.test"
    if kind == "internal":
        make_user(acme, email, role="internal")
    setattr(acme, f"second_factor_{kind}", "required")
    db.session.commit()
    auth.sign_in(email)
    for path in ("/inbox/", "/"):
        assert client.get(path).headers["Location"] == "/account/second-factor"
    # any other page asked for is where the enrolment leads
    assert client.get("/account/activity").headers["Location"] == \
        "/account/second-factor?next=/account/activity"
    assert client.get("/inbox/", headers={"HX-Request": "true"}).headers["HX-Redirect"] == \
        "/account/second-factor"


def test_required_for_one_kind_leaves_the_other_free(client, auth, acme, alice):
    acme.second_factor_internal = "required"
    db.session.commit()
    auth.sign_in("alice@partner.test")  # external
    assert auth.signed_in()


def test_an_administrator_reset_clears_it(client, auth, acme, make_user, enrolled):
    from app.domain import people

    alice = db.session.query(User).filter_by(email="alice@partner.test").one()
    people.reset_password(alice)
    db.session.commit()
    assert alice.totp_secret is None


def test_sign_ins_and_failures_are_in_the_access_log_and_the_owner_sees_them(
        client, auth, alice):
    auth.sign_in("alice@partner.test", "wrong password entirely")
    auth.sign_in("alice@partner.test", headers={"User-Agent": "Firefox/140"})
    kinds = [e.kind for e in db.session.query(AccessEvent).order_by(AccessEvent.id)]
    assert kinds == ["sign_in_failed", "sign_in"]
    page = client.get("/account/activity").get_data(as_text=True)
    assert "Failed attempt" in page and "Signed in" in page and "Firefox/140" in page


def test_a_returning_visitor_sees_their_organisation_before_typing(app, client, auth, alice):
    auth.sign_in("alice@partner.test")
    auth.sign_out()
    greeting = client.get("/sign-in")
    assert greeting.headers["Location"] == "/t/acme/sign-in"
    page = client.get("/t/acme/sign-in").get_data(as_text=True)
    assert "Sign in to Acme Corp" in page
    assert "Signing in to another organisation?" in page
    assert client.get("/sign-in?any=1").status_code == 200
    assert app.test_client().get("/sign-in").status_code == 200  # a new browser: no hint


def test_wrong_codes_lock_the_account_however_often_the_password_is_re_entered(
        app, client, enrolled, auth):
    """'Password, then a few wrong codes' again and again, from several addresses: the
    right password does not clear the count, so guessing ends in a lock-out."""
    secret, _ = enrolled
    tries = 0
    for attempt in range(20):
        browser = app.test_client()
        browser.environ_base["REMOTE_ADDR"] = f"192.0.2.{attempt % 4 + 1}"
        post_form(browser, "/sign-in", {"email": "alice@partner.test", "password": PASSWORD})
        for _ in range(attempt % 3 + 1):
            post_form(browser, "/sign-in/code", {"code": "000000"})
            tries += 1
        if tries >= 20:
            break
    alice = db.session.get(User, enrolled_user_id(client))
    assert alice.failed_signins >= 5 and alice.locked_until is not None
    # Locked: the right password and the right code open nothing until the lock ends.
    post_form(client, "/sign-in", {"email": "alice@partner.test", "password": PASSWORD})
    post_form(client, "/sign-in/code", {"code": code_at(secret, datetime.now(UTC))})
    assert not auth.signed_in()


def test_only_a_complete_sign_in_starts_the_count_again(client, auth, enrolled):
    secret, _ = enrolled
    for _ in range(3):
        auth.sign_in("alice@partner.test", "not the password at all")
    auth.sign_in("alice@partner.test")
    post_form(client, "/sign-in/code", {"code": "000000"})
    alice = db.session.get(User, enrolled_user_id(client))
    assert alice.failed_signins == 4  # the right password cleared nothing
    post_form(client, "/sign-in/code", {"code": code_at(secret, datetime.now(UTC))})
    assert auth.signed_in()
    db.session.expire_all()
    assert alice.failed_signins == 0 and alice.locked_until is None


def test_a_new_password_comes_before_a_required_second_factor(client, auth, acme, alice):
    """The two steps each sent to the other: an endless loop for a new recipient."""
    acme.second_factor_external = "required"
    alice.must_change_password = True
    db.session.commit()
    auth.sign_in("alice@partner.test")
    assert client.get("/password/change").status_code == 200
    assert client.get("/account/second-factor").headers["Location"] == \
        "/password/change?next=/account/second-factor"
    assert client.get("/inbox/").headers["Location"] == "/password/change"
