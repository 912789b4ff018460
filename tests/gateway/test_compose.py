"""Composing in the portal, sent items and revocation, against real SMTP sinks."""

from io import BytesIO

import pytest
from support import PASSWORD, post_form

from app import composing, sent_items
from app.extensions import db
from app.models import Draft, Message
from app.passwords import hash_password


def sign_in(gateway, auth, email):
    user = gateway.account(email)
    user.password_hash = hash_password(PASSWORD)
    user.must_change_password = False
    db.session.commit()
    auth.sign_in(email, slug="acme")
    return user


def compose(client, **fields):
    data = {"to": "pat@partner.test", "cc": "", "subject": "Offer", "body": "Terms attached.",
            **fields}
    return post_form(client, "/compose/", data)


def latest() -> Message:
    db.session.expire_all()
    return db.session.query(Message).order_by(Message.id.desc()).first()


@pytest.mark.parametrize(
    ("mode", "routes"),
    [
        ("off", {"pat@partner.test": "external", "bob@acme.test": "internal"}),
        ("external", {"pat@partner.test": "ccm", "bob@acme.test": "internal"}),
        ("all", {"pat@partner.test": "ccm", "bob@acme.test": "ccm"}),
    ],
)
def test_each_mode_with_internal_and_external_recipients(gateway, client, auth, mode, routes):
    mx = gateway.network.mx("partner.test")
    sign_in(gateway, auth, "alice@acme.test")
    response = compose(client, cc="bob@acme.test", mode=mode)
    assert response.status_code == 302
    message = latest()
    assert {r.address: r.route for r in message.recipients} == routes
    gateway.run_queue()
    delivered_to_mx = [d for d in mx.messages if d.message["Subject"] == "Offer"]
    delivered_internally = [d for d in gateway.relay.messages if d.message["Subject"] == "Offer"]
    assert len(delivered_to_mx) == (routes["pat@partner.test"] == "external")
    assert len(delivered_internally) == (routes["bob@acme.test"] == "internal")
    notified = [d.rcpt_tos[0] for d in [*mx.messages, *gateway.relay.messages]
                if d.message["Subject"] == "You have a new secure message"]
    assert sorted(notified) == sorted(a for a, r in routes.items() if r == "ccm")


def test_off_is_overridden_by_a_content_policy(gateway, client, auth):
    gateway.policy(name="Keyword", kind="content", phrases=["confidential"])
    sign_in(gateway, auth, "alice@acme.test")
    compose(client, body="This is CONFIDENTIAL.", mode="off")
    (recipient,) = latest().recipients
    assert (recipient.route, recipient.policy.name) == ("ccm", "Keyword")


def test_without_permission_there_is_no_mode_control_and_a_forged_one_is_ignored(
        gateway, client, auth):
    gateway.network.mx("partner.test")
    sign_in(gateway, auth, "bob@acme.test")  # the Default profile: no portal CCM
    page = client.get("/compose/").get_data(as_text=True)
    assert "CCM mode" not in page and 'name="mode"' not in page
    compose(client, mode="all")
    (recipient,) = latest().recipients
    assert recipient.route == "external"


def test_a_per_user_override_grants_the_mode(gateway, client, auth):
    bob = sign_in(gateway, auth, "bob@acme.test")
    bob.portal_ccm_override = True
    db.session.commit()
    assert "CCM mode" in client.get("/compose/").get_data(as_text=True)
    compose(client, mode="external")
    assert latest().recipients[0].route == "ccm"


def test_a_per_user_override_can_deny_what_the_profile_allows(gateway, client, auth):
    alice = sign_in(gateway, auth, "alice@acme.test")
    alice.portal_ccm_override = False
    db.session.commit()
    compose(client, mode="all")
    assert latest().recipients[0].route == "external"


def test_external_recipients_cannot_compose(gateway, client, auth, make_user):
    make_user(gateway.tenant, "pat@partner.test")
    auth.sign_in("pat@partner.test", slug="acme")
    assert client.get("/compose/").status_code == 403
    assert client.get("/sent/").status_code == 403


def test_invalid_addresses_are_refused_with_the_culprit_named(gateway, client, auth):
    sign_in(gateway, auth, "alice@acme.test")
    response = compose(client, to="pat@partner.test, not an address")
    assert "Not an email address: not, an, address" in response.get_data(as_text=True) or \
        "Not an email address" in response.get_data(as_text=True)
    assert latest() is None


def test_attachments_are_sent(gateway, client, auth):
    sign_in(gateway, auth, "alice@acme.test")
    compose(client, to="bob@acme.test",
            attachments=[(BytesIO(b"%PDF- figures"), "Q3 figures.pdf", "application/pdf")])
    gateway.run_queue()
    (delivery,) = [d for d in gateway.relay.messages if d.message["Subject"] == "Offer"]
    (attached,) = list(delivery.message.iter_attachments())
    assert attached.get_filename() == "Q3_figures.pdf"


def test_compose_without_csrf_is_refused(gateway, client, auth):
    sign_in(gateway, auth, "alice@acme.test")
    response = client.post("/compose/", data={"to": "pat@partner.test", "body": "x"})
    assert response.status_code == 400
    assert latest() is None


# --- drafts ----------------------------------------------------------------------------


