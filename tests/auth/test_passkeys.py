"""Passkeys: the server's checks (app/domain/passkeys.py) on py_webauthn's own test
vectors, and the routes around them (app/web/auth/passkeys.py) through the test client.

The vectors (github.com/duo-labs/py_webauthn, tests/test_verify_*_response.py) were made
at http://localhost:5000, so these tests run the portal there.
"""

# ruff: noqa: E501  (the vectors are quoted whole, as the library's tests have them)

from __future__ import annotations

import json
import time

import pytest
from support import PASSWORD, csrf_token, post_form
from webauthn.helpers import base64url_to_bytes

from app.domain import accounts, passkeys
from app.extensions import db
from app.models import AccessEvent, AuditEvent, Passkey, SpentChallenge

#: a "none" attestation from a registration with user verification (flags 0x45)
REGISTRATION = {
    "id": "9y1xA8Tmg1FEmT-c7_fvWZ_uoTuoih3OvR45_oAK-cwHWhAbXrl2q62iLVTjiyEZ7O7n-CROOY494k7Q3xrs_w",
    "rawId": "9y1xA8Tmg1FEmT-c7_fvWZ_uoTuoih3OvR45_oAK-cwHWhAbXrl2q62iLVTjiyEZ7O7n-CROOY494k7Q3xrs_w",
    "response": {
        "attestationObject": "o2NmbXRkbm9uZWdhdHRTdG10oGhhdXRoRGF0YVjESZYN5YgOjGh0NBcPZHZgW4_krrmihjLHmVzzuoMdl2NFAAAAFwAAAAAAAAAAAAAAAAAAAAAAQPctcQPE5oNRRJk_nO_371mf7qE7qIodzr0eOf6ACvnMB1oQG165dqutoi1U44shGezu5_gkTjmOPeJO0N8a7P-lAQIDJiABIVggSFbUJF-42Ug3pdM8rDRFu_N5oiVEysPDB6n66r_7dZAiWCDUVnB39FlGypL-qAoIO9xWHtJygo2jfDmHl-_eKFRLDA",
        "clientDataJSON": "eyJ0eXBlIjoid2ViYXV0aG4uY3JlYXRlIiwiY2hhbGxlbmdlIjoiVHdON240V1R5R0tMYzRaWS1xR3NGcUtuSE00bmdscXN5VjBJQ0psTjJUTzlYaVJ5RnRya2FEd1V2c3FsLWdrTEpYUDZmbkYxTWxyWjUzTW00UjdDdnciLCJvcmlnaW4iOiJodHRwOi8vbG9jYWxob3N0OjUwMDAiLCJjcm9zc09yaWdpbiI6ZmFsc2V9",
        "transports": ["nfc", "usb"],
    },
    "type": "public-key",
    "clientExtensionResults": {},
}
REGISTRATION_CHALLENGE = ("TwN7n4WTyGKLc4ZY-qGsFqKnHM4nglqsyV0ICJlN2TO9XiRyFtrkaDwUvsql-gkLJXP6"
                          "fnF1MlrZ53Mm4R7Cvw")
REGISTERED_KEY = ("pQECAyYgASFYIEhW1CRfuNlIN6XTPKw0RbvzeaIlRMrDwwep-uq_-3WQIlgg1FZwd_RZRsqS_qgKC"
                  "DvcVh7ScoKNo3w5h5fv3ihUSww")

