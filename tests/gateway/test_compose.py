"""Composing in the portal, sent items and revocation, against real SMTP sinks."""

import re
from io import BytesIO

import pytest
from support import PASSWORD, csrf_token, post_form

from app.domain import composing
from app.domain.composing import MAX_ADDRESS, MAX_BODY, MAX_DRAFTS, MAX_RECIPIENTS, MAX_SUBJECT
from app.domain.passwords import hash_password
from app.extensions import db
from app.models import Draft
from app.web.queries import sent_items


def compose(client, **fields):
    data = {"to": "pat@partner.test", "cc": "", "subject": "Offer", "body": "Terms attached.",
            **fields}
    return post_form(client, "/compose/", data)


@pytest.mark.parametrize(
    ("mode", "routes"),
    [
        ("off", {"pat@partner.test": "external", "bob@acme.test": "internal"}),
        ("external", {"pat@partner.test": "ccm", "bob@acme.test": "internal"}),
        ("all", {"pat@partner.test": "ccm", "bob@acme.test": "ccm"}),
    ],
)
def test_each_mode_with_internal_and_external_recipients(gateway, client, mode, routes, signed_in):
    mx = gateway.network.mx("partner.test")
    signed_in("alice@acme.test")
    response = compose(client, cc="bob@acme.test", mode=mode)
    assert response.status_code == 302
    message = gateway.latest()
    assert {r.address: r.route for r in message.recipients} == routes
    gateway.run_queue()
    delivered_to_mx = [d for d in mx.messages if d.message["Subject"] == "Offer"]
    delivered_internally = [d for d in gateway.relay.messages if d.message["Subject"] == "Offer"]
    assert len(delivered_to_mx) == (routes["pat@partner.test"] == "external")
    assert len(delivered_internally) == (routes["bob@acme.test"] == "internal")
    notified = [d.rcpt_tos[0] for d in [*mx.messages, *gateway.relay.messages]
                if d.message["Subject"] == "Secure message from Acme Corp: sign in to read it"]
    assert sorted(notified) == sorted(a for a, r in routes.items() if r == "ccm")


def test_off_is_overridden_by_a_content_policy(gateway, client, signed_in):
    gateway.policy(name="Keyword", kind="content", phrases=["confidential"])
    signed_in("alice@acme.test")
    compose(client, body="This is CONFIDENTIAL.", mode="off")
    (recipient,) = gateway.latest().recipients
    assert (recipient.route, recipient.policy.name) == ("ccm", "Keyword")


def test_without_permission_there_is_no_mode_control_and_a_forged_one_is_ignored(
        gateway, client, signed_in):
    gateway.network.mx("partner.test")
    signed_in("bob@acme.test")  # the Default profile: no portal CCM
    page = client.get("/compose/").get_data(as_text=True)
    assert "CCM mode" not in page and 'name="mode"' not in page
    compose(client, mode="all")
    (recipient,) = gateway.latest().recipients
    assert recipient.route == "external"


def test_a_per_user_override_grants_the_mode(gateway, client, signed_in):
    bob = signed_in("bob@acme.test")
    bob.portal_ccm_override = True
    db.session.commit()
    assert "CCM mode" in client.get("/compose/").get_data(as_text=True)
    compose(client, mode="external")
    assert gateway.latest().recipients[0].route == "ccm"


def test_a_per_user_override_can_deny_what_the_profile_allows(gateway, client, signed_in):
    alice = signed_in("alice@acme.test")
    alice.portal_ccm_override = False
    db.session.commit()
    compose(client, mode="all")
    assert gateway.latest().recipients[0].route == "external"


def test_external_recipients_cannot_compose(gateway, client, auth, make_user):
    make_user(gateway.tenant, "pat@partner.test")
    auth.sign_in("pat@partner.test", slug="acme")
    assert client.get("/compose/").status_code == 403
    assert client.get("/sent/").status_code == 403


def test_invalid_addresses_are_refused_with_the_culprit_named(gateway, client, signed_in):
    signed_in("alice@acme.test")
    response = compose(client, to="pat@partner.test, not an address")
    assert "Not an email address: not, an, address" in response.get_data(as_text=True) or \
        "Not an email address" in response.get_data(as_text=True)
    assert gateway.latest() is None


