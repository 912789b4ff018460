"""Replies from the portal take the gateway path: real relay and MX sinks on loopback."""

import html
import re

import pytest
from support import mail, post_form

from app.domain import replies
from app.extensions import db
from app.models import Message, User


@pytest.fixture
def original(gateway):
    """Alice wrote to two partners and cc'd Bob, by CCM for the external ones."""
    return gateway.send(
        mail(subject="Offer", to="pat@partner.test, sam@partner.test",
             headers="Cc: bob@acme.test\nReferences: <older@acme.test>\n"),
        ["pat@partner.test", "sam@partner.test", "bob@acme.test"], mode="external")


def reply(client, message, recipients, body="Agreed.", **extra):
    return post_form(client, f"/inbox/{message.public_id}/reply",
                     {"recipients": recipients, "body": body, **extra})


def test_an_external_reply_reaches_internal_people_by_smtp(gateway, client, original, signed_in):
    signed_in("pat@partner.test")
    gateway.run_queue()  # the original's own deliveries
    before = len(gateway.relay.messages)
    response = reply(client, original, ["alice@acme.test"])
    assert response.status_code == 302
    sent = gateway.latest()
    assert sent.mail_from == "pat@partner.test"
    assert [(r.address, r.route) for r in sent.recipients] == [("alice@acme.test", "internal")]
    gateway.run_queue()
    delivery = gateway.relay.wait_for(before + 1)[-1]
    assert delivery.rcpt_tos == ["alice@acme.test"]
    message = delivery.message
    assert message["Subject"] == "Re: Offer"
    assert message["In-Reply-To"] == original.message_id_header
    assert message["References"] == f"<older@acme.test> {original.message_id_header}"
    text = message.get_body(("plain",)).get_content()
    assert text.strip() == "Agreed."  # the quote is the form's to offer, not the server's to add


def test_an_external_reply_to_another_external_party_goes_by_ccm(gateway, client, original,
                                                                 signed_in):
    signed_in("pat@partner.test")
    reply(client, original, ["sam@partner.test", "bob@acme.test"])
    sent = gateway.latest()
    assert {r.address: r.route for r in sent.recipients} == {
        "sam@partner.test": "ccm", "bob@acme.test": "internal"}
    sam_copy = next(r for r in sent.recipients if r.address == "sam@partner.test")
    assert sam_copy.user.email == "sam@partner.test"


def test_an_external_reply_to_a_new_external_party_creates_their_account(
        gateway, client, original, signed_in):
    # Sam is on the message but has no account until the reply reaches him by CCM.
    sam = gateway.account("sam@partner.test")
    db.session.delete(sam)
    db.session.commit()
    signed_in("pat@partner.test")
    reply(client, original, ["sam@partner.test"])
    assert gateway.account("sam@partner.test") is not None
    kinds = [i.kind for i in gateway.latest().recipients[0].events]
    assert "ccm" in kinds


def test_external_recipients_cannot_pick_a_mode_even_by_forged_post(gateway, client, original,
                                                                    signed_in):
    signed_in("pat@partner.test")
    reply(client, original, ["bob@acme.test"], mode="all")
    assert gateway.latest().recipients[0].route == "internal"


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("off", {"pat@partner.test": "external", "alice@acme.test": "internal"}),
        ("external", {"pat@partner.test": "ccm", "alice@acme.test": "internal"}),
        ("all", {"pat@partner.test": "ccm", "alice@acme.test": "ccm"}),
    ],
)
def test_an_internal_recipient_chooses_the_mode(gateway, client, mode, expected, signed_in):
    gateway.network.mx("partner.test")
    message = gateway.send(mail(subject="Board pack", to="bob@acme.test, pat@partner.test"),
                           ["bob@acme.test", "pat@partner.test"], mode="all")
    bob = signed_in("bob@acme.test")
    bob.application_settings = gateway.account("alice@acme.test").application_settings
    db.session.commit()  # Legal: may use CCM in the portal
    page = client.get(f"/inbox/{message.public_id}/reply").get_data(as_text=True)
    assert "CCM mode" in page
    assert '<option selected value="external">' in page
    reply(client, message, ["alice@acme.test", "pat@partner.test"], mode=mode)
    assert {r.address: r.route for r in gateway.latest().recipients} == expected


