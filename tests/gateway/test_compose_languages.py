"""Compose, drafts, Sent and the reply form in the language the person chose: the pages,
the editor's toolbar words, the composer's refusals (worded by the domain in English,
said in the reader's language with its own way of writing numbers) and the flashes."""

import html
import json
import re

import pytest
from babel import Locale
from support import mail, post_form

from app.domain import composing
from app.domain.composing import MAX_DRAFTS
from app.extensions import db
from app.models import Draft

#: English a page of these shows nowhere once it is in another language
ENGLISH = ("Drafts are saved as you type.", "Separate several addresses with commas.",
           "Your organisation's policies apply", ">Send<", ">New message<", "Attach files",
           "CCM mode", "Formatting", "Nothing sent yet", "No drafts", "(no subject)",
           "Send reply", "Back to the message", "A reply can go only to")


def chose(user, language: str) -> None:
    user.language = language
    db.session.commit()


def english_in(page: str) -> list[str]:
    return [text for text in ENGLISH if text in html.unescape(page)]


def compose(client, **fields):
    data = {"to": "pat@partner.test", "cc": "", "subject": "Offer", "body": "Terms attached.",
            **fields}
    return post_form(client, "/compose/", data)


@pytest.mark.parametrize(("language", "send", "toolbar", "bold"), [
    ("de", "Senden", "Formatierung", ("Fett", "F")),
    ("fr", "Envoyer", "Mise en forme", ("Gras", "G")),
    ("es", "Enviar", "Formato", ("Negrita", "N")),
    ("ar", "إرسال", "التنسيق", ("غامق", "غ")),
])
def test_the_composer_and_its_toolbar_in_each_language(gateway, client, signed_in, language,
                                                       send, toolbar, bold):
    chose(signed_in("alice@acme.test"), language)
    page = client.get("/compose/").get_data(as_text=True)
    assert f">{send}</button>" in page
    assert english_in(page) == []
    words = json.loads(html.unescape(re.search(r'data-rich-words="([^"]*)"', page).group(1)))
    assert words["toolbar"] == toolbar and (words["bold"], words["boldText"]) == bold
    assert all(words.values())


def test_a_refusal_is_said_in_the_language_with_its_numbers(gateway, client, signed_in):
    chose(signed_in("alice@acme.test"), "fr")
    page = compose(client, subject="s" * 1_200).get_data(as_text=True)
    # French groups thousands with a narrow no-break space
    assert "Le champ « Objet » est trop long : 1\u202f200 caractères, au plus 998." in page
    page = compose(client, to="pat@partner.test, nobody").get_data(as_text=True)
    assert "Pas une adresse e-mail : nobody" in page
    assert db.session.query(Draft).count() == 0


def test_a_draft_refused_for_want_of_room_says_so_in_the_language(gateway, client, signed_in):
    alice = signed_in("alice@acme.test")
    for number in range(MAX_DRAFTS):
        composing.save_draft(alice, None, to="", cc="", subject=f"Draft {number}", body="",
                             mode="off")
    db.session.commit()
    chose(alice, "es")
    page = client.get("/compose/drafts").get_data(as_text=True)
    assert f"Borradores: {MAX_DRAFTS} de {MAX_DRAFTS} como máximo." in page
    response = post_form(client, "/compose/draft", {"to": "", "cc": "", "subject": "One more",
                                                    "body": "x"}, form_path="/compose/")
    assert f"No guardado: Ya tiene {MAX_DRAFTS} borradores" in response.get_data(as_text=True)


def test_sent_and_its_message_in_arabic(gateway, client, signed_in):
    alice = signed_in("alice@acme.test")
    compose(client, mode="external", subject="")
    chose(alice, "ar")
    listing = client.get("/sent/").get_data(as_text=True)
    assert "إلى <bdi>pat@partner.test</bdi>" in listing and "عبر CCM" in listing
    assert english_in(listing) == []
    message = gateway.latest()
    page = client.get(f"/sent/{message.public_id}").get_data(as_text=True)
    assert "(بلا موضوع)" in page
    assert "→ المرسلة" in page and "أُرسلت في" in page
    # (its delivery events, _deliveries.html, are worded by the domain: the admin pages' step)
    assert english_in(page.replace("CCM mode", "")) == []