def test_attachments_are_sent(gateway, client, signed_in):
    signed_in("alice@acme.test")
    compose(client, to="bob@acme.test",
            attachments=[(BytesIO(b"%PDF- figures"), "Q3 figures.pdf", "application/pdf")])
    gateway.run_queue()
    (delivery,) = [d for d in gateway.relay.messages if d.message["Subject"] == "Offer"]
    (attached,) = list(delivery.message.iter_attachments())
    assert attached.get_filename() == "Q3 figures.pdf"  # the name its person gave


@pytest.mark.parametrize(("declared", "sent_as"), [
    ("application/pdf", "application/pdf"),
    ("Text/Plain", "text/plain"),
    ("text/plain\x1b[31m", "application/octet-stream"),
    ("a/b/c", "application/octet-stream"),
    ("text/pl ain", "application/octet-stream"),
    ("text/plain; name=x", "text/plain"),  # the parameters are not taken
    ("", "application/octet-stream"),
    ("\u00e9/x", "application/octet-stream"),
])
def test_an_attachments_declared_type_goes_out_only_as_a_plain_media_type(
        gateway, client, declared, sent_as, signed_in):
    signed_in("alice@acme.test")
    compose(client, to="bob@acme.test",
            attachments=[(BytesIO(b"figures"), "figures.bin", declared)])
    gateway.run_queue()
    (delivery,) = [d for d in gateway.relay.messages if d.message["Subject"] == "Offer"]
    (attached,) = list(delivery.message.iter_attachments())
    assert attached.get_content_type() == sent_as


def test_a_nul_in_an_attachments_name_or_type_refuses_the_request(gateway, client, signed_in):
    signed_in("alice@acme.test")
    for name, declared in [("a\x00.pdf", "application/pdf"), ("a.pdf", "text/plain\x00x")]:
        response = compose(client, to="bob@acme.test",
                           attachments=[(BytesIO(b"figures"), name, declared)])
        assert response.status_code == 400
    assert gateway.latest() is None


def test_compose_without_csrf_is_refused(gateway, client, signed_in):
    signed_in("alice@acme.test")
    response = client.post("/compose/", data={"to": "pat@partner.test", "body": "x"})
    assert response.status_code == 400
    assert gateway.latest() is None


# --- drafts ----------------------------------------------------------------------------


def test_drafts_are_saved_while_typing_and_resumed(gateway, client, signed_in):
    signed_in("alice@acme.test")
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


def test_drafts_are_private(gateway, client, app, signed_in):
    alice = gateway.account("alice@acme.test")
    draft = composing.save_draft(alice, None, to="x@y.test", cc="", subject="Secret plan",
                                 body="", mode="off")
    db.session.commit()
    signed_in("bob@acme.test")
    page = client.get(f"/compose/?draft={draft.public_id}").get_data(as_text=True)
    assert "Secret plan" not in page
    assert "Secret plan" not in client.get("/compose/drafts").get_data(as_text=True)


# --- the composer's limits, for drafts and sending alike --------------------------------


def many(count: int, start: int = 0) -> str:
    return ", ".join(f"p{n}@partner.test" for n in range(start, start + count))


def multipart(fields: dict[str, str | bytes]) -> tuple[bytes, str]:
    """A multipart body as a browser sends it, whose fields may hold any bytes at all."""
    parts = [b"--B\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n"
             % (name.encode(), value if isinstance(value, bytes) else value.encode())
             for name, value in fields.items()]
    return b"".join(parts) + b"--B--\r\n", "multipart/form-data; boundary=B"


def post(client, path: str, fields: dict[str, str | bytes], *, as_multipart: bool):
    """POST ``fields`` with the composer's CSRF token: urlencoded as the autosave sends
    them, or multipart as the compose form does (and as bytes that are not UTF-8 need)."""
    fields = {"csrf_token": csrf_token(client, "/compose/"), **fields}
    if as_multipart or any(isinstance(v, bytes) for v in fields.values()):
        body, content_type = multipart(fields)
        return client.post(path, data=body, content_type=content_type)
    return client.post(path, data=fields)