#: a sign-in with user verification by an RSA credential, its counter going 0 -> 1
SIGN_IN = {
    "id": "ZoIKP1JQvKdrYj1bTUPJ2eTUsbLeFkv-X5xJQNr4k6s",
    "rawId": "ZoIKP1JQvKdrYj1bTUPJ2eTUsbLeFkv-X5xJQNr4k6s",
    "response": {
        "authenticatorData": "SZYN5YgOjGh0NBcPZHZgW4_krrmihjLHmVzzuoMdl2MFAAAAAQ",
        "clientDataJSON": "eyJ0eXBlIjoid2ViYXV0aG4uZ2V0IiwiY2hhbGxlbmdlIjoiaVBtQWkxUHAxWEw2b0FncTNQV1p0WlBuWmExekZVRG9HYmFRMF9LdlZHMWxGMnMzUnRfM280dVN6Y2N5MHRtY1RJcFRUVDRCVTFULUk0bWFhdm5kalEiLCJvcmlnaW4iOiJodHRwOi8vbG9jYWxob3N0OjUwMDAiLCJjcm9zc09yaWdpbiI6ZmFsc2V9",
        "signature": "iOHKX3erU5_OYP_r_9HLZ-CexCE4bQRrxM8WmuoKTDdhAnZSeTP0sjECjvjfeS8MJzN1ArmvV0H0C3yy_FdRFfcpUPZzdZ7bBcmPh1XPdxRwY747OrIzcTLTFQUPdn1U-izCZtP_78VGw9pCpdMsv4CUzZdJbEcRtQuRS03qUjqDaovoJhOqEBmxJn9Wu8tBi_Qx7A33RbYjlfyLm_EDqimzDZhyietyop6XUcpKarKqVH0M6mMrM5zTjp8xf3W7odFCadXEJg-ERZqFM0-9Uup6kJNLbr6C5J4NDYmSm3HCSA6lp2iEiMPKU8Ii7QZ61kybXLxsX4w4Dm3fOLjmDw",
        "userHandle": "T1RWa1l6VXdPRFV0WW1NNVlTMDBOVEkxTFRnd056Z3RabVZpWVdZNFpEVm1ZMk5p",
    },
    "type": "public-key",
    "clientExtensionResults": {},
}
SIGN_IN_CHALLENGE = ("iPmAi1Pp1XL6oAgq3PWZtZPnZa1zFUDoGbaQ0_KvVG1lF2s3Rt_3o4uSzccy0tmcTIpTTT4B"
                     "U1T-I4maavndjQ")
SIGN_IN_KEY = (
    "pAEDAzkBACBZAQDfV20epzvQP-HtcdDpX-cGzdOxy73WQEvsU7Dnr9UWJophEfpngouvgnRLXaEUn_d8HGkp_HIx8r"
    "rpkx4BVs6X_B6ZjhLlezjIdJbLbVeb92BaEsmNn1HW2N9Xj2QM8cH-yx28_vCjf82ahQ9gyAr552Bn96G22n8jqFRQ"
    "KdVpO-f-bvpvaP3IQ9F5LCX7CUaxptgbog1SFO6FI6ob5SlVVB00lVXsaYg8cIDZxCkkENkGiFPgwEaZ7995SCbiyC"
    "pUJbMqToLMgojPkAhWeyktu7TlK6UBWdJMHc3FPAIs0lH_2_2hKS-mGI1uZAFVAfW1X-mzKL0czUm2P1UlUox7IUMB"
    "AAE")



@pytest.fixture(autouse=True)
def portal_of_the_vectors(app):
    app.config["BASE_URL"] = "http://localhost:5000"


def state(challenge: str, **more) -> dict:
    return {"challenge": challenge, "until": time.time() + 60, **more}


@pytest.fixture
def stored(alice):
    """Alice's passkey: the sign-in vector's credential, never used yet."""
    passkey = Passkey(user=alice, tenant_id=alice.tenant_id,
                      credential_id=base64url_to_bytes(SIGN_IN["rawId"]),
                      user_handle=base64url_to_bytes(SIGN_IN["response"]["userHandle"]),
                      public_key=base64url_to_bytes(SIGN_IN_KEY), sign_count=0, name="Laptop")
    db.session.add(passkey)
    db.session.commit()
    return passkey


# --- the domain, on the library's vectors ----------------------------------------------


def test_the_relying_party_is_the_portals_host():
    assert passkeys.relying_party() == ("localhost", "http://localhost:5000")


@pytest.mark.parametrize("base_url, expected", [
    ("https://Portal.Example", ("portal.example", "https://portal.example")),
    # the browser's origin names no default port, and no path
    ("https://portal.example:443/ccm/", ("portal.example", "https://portal.example")),
    ("http://portal.example:80", ("portal.example", "http://portal.example")),
    ("https://portal.example:8443", ("portal.example", "https://portal.example:8443")),
])
def test_the_origin_is_the_one_a_browser_shows(app, monkeypatch, base_url, expected):
    monkeypatch.setitem(app.config, "BASE_URL", base_url)
    assert passkeys.relying_party() == expected


