"""Hostile notification templates: the sandbox refuses them or renders nothing sensitive.

Each payload is tried three ways: ``mail_templates.check`` directly, saving it in the
editor, and the live preview. Every attempt runs in a forked child with a time limit and
a memory ceiling, so a payload that hangs or eats memory fails its test instead of
hanging the suite or the machine. Payloads that once exposed real bugs (crashes, hangs)
were fixed in app/delivery/mail_templates.py (every error becomes an inline problem; only an
allowlist is reachable; a template that fails on real data falls back to the built-in one).
What bounds the size of the output is tried in test_template_limits.py.
"""

from __future__ import annotations

import html
import multiprocessing
import re

import pytest
from support import CHILD_SECONDS, csrf_token, in_child, mail, post_form, post_in_child

from app.delivery import mail_templates
from app.domain import ingest
from app.extensions import db
from app.models import NotificationTemplate

KIND = "password"  # has every kind of sample value: text, a secret, a bool
SAFE = {"subject": "Your account", "text": "Hello {{ login }}", "html": "<p>Hello</p>"}

def ok(payload: str, name: str):
    return pytest.param(payload, id=name)


PAYLOADS = [
    # walking from a literal to every class in the interpreter
    ok("{{ ''.__class__.__mro__[1].__subclasses__() }}", "mro-subclasses"),
    ok("{{ ''.__class__.__base__ }}", "class-base"),
    ok("{{ ().__class__.__bases__[0].__subclasses__() }}", "tuple-bases"),
    ok('{{ ""|attr("__class__") }}', "attr-filter"),
    ok('{{ ""["__class__"] }}', "subscript"),
    ok('{{ (""|attr("__class__"))|attr("__mro__") }}', "attr-chain"),
    ok("{{ password.__dict__ }}", "dict"),
    ok("{{ password.upper.__globals__ }}", "method-globals"),
    ok("{{ password.__init__.__globals__ }}", "init-globals"),
    ok("{{ self.__init__.__globals__.__builtins__ }}", "builtins-walk"),
    ok("{{ __builtins__ }}", "builtins-name"),
    ok("{{ password.split.__self__ }}", "builtin-self"),
    ok("{{ password.__len__ }}", "password-len"),
    ok("{{ password.__class__.__init__.__globals__['os'].popen('id').read() }}", "popen"),
    # Jinja's usual globals: removed from this environment
    ok("{{ cycler.__init__.__globals__.os }}", "cycler-os"),
    ok("{{ joiner.__init__.__globals__ }}", "joiner"),
    ok("{{ namespace.__init__.__globals__ }}", "namespace"),
    ok("{{ lipsum.__globals__ }}", "lipsum"),
    ok("{{ range.__self__ }}", "range-self"),
    ok("{% for i in range(10**9) %}x{% endfor %}", "range-loop"),
    # the template's own objects
    ok("{{ self._TemplateReference__context }}", "self-context"),
    ok("{{ self.__dict__ }}", "self-dict"),
    ok("{{ self }}", "self-repr"),
    # Flask's template globals: not given to notification templates
    ok("{{ request.application.__globals__ }}", "request-application"),
    ok("{{ config.items() }}", "config"),
    ok("{{ url_for.__globals__ }}", "url-for"),
    ok("{{ get_flashed_messages.__globals__ }}", "flashed-messages"),
    ok("{{ g }}", "g"),
    ok("{{ session }}", "session"),
    ok("{{ secret_key }}", "unknown-variable"),
    # format strings reach attributes without the dot
    ok('{{ "{0.__class__}".format(password) }}', "format"),
    ok('{{ "{0.__class__}"|attr("format")(password) }}', "format-via-attr"),
    ok('{{ "{0.__init__.__globals__}".format(password) }}', "format-globals"),
    ok('{{ "%s"|format(password.__class__) }}', "percent-format"),
    ok('{{ "{x.__class__}".format_map({"x": password}) }}', "format-map"),
    ok('{{ "%d"|format(password) }}', "percent-d"),
    # unicode and hex escapes spelling "__class__"
    ok(r"{{ ''|attr('\x5f\x5fclass\x5f\x5f') }}", "hex-escaped-attr"),
    ok(r"{{ ''['\u005f\u005fclass\u005f\u005f'] }}", "unicode-escaped-subscript"),
    ok(r"{{ (password|attr('\u005f\u005finit\u005f\u005f'))"
       r"|attr('\u005f\u005fglobals\u005f\u005f') }}", "unicode-escaped-globals"),
    # attribute names through filters: give Undefined, never the attribute
    ok('{{ [password]|map(attribute="__class__")|list }}', "map-attribute"),
    ok('{{ [password]|sort(attribute="__class__") }}', "sort-attribute"),
    # the immutable sandbox
    ok("{% set x = [] %}{{ x.append(1) }}", "list-append"),
    ok("{% set d = {} %}{{ d.update(a=1) }}", "dict-update"),
    # tags that reach outside the template
    ok("{% import os %}", "import-os"),
    ok("{% debug %}", "debug-tag"),
    ok('{% import "os" as os %}', "import-string"),
    ok('{% include "/etc/passwd" %}', "include-passwd"),
    ok('{% extends "base.html" %}', "extends"),
    ok('{% from "x" import y %}', "from-import"),
    # resources
    ok("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "macro-recursion"),
    # Jinja's ** is left-associative: this is (9**9)**9, 78 digits, harmless
    ok("{{ 9**9**9 }}", "pow-9-9-9"),
    ok("{{ 9**(9**9) }}", "pow-right-assoc"),
    ok("{{ 10**5000 }}", "int-too-long"),
    ok("{{ 1 // 0 }}", "zero-division"),
    ok("{% for i in [1]*10**9 %}x{% endfor %}", "list-loop"),
    ok("{{ password * 10**9 }}", "string-times"),
    ok("{{ password|center(999999999) }}", "center-filter"),
    ok('{{ "{:>999999999}".format(password) }}', "format-width"),
    ok("{{ password.zfill(10**9) }}", "zfill"),
    # growth without a long number: widths built from short ones, filters that multiply
    ok('{{ "x"|center(("9999"~"9999"~"9")|int) }}', "center-built-width"),
    ok("{{ password" + '|replace("", password)' * 6 + " }}", "replace-growth"),
    ok("{% set a = password %}" + "{% set a = a ~ a %}" * 40 + "{{ a }}", "doubling-set"),
    ok("{% for a in login %}" * 9 + "x" + "{% endfor %}" * 9, "nested-loops"),
    ok("{% macro a() %}{{ b() }}{{ b() }}{% endmacro %}{{ a() }}", "macro-fan-out"),
]
#: tried in the subject and the HTML version too, not only the text version
EVERY_PART = {"mro-subclasses", "attr-filter", "init-globals", "cycler-os", "self-context",
              "request-application", "format", "format-map", "hex-escaped-attr",
              "unicode-escaped-subscript", "list-append", "include-passwd",
              "macro-recursion", "pow-9-9-9", "zero-division"}


def cases():
    for param in PAYLOADS:
        (payload,) = param.values
        parts = ("text", "subject", "html") if param.id in EVERY_PART else ("text",)
        for part in parts:
            yield pytest.param(payload, part, id=f"{param.id}-{part}", marks=param.marks)


CASES = list(cases())


def test_the_corpus_is_large_enough():
    assert len(PAYLOADS) >= 40
    assert len({p.id for p in PAYLOADS}) == len(PAYLOADS)
    assert {p.id for p in PAYLOADS} >= EVERY_PART


def checked_and_rendered(templates: dict) -> tuple[str | None, dict | None]:
    problem = mail_templates.check(KIND, templates)
    if problem is not None:
        return problem, None
    sample = {name: mail_templates.SAMPLES[name] for name in mail_templates.KINDS[KIND]}
    return None, mail_templates.render_sources(templates, sample)


def templates_with(payload: str, part: str) -> dict:
    return {**SAFE, part: payload}


# --- what must never show --------------------------------------------------------------


@pytest.fixture
def markers(app) -> list[str]:
    """Strings that would mean the sandbox let something out."""
    return ["<class", "<module", "<built-in function", "<bound method", "<frame", "os.environ",
            "subprocess", "posix", "root:x:0:0", "Traceback",
            "SQLALCHEMY", "SECRET_KEY", app.config["SECRET_KEY"], app.config["DATABASE_URL"]]


def unescaped(text: str) -> str:
    """``text`` with HTML escapes undone until nothing changes (srcdoc is escaped twice)."""
    for _ in range(4):
        text, before = html.unescape(text), text
        if text == before:
            break
    return text


def leaks(text: str, markers: list[str], *, dunder: bool) -> list[str]:
    """The markers found in ``text``; "__" counts where the payload is not echoed."""
    text = unescaped(text)
    return [m for m in [*markers, *(["__"] if dunder else [])] if m in text]


def outcome_of(payload: str, part: str):
    outcome, value = in_child(checked_and_rendered, templates_with(payload, part))
    assert outcome != "timeout", f"rendering did not finish in {CHILD_SECONDS}s"
    assert outcome == "ok", f"check() raised instead of returning a problem: {value}"
    return value


# --- (a) check(): a problem, or harmless output ----------------------------------------


@pytest.mark.parametrize(("payload", "part"), CASES)
def test_check_refuses_or_the_output_is_harmless(app, markers, payload, part):
    problem, rendered = outcome_of(payload, part)
    if problem is not None:
        assert isinstance(problem, str) and problem.strip()
        assert not leaks(problem, markers, dunder=False), problem
    else:
        for name, text in rendered.items():
            assert not leaks(text, markers, dunder=True), (name, text[:300])


# --- (b) saving in the editor ----------------------------------------------------------


def preview_of(page: str) -> str:
    """The preview area of the editor page: what the template rendered, or the problem."""
    start = page.index('<div id="preview"')
    return page[start:page.index("</section>", start)]


@pytest.mark.parametrize(("payload", "part"), CASES)
def test_the_editor_saves_only_what_check_accepts(app, as_admin, markers, payload, part):
    path = f"/admin/templates/{KIND}"
    data = {**templates_with(payload, part), "csrf_token": csrf_token(as_admin, path)}
    status, page = post_in_child(as_admin, path, data)
    problem, _ = outcome_of(payload, part)
    db.session.expire_all()
    saved = db.session.query(NotificationTemplate).count()
    if problem is not None:
        assert status == 200
        assert "cannot be used" in page
        assert saved == 0
        assert not leaks(preview_of(page), markers, dunder=False)
    else:
        assert status == 302 and saved == 1
        page = as_admin.get(path).get_data(as_text=True)  # the editor previews what was saved
        assert not leaks(preview_of(page), markers, dunder=True)
    assert not leaks(page, markers, dunder=False)


# --- (c) the live preview --------------------------------------------------------------


@pytest.mark.parametrize(("payload", "part"), CASES)
def test_the_preview_shows_a_problem_or_harmless_output(app, as_admin, markers, payload, part):
    path = f"/admin/templates/{KIND}/preview"
    data = {**templates_with(payload, part),
            "csrf_token": csrf_token(as_admin, f"/admin/templates/{KIND}")}
    status, page = post_in_child(as_admin, path, data)
    assert status == 200
    problem = "cannot be used" in page
    assert problem or 'class="preview-text"' in page
    assert not leaks(page, markers, dunder=not problem)
    db.session.expire_all()
    assert db.session.query(NotificationTemplate).count() == 0


# --- the sandboxed environment itself ---------------------------------------------------


def test_the_sandbox_has_no_globals_and_is_immutable():
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    for environment in (mail_templates._text, mail_templates._html):
        assert isinstance(environment, ImmutableSandboxedEnvironment)
        assert dict(environment.globals) == {}
        assert environment.loader is None
    assert mail_templates._html.autoescape is True


def test_a_harmless_payload_really_renders(app):
    """The control: the corpus is refused because it is hostile, not because check() refuses
    everything."""
    problem, rendered = outcome_of("{{ login }} {{ password|length }} {{ reset }}", "text")
    assert problem is None
    assert rendered["text"] == "pat@example.com 20 False"


def test_what_check_refuses_does_not_depend_on_the_sample_data():
    """A costly construct behind a condition the samples do not meet is refused all the
    same: the template is judged by what it contains, not by one rendering."""
    hidden = ('{% if login != "pat@example.com" %}' + "{% for a in login %}" * 9 + "x"
              + "{% endfor %}" * 9 + "{% endif %}")
    assert mail_templates.check(KIND, templates_with(hidden, "text")) is not None


def test_a_template_that_passes_check_never_breaks_the_gateway(app, as_admin):
    trap = "{% if recipient|length > 15 %}{{ 1 // 0 }}{% endif %}Secure mail for {{ recipient }}"
    response = post_form(as_admin, "/admin/templates/secure_message", {
        "subject": "Secure mail", "text": trap, "html": "<p>Secure mail</p>"})
    assert response.status_code == 302  # check() saw nothing wrong with the sample data
    raw = mail(to="patricia@partner.test").replace("\n", "\r\n").encode()
    message = ingest.receive(raw, "admin@acme.test", ["patricia@partner.test"], mode="all")
    db.session.commit()
    assert message.recipients[0].state == "held"


def test_children_do_not_outlive_their_test():
    """The helper kills what it starts (a hang must not leave a spinning process behind)."""
    outcome, _ = in_child(lambda: re.match(r"(a+)+$", "a" * 40 + "b"), seconds=1)
    assert outcome == "timeout"
    assert not multiprocessing.active_children()