NOT_TEXT = "holds characters that are not text"
#: (what, fields over a limit, the field at fault or None, what the writer is told,
#:  the status sending answers: 413 where the form itself is larger than the portal takes,
#:  400 where the request is refused whole)
OVER_THE_LIMITS = [
    ("text just over", {"body": "x" * (MAX_BODY + 1)}, "body",
     "Message is too long: 500,001 characters, the most is 500,000.", 200),
    ("text far over (20 MB)", {"body": "x" * 20_000_000}, "body",
     "Message is too long: 20,000,000 characters", 413),
    ("text over, 4 bytes a character", {"body": "\U0001f600" * (MAX_BODY + 1)}, "body",
     "Message is too long: 500,001 characters", 200),
    ("subject just over", {"subject": "s" * (MAX_SUBJECT + 1)}, "subject",
     "Subject is too long: 999 characters, the most is 998.", 200),
    ("To field over", {"to": "pat@partner.test, " * 300}, "to",
     "To is too long: 5,400 characters, the most is 5,000.", 200),
    ("Cc field over", {"cc": "x" * 5_001}, "cc", "Cc is too long", 200),
    ("too many recipients", {"to": many(MAX_RECIPIENTS + 1)}, None,
     "A message can go to at most 100 recipients; this one lists 101.", 200),
    ("too many between To and Cc", {"to": many(60), "cc": many(41, start=60)}, None,
     "at most 100 recipients; this one lists 101", 200),
    ("an address too long", {"to": "a" * (MAX_ADDRESS - 12) + "@partner.test"}, "to",
     "An address can be at most 254 characters; one has 255", 200),
    ("an address too long in Cc", {"cc": "pat@" + "p" * 300 + ".test"}, "cc",
     "An address can be at most 254 characters", 200),
    # A NUL anywhere in a request is refused whole, before any view (app/web/inputs.py).
    ("NUL in the text", {"body": "Terms\x00attached"}, "body", None, 400),
    ("NUL in the subject", {"subject": "Offer\x00"}, "subject", None, 400),
    ("NUL in an address", {"to": "pat\x00@partner.test"}, "to", None, 400),
    ("a terminal escape", {"subject": "\x1b[2JOffer"}, "subject", f"Subject {NOT_TEXT}", 200),
    ("bytes not UTF-8 in the text", {"body": b"Caf\xe9 \xff"}, "body",
     f"Message {NOT_TEXT} (a control character such as NUL, or bytes that are not UTF-8)",
     200),
    ("bytes not UTF-8 in the subject", {"subject": b"\xc3\x28"}, "subject",
     f"Subject {NOT_TEXT}", 200),
]
OVER_IDS = [case[0] for case in OVER_THE_LIMITS]
VALID = {"to": "pat@partner.test", "cc": "", "subject": "Offer", "body": "Terms attached."}


def draft_id(response) -> str:
    """The draft id the answer hands back to the composer, for the next save."""
    match = re.search(r'name="draft" value="([^"]*)"', response.get_data(as_text=True))
    assert match, response.get_data(as_text=True)
    return match.group(1)


def stored(draft: Draft) -> tuple:
    db.session.refresh(draft)
    return draft.to, draft.cc, draft.subject, draft.body, draft.mode, draft.updated_at


@pytest.mark.parametrize(("what", "fields", "field", "told", "send_status"), OVER_THE_LIMITS,
                         ids=OVER_IDS)
def test_a_new_draft_over_a_limit_is_refused_and_not_stored(
        gateway, client, what, fields, field, told, send_status, signed_in):
    signed_in("alice@acme.test")
    response = post(client, "/compose/draft", {**VALID, **fields}, as_multipart=False)
    if send_status == 400:
        assert response.status_code == 400
        assert db.session.query(Draft).count() == 0
        return
    assert response.status_code == 200  # htmx swaps it into the composer
    page = response.get_data(as_text=True)
    assert "Not saved: " in page and told in page
    assert draft_id(response) == ""
    assert db.session.query(Draft).count() == 0


@pytest.mark.parametrize(("what", "fields", "field", "told", "send_status"), OVER_THE_LIMITS,
                         ids=OVER_IDS)
def test_a_saved_draft_is_kept_whole_when_an_update_is_over_a_limit(
        gateway, client, what, fields, field, told, send_status, signed_in):
    signed_in("alice@acme.test")
    first = post(client, "/compose/draft", VALID, as_multipart=False)
    draft = db.session.query(Draft).one()
    before = stored(draft)
    response = post(client, "/compose/draft", {**VALID, **fields, "draft": draft_id(first)},
                    as_multipart=False)
    page = response.get_data(as_text=True)
    if send_status == 400:
        assert response.status_code == 400 and stored(draft) == before
        return
    assert response.status_code == 200
    assert told in page and "is kept." in page
    assert draft_id(response) == draft.public_id  # the next save still updates it
    assert db.session.query(Draft).count() == 1
    assert stored(draft) == before