def test_registration_keeps_the_key_and_its_transports(alice):
    passkey = passkeys.register(alice, REGISTRATION, state(REGISTRATION_CHALLENGE, handle="AAAA"),
                                "  Work   laptop ")
    db.session.commit()
    assert passkey.name == "Work laptop"
    assert passkey.public_key == base64url_to_bytes(REGISTERED_KEY)
    assert passkey.sign_count == 23 and passkey.transports == "nfc,usb"
    assert passkey.tenant_id == alice.tenant_id and alice.passkeys == [passkey]


@pytest.mark.parametrize(("change", "reason"), [
    (lambda s: {**s, "challenge": SIGN_IN_CHALLENGE}, passkeys.NOT_VERIFIED),
    (lambda s: {**s, "until": time.time() - 1}, passkeys.TOO_LATE),
    (lambda s: None, passkeys.TOO_LATE),
])
def test_registration_needs_its_own_live_challenge(alice, change, reason):
    with pytest.raises(passkeys.PasskeyRefused) as refused:
        passkeys.register(alice, REGISTRATION,
                          change(state(REGISTRATION_CHALLENGE, handle="AAAA")), "Laptop")
    assert refused.value.reason == reason


def test_registration_from_another_origin_is_refused(app, alice):
    app.config["BASE_URL"] = "https://portal.example"
    with pytest.raises(passkeys.PasskeyRefused):
        passkeys.register(alice, REGISTRATION, state(REGISTRATION_CHALLENGE, handle="AAAA"),
                          "Laptop")


@pytest.mark.parametrize(("name", "reason"), [("  ", passkeys.NO_NAME),
                                              ("x" * 65, passkeys.LONG_NAME)])
def test_a_passkey_needs_a_name(alice, name, reason):
    with pytest.raises(passkeys.PasskeyRefused) as refused:
        passkeys.register(alice, REGISTRATION, state(REGISTRATION_CHALLENGE, handle="AAAA"),
                          name)
    assert refused.value.reason == reason


def test_the_same_credential_is_not_registered_twice(alice):
    passkeys.register(alice, REGISTRATION, state(REGISTRATION_CHALLENGE, handle="AAAA"), "One")
    db.session.commit()
    with pytest.raises(passkeys.PasskeyRefused) as refused:
        passkeys.register(alice, REGISTRATION, state(REGISTRATION_CHALLENGE, handle="AAAA"),
                          "Two")
    assert refused.value.reason == passkeys.ALREADY_REGISTERED


def test_registration_options_ask_for_a_discoverable_verified_credential(alice, stored):
    options, kept = passkeys.registration_options(alice)
    options = json.loads(options)
    assert options["rp"] == {"name": "Acme Corp", "id": "localhost"}
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert [c["id"] for c in options["excludeCredentials"]] == [SIGN_IN["rawId"]]
    # every passkey of one person is made for the same user handle
    assert options["user"]["id"] == SIGN_IN["response"]["userHandle"] == kept["handle"]
    assert kept["challenge"] == options["challenge"]


def test_sign_in_verifies_and_counts(stored, acme):
    passkey = passkeys.authenticate(SIGN_IN, state(SIGN_IN_CHALLENGE), acme)
    assert passkey is stored
    assert passkey.sign_count == 1 and passkey.last_used_at is not None


def test_a_counter_going_backwards_is_a_copy(stored, acme):
    stored.sign_count = 5
    with pytest.raises(passkeys.PasskeyRefused) as refused:
        passkeys.authenticate(SIGN_IN, state(SIGN_IN_CHALLENGE), acme)
    assert refused.value.reason == passkeys.CLONED


