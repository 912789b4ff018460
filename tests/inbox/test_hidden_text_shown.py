"""What an HTML message's sender hid is missing wherever the portal shows the message as
text: the page's text for printers and browsers without script, later messages of a
conversation, and the quote a reply starts with (app/mail/sanitize.py, visible_text)."""

import html
import re
from datetime import timedelta

from test_access import activate, deliver
from test_conversations import turns_on_page

from app.mail import mime

HIDDEN = "Verify your password at evil.example"
PREHEADER = "Preheader for the inbox list"


def html_mail(message_id: str, extra: str = "") -> str:
    return (f"From: alice@acme.test\nTo: pat@partner.test\nSubject: Figures\n"
            f"Message-ID: <{message_id}@acme.test>\n{extra}MIME-Version: 1.0\n"
            "Content-Type: text/html; charset=utf-8\n\n"
            f'<div style="display:none;max-height:0;overflow:hidden">{PREHEADER}</div>'
            f'<p>The figures are attached.<span style="font-size:0">{HIDDEN}</span></p>'
            f'<p style="opacity:0">{HIDDEN}</p><p>Regards, Alice</p>\n')


def test_the_page_the_frame_and_the_reply_show_only_what_the_sender_let_be_seen(
        acme, client, auth):
    message = deliver(html_mail("hidden-1"), ["pat@partner.test"])
    activate("acme", "pat@partner.test")
    auth.sign_in("pat@partner.test", slug="acme")
    page = html.unescape(client.get(f"/inbox/{message.public_id}").get_data(as_text=True))
    fallback = re.search(r'<div class="message-text message-text-fallback" dir="auto">(.*?)</div>',
                         page, re.S)[1]
    assert "The figures are attached." in fallback and "Regards, Alice" in fallback
    framed = client.get(f"/inbox/{message.public_id}/body").get_data(as_text=True)
    assert "The figures are attached." in framed
    reply = html.unescape(client.get(f"/inbox/{message.public_id}/reply")
                          .get_data(as_text=True))
    assert "> The figures are attached." in reply and "> Regards, Alice" in reply
    for shown in (page, framed, reply):
        assert HIDDEN not in shown and PREHEADER not in shown


def test_a_later_message_of_the_conversation_shows_its_visible_text(
        acme, client, auth, frozen_clock):
    first = deliver(html_mail("hidden-2").replace("<p>The figures", "<p>First: the figures"),
                    ["pat@partner.test"])
    frozen_clock.advance(timedelta(minutes=1))
    deliver(html_mail("hidden-3", "In-Reply-To: <hidden-2@acme.test>\n"
                                  "References: <hidden-2@acme.test>\n"), ["pat@partner.test"])
    activate("acme", "pat@partner.test")
    auth.sign_in("pat@partner.test", slug="acme")
    page = client.get(f"/inbox/{first.public_id}").get_data(as_text=True)
    turns = [html.unescape(t) for t in turns_on_page(page)]
    assert len(turns) == 1 and "The figures are attached." in turns[0]
    assert HIDDEN not in page and PREHEADER not in page


def test_routing_still_reads_every_word():
    """A content policy sees hidden words too: hiding one must not slip a message past it."""
    body = mime.parse(html_mail("hidden-4").replace("\n", "\r\n").encode()).body_text
    assert HIDDEN in body and PREHEADER in body


def test_a_body_too_large_to_sanitize_leaves_out_what_was_hidden_too(
        acme, client, auth, monkeypatch):
    from app.domain import reading

    monkeypatch.setattr(reading, "HTML_DISPLAY_LIMIT", 200)
    message = deliver(html_mail("hidden-5"), ["pat@partner.test"])
    activate("acme", "pat@partner.test")
    auth.sign_in("pat@partner.test", slug="acme")
    page = html.unescape(client.get(f"/inbox/{message.public_id}").get_data(as_text=True))
    assert "too large to show with its formatting" in page
    assert "The figures are attached." in page and "Regards, Alice" in page
    # the preheader and the transparent paragraph hide all they hold; the zero font
    # only its own text, which the linear pass cannot see inherited (visible_text)
    assert PREHEADER not in page and page.count(HIDDEN) == 1