@pytest.mark.parametrize(("what", "fields", "field", "told", "send_status"), OVER_THE_LIMITS,
                         ids=OVER_IDS)
def test_sending_over_a_limit_is_refused_beside_the_field(
        gateway, client, what, fields, field, told, send_status, signed_in):
    signed_in("alice@acme.test")
    draft = composing.save_draft(gateway.account("alice@acme.test"), None, **VALID, mode="off")
    db.session.commit()
    before = stored(draft)
    response = post(client, "/compose/", {**VALID, **fields, "draft": draft.public_id},
                    as_multipart=True)
    page = response.get_data(as_text=True)
    assert response.status_code == send_status
    if send_status == 413:
        assert "What you sent is larger than this portal accepts." in page
    elif send_status == 200:
        where = re.search(rf'id="{field}-error">(.*?)</ul>' if field else
                          r'class="notice notice-error" role="alert">(.*?)</div>', page, re.S)
        # A single-line field's own check (app/web/inputs.py) may answer first, in its words.
        assert where and (told in where.group(1) or "Use one line of text" in where.group(1))
    assert gateway.latest() is None
    assert stored(draft) == before  # the draft stays for another try


def test_a_message_at_every_limit_saves_as_a_draft_and_sends(gateway, client, signed_in):
    signed_in("alice@acme.test")
    longest = "a" * (MAX_ADDRESS - len("@partner.test")) + "@partner.test"
    fields = {"to": ", ".join([longest, many(MAX_RECIPIENTS - 11)]), "cc": many(10, start=200),
              "subject": "s" * MAX_SUBJECT, "body": "\U0001f600" * MAX_BODY}
    saved = post(client, "/compose/draft", fields, as_multipart=False)
    assert "Draft saved at" in saved.get_data(as_text=True)
    (draft,) = db.session.query(Draft).all()
    assert (draft.to, draft.cc, draft.subject, draft.body) == tuple(fields.values())
    sent = post(client, "/compose/", {**fields, "draft": draft.public_id}, as_multipart=True)
    assert sent.status_code == 302, sent.get_data(as_text=True)[:2000]
    assert len(gateway.latest().recipients) == MAX_RECIPIENTS
    assert db.session.query(Draft).count() == 0


def test_repeated_autosaves_update_one_draft(gateway, client, signed_in):
    signed_in("alice@acme.test")
    public_id = ""
    for typed in ("T", "Te", "Terms", "Terms attac", "Terms attached."):
        response = post(client, "/compose/draft", {**VALID, "body": typed, "draft": public_id},
                        as_multipart=False)
        public_id = draft_id(response)
    (draft,) = db.session.query(Draft).all()
    assert (draft.public_id, draft.body) == (public_id, "Terms attached.")


def test_a_user_keeps_at_most_max_drafts(gateway, client, signed_in):
    alice = signed_in("alice@acme.test")
    kept = [composing.save_draft(alice, None, **{**VALID, "subject": f"Draft {n}"}, mode="off")
            for n in range(MAX_DRAFTS)]
    db.session.commit()
    before = [stored(draft) for draft in kept]

    refused = post(client, "/compose/draft", {**VALID, "subject": "One more"},
                   as_multipart=False)
    page = refused.get_data(as_text=True)
    assert f"Not saved: You already keep {MAX_DRAFTS} drafts" in page
    assert "Send or delete one you no longer need" in page
    assert draft_id(refused) == ""
    assert db.session.query(Draft).count() == MAX_DRAFTS
    assert [stored(draft) for draft in kept] == before
    listing = client.get("/compose/drafts").get_data(as_text=True)
    assert f"{MAX_DRAFTS} of the {MAX_DRAFTS} drafts there is room for." in listing

    # A draft already kept still saves; deleting one makes room for the new one.
    post(client, "/compose/draft", {**VALID, "body": "Changed", "draft": kept[0].public_id},
         as_multipart=False)
    assert stored(kept[0])[3] == "Changed"
    post_form(client, f"/compose/drafts/{kept[1].public_id}/delete", {},
              form_path="/compose/drafts")
    saved = post(client, "/compose/draft", {**VALID, "subject": "One more"}, as_multipart=False)
    assert "Draft saved at" in saved.get_data(as_text=True)
    assert db.session.query(Draft).count() == MAX_DRAFTS


