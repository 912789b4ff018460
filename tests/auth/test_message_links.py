"""A notification's link goes to its message: built from CCM_BASE_URL, through the tenant's
sign-in page when signed out, and never telling whether a message exists.

Messages arrive as the gateway takes them (``ingest.receive``), so the links are read
from the real notifications in the maildir outbox.
"""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from support import PASSWORD, csrf_token, mail, post_form, read_outbox, without_csrf_tokens

from app.domain import accounts, expiry, ingest, links, notices, passwords
from app.extensions import db
from app.models import OutboundItem, Recipient, User

PAT = "pat@partner.test"
NEW = "plum orbit lantern meadow"
MISSING = "no-such-message-AAAAAAAAAAAAAA"
NOTICE = "Secure message from Acme Corp: sign in to read it"


@pytest.fixture
def sender(acme, make_ccm_sender):
    return make_ccm_sender(acme, "alice@acme.test")


@pytest.fixture
def send(sender):
    """``send(to=PAT)``: a message from Alice to ``to`` by CCM; returns it."""
    def send_one(to=PAT, subject="Contract draft"):
        raw = mail(subject=subject, to=to).replace("\n", "\r\n").encode()
        message = ingest.receive(raw, sender.email, [to], mode="external")
        db.session.commit()
        return message
    return send_one


def copy_of(message, address=PAT) -> Recipient:
    return next(r for r in message.recipients if r.address == address)


def link_path(message) -> str:
    return f"/t/acme/messages/{message.public_id}"


def notices_to(app, address=PAT) -> list:
    return [m for m in read_outbox(app) if m["To"] == address]