def test_a_challenge_is_good_for_one_answer(stored, acme, client, auth):
    """A captured cookie and answer replayed: refused even for a passkey whose counter
    never moves (many report 0 always), in the domain and through the page."""
    passkeys.authenticate(SIGN_IN, state(SIGN_IN_CHALLENGE), acme)
    db.session.commit()
    stored.sign_count = 0  # an authenticator without a counter
    with pytest.raises(passkeys.PasskeyRefused) as refused:
        passkeys.authenticate(SIGN_IN, state(SIGN_IN_CHALLENGE), acme)
    assert refused.value.reason == passkeys.TOO_LATE
    db.session.rollback()
    assert db.session.scalar(db.select(db.func.count()).select_from(SpentChallenge)) == 1
    # the clean job forgets it once it would be refused as too old anyway
    from datetime import timedelta

    from app import clock
    from app.domain import expiry
    clock.freeze(clock.utcnow() + timedelta(seconds=passkeys.CEREMONY_SECONDS + 1))
    try:
        assert expiry.clean_up()["answered passkey challenges"] == 1
    finally:
        clock.freeze(None)


def test_a_replayed_sign_in_through_the_page_opens_nothing(client, auth, stored):
    assert sign_in_by_passkey(client).get_json() == {"redirect": "/inbox/"}
    stored.sign_count = 0
    db.session.commit()
    other = client.application.test_client()
    response = sign_in_by_passkey(other)
    assert "redirect" not in response.get_json()
    assert response.get_json()["error"] == "That took too long. Try again."


def test_another_tenants_passkey_is_refused(stored, make_tenant):
    globex = make_tenant("globex", domains=["globex.test"])
    with pytest.raises(passkeys.PasskeyRefused) as refused:
        passkeys.authenticate(SIGN_IN, state(SIGN_IN_CHALLENGE), globex)
    assert refused.value.reason == passkeys.OTHER_TENANT
    # the portal's own sign-in page takes a passkey of any tenant
    assert passkeys.authenticate(SIGN_IN, state(SIGN_IN_CHALLENGE), None) is stored


def test_a_signature_that_does_not_match_is_refused(stored, acme):
    forged = json.loads(json.dumps(SIGN_IN))
    forged["response"]["signature"] = forged["response"]["signature"][:-4] + "AAAA"
    with pytest.raises(passkeys.PasskeyRefused) as refused:
        passkeys.authenticate(forged, state(SIGN_IN_CHALLENGE), acme)
    assert refused.value.reason == passkeys.NOT_VERIFIED


def test_a_user_handle_of_someone_else_is_refused(stored, acme):
    stored.user_handle = b"someone else"
    with pytest.raises(passkeys.PasskeyRefused) as refused:
        passkeys.authenticate(SIGN_IN, state(SIGN_IN_CHALLENGE), acme)
    assert refused.value.reason == passkeys.NOT_VERIFIED
    assert stored.last_used_at is None


def test_unknown_removed_and_disabled_are_unknown(stored, acme):
    stored.user.disabled = True
    with pytest.raises(passkeys.PasskeyRefused) as refused:
        passkeys.authenticate(SIGN_IN, state(SIGN_IN_CHALLENGE), acme)
    assert refused.value.reason == passkeys.UNKNOWN
    stored.user.disabled = False
    passkeys.remove(stored)
    with pytest.raises(passkeys.PasskeyRefused) as refused:
        passkeys.authenticate(SIGN_IN, state(SIGN_IN_CHALLENGE), acme)
    assert refused.value.reason == passkeys.UNKNOWN


def test_a_tenant_that_turned_passkeys_off_refuses_them(stored, acme):
    acme.passkeys_external = passkeys.OFF
    with pytest.raises(passkeys.PasskeyRefused) as refused:
        passkeys.authenticate(SIGN_IN, state(SIGN_IN_CHALLENGE), acme)
    assert refused.value.reason == passkeys.TURNED_OFF
    assert passkeys.offered_at(acme)  # internal users still may
    acme.passkeys_internal = passkeys.OFF
    assert not passkeys.offered_at(acme)


def test_the_policy_required(alice, acme, stored):
    assert not passkeys.must_enrol(alice) and not passkeys.password_alone_refused(alice)
    acme.passkeys_external = passkeys.REQUIRED
    assert passkeys.password_alone_refused(alice)
    passkeys.remove(stored)
    assert passkeys.must_enrol(alice) and not passkeys.password_alone_refused(alice)


# --- through the portal -----------------------------------------------------------------