def test_a_withdrawal_is_flashed_in_the_language(gateway, client, signed_in):
    alice = signed_in("alice@acme.test")
    compose(client, mode="external")
    message = gateway.latest()
    chose(alice, "de")
    (pat,) = message.recipients
    response = post_form(client, f"/sent/{message.public_id}/revoke",
                         {"recipient": str(pat.id)}, form_path=f"/sent/{message.public_id}",
                         follow_redirects=True)
    assert "pat@partner.test entzogen." in response.get_data(as_text=True)
    response = post_form(client, f"/sent/{message.public_id}/revoke",
                         {"recipient": str(pat.id)}, form_path=f"/sent/{message.public_id}",
                         follow_redirects=True)
    assert "Es gab nichts mehr zu entziehen." in response.get_data(as_text=True)


@pytest.fixture
def original(gateway):
    """Alice wrote to pat by CCM, cc'd bob."""
    return gateway.send(mail(subject="Offer", to="pat@partner.test",
                             headers="Cc: bob@acme.test\n"),
                        ["pat@partner.test", "bob@acme.test"], mode="external")


def test_the_reply_form_and_its_refusal_in_german(gateway, client, signed_in, original):
    chose(signed_in("pat@partner.test"), "de")
    page = client.get(f"/inbox/{original.public_id}/reply").get_data(as_text=True)
    assert "Antworten: <bdi>Offer" in page and ">Antwort senden</button>" in page
    assert "Senden an" in page and "Ihre Antwort" in page
    assert english_in(page) == []
    response = post_form(client, f"/inbox/{original.public_id}/reply",
                         {"recipients": ["mallory@evil.test"], "body": "Hi"})
    assert ("Eine Antwort kann nur an die Personen auf der Nachricht gehen; "
            "mallory@evil.test gehört nicht dazu.") in response.get_data(as_text=True)


def test_an_internal_reply_offers_the_modes_in_the_language(gateway, client, signed_in):
    message = gateway.send(mail(subject="Board pack", to="bob@acme.test, pat@partner.test"),
                           ["bob@acme.test", "pat@partner.test"], mode="all")
    bob = signed_in("bob@acme.test")
    bob.application_settings = gateway.account("alice@acme.test").application_settings
    chose(bob, "fr")  # and Legal: may use CCM in the portal
    page = html.unescape(client.get(f"/inbox/{message.public_id}/reply").get_data(as_text=True))
    assert "Mode CCM" in page and "Destinataires externes uniquement" in page
    assert "Désactivé" in page and "Tous les destinataires" in page
    assert "Désactivé : e-mail ordinaire" in page  # the hint
    assert english_in(page) == []


def test_the_reply_starts_with_the_quote_introduced_in_the_language(gateway, client, signed_in,
                                                                    original):
    from pathlib import Path

    from app.domain import replies
    from app.web.inbox import routes

    assert 'intro=_("On %(when)s, %(sender)s wrote:")' in Path(routes.__file__).read_text()
    assert replies.QUOTE_INTRO == "On %(when)s, %(sender)s wrote:"  # the view's literal
    chose(signed_in("pat@partner.test"), "de")
    page = html.unescape(client.get(f"/inbox/{original.public_id}/reply").get_data(as_text=True))
    intro = re.search(r"\n\nAm (.+) schrieb alice@acme\.test:\n> ", page)
    months = "|".join(Locale.parse("de").months["format"]["wide"].values())
    assert re.fullmatch(rf"\d{{1,2}}\. ({months}) \d{{4}}, \d\d:\d\d \w+", intro.group(1))


@pytest.mark.parametrize("intro", ["On 1 May, Alice wrote:", "Am 1. Mai schrieb Alice:",
                                   "Le 1 mai, Alice a écrit :", "في 1 مايو، كتب Alice:"])
def test_a_quote_introduced_in_any_language_folds(intro):
    from app.domain.conversations import split_quote

    assert split_quote(f"Yes.\n\n{intro}\n> Deal?\n") == ("Yes.", f"{intro}\n> Deal?")