def text_of(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def given_password(app, address=PAT) -> str:
    details = next(m for m in notices_to(app, address) if "sign-in details" in m["Subject"])
    return re.search(r"^Password:\s+(\S+)$", text_of(details), re.MULTILINE).group(1)


# --- the link --------------------------------------------------------------------------


def test_the_link_is_the_message_s_own_address_at_its_tenant(app, send):
    app.config["BASE_URL"] = "https://portal.example/"
    message = send()
    assert links.message(copy_of(message)) == \
        f"https://portal.example/t/acme/messages/{message.public_id}"
    adapter = app.url_map.bind("portal.example")
    assert adapter.match(link_path(message)) == \
        ("auth.message_link", {"slug": "acme", "public_id": message.public_id})


def test_every_notification_about_a_message_links_to_it(app, acme, send, frozen_clock):
    first, second = send(subject="First"), send(subject="Second")
    expected = {f"http://localhost{link_path(m)}" for m in (first, second)}
    mails = notices_to(app)
    assert sorted(m["Subject"] for m in mails) == [
        NOTICE, NOTICE,
        "Your sign-in details for the Acme Corp secure message portal"]
    found = {url for m in mails for url in re.findall(r"https?://\S+", text_of(m))}
    assert found == expected, "the password notification links to the first message"

    acme.expiry_warning_days = 2
    db.session.commit()
    frozen_clock.advance(copy_of(first).visible_until - frozen_clock.now - timedelta(days=1))
    assert expiry.warn_unopened() == 2
    warnings = [m for m in notices_to(app) if m["Subject"] not in {x["Subject"] for x in mails}]
    assert len(warnings) == 2
    assert {url for m in warnings for url in re.findall(r"https?://\S+", text_of(m))} == \
        expected


def test_an_activation_at_first_contact_links_to_the_message_too(acme, send):
    acme.first_contact = "activation_link"
    db.session.commit()
    message = send()
    items = db.session.query(OutboundItem).filter_by(kind="notification").all()
    activation = next(i.notice for i in items if i.notice["kind"] == "activation")
    assert activation["context"]["portal_url"] == f"http://localhost{link_path(message)}"


def test_an_activation_link_leads_to_the_message_once_the_password_is_chosen(app, acme, send):
    """First contact by activation: choose a password, sign in, the message (three screens)."""
    acme.first_contact = "activation_link"
    db.session.commit()
    message = send()
    items = db.session.query(OutboundItem).filter_by(kind="notification").all()
    activation = next(i.notice for i in items if i.notice["kind"] == "activation")
    url = urlsplit(activation["context"]["activation_url"])
    assert parse_qs(url.query)["next"] == [link_path(message)]
    client = app.test_client()
    page = client.get(f"{url.path}?{url.query}").get_data(as_text=True)
    assert f'action="{url.path}?next=' in page
    chosen = post_form(client, f"{url.path}?{url.query}",
                       {"new": NEW, "confirm": NEW})
    assert chosen.headers["Location"] == link_path(message)
    path, after = sign_in_page_of(client.get(link_path(message)))
    signed_in = post_form(client, f"{path}?next={after}", {"email": PAT, "password": NEW})
    assert signed_in.headers["Location"] == after
    assert "Contract draft" in client.get(after).get_data(as_text=True)


@pytest.mark.parametrize("hostile", [
    "//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:alert(1)",
    "/%09/evil.example", "/\r\nLocation: //evil.example"])
def test_a_reset_link_with_a_hostile_next_goes_to_the_sign_in_page(app, acme, make_user,
                                                                     hostile):
    token = accounts.start_reset(make_user(acme, PAT), purpose="reset",
                                 lifetime=timedelta(hours=1))
    db.session.commit()
    address = f"/password/reset/{token}?next={quote(hostile, safe='')}"
    chosen = post_form(app.test_client(), address, {"new": NEW, "confirm": NEW})
    location = chosen.headers["Location"]  # the sign-in page, or a harmless path here
    assert location.startswith("/") and not location.startswith("//")
    assert not urlsplit(location).netloc and not set("\\\t\r\n") & set(location)


def test_notifications_about_no_message_keep_the_sign_in_page(acme, make_user):
    user = make_user(acme, PAT)
    for item in (notices.password(user, reset=True),
                 notices.password_reset(user, links.set_password("token"))):
        assert item.notice["context"]["portal_url"] == "http://localhost/t/acme/sign-in"


# --- where it leads ----------------------------------------------------------------------


def sign_in_page_of(response) -> tuple[str, str | None]:
    """(path, next) of a redirect to a sign-in page."""
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    return location.path, parse_qs(location.query).get("next", [None])[0]


def test_signed_out_it_leads_to_the_tenant_s_sign_in_page_then_the_message(
        app, client, send, make_user):
    message = send()
    pat = db.session.scalar(db.select(User).where(User.email == PAT))
    pat.password_hash, pat.must_change_password = passwords.hash_password(PASSWORD), False
    db.session.commit()
    path, after = sign_in_page_of(client.get(link_path(message)))
    assert (path, after) == ("/t/acme/sign-in", f"/inbox/{message.public_id}")
    signed = post_form(client, path, {"email": PAT, "password": PASSWORD},
                       query_string={"next": after}, form_path=f"{path}?next={after}")
    assert signed.headers["Location"] == after
    assert "Contract draft" in client.get(after).get_data(as_text=True)
    # Signed in, the link goes straight to the message.
    assert client.get(link_path(message)).headers["Location"] == after


def test_a_missing_message_s_link_answers_as_an_existing_one_does(app, client, send):
    message = send()
    for answer in (client.get(link_path(message)), client.get(f"/t/acme/messages/{MISSING}")):
        assert sign_in_page_of(answer)[0] == "/t/acme/sign-in"
    assert client.get(f"/t/nowhere/messages/{message.public_id}").status_code == 404


def page_text(response) -> str:
    """The page without its CSRF tokens and the language chooser's way back (the address
    asked for, which the asker knows already)."""
    return re.sub(r'name="next" value="[^"]*"', 'name="next"',
                  without_csrf_tokens(response.get_data(as_text=True)))


def test_someone_else_s_message_is_as_missing_as_a_missing_one(app, auth, client, send,
                                                                make_user, acme):
    message = send()
    make_user(acme, "sam@partner.test")  # at Acme, but not on this message
    auth.sign_in("sam@partner.test", slug="acme")
    theirs = client.get(link_path(message), follow_redirects=True)
    missing = client.get(f"/t/acme/messages/{MISSING}", follow_redirects=True)
    assert theirs.status_code == missing.status_code == 404
    assert page_text(theirs) == page_text(missing)
    assert "Contract draft" not in page_text(theirs)


def test_signed_in_at_another_tenant_the_link_asks_to_sign_in_here(
        app, auth, client, send, make_tenant, make_user):
    """The answer depends on the tenants only, never on the message."""
    message = send()
    globex = make_tenant("globex", domains=["globex.test"])
    make_user(globex, "gina@globex.test", role="internal")
    auth.sign_in("gina@globex.test", slug="globex")
    answers = [client.get(link_path(message)), client.get(f"/t/acme/messages/{MISSING}")]
    assert [sign_in_page_of(a)[0] for a in answers] == ["/t/acme/sign-in"] * 2
    page = client.get(answers[0].headers["Location"]).get_data(as_text=True)
    assert "Sign in to Acme Corp" in page
    assert "You are signed in to Globex Corp. Signing in here signs you out there." in page
    # Gina is no participant: she sees nothing of it, even at the message's own address.
    assert client.get(f"/inbox/{message.public_id}").status_code == 404


HOSTILE_IDS = ["%2F%2Fevil.example", "%5Cevil.example", "..%2F..%2Fadmin",
               "javascript:alert(1)", "%0d%0aSet-Cookie:x=1", "x%09y", "https:%2F%2Fevil.example"]


@pytest.mark.parametrize("public_id", HOSTILE_IDS)
def test_a_hostile_message_id_stays_a_path_of_the_inbox(client, acme, public_id):
    """An encoded slash makes it no message link at all; anything else stays one path
    segment of the inbox, encoded."""
    answer = client.get(f"/t/acme/messages/{public_id}")
    if answer.status_code == 308:  # "//" merged into "/" by the router: still this site
        assert urlsplit(answer.headers["Location"]).netloc in ("", "localhost")
        answer = client.get(urlsplit(answer.headers["Location"]).path)
    if "%2F" in public_id and answer.status_code == 404:
        return
    path, after = sign_in_page_of(answer)
    assert path == "/t/acme/sign-in"
    assert after.startswith("/inbox/") and after.count("/") == 2, after
    assert "\\" not in after and not any(c <= " " for c in after)


# --- first contact: the given password is not asked for twice ------------------------------


def first_sign_in(app, client, message) -> tuple[str, str]:
    """Sign Pat in through the link with the emailed password: (change page, its next)."""
    path, after = sign_in_page_of(client.get(link_path(message)))
    signed = post_form(client, path, {"email": PAT, "password": given_password(app)},
                       query_string={"next": after}, form_path=f"{path}?next={after}")
    location = signed.headers["Location"]
    assert urlsplit(location).path == "/password/change"
    return location, parse_qs(urlsplit(location).query)["next"][0]


def test_first_contact_is_sign_in_new_password_message(app, client, send):
    message = send()
    change_page, after = first_sign_in(app, client, message)
    assert after == f"/inbox/{message.public_id}"
    page = client.get(change_page).get_data(as_text=True)
    assert 'name="current"' not in page and 'autocomplete="new-password"' in page
    assert f"For <strong>{PAT}</strong>." in page
    done = client.post(change_page, data={"csrf_token": csrf_token(client, change_page),
                                          "new": NEW, "confirm": NEW})
    assert done.headers["Location"] == after
    assert "Contract draft" in client.get(after).get_data(as_text=True)
    pat = db.session.scalar(db.select(User).where(User.email == PAT))
    assert not pat.must_change_password and passwords.verify_password(pat.password_hash, NEW)


def test_the_given_password_is_not_taken_as_the_new_one(app, client, send):
    message = send()
    change_page, _ = first_sign_in(app, client, message)
    given = given_password(app)
    answer = client.post(change_page, data={"csrf_token": csrf_token(client, change_page),
                                            "new": given, "confirm": given})
    assert answer.status_code == 200
    assert "Choose a password different from the one you were given." in \
        answer.get_data(as_text=True)


def test_after_the_short_window_the_given_password_is_asked_again(app, client, send,
                                                                 frozen_clock):
    message = send()
    change_page, after = first_sign_in(app, client, message)
    frozen_clock.advance(accounts.JUST_PROVEN + timedelta(seconds=1))
    page = client.get(change_page).get_data(as_text=True)
    assert 'name="current"' in page
    token = csrf_token(client, change_page)
    refused = client.post(change_page, data={"csrf_token": token, "new": NEW, "confirm": NEW})
    assert refused.status_code == 200
    assert db.session.scalar(db.select(User).where(User.email == PAT)).must_change_password
    done = client.post(change_page, data={"csrf_token": token, "current": given_password(app),
                                          "new": NEW, "confirm": NEW})
    assert done.headers["Location"] == after


def test_only_the_session_that_proved_it_skips_it(app, client, send):
    """Another browser's session, or one begun before the password was given, asks."""
    message = send()
    first_sign_in(app, client, message)
    pat = db.session.scalar(db.select(User).where(User.email == PAT))
    pat.password_changed_at += timedelta(seconds=1)  # as if given after this session began
    db.session.commit()
    assert 'name="current"' in client.get("/password/change").get_data(as_text=True)


def test_a_voluntary_change_always_asks_for_the_current_password(client, auth, acme,
                                                                  make_user):
    make_user(acme, PAT)
    auth.sign_in(PAT, slug="acme")
    assert 'name="current"' in client.get("/password/change").get_data(as_text=True)
    answer = post_form(client, "/password/change", {"new": NEW, "confirm": NEW})
    assert answer.status_code == 200
    pat = db.session.scalar(db.select(User).where(User.email == PAT))
    assert passwords.verify_password(pat.password_hash, PASSWORD)


def test_an_open_change_page_leads_to_the_message_asked_for_later(app, client, send):
    """Signed in but not yet changed: opening a message's link keeps it as the way on."""
    first, second = send(subject="First"), send(subject="Second")
    first_sign_in(app, client, first)
    to_message = client.get(link_path(second))
    assert to_message.headers["Location"] == f"/inbox/{second.public_id}"
    change = client.get(to_message.headers["Location"]).headers["Location"]
    assert change == f"/password/change?next=/inbox/{second.public_id}"


def test_the_domain_refuses_a_change_without_the_proof(app, send):
    send()
    pat = db.session.scalar(db.select(User).where(User.email == PAT))
    with pytest.raises(accounts.PasswordRejected):
        accounts.replace_given_password(pat, NEW)  # no session at all


def test_a_required_second_factor_is_set_up_on_the_way_to_the_message(app, client, acme,
                                                                      send):
    import pyotp

    acme.second_factor_external = "required"
    db.session.commit()
    message = send()
    change_page, after = first_sign_in(app, client, message)
    done = client.post(change_page, data={"csrf_token": csrf_token(client, change_page),
                                          "new": NEW, "confirm": NEW})
    assert done.headers["Location"] == after
    enrol = client.get(after).headers["Location"]
    assert enrol == f"/account/second-factor?next={after}"
    page = client.get(enrol).get_data(as_text=True)
    secret = re.search(r'<code class="secret">([A-Z2-7]+)</code>', page).group(1)
    codes = client.post(enrol, data={"csrf_token": csrf_token(client, enrol),
                                     "code": pyotp.TOTP(secret).now()})
    assert f'href="{after}">Continue</a>' in codes.get_data(as_text=True)
    assert "Contract draft" in client.get(after).get_data(as_text=True)


def test_an_expired_message_s_link_says_so_after_sign_in(app, client, send, frozen_clock):
    message = send()
    pat = db.session.scalar(db.select(User).where(User.email == PAT))
    pat.password_hash, pat.must_change_password = passwords.hash_password(PASSWORD), False
    db.session.commit()
    frozen_clock.advance(copy_of(message).visible_until - frozen_clock.now + timedelta(hours=1))
    path, after = sign_in_page_of(client.get(link_path(message)))
    post_form(client, path, {"email": PAT, "password": PASSWORD},
              query_string={"next": after}, form_path=f"{path}?next={after}")
    gone = client.get(after)
    assert gone.status_code == 410
    assert "This message has expired" in gone.get_data(as_text=True)
    assert "Numbers attached." not in gone.get_data(as_text=True)