def sign_in_by_passkey(client, slug="acme"):
    token = csrf_token(client, f"/t/{slug}/sign-in")
    headers = {"X-CSRFToken": token}
    assert client.post("/sign-in/passkey/options", headers=headers).status_code == 200
    # the vector's challenge, not the one just given
    from app.web.auth.passkeys import _SIGN_IN, _ceremonies
    client.set_cookie(_SIGN_IN, _ceremonies().dumps(state(SIGN_IN_CHALLENGE)))
    return client.post(f"/t/{slug}/sign-in/passkey?next=/inbox/", json=SIGN_IN, headers=headers)


def test_signing_in_by_passkey_opens_a_session_without_the_password(client, auth, stored):
    response = sign_in_by_passkey(client)
    assert response.status_code == 200
    assert response.get_json() == {"redirect": "/inbox/"}
    assert auth.signed_in()
    line = db.session.scalar(db.select(AccessEvent).filter_by(kind="sign_in"))
    assert line.detail == "with a passkey"


def test_a_refused_passkey_is_logged_and_opens_nothing(client, auth, stored):
    stored.sign_count = 7
    db.session.commit()
    response = sign_in_by_passkey(client)
    assert response.status_code == 200 and "redirect" not in response.get_json()
    assert "copied" in response.get_json()["error"]
    assert not auth.signed_in()
    assert db.session.scalar(db.select(AccessEvent.detail).filter_by(kind="sign_in_failed")) \
        == "passkey refused"


def test_a_passkey_sign_in_without_the_csrf_token_is_refused(client, stored):
    response = client.post("/t/acme/sign-in/passkey", json=SIGN_IN)
    assert response.status_code == 400 and "redirect" not in response.get_data(as_text=True)


def test_the_sign_in_page_offers_passkeys_unless_both_sides_are_off(client, acme):
    page = client.get("/t/acme/sign-in").get_data(as_text=True)
    assert 'autocomplete="username webauthn"' in page and "data-passkey-sign-in" in page
    acme.passkeys_internal = acme.passkeys_external = passkeys.OFF
    db.session.commit()
    page = client.get("/t/acme/sign-in").get_data(as_text=True)
    assert "webauthn" not in page and "data-passkey-sign-in" not in page