@pytest.mark.parametrize("whose", ["a colleague", "another tenant's user"])
def test_another_users_draft_is_not_found(gateway, client, make_tenant, make_user,
                                          whose, signed_in):
    if whose == "a colleague":
        owner = gateway.account("bob@acme.test")
    else:
        owner = make_user(make_tenant("globex", domains=["globex.test"]), "carol@globex.test",
                          role="internal")
    theirs = composing.save_draft(owner, None, to="x@y.test", cc="", subject="Secret plan",
                                  body="Their words", mode="off")
    db.session.commit()
    before = stored(theirs)
    signed_in("alice@acme.test")

    update = post(client, "/compose/draft", {**VALID, "body": "Overwritten",
                                             "draft": theirs.public_id}, as_multipart=False)
    assert update.status_code == 404
    opened = client.get(f"/compose/?draft={theirs.public_id}")
    assert opened.status_code == 404 and "Secret plan" not in opened.get_data(as_text=True)
    deleted = post_form(client, f"/compose/drafts/{theirs.public_id}/delete", {},
                        form_path="/compose/drafts")
    assert deleted.status_code == 404
    # Sending with their draft's id sends, and leaves their draft alone.
    assert compose(client, draft=theirs.public_id).status_code == 302
    assert stored(theirs) == before
    assert db.session.query(Draft).count() == 1


@pytest.mark.parametrize("public_id", ["no-such-draft", "x" * 33, "../drafts", "a b",
                                       "\u00e9t\u00e9"])
def test_a_draft_id_naming_no_draft_is_not_found(gateway, client, public_id, signed_in):
    signed_in("alice@acme.test")
    response = post(client, "/compose/draft", {**VALID, "draft": public_id},
                    as_multipart=False)
    assert response.status_code == 404
    assert "Not found" in response.get_data(as_text=True)
    assert db.session.query(Draft).count() == 0


# --- sent items and revocation ---------------------------------------------------------


@pytest.fixture
def sent_by_alice(gateway, client, signed_in):
    """``sent_by_alice(to)``: alice signs in and sends a message to ``to`` by CCM."""
    def send(to="pat@partner.test, sam@partner.test"):
        signed_in("alice@acme.test")
        compose(client, to=to, mode="external")
        return gateway.latest()
    return send


def test_sent_items_show_route_and_state_per_recipient(gateway, client, sent_by_alice):
    gateway.network.mx("partner.test")
    message = sent_by_alice(to="pat@partner.test, bob@acme.test")
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


def test_nobody_else_sees_a_senders_sent_items(gateway, client, auth, signed_in, sent_by_alice):
    message = sent_by_alice()
    auth.sign_out()
    signed_in("bob@acme.test")
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


def test_revoke_before_the_recipient_opened_it(app, gateway, client, sent_by_alice):
    message = sent_by_alice()
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
    # It stays in the inbox, greyed, saying so (app/domain/mailbox.py).
    assert "Withdrawn by the sender on" in reader.get("/inbox/").get_data(as_text=True)
    # Sam, the other recipient, still has it.
    _, sams = read_as(app, "sam@partner.test", message)
    assert sams.status_code == 200
    db.session.refresh(pat)
    assert pat.state == "revoked" and pat.revoked_at is not None
    assert any(e.text.startswith("Revoked by the sender") for e in pat.events)


def test_revoke_after_the_recipient_opened_it_takes_it_away_at_once(app, gateway, client,
                                                                    sent_by_alice):
    message = sent_by_alice(to="pat@partner.test")
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


def test_only_held_ccm_copies_can_be_revoked(gateway, client, sent_by_alice):
    message = sent_by_alice(to="bob@acme.test")
    post_form(client, f"/sent/{message.public_id}/revoke", {"recipient": "all"},
              form_path=f"/sent/{message.public_id}")
    (bob,) = message.recipients
    db.session.refresh(bob)
    assert bob.state != "revoked"


def test_revoke_without_csrf_is_refused(gateway, client, sent_by_alice):
    message = sent_by_alice()
    response = client.post(f"/sent/{message.public_id}/revoke", data={"recipient": "all"})
    assert response.status_code == 400
    assert all(r.state == "held" for r in gateway.latest().recipients)