def test_without_the_permission_an_internal_reply_has_no_mode_even_by_forged_post(
        gateway, client, signed_in):
    gateway.network.mx("partner.test")
    message = gateway.send(mail(subject="Board pack", to="bob@acme.test, pat@partner.test"),
                           ["bob@acme.test", "pat@partner.test"], mode="all")
    signed_in("bob@acme.test")  # the Default profile: no CCM in the portal
    page = client.get(f"/inbox/{message.public_id}/reply").get_data(as_text=True)
    assert "CCM mode" not in page
    reply(client, message, ["alice@acme.test", "pat@partner.test"], mode="all")
    assert {r.address: r.route for r in gateway.latest().recipients} == {
        "pat@partner.test": "external", "alice@acme.test": "internal"}


def test_the_reply_is_recorded_on_the_recipients_copy(gateway, client, original, signed_in):
    signed_in("pat@partner.test")
    reply(client, original, ["alice@acme.test"])
    pat = next(r for r in original.recipients if r.address == "pat@partner.test")
    db.session.refresh(pat)
    assert pat.replied_at is not None
    assert any(e.kind == "replied" for e in pat.events)


def test_attachments_travel_with_the_reply(gateway, client, original, signed_in):
    from io import BytesIO

    signed_in("pat@partner.test")
    reply(client, original, ["alice@acme.test"],
          attachments=[(BytesIO(b"signed copy"), "signed contract.pdf", "application/pdf")])
    gateway.run_queue()
    delivery = gateway.relay.messages[-1].message
    (attached,) = list(delivery.iter_attachments())
    assert attached.get_filename() == "signed contract.pdf"  # the name as given
    assert attached.get_content() == b"signed copy"


def test_an_oversized_reply_is_refused_with_a_clear_message(app, gateway, client, original,
                                                            signed_in):
    from io import BytesIO

    signed_in("pat@partner.test")
    app.config["MAX_MESSAGE_BYTES"] = 20_000
    count = db.session.query(Message).count()
    response = reply(client, original, ["alice@acme.test"],
                     attachments=[(BytesIO(b"x" * 15_000), "big.bin", "application/pdf")])
    assert response.status_code == 200
    assert "larger than this portal accepts" in response.get_data(as_text=True)
    assert db.session.query(Message).count() == count


def test_parties_are_the_sender_and_to_cc_without_the_replier(gateway, original):
    pat = next(r for r in original.recipients if r.address == "pat@partner.test")
    assert replies.parties(pat) == ["alice@acme.test", "sam@partner.test", "bob@acme.test"]
    assert replies.defaults(pat, reply_all=False) == (["alice@acme.test"], [])
    assert replies.defaults(pat, reply_all=True) == (
        ["alice@acme.test"], ["sam@partner.test", "bob@acme.test"])
    assert isinstance(pat.user, User)


def test_the_reply_form_offers_the_quoted_original_and_it_is_sent_once(
        gateway, client, original, signed_in):
    signed_in("pat@partner.test")
    page = client.get(f"/inbox/{original.public_id}/reply").get_data(as_text=True)
    textarea = re.search(r'<textarea[^>]*name="body"[^>]*>(.*?)</textarea>', page, re.S)[1]
    offered = html.unescape(textarea).removeprefix("\r\n")  # as a browser reads it
    assert offered.startswith("\n\nOn ") and "alice@acme.test wrote:\n> Numbers attached." \
        in offered
    gateway.run_queue()
    before = len(gateway.relay.messages)
    reply(client, original, ["alice@acme.test"], body="Agreed." + offered)
    gateway.run_queue()
    text = gateway.relay.wait_for(before + 1)[-1].message.get_body(("plain",)).get_content()
    text = text.replace("\r\n", "\n")
    assert text.startswith("Agreed.\n\nOn ")
    assert text.count("wrote:") == 1 and text.count("> Numbers attached.") == 1


def test_a_reply_without_the_quote_goes_without_it(gateway, client, original, signed_in):
    signed_in("pat@partner.test")
    reply(client, original, ["alice@acme.test"], body="Short answer.")
    text = replies.reading.read_message(gateway.latest()).text
    assert "wrote:" not in text and "Numbers attached." not in text


def test_a_hostile_original_is_quoted_as_text_and_escaped_in_the_form(gateway, client, signed_in):
    message = gateway.send(
        "From: alice@acme.test\nTo: pat@partner.test\nSubject: Markup\n"
        "Message-ID: <markup@acme.test>\nContent-Type: text/html\n\n"
        "<p>Hello</p><script>alert(1)</script></textarea><b>bold</b>\n",
        ["pat@partner.test"], mode="external")
    signed_in("pat@partner.test")
    page = client.get(f"/inbox/{message.public_id}/reply").get_data(as_text=True)
    assert "<script>" not in page and "</textarea><b>" not in page
    textarea = re.search(r'<textarea[^>]*name="body"[^>]*>(.*?)</textarea>', page, re.S)[1]
    assert "> Hello" in html.unescape(textarea)