def test_the_owner_adds_renames_and_removes_a_passkey(client, auth, alice):
    auth.sign_in("alice@partner.test", slug="acme")
    token = csrf_token(client, "/account/passkeys")
    headers = {"X-CSRFToken": token}
    options = client.post("/account/passkeys/options", headers=headers).get_json()
    assert options["user"]["name"] == "alice@partner.test"
    with client.session_transaction() as session:
        session["passkey_new"] = state(REGISTRATION_CHALLENGE, handle="AAAA")
    answer = client.post("/account/passkeys", json={"name": "Phone", "credential": REGISTRATION},
                         headers=headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json() == {"redirect": "/account/passkeys"}
    page = client.get("/account/passkeys").get_data(as_text=True)
    assert "Phone" in page and "not used yet" in page
    passkey = db.session.scalar(db.select(Passkey))
    post_form(client, f"/account/passkeys/{passkey.id}/rename", {"name": "Old phone"},
              form_path="/account/passkeys")
    assert db.session.scalar(db.select(Passkey.name)) == "Old phone"
    post_form(client, f"/account/passkeys/{passkey.id}/remove", {},
              form_path="/account/passkeys")
    assert db.session.scalar(db.select(Passkey)) is None
    kinds = db.session.scalars(db.select(AccessEvent.kind).order_by(AccessEvent.id)).all()
    assert kinds == ["sign_in", "passkey_added", "passkey_removed"]
    actions = db.session.scalars(db.select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions == ["passkey registered", "passkey removed"]


def test_someone_elses_passkey_cannot_be_renamed_or_removed(client, auth, stored, make_user,
                                                           acme):
    make_user(acme, "bob@partner.test")
    auth.sign_in("bob@partner.test", slug="acme")
    response = post_form(client, f"/account/passkeys/{stored.id}/remove", {},
                         form_path="/account/passkeys")
    assert response.status_code == 404
    assert db.session.get(Passkey, stored.id) is not None


def test_required_sends_a_new_sign_in_to_add_one_then_refuses_the_password_alone(
        client, auth, alice, acme):
    acme.passkeys_external = passkeys.REQUIRED
    db.session.commit()
    auth.sign_in("alice@partner.test", slug="acme")
    response = client.get("/inbox/")
    assert response.status_code == 302
    assert response.location.startswith("/account/passkeys")
    assert "asks you to add a passkey" in client.get("/account/passkeys").get_data(as_text=True)
    auth.sign_out()
    db.session.add(Passkey(user=alice, tenant_id=acme.id, credential_id=b"x", user_handle=b"h",
                           public_key=b"k", name="Phone"))
    db.session.commit()
    refused = auth.sign_in("alice@partner.test", slug="acme")
    assert "Sign in with a passkey" in refused.get_data(as_text=True)
    assert "sign in with your passkey" in refused.get_data(as_text=True)
    assert not auth.signed_in()
    assert PASSWORD  # the right password, refused all the same


def test_first_contact_by_passkey_signs_in_by_the_link_and_asks_for_a_passkey(
        client, acme, make_user):
    acme.first_contact, acme.passkey_first_contact = "activation_link", True
    pat = make_user(acme, "pat@partner.test", password=None, must_change=True)
    token = accounts.start_reset(pat, purpose="activation")
    db.session.commit()
    page = client.get(f"/password/reset/{token}?next=/inbox/").get_data(as_text=True)
    assert "Open your secure message" in page and "Choose a password instead" in page
    assert "Save new password" in client.get(f"/password/reset/{token}?password=1") \
        .get_data(as_text=True)
    answer = post_form(client, f"/password/reset/{token}/passkey?next=/inbox/", {},
                       form_path=f"/password/reset/{token}")
    assert answer.status_code == 302 and answer.location == "/inbox/"
    db.session.refresh(pat)
    assert passkeys.passwordless(pat) and passkeys.must_enrol(pat)
    assert client.get("/inbox/").location.startswith("/account/passkeys")
    assert accounts.find_reset(token) is None  # the link is used up


def test_without_the_tenants_choice_an_activation_link_asks_for_a_password(client, acme,
                                                                          make_user):
    acme.first_contact = "activation_link"
    pat = make_user(acme, "pat@partner.test", password=None, must_change=True)
    token = accounts.start_reset(pat, purpose="activation")
    db.session.commit()
    assert "Save new password" in client.get(f"/password/reset/{token}").get_data(as_text=True)
    answer = post_form(client, f"/password/reset/{token}/passkey", {},
                       form_path=f"/password/reset/{token}")
    assert answer.status_code == 404


def test_every_refusal_the_domain_gives_is_words():
    """Said by the pages in the reader's language; tests/unit/test_words.py checks that
    every catalog has each."""
    from app.words import Words

    reasons = {value for name, value in vars(passkeys).items()
               if name.isupper() and isinstance(value, str) and " " in value}
    assert len(reasons) == 9
    assert all(isinstance(reason, Words) for reason in reasons)


def test_the_name_limit_is_said_from_its_one_constant(client, auth, stored):
    """The refusal and the fields' maxlength both come from NAME_LENGTH, and the refusal
    is translated with the number put in (not a number written into each catalog)."""
    assert passkeys.LONG_NAME.values == {"most": passkeys.NAME_LENGTH}
    assert str(passkeys.NAME_LENGTH) not in passkeys.LONG_NAME.template
    auth.sign_in("alice@partner.test", slug="acme")
    headers = {"Accept-Language": "de"}
    page = client.get("/account/passkeys", headers=headers).get_data(as_text=True)
    assert page.count(f'maxlength="{passkeys.NAME_LENGTH}"') == 2  # rename and add
    refused = post_form(client, f"/account/passkeys/{stored.id}/rename",
                        {"name": "x" * (passkeys.NAME_LENGTH + 1)},
                        form_path="/account/passkeys", headers=headers, follow_redirects=True)
    assert f"höchstens {passkeys.NAME_LENGTH} Zeichen" in refused.get_data(as_text=True)
    assert db.session.scalar(db.select(Passkey.name)) == "Laptop"