def test_drafts_are_saved_while_typing_and_resumed(gateway, client, auth):
    sign_in(gateway, auth, "alice@acme.test")
    first = post_form(client, "/compose/draft", {"to": "pat@partner.test", "subject": "Half",
                                                 "body": "Half written", "mode": "all"},
                      form_path="/compose/")
    assert "Draft saved at" in first.get_data(as_text=True)
    draft = db.session.query(Draft).one()
    post_form(client, "/compose/draft", {"draft": draft.public_id, "to": "pat@partner.test",
                                         "subject": "Half", "body": "Fully written"},
              form_path="/compose/")
    assert db.session.query(Draft).count() == 1
    db.session.refresh(draft)
    assert draft.body == "Fully written"
    page = client.get(f"/compose/?draft={draft.public_id}").get_data(as_text=True)
    assert "Fully written" in page
    compose(client, draft=draft.public_id, body="Fully written")
    assert db.session.query(Draft).count() == 0


def test_drafts_are_private(gateway, client, auth, app):
    alice = gateway.account("alice@acme.test")
    draft = composing.save_draft(alice, None, to="x@y.test", cc="", subject="Secret plan",
                                 body="", mode="off")
    db.session.commit()
    sign_in(gateway, auth, "bob@acme.test")
    page = client.get(f"/compose/?draft={draft.public_id}").get_data(as_text=True)
    assert "Secret plan" not in page
    assert "Secret plan" not in client.get("/compose/drafts").get_data(as_text=True)


# --- sent items and revocation ---------------------------------------------------------


def sent_by_alice(gateway, client, auth, to="pat@partner.test, sam@partner.test"):
    sign_in(gateway, auth, "alice@acme.test")
    compose(client, to=to, mode="external")
    return latest()


def test_sent_items_show_route_and_state_per_recipient(gateway, client, auth):
    gateway.network.mx("partner.test")
    message = sent_by_alice(gateway, client, auth, to="pat@partner.test, bob@acme.test")
    gateway.run_queue()
    page = client.get(f"/sent/{message.public_id}").get_data(as_text=True)
    assert "Secure portal (CCM)" in page and "Internal relay" in page
    assert "Notified" in page and "Delivered by SMTP" in page
    assert "Delivered to CCM isolation area" in page
    pat = next(r for r in message.recipients if r.address == "pat@partner.test")
    pat.first_opened_at = db.func.now()
    db.session.commit()
    db.session.refresh(pat)
    assert sent_items.status(pat).startswith("Opened")
    assert message.public_id in client.get("/sent/").get_data(as_text=True)


def test_nobody_else_sees_a_senders_sent_items(gateway, client, auth):
    message = sent_by_alice(gateway, client, auth)
    auth.sign_out()
    sign_in(gateway, auth, "bob@acme.test")
    assert client.get(f"/sent/{message.public_id}").status_code == 404
    assert message.public_id not in client.get("/sent/").get_data(as_text=True)
    response = post_form(client, f"/sent/{message.public_id}/revoke", {"recipient": "all"},
                         form_path="/sent/")
    assert response.status_code == 404


def read_as(app, email, message):
    """Another browser: the recipient signs in and opens their copy."""
    reader = app.test_client()
    post_form(reader, "/t/acme/sign-in", {"email": email, "password": PASSWORD})
    return reader, reader.get(f"/inbox/{message.public_id}")


def test_revoke_before_the_recipient_opened_it(app, gateway, client, auth):
    message = sent_by_alice(gateway, client, auth)
    for address in ("pat@partner.test", "sam@partner.test"):
        user = gateway.account(address)
        user.password_hash, user.must_change_password = hash_password(PASSWORD), False
    db.session.commit()
    pat = next(r for r in message.recipients if r.address == "pat@partner.test")
    post_form(client, f"/sent/{message.public_id}/revoke", {"recipient": str(pat.id)},
              form_path=f"/sent/{message.public_id}")
    reader, page = read_as(app, "pat@partner.test", message)
    assert page.status_code == 410
    assert "withdrawn by the sender" in page.get_data(as_text=True)
    assert "Offer" not in reader.get("/inbox/").get_data(as_text=True)
    # Sam, the other recipient, still has it.
    _, sams = read_as(app, "sam@partner.test", message)
    assert sams.status_code == 200
    db.session.refresh(pat)
    assert pat.state == "revoked" and pat.revoked_at is not None
    assert any(e.text.startswith("Revoked by the sender") for e in pat.events)


def test_revoke_after_the_recipient_opened_it_takes_it_away_at_once(app, gateway, client,
                                                                    auth):
    message = sent_by_alice(gateway, client, auth, to="pat@partner.test")
    user = gateway.account("pat@partner.test")
    user.password_hash, user.must_change_password = hash_password(PASSWORD), False
    db.session.commit()
    reader, first = read_as(app, "pat@partner.test", message)
    assert first.status_code == 200
    post_form(client, f"/sent/{message.public_id}/revoke", {"recipient": "all"},
              form_path=f"/sent/{message.public_id}")
    again = reader.get(f"/inbox/{message.public_id}")
    assert again.status_code == 410
    for part in ("body", "parts/0", "reply"):
        assert reader.get(f"/inbox/{message.public_id}/{part}").status_code == 410


def test_only_held_ccm_copies_can_be_revoked(gateway, client, auth):
    message = sent_by_alice(gateway, client, auth, to="bob@acme.test")
    post_form(client, f"/sent/{message.public_id}/revoke", {"recipient": "all"},
              form_path=f"/sent/{message.public_id}")
    (bob,) = message.recipients
    db.session.refresh(bob)
    assert bob.state != "revoked"


def test_revoke_without_csrf_is_refused(gateway, client, auth):
    message = sent_by_alice(gateway, client, auth)
    response = client.post(f"/sent/{message.public_id}/revoke", data={"recipient": "all"})
    assert response.status_code == 400
    assert all(r.state == "held" for r in latest().recipients)
