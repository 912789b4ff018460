"""Rich text in compose and reply: the editor's HTML, sanitized on the server by the
received-mail sanitizer, sent as multipart/alternative with a faithful text part; drafts
keep it; without script (no body_html) everything is plain text as before."""

import html
import re

import pytest
from support import post_form

from app.domain import composing, reading
from app.extensions import db
from app.models import Draft

RICH = ('<div>Hello <b>Pat</b>, <i>please</i> see:</div>'
        '<ul><li>the offer</li><li>the <a href="https://acme.test/terms">terms</a></li></ul>'
        '<ol><li>sign</li><li>return</li></ol>'
        '<blockquote>Earlier words<br>over two lines</blockquote><div>Alice</div>')
RICH_TEXT = ("Hello Pat, please see:\n- the offer\n- the terms <https://acme.test/terms>\n"
             "1. sign\n2. return\n> Earlier words\n> over two lines\nAlice\n")

#: a paste, or a forged request, with everything the page must never pass on
HOSTILE = (
    '<div onclick="steal()">Hi<script>alert(1)</script></div>'
    '<img src="https://tracker.example/pixel.gif" onerror="alert(2)">'
    '<a href="javascript:alert(3)">click</a> <a href=" JaVaScRiPt:alert(4)">again</a>'
    '<a href="data:text/html,<script>alert(5)</script>">data</a>'
    '<p style="position:fixed;top:0;left:0;width:100%;background:url(https://x.example/)">'
    'over everything</p><div class="button" id="main">fake</div>'
    '<form action="https://evil.example/"><form><input name="password"><button>Go</button>'
    '</form></form>'
    '<svg onload="alert(6)"><script>alert(7)</script><a href="#"><text>svg</text></a></svg>'
    '<math><mtext><style><img src=x onerror=alert(8)></style></mtext></math>'
    '<iframe src="https://evil.example/"></iframe><object data="x.swf"></object>'
    '<meta http-equiv="refresh" content="0;url=https://evil.example/"><base href="https://evil.example/">'
    '<b>kept bold</b>'
)
DANGEROUS = ("<script", "alert(", "onerror", "onclick", "onload", "javascript:", "data:",
             "<img", "style=", "position", "<form", "<input", "<button", "<svg", "<math",
             "<iframe", "<object", "<meta", "<base", "tracker.example", "evil.example",
             'class="button"', 'id="main"')


def compose(client, **fields):
    data = {"to": "pat@partner.test", "cc": "", "subject": "Offer", "body": "(the text)",
            **fields}
    return post_form(client, "/compose/", data)


def parts(message):
    """(text part, HTML part) of a delivered message, each as its content."""
    assert message.get_content_type() == "multipart/alternative"
    text, rich = message.get_payload()
    assert (text.get_content_type(), rich.get_content_type()) == ("text/plain", "text/html")
    return text.get_content().replace("\r\n", "\n"), rich.get_content()


def assert_harmless(markup: str) -> None:
    lowered = markup.lower().split("<body", 1)[-1]  # after our own <meta charset>
    assert not [d for d in DANGEROUS if d.lower() in lowered], markup


def test_rich_compose_goes_as_alternative_with_a_faithful_text_part(gateway, client,
                                                                    signed_in):
    mx = gateway.network.mx("partner.test")
    signed_in("alice@acme.test")
    assert compose(client, body_html=RICH, mode="off").status_code == 302
    gateway.run_queue()
    (delivered,) = [d.message for d in mx.messages if d.message["Subject"] == "Offer"]
    text, rich = parts(delivered)
    assert text == RICH_TEXT  # the browser's own text ("(the text)") is not used
    for kept in ("<b>Pat</b>", "<i>please</i>", "<li>the offer</li>", "<ol>",
                 '<a href="https://acme.test/terms"', "<blockquote>Earlier words<br>"):
        assert kept in rich


def test_round_trip_compose_recipient_view_and_rich_reply(gateway, client, auth, signed_in):
    signed_in("alice@acme.test")
    compose(client, body_html=RICH, mode="external")
    sent = gateway.latest()
    gateway.run_queue()
    auth.sign_out()
    signed_in("pat@partner.test")

    # The recipient's view: the sanitized HTML in the frame, the text beside it.
    page = client.get(f"/inbox/{sent.public_id}").get_data(as_text=True)
    assert "message-frame" in page and "Hello Pat, please see:" in page
    frame = client.get(f"/inbox/{sent.public_id}/body").get_data(as_text=True)
    assert "<b>Pat</b>" in frame and "<blockquote>Earlier words" in frame
    assert '<a href="https://acme.test/terms"' in frame

    # The reply form: text with "> " lines for no script, the same as HTML for the editor.
    form = client.get(f"/inbox/{sent.public_id}/reply").get_data(as_text=True)
    textarea = re.search(r"<textarea[^>]*>", form)[0]
    started = html.unescape(re.search(r'data-rich-html="([^"]*)"', textarea)[1])
    assert 'data-rich="body_html"' in textarea
    assert re.search(r"^<div><br></div><div><br></div><div>On <bdi>.*</bdi>, "
                     r"<bdi>alice@acme\.test</bdi> wrote:</div>"
                     r"<blockquote>Hello Pat, please see:<br>- the offer<br>", started)
    assert 'name="body_html"' not in form  # only the editor's script adds it

    gateway.run_queue()
    before = len(gateway.relay.messages)
    answer = f"<div>Yes, <b>agreed</b>.</div>{started.replace('<div><br></div>', '')}"
    post_form(client, f"/inbox/{sent.public_id}/reply",
              {"recipients": ["alice@acme.test"], "body": "ignored", "body_html": answer})
    gateway.run_queue()
    text, rich = parts(gateway.relay.wait_for(before + 1)[-1].message)
    assert text.startswith("Yes, agreed.\nOn ") and "alice@acme.test wrote:\n" in text
    assert "\n> Hello Pat, please see:\n> - the offer\n" in text
    assert "<b>agreed</b>" in rich and "<blockquote>Hello Pat, please see:<br>" in rich


