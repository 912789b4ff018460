"""A message's page shows its conversation: only what reached this recipient, and their own
replies, in order; never another participant's copy, another tenant's message, or a
message that only claims to belong to the thread."""

import re
from datetime import timedelta

import pytest
from support import mail, post_form
from test_access import activate, deliver

from app.domain import conversations, ingest
from app.extensions import db
from app.mail import threads
from app.models import Message, User

ORIGINAL_ID = "<offer@acme.test>"


def answer(subject: str, body: str, to: str, rcpts: list[str], parent: Message,
           sender: str = "alice@acme.test", references: str = "") -> Message:
    """A message written in a mail program in reply to ``parent``."""
    references = references or f"{ORIGINAL_ID} {parent.message_id_header}".replace(
        f"{ORIGINAL_ID} {ORIGINAL_ID}", ORIGINAL_ID)
    return deliver(mail(subject=subject, body=body, to=to, sender=sender,
                        headers=f"In-Reply-To: {parent.message_id_header}\n"
                                f"References: {references}\n"), rcpts, sender=sender)


def portal_reply(client, message: Message, recipients: list[str], body: str):
    response = post_form(client, f"/inbox/{message.public_id}/reply",
                         {"recipients": recipients, "body": body})
    assert response.status_code == 302
    return db.session.query(Message).order_by(Message.id.desc()).first()


@pytest.fixture
def offer(acme, make_user, frozen_clock):
    """Alice's offer to pat and sam, by CCM."""
    make_user(acme, "alice@acme.test", role="internal")
    message = deliver(
        "From: alice@acme.test\nTo: pat@partner.test, sam@partner.test\nSubject: Offer\n"
        f"Message-ID: {ORIGINAL_ID}\n\nThe offer stands.\n",
        ["pat@partner.test", "sam@partner.test"])
    activate("acme", "pat@partner.test")
    activate("acme", "sam@partner.test")
    return message


def turns_on_page(page: str) -> list[str]:
    """The bodies of the later messages the page shows, in order."""
    return [re.sub(r"<[^>]+>", "", t).strip() for t in re.findall(
        r'<div class="message-text turn-text" dir="auto">(.*?)</div>', page, re.S)]


def test_the_thread_is_named_by_the_message_that_began_it():
    assert threads.root("<c@x>", "<b@x>", "<a@x> <b@x>") == "<a@x>"
    assert threads.root("<c@x>", "<b@x>", "") == "<b@x>"
    assert threads.root("<c@x>", "", "") == "<c@x>"
    assert threads.root("", "not an id", "") == ""


def test_ingest_stores_the_thread(offer):
    assert offer.thread == ORIGINAL_ID


def test_a_recipient_sees_their_own_reply_and_later_messages_that_reached_them_in_order(
        client, auth, offer, frozen_clock):
    auth.sign_in("pat@partner.test", slug="acme")
    frozen_clock.advance(timedelta(minutes=1))
    mine = portal_reply(client, offer, ["alice@acme.test"], "Pat: we accept.")
    assert mine.thread == ORIGINAL_ID
    frozen_clock.advance(timedelta(minutes=1))
    # Sam answers Alice alone: his message never reached pat.
    deliver(mail(subject="Re: Offer", body="Sam: private to Alice.", to="alice@acme.test",
                 sender="sam@partner.test",
                 headers=f"In-Reply-To: {ORIGINAL_ID}\nReferences: {ORIGINAL_ID}\n"),
            ["alice@acme.test"], sender="alice@acme.test", mode="off")
    frozen_clock.advance(timedelta(minutes=1))
    answer("Re: Offer", "Alice: to Sam only.", "sam@partner.test", ["sam@partner.test"], mine)
    frozen_clock.advance(timedelta(minutes=1))
    later = answer("Re: Offer", "Alice: thank you, Pat.", "pat@partner.test",
                   ["pat@partner.test"], mine)
    page = client.get(f"/inbox/{offer.public_id}").get_data(as_text=True)
    assert turns_on_page(page) == ["Pat: we accept.", "Alice: thank you, Pat."]
    assert "You wrote" in page
    assert "Sam: private" not in page and "to Sam only" not in page
    # From the later message, the earlier ones are listed, in order.
    page = client.get(f"/inbox/{later.public_id}").get_data(as_text=True)
    earlier = re.search(r'<section class="conversation conversation-earlier".*?</section>',
                        page, re.S)[0]
    assert earlier.index("Offer") < earlier.index("You")
    assert f"/inbox/{offer.public_id}" in earlier
    assert turns_on_page(page) == []


