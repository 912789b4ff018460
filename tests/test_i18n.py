"""Every string of the covered pages is marked for translation, and every catalog has a
real translation of every marked string.

Covered: every page's template (recipient, internal user, administrator), the
notifications' built-in templates, and the views and forms that flash, label or refuse.
A new template folder or view module is added to the lists below.
"""

import ast
import re
from gettext import GNUTranslations
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from flask_babel import force_locale
from jinja2 import Environment

from app.web.languages import DEFAULT, LANGUAGES
from app.words import N_, Words

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "app" / "templates"
TRANSLATIONS = ROOT / "app" / "translations"
#: the keywords the README's `pybabel extract` passes (besides Babel's own: _, gettext, N_...)
KEYWORDS = ("_l", "lazy_gettext")

COVERED_TEMPLATES = [
    "base.html", "_flashes.html", "_form.html", "errors/error.html", "_mail_clients.html",
    "_accesses.html", "_deliveries.html", "_message_body.html",
    *sorted(str(p.relative_to(TEMPLATES)) for folder in ("auth", "inbox", "compose", "admin")
            for p in (TEMPLATES / folder).glob("*.html")),
]
#: the notifications' built-in templates, marked with [% trans %] (their own delimiters)
COVERED_MAIL = sorted(str(p.relative_to(TEMPLATES)) for p in (TEMPLATES / "email").iterdir())
COVERED_PYTHON = [
    "app/web/auth/forms.py", "app/web/auth/passkeys.py", "app/web/auth/routes.py",
    "app/web/inbox/routes.py",
    "app/web/inbox/forms.py", "app/web/errors.py", "app/web/languages.py",
    "app/web/mail_clients/routes.py", "app/web/queries/sent_items.py",
    *sorted(str(p.relative_to(ROOT)) for folder in ("admin", "compose")
            for p in (ROOT / "app" / "web" / folder).glob("*.py")),
]
COVERED = ({f"app/templates/{name}" for name in COVERED_TEMPLATES + COVERED_MAIL}
           | set(COVERED_PYTHON))

#: attributes a person reads or hears
READ_ATTRIBUTES = {"alt", "title", "placeholder", "aria-label", "hx-confirm", "label"}
#: a literal in a template expression that is words, not a name or a CSS class
WORDS = re.compile(r"[A-Za-z]\s+[A-Za-z]|^[A-Z][a-z]|^\(")
GETTEXT_CALLS = {"_", "gettext", "ngettext", "pgettext"}
#: only lexes, never renders: escaping is not in play
LEXER = Environment(extensions=["jinja2.ext.i18n"], autoescape=True)
#: the built-in notifications' lexer: [% trans %] marks words; {{ }} stays a hole
MAIL_LEXER = Environment(extensions=["jinja2.ext.i18n"], block_start_string="[%",
                         block_end_string="%]", comment_start_string="[#",
                         comment_end_string="#]", autoescape=True)
#: a tag the sandbox reads when the notification is sent: no words of its own
SANDBOX_TAG = re.compile(r"\{%.*?%\}")
HOLE = "\x1a"  # where a template expression or tag stood
#: blocks whose content is an attribute's value, not text
ATTRIBUTE_BLOCKS = {"main_class"}


def in_attribute_block(tokens: list, index: int) -> bool:
    """Whether the ``endblock`` at ``index`` closes one of :data:`ATTRIBUTE_BLOCKS`."""
    for back in range(index - 1, 1, -1):
        if tokens[back][2] == "block" and tokens[back - 1][1] == "block_begin":
            return tokens[back + 1][2] in ATTRIBUTE_BLOCKS
    return False


