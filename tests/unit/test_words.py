"""What the domain says to people: English where it is said (logs, the audit log, the
shell and stored rows read it as before), the reader's language where a page shows it."""

import ast
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from flask_babel import refresh

from app.delivery import destinations
from app.domain import policy_rules
from app.mail import addresses
from app.web.languages import DEFAULT, LANGUAGES, say
from app.words import Words

APP = Path(__file__).resolve().parents[2] / "app"


def test_words_are_the_english_sentence_and_remember_what_varies():
    words = Words("%(host)s is not a public address.", host="relay.example")
    assert words == "relay.example is not a public address."
    assert isinstance(words, str)
    assert (words.template, words.values) == ("%(host)s is not a public address.",
                                              {"host": "relay.example"})
    assert Words("100%% sure") == "100%% sure"  # no values: the template as it stands
    assert addresses.sender_problem("a%b@acme.test").endswith(
        "(no spaces, quotes, % or !), at most 64 characters.")


def test_a_page_says_them_in_its_language(app):
    """(``refresh``: the test's application context outlives each request's, and Babel
    keeps the language it found in it.)"""
    problem = policy_rules.problems("route", from_pattern="not a pattern")["from"]
    with app.test_request_context(headers={"Accept-Language": "de"}):
        refresh()
        assert say(problem) == "erwartet: eine Adresse, *@domain, internal, external oder *"
        refusal = addresses.sender_problem("alice@")
        assert say(refusal).startswith("alice@ kann keine Absenderadresse sein")
        assert say("as it is") == "as it is"  # text that is no Words: shown as it is
    with app.test_request_context(headers={"Accept-Language": "fr"}):
        refresh()
        with pytest.raises(ValueError) as refused:
            destinations.parse_relay("smtp://relay.example:0")
        assert say(refused.value.args[0]) == "Un port est un nombre de 1 à 65535."
    with app.app_context():  # outside a request (a job, the shell): English
        refresh()
        assert say(problem) == problem


def _said_by_the_domain() -> dict[str, str]:
    """Every ``N_("...")`` below the web layer: message → file."""
    found = {}
    for path in APP.rglob("*.py"):
        if "web" in path.parts or "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "N_"
                    and node.args and isinstance(node.args[0], ast.Constant)):
                found[node.args[0].value] = str(path.relative_to(APP.parent))
    return found


@pytest.mark.parametrize("language", [code for code in LANGUAGES if code != DEFAULT])
def test_every_language_has_what_the_domain_says(language):
    said = _said_by_the_domain()
    assert len(said) >= 50
    path = APP / "translations" / language / "LC_MESSAGES" / "messages.po"
    with open(path, "rb") as file:
        catalog = read_po(file, locale=language)
    missing = [f"{where}: {message!r}" for message, where in said.items()
               if not (entry := catalog.get(message)) or not entry.string or entry.fuzzy]
    assert missing == []


def test_a_size_is_written_in_the_pages_language(app):
    """Attachment and upload sizes: the language's own number and unit."""
    from flask_babel import force_locale

    from app.web.filters import size

    with app.test_request_context():
        with force_locale("en"):
            assert [size(n) for n in (1, 14, 1434, 25 * 1024 * 1024)] == \
                ["1 byte", "14 bytes", "1.4 kB", "25 MB"]
        with force_locale("fr"):
            # French puts a (narrow) no-break space before the unit
            assert size(1434) == "1,4\u202fko" and size(14) == "14\xa0octets"
        with force_locale("ar"):
            assert size(14) == "14 بايت"