def test_another_participants_copy_is_never_shown_even_in_the_same_thread(
        client, auth, offer, frozen_clock):
    """Sam's own reply, and Alice's answer to Sam, are in the thread but not pat's."""
    auth.sign_in("sam@partner.test", slug="acme")
    frozen_clock.advance(timedelta(minutes=1))
    portal_reply(client, offer, ["alice@acme.test"], "Sam: counter-offer.")
    auth.sign_out()
    frozen_clock.advance(timedelta(minutes=1))
    answer("Re: Offer", "Alice to Sam: no.", "sam@partner.test", ["sam@partner.test"], offer)
    pat = db.session.query(User).filter_by(email="pat@partner.test").one()
    assert conversations.around(pat, offer) == ([], [])
    auth.sign_in("pat@partner.test", slug="acme")
    page = client.get(f"/inbox/{offer.public_id}").get_data(as_text=True)
    assert "counter-offer" not in page and "Alice to Sam" not in page
    assert "Replies and later messages" not in page


def test_a_message_claiming_the_thread_from_another_tenant_is_not_shown(
        client, auth, offer, make_tenant, frozen_clock):
    make_tenant("globex", domains=["globex.test"])
    frozen_clock.advance(timedelta(minutes=1))
    deliver(mail(subject="Re: Offer", body="Globex injects.", to="pat@partner.test",
                 sender="gina@globex.test", headers=f"References: {ORIGINAL_ID}\n"),
            ["pat@partner.test"], sender="gina@globex.test")
    auth.sign_in("pat@partner.test", slug="acme")
    page = client.get(f"/inbox/{offer.public_id}").get_data(as_text=True)
    assert "Globex injects" not in page


def test_a_withdrawn_later_message_shows_what_happened_not_its_text(
        client, auth, offer, frozen_clock):
    from app.domain import isolation

    frozen_clock.advance(timedelta(minutes=1))
    later = answer("Re: Offer", "Alice: sent in error.", "pat@partner.test",
                   ["pat@partner.test"], offer)
    isolation.revoke(later.recipients[0], by="the sender")
    db.session.commit()
    auth.sign_in("pat@partner.test", slug="acme")
    page = client.get(f"/inbox/{offer.public_id}").get_data(as_text=True)
    assert "sent in error" not in page
    now = frozen_clock.now
    assert f"Withdrawn by the sender on {now:%d %B %Y}." in re.sub(r"<[^>]+>", "", page)


def test_the_conversation_is_read_in_three_statements_however_long(
        client, auth, offer, frozen_clock):
    from sqlalchemy import event

    for n in range(5):
        frozen_clock.advance(timedelta(minutes=1))
        answer("Re: Offer", f"Alice {n}", "pat@partner.test", ["pat@partner.test"], offer)
    pat = db.session.query(User).filter_by(email="pat@partner.test").one()
    db.session.expire_all()
    assert offer.thread and pat.email  # loaded again before counting
    statements = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        earlier, later = conversations.around(pat, offer)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    # before it, after it, and this user's copies of them
    assert len(statements) == 3, statements
    assert [t.text().strip() for t in later] == [f"Alice {n}" for n in range(5)]
    assert earlier == []


def test_messages_stored_without_a_thread_have_no_conversation(offer, acme):
    old = deliver(mail(subject="Old"), ["pat@partner.test"])
    old.thread = ""
    db.session.commit()
    pat = db.session.query(User).filter_by(email="pat@partner.test").one()
    assert conversations.around(pat, old) == ([], [])


def test_ingest_takes_the_thread_from_references_first(acme):
    message = ingest.receive(
        mail(headers="In-Reply-To: <b@x>\nReferences: <a@x> <b@x>\n")
        .replace("\n", "\r\n").encode(), "alice@acme.test", ["pat@partner.test"],
        mode="external")
    assert message.thread == "<a@x>"


def test_a_trailing_quote_is_told_apart_from_what_the_reply_says():
    split = conversations.split_quote
    assert split("Yes.\n\nOn Mon, Alice wrote:\n> Deal?\n>\n> A\n") == (
        "Yes.", "On Mon, Alice wrote:\n> Deal?\n>\n> A")
    assert split("No quote here.\n") == ("No quote here.", "")
    assert split("> only a quote\n") == ("> only a quote", "")
    assert split("Inline > signs\nand a line ending wrote:\nmore") == (
        "Inline > signs\nand a line ending wrote:\nmore", "")