class _TextFinder(HTMLParser):
    """Text nodes and read attributes of a template's skeleton that hold letters."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._raw = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("style", "script"):
            self._raw += 1
        for name, value in attrs:
            if name in READ_ATTRIBUTES and _has_words(value or ""):
                self.found.append(f'{name}="{value}"')

    def handle_endtag(self, tag):
        if tag in ("style", "script"):
            self._raw -= 1

    def handle_data(self, data):
        if not self._raw and _has_words(data):
            self.found.append(data.replace(HOLE, "").strip())


def _has_words(text: str) -> bool:
    return any(c.isalpha() for c in text.replace(HOLE, ""))


def unmarked(source: str, lexer: Environment = LEXER) -> list[str]:
    """What a template shows that is not marked: text outside ``{% trans %}`` and
    ``_()``, read attributes, and literals of words in expressions not inside ``_()``."""
    skeleton, found, in_trans, last = [], [], 0, []
    tokens = [token for token in lexer.lex(source)
              if token[1] not in ("whitespace", "comment_begin", "comment", "comment_end")]
    for index, (_, kind, value) in enumerate(tokens):
        if kind == "name" and value == "trans" and last and last[-1] == "block_begin":
            in_trans += 1
        elif kind == "name" and value == "endtrans" and last and last[-1] == "block_begin":
            in_trans -= 1
        if (kind == "name" and value in ATTRIBUTE_BLOCKS and len(last) > 1
                and last[-2:] == ["block_begin", "name"]):
            in_trans += 1  # a block that fills an attribute (a class), not text
        elif kind == "name" and value == "endblock" and in_attribute_block(tokens, index):
            in_trans -= 1
        if kind == "data":
            skeleton.append(HOLE if in_trans else value)
        elif kind in ("variable_begin", "block_begin"):
            skeleton.append(HOLE)
        elif kind == "string" and WORDS.search(value[1:-1]) and not in_trans:
            called = (index >= 2 and tokens[index - 1][2] == "("
                      and tokens[index - 2][2] in GETTEXT_CALLS)
            if not called:
                found.append(value)
        last.append(kind)
    finder = _TextFinder()
    finder.feed("".join(skeleton))
    return found + finder.found


@pytest.mark.parametrize("name", COVERED_TEMPLATES)
def test_every_string_of_the_covered_templates_is_marked(name):
    assert unmarked((TEMPLATES / name).read_text()) == []


@pytest.mark.parametrize("name", COVERED_MAIL)
def test_every_string_of_the_built_in_notifications_is_marked(name):
    source = SANDBOX_TAG.sub("", (TEMPLATES / name).read_text())
    assert unmarked(source, MAIL_LEXER) == []


def test_the_unmarked_string_finder_finds_them():
    assert unmarked('<p>Hello {{ _("there") }}</p>') == ["Hello"]
    assert unmarked('<img alt="A cat">{{ "Signed in" if x }}') == ['"Signed in"', 'alt="A cat"']
    assert unmarked('<p>{% trans n=1 %}{{ n }} cat{% endtrans %} · {{ _("Dog") }}</p>') == []
    assert unmarked('<a class="button" href="{{ url_for(\'inbox.index\') }}">→</a>') == []
    assert unmarked("<p>[% trans %]Hi {{ x }}[% endtrans %] {{ y }} there</p>",
                    MAIL_LEXER) == ["there"]


def _literal_of_call(node: ast.Call) -> ast.Constant | None:
    first = node.args[0] if node.args else None
    return first if isinstance(first, ast.Constant) and isinstance(first.value, str) else None


@pytest.mark.parametrize("path", COVERED_PYTHON)
def test_the_covered_python_shows_only_marked_strings(path):
    """Flashes, form labels and validator messages are never bare literals."""
    tree = ast.parse((ROOT / path).read_text())
    bare = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "id", getattr(node.func, "attr", ""))
        if (name == "flash" or name.endswith("Field")) and _literal_of_call(node):
            bare.append(f"{path}:{node.lineno} {name}({_literal_of_call(node).value!r})")
        for keyword in node.keywords:
            if keyword.arg in ("message", "title", "detail") and isinstance(
                    keyword.value, ast.Constant) and isinstance(keyword.value.value, str):
                bare.append(f"{path}:{node.lineno} {keyword.arg}={keyword.value.value!r}")
    assert bare == []


def _marked() -> dict:
    """Every message marked in the covered files: msgid → where."""
    with open(ROOT / "babel.cfg") as file:
        method_map, options_map = parse_mapping_cfg(file)
    messages = {}
    for filename, _, message, _, _ in extract_from_dir(
            str(ROOT), method_map=method_map, options_map=options_map, keywords={
                **dict.fromkeys(KEYWORDS, None),
                **__import__("babel.messages.extract", fromlist=["x"]).DEFAULT_KEYWORDS}):
        if filename in COVERED:
            messages[message] = filename
    return messages


@pytest.fixture(scope="module")
def marked():
    messages = _marked()
    assert len(messages) > 100  # the extraction itself works
    return messages


def _catalog(language: str):
    with open(TRANSLATIONS / language / "LC_MESSAGES" / "messages.po", "rb") as file:
        return read_po(file, locale=language)


TRANSLATED = [code for code in LANGUAGES if code != DEFAULT]
PLACEHOLDER = re.compile(r"%\(\w+\)s")


@pytest.mark.parametrize("language", TRANSLATED)
def test_each_catalog_translates_every_marked_string(marked, language):
    catalog = _catalog(language)
    problems = []
    for message_id, where in marked.items():
        entry = catalog.get(message_id)
        if entry is None:
            problems.append(f"missing: {message_id!r} ({where})")
            continue
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        if entry.fuzzy or not all(strings):
            problems.append(f"fuzzy or empty: {message_id!r}")
        wanted = set(PLACEHOLDER.findall("".join(
            message_id if isinstance(message_id, tuple) else (message_id,))))
        for string in strings:
            # Arabic's zero, one and two may say the number in words
            if set(PLACEHOLDER.findall(string)) - wanted or (
                    wanted and not PLACEHOLDER.findall(string) and len(strings) == 1):
                problems.append(f"placeholders differ: {message_id!r} → {string!r}")
    assert not catalog.fuzzy, f"{language}: the catalog's header is fuzzy"
    assert problems == []


@pytest.mark.parametrize("language", TRANSLATED)
def test_each_compiled_catalog_is_its_source(language):
    """The .mo files are committed (so `pip install` needs no build step); this fails
    when a .po changed and `pybabel compile -d app/translations` was not run."""
    folder = TRANSLATIONS / language / "LC_MESSAGES"
    with open(folder / "messages.mo", "rb") as file:
        compiled = {_key(m.id): _key(m.string) for m in read_mo(file) if m.id}
    source = {_key(m.id): _key(m.string) for m in _catalog(language) if m.id}
    assert compiled == source
    with open(folder / "messages.mo", "rb") as file:
        GNUTranslations(file)  # gettext itself reads it


def _key(value):
    return tuple(value) if isinstance(value, list | tuple) else value


def test_every_language_has_a_catalog_and_nothing_else_does():
    folders = {p.name for p in TRANSLATIONS.iterdir() if p.is_dir()}
    assert folders == set(TRANSLATED)


def test_every_password_refusal_the_domain_gives_is_words():
    """The domain words its refusals as Words (app/words.py); tests/unit/test_words.py
    checks that every catalog has each."""
    from app.domain import passwords

    given = [problem for password in ("short", "x" * 200, "pat", "password123456",
                                      "correct horse battery staple")
             for problem in passwords.problems(password, email="pat@partner.test")]
    assert len(set(given)) == 4
    assert all(isinstance(problem, Words) for problem in given)
    assert _refusals_not_words("accounts.py", "PasswordRejected") == []


def test_every_compose_refusal_the_domain_gives_is_words():
    assert _refusals_not_words("composing.py", "ComposeRefused") == []
    assert _refusals_not_words("replies.py", "ComposeRefused") == []


def _refusals_not_words(name: str, refusal: str) -> list[str]:
    """Where app/domain/``name`` refuses with ``refusal`` giving other than Words (or a
    list of them, or a name that holds them)."""
    tree = ast.parse((ROOT / "app" / "domain" / name).read_text())
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and getattr(
        node.func, "id", getattr(node.func, "attr", "")) == refusal]
    assert calls
    given = [element for node in calls for element in (
        node.args[0].elts if isinstance(node.args[0], ast.List) else [node.args[0]])]
    return [f"{name}:{node.lineno}" for node in given
            if not isinstance(node, ast.Name) and getattr(node.func, "id", "") != "Words"]


def test_a_compose_refusal_is_said_in_the_language(app):
    from app.domain.composing import FIELDS, ComposeRefused
    from app.web.languages import say

    refused = ComposeRefused(Words(
        N_("%(label)s is too long: %(count)s characters, the most is %(most)s."),
        label=FIELDS["subject"][0], count=1200, most=998), "subject")
    assert str(refused) == "Subject is too long: 1,200 characters, the most is 998."
    with app.test_request_context(), force_locale("de"):
        assert say(refused.words) == ("Das Feld „Betreff“ ist zu lang: 1.200 Zeichen, "
                                      "höchstens 998.")
    with app.test_request_context(), force_locale("en"):
        assert say(refused.words) == str(refused)


def test_the_editor_toolbar_speaks_the_language(app):
    import json

    from app.web.compose.forms import ComposeForm
    from app.web.inbox.forms import editor_words, rich_editor

    with app.test_request_context(), force_locale("de"):
        words = editor_words()
        assert words["bold"] == "Fett" and words["linkPrompt"].startswith("Linkadresse")
        form = ComposeForm(meta={"csrf": False})
        rich_editor(form.body, "")
        assert json.loads(form.body.render_kw["data-rich-words"]) == words
        assert 'data-rich-words="{&#34;toolbar&#34;: &#34;Formatierung&#34;' in str(form.body())
    source = (ROOT / "app" / "static" / "js" / "ccm.js").read_text()
    english = re.search(r"var ENGLISH = \{(.*?)\};", source, re.S).group(1)
    assert set(re.findall(r'(\w+): "', english)) == set(words)  # a word for every key


def test_what_the_script_says_by_itself_speaks_the_language(app, client):
    """ccm.js's own words (htmx's error answers, files too large) come from the page, in
    <body data-words>, with a word for every key of its English."""
    import json

    from app.web.languages import script_words

    page = client.get("/sign-in", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    given = json.loads(re.search(r"<body [^>]*data-words='([^']*)'", page).group(1))
    assert given["filesTooLarge"] == "Ces fichiers sont trop volumineux."
    assert given["expired"] == "Ce formulaire a expiré. Rechargez la page et réessayez."
    with app.test_request_context(), force_locale("fr"):
        assert given == script_words()
    source = (ROOT / "app" / "static" / "js" / "ccm.js").read_text()
    english = re.search(r"var SAID = \{(.*?)\};", source, re.S).group(1)
    assert set(re.findall(r'(\w+): "', english)) == set(given)
    with app.test_request_context(), force_locale("en"):
        assert script_words() == dict(re.findall(r'(\w+): "([^"]*)"', english))
