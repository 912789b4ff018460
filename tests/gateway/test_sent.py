"""Sent, for internal users: which messages went by CCM (a badge in words), the message's
body sanitized as its recipients see it, and what became of withdrawn and expired copies."""

import re
from datetime import timedelta

import pytest
from support import mail

from app.domain import expiry, isolation
from app.extensions import db

HOSTILE = (
    "From: alice@acme.test\nTo: pat@partner.test\nSubject: Hostile\n"
    "Message-ID: <hostile@acme.test>\nContent-Type: text/html\n\n"
    '<p>Terms below.</p><script>alert("x")</script>'
    '<img src="x" onerror="alert(1)"><a href="javascript:alert(2)">click</a>'
    '<iframe src="https://evil.test/"></iframe><img src="https://tracker.test/p.gif">\n'
)


@pytest.fixture
def alice(signed_in):
    return signed_in("alice@acme.test")


def rows(page: str) -> dict[str, str]:
    """Each Sent row's markup by its subject."""
    found = re.findall(r'<li class="message-row">.*?</li>', page, re.S)
    subject = r'<span class="row-subject" dir="auto">(.*?)</span>'
    return {re.search(subject, row)[1]: row for row in found}


def test_the_sent_list_says_in_words_which_messages_went_by_ccm(gateway, client, alice):
    gateway.send(mail(subject="Secure one"), ["pat@partner.test"], mode="external")
    gateway.send(mail(subject="Plain one", to="bob@acme.test"), ["bob@acme.test"])
    listed = rows(client.get("/sent/").get_data(as_text=True))
    assert '<span class="badge badge-ccm">By CCM</span>' in listed["Secure one"]
    assert "By CCM" not in listed["Plain one"]


def test_sent_detail_shows_the_body_sanitized_as_the_recipient_sees_it(
        app, gateway, client, alice, signed_in):
    message = gateway.send(HOSTILE, ["pat@partner.test"], mode="external")
    page = client.get(f"/sent/{message.public_id}").get_data(as_text=True)
    assert "By CCM" in page
    assert f'src="/sent/{message.public_id}/body"' in page and "sandbox=" in page
    assert "Remote images in this message are blocked" in page
    framed = client.get(f"/sent/{message.public_id}/body")
    body = framed.get_data(as_text=True)
    assert "Terms below." in body
    for hostile in ("<script", "onerror", "javascript:", "<iframe", "tracker.test"):
        assert hostile not in body, hostile
    assert "default-src 'none'" in framed.headers["Content-Security-Policy"]
    # The same page the recipient's frame gets: one sanitizer, one template.
    recipient = app.test_client()
    signed_in_as_pat(recipient, gateway)
    assert recipient.get(f"/inbox/{message.public_id}/body").get_data(as_text=True) == body


def signed_in_as_pat(reader, gateway):
    from support import PASSWORD, post_form

    from app.domain.passwords import hash_password

    user = gateway.account("pat@partner.test")
    user.password_hash, user.must_change_password = hash_password(PASSWORD), False
    db.session.commit()
    post_form(reader, "/t/acme/sign-in", {"email": "pat@partner.test", "password": PASSWORD})


def test_a_text_body_is_escaped_in_sent_detail(gateway, client, alice):
    message = gateway.send(mail(subject="Text", body="<b>not bold</b> & more"),
                           ["pat@partner.test"], mode="external")
    page = client.get(f"/sent/{message.public_id}").get_data(as_text=True)
    assert "&lt;b&gt;not bold&lt;/b&gt; &amp; more" in page and "<b>not bold" not in page


def test_sent_shows_withdrawn_copies_in_the_list_and_the_detail(gateway, client, alice):
    message = gateway.send(mail(subject="Offer", to="pat@partner.test, sam@partner.test"),
                           ["pat@partner.test", "sam@partner.test"], mode="external")
    pat = next(r for r in message.recipients if r.address == "pat@partner.test")
    isolation.revoke(pat, by="the sender")
    db.session.commit()
    assert "Withdrawn for 1 of 2" in rows(client.get("/sent/").get_data(as_text=True))["Offer"]
    page = client.get(f"/sent/{message.public_id}").get_data(as_text=True)
    assert f"Withdrawn {pat.revoked_at:%d %b, %H:%M} UTC" in re.sub(r"<[^>]+>", "", page)
    for copy in message.recipients:
        isolation.revoke(copy, by="the sender")
    db.session.commit()
    listed = rows(client.get("/sent/").get_data(as_text=True))["Offer"]
    assert '<span class="badge badge-gone">Withdrawn</span>' in listed


def test_sent_shows_expired_messages_and_says_their_content_is_gone(
        gateway, client, signed_in, frozen_clock):
    message = gateway.send(mail(subject="Old offer"), ["pat@partner.test"], mode="external")
    frozen_clock.advance(timedelta(days=400))
    assert expiry.purge_expired() == 1
    signed_in("alice@acme.test")  # the session from 400 days ago has ended
    listed = rows(client.get("/sent/").get_data(as_text=True))["Old offer"]
    assert '<span class="badge badge-gone">Expired</span>' in listed
    page = client.get(f"/sent/{message.public_id}").get_data(as_text=True)
    assert "The content of this message was deleted on" in page
    assert "Expired " in page and "Numbers attached." not in page
    assert client.get(f"/sent/{message.public_id}/body").status_code == 410


def test_nobody_else_reaches_a_sent_messages_body_or_parts(gateway, client, auth, signed_in):
    message = gateway.send(HOSTILE, ["pat@partner.test"], mode="external")
    signed_in("bob@acme.test")
    for path in ("", "/body", "/parts/0", "/inline/0"):
        assert client.get(f"/sent/{message.public_id}{path}").status_code == 404, path