def test_a_hostile_paste_reaches_neither_the_recipient_nor_the_stored_message(
        gateway, client, auth, signed_in):
    signed_in("alice@acme.test")
    assert compose(client, body_html=HOSTILE, mode="external").status_code == 302
    stored = reading.read_message(gateway.latest())
    assert_harmless(stored.html)
    assert "<b>kept bold</b>" in stored.html and "Hi" in stored.html
    assert ">click<" in stored.html  # a link that leads nowhere keeps its words
    gateway.run_queue()
    auth.sign_out()
    signed_in("pat@partner.test")
    public_id = gateway.latest().public_id
    framed = client.get(f"/inbox/{public_id}/body")
    body = framed.get_data(as_text=True)
    assert framed.status_code == 200 and "<b>kept bold</b>" in body  # the body, not an error
    assert_harmless(body)


def test_a_hostile_reply_is_sanitized_too(gateway, client, signed_in):
    original = gateway.send(
        "From: alice@acme.test\nTo: pat@partner.test\nSubject: Hi\nMessage-ID: <h@acme.test>\n"
        "\nHello.\n", ["pat@partner.test"], mode="external")
    signed_in("pat@partner.test")
    sent = post_form(client, f"/inbox/{original.public_id}/reply",
                     {"recipients": ["alice@acme.test"], "body": "x", "body_html": HOSTILE})
    assert sent.status_code == 302
    html = reading.read_message(gateway.latest()).html
    assert "<b>kept bold</b>" in html  # the reply itself, not the original
    assert_harmless(html)


def test_drafts_keep_the_formatting_sanitized(gateway, client, signed_in):
    signed_in("alice@acme.test")
    post_form(client, "/compose/draft", {"to": "pat@partner.test", "subject": "Half",
                                         "body": "ignored", "body_html": RICH + HOSTILE},
              form_path="/compose/")
    draft = db.session.query(Draft).one()
    assert draft.body.startswith(RICH_TEXT.removesuffix("\n") + "\nHi")
    assert "<b>Pat</b>" in draft.body_html
    assert_harmless(draft.body_html)
    page = client.get(f"/compose/?draft={draft.public_id}").get_data(as_text=True)
    textarea = re.search(r"<textarea[^>]*>", page)[0]
    assert html.unescape(re.search(r'data-rich-html="([^"]*)"', textarea)[1]) == draft.body_html
    # Saved again as plain text (no script), the formatting goes.
    post_form(client, "/compose/draft", {"draft": draft.public_id, "to": "pat@partner.test",
                                         "body": "Plain now"}, form_path="/compose/")
    db.session.refresh(draft)
    assert (draft.body, draft.body_html) == ("Plain now", "")


def test_without_script_compose_and_reply_are_plain_text_as_before(gateway, client, signed_in):
    mx = gateway.network.mx("partner.test")
    signed_in("alice@acme.test")
    page = client.get("/compose/").get_data(as_text=True)
    assert 'data-rich="body_html"' in page and 'name="body_html"' not in page
    compose(client, body="Line one\n> not a quote to the server", mode="off")
    gateway.run_queue()
    (delivered,) = [d.message for d in mx.messages if d.message["Subject"] == "Offer"]
    assert delivered.get_content_type() == "text/plain"
    assert delivered.get_content().replace("\r\n", "\n") == \
        "Line one\n> not a quote to the server\n"


@pytest.mark.parametrize("empty", ["", "  ", "<div><br></div>", "<script>x</script>"])
def test_an_editor_with_nothing_to_show_sends_the_text(empty):
    assert composing.formatted(empty) is None


def test_formatting_over_the_limit_goes_as_its_text(gateway, client, signed_in):
    """As a recipient would be shown it: HTML that large is shown as text."""
    signed_in("alice@acme.test")
    response = compose(client, body="x" * 1000,
                       body_html="<b>x</b>" * (composing.MAX_HTML // 8 + 1))
    assert response.status_code == 302
    readable = reading.read_message(gateway.latest())
    assert readable.html is None and readable.text.strip() == "x" * 1000


def test_a_refused_message_comes_back_with_its_formatting(gateway, client, signed_in):
    signed_in("alice@acme.test")
    page = compose(client, to="not an address", body_html=RICH + HOSTILE).get_data(
        as_text=True)
    assert "Not an email address" in page
    textarea = re.search(r"<textarea[^>]*>", page)[0]
    again = html.unescape(re.search(r'data-rich-html="([^"]*)"', textarea)[1])
    assert "<b>Pat</b>" in again and "<blockquote>" in again
    assert_harmless(again)
