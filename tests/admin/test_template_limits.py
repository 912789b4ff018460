"""Notification templates cannot blow up their output, whatever an administrator writes.

What bounds them (app/delivery/mail_templates.py): an allowlist of tags, variables, filters, tests
and methods, checked before a template is compiled; arithmetic on numbers only, so texts
are neither repeated nor formatted; and one limit on the rendered size and time, checked
piece by piece, for the editor's preview, its save and the notification sent. Each hostile
template is tried through all three, in a forked child with a memory ceiling
(support.in_child): it renders small or is refused with a clear error, and at send time
the built-in wording goes out instead.
"""

from __future__ import annotations

import html
import sys

import jinja2
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from support import csrf_token, in_child, mail, post_form, post_in_child, read_outbox

from app.delivery import mail_templates
from app.domain import ingest
from app.extensions import db
from app.models import NotificationTemplate, Tenant

KIND = "password"  # has every kind of sample value: text, a secret, a bool
SAMPLE = {name: mail_templates.SAMPLES[name] for name in mail_templates.KINDS[KIND]}
SAFE = {"subject": "Your account", "text": "Hello {{ login }}", "html": "<p>Hello</p>"}
SMALL = 4096  # what every accepted hostile template renders to at most, in characters
PAGE = 64 * 1024  # the largest editor page or preview an answer may be


def hostile(payload: str, name: str, refused: str | None):
    """A template's text version; ``refused`` is a piece of the error it must get, or
    None where it is accepted and renders small."""
    return pytest.param(payload, refused, id=name)


HOSTILE = [
    # str.format and its widths, in every spelling
    hostile("{{ ('{:' ~ '9'*8 ~ '}').format(1) }}", "format-built-width", "format()"),
    hostile("{{ '{:>99999999}'.format(login) }}", "format-width", "format()"),
    hostile("{{ '{:>{}}'.format(login, 99999999) }}", "format-nested-width", "format()"),
    hostile("{{ '{0:{1}}'.format(login, 99999999) }}", "format-indexed-width", "format()"),
    hostile("{{ '{x:>99999999}'.format_map(login) }}", "format-map", "format_map()"),
    hostile("{{ login['format']('{:>9999}') }}", "format-by-subscript", "a call"),
    hostile("{{ (login|attr('format'))('{:>9999}') }}", "format-by-attr", "a call"),
    hostile("{{ login|format(1) }}", "format-filter", "filter 'format'"),
    hostile("{{ '%99999999s'|format(login) }}", "format-filter-width", "filter 'format'"),
    # % formatting
    hostile("{{ '%99999999d' % 1 }}", "percent-width", "% on a text"),
    hostile("{{ '%s' % login }}", "percent-plain", "% on a text"),
    hostile("{{ '%*d' % (99999999, 1) }}", "percent-star-width", "a tuple"),
    hostile("{{ '%.*f' % (9999, 1) }}", "percent-star-precision", "a tuple"),
    hostile("{{ login.__mod__(1) }}", "percent-dunder", "__mod__()"),
    # padding and growing methods
    hostile("{{ login.zfill(99999999) }}", "zfill", "zfill()"),
    hostile("{{ login.rjust(99999999) }}", "rjust", "rjust()"),
    hostile("{{ login.ljust(99999999) }}", "ljust", "ljust()"),
    hostile("{{ login.center(99999999) }}", "center-method", "center()"),
    hostile("{{ ('a\\tb').expandtabs(9**9) }}", "expandtabs", "expandtabs()"),
    hostile("{{ password.expandtabs(99) }}", "expandtabs-small", "expandtabs()"),
    hostile("{{ login.replace('', 'x' ~ login ~ login) }}", "replace-method", "replace()"),
    hostile("{{ login.replace('', 'x' * 99999999) }}", "replace-repeated", "replace()"),
    hostile("{{ login.join(login) }}", "join-method", "join()"),
    hostile("{{ ''.join(login for c in login) }}", "join-generator", "line 1"),
    hostile("{{ login.__mul__(99999999) }}", "mul-dunder", "__mul__()"),
    hostile("{{ login.split(login) }}", "split", "split()"),
    hostile("{{ login.encode() }}", "encode", "encode()"),
    hostile("{{ login.translate(login) }}", "translate", "translate()"),
    # filters that pad, repeat or multiply
    hostile("{{ login|center(99999999) }}", "center-filter", "filter 'center'"),
    hostile("{{ login|center(('9999'~'9999')|int) }}", "center-built-width", "filter 'center'"),
    hostile("{{ login|indent(width=99999999) }}", "indent-width", "filter 'indent'"),
    hostile("{{ (login ~ '\\n' ~ login)|indent(9999, true) }}", "indent-first", "filter 'indent'"),
    hostile("{{ login|wordwrap(1, wrapstring=login ~ login) }}", "wordwrap", "filter 'wordwrap'"),
    hostile("{{ login|replace('', login) }}", "replace-filter", "filter 'replace'"),
    hostile("{{ login|join(login) }}", "join-filter", "filter 'join'"),
    hostile("{{ login|list|join(password) }}", "list-join", "filter 'join'"),
    hostile("{{ login|e|e }}", "escape", "filter 'e'"),
    hostile("{{ login|urlencode|urlencode }}", "urlencode", "filter 'urlencode'"),
    hostile("{{ login|tojson }}", "tojson", "filter 'tojson'"),
    hostile("{{ login|string|list }}", "string-list", "filter 'list'"),
    hostile("{{ login|batch(1) }}", "batch", "filter 'batch'"),
    hostile("{{ login|map('upper')|join }}", "map", "filter 'join'"),
    hostile("{{ [login]|sum(start='') }}", "sum", "filter 'sum'"),
    # repetition: * on texts, and ~ of a bounded expression many times
    hostile("{{ login * 99999999 }}", "text-times", "* on a text"),
    hostile("{{ 9999 * login }}", "times-text", "* on a text"),
    hostile("{{ (login ~ login) * 99 }}", "joined-times", "* on a text"),
    hostile("{{ login|first * 99999 }}", "filtered-times", "* on a text"),
    hostile("{{ [login] * 99 }}", "list-times", "a list"),
    hostile("{{ login" + " ~ login" * 60 + " }}", "concat-60", "more than 50 parts"),
    hostile("{{ login" + " ~ login" * 40 + " }}", "concat-40", None),
    hostile("{{ ((login ~ login) ~ (login ~ login)) ~ ((login ~ login) ~ (login ~ login)) }}",
     "concat-tree", None),
    hostile("{{ login|upper|lower|title|capitalize|upper|trim }}", "filter-chain", None),
    hostile("{{ ('ﬃ' ~ 'ΐ' ~ login)|upper|lower|upper|title }}", "case-expansion", None),
    # numbers
    hostile("{{ 9**9**9 }}", "pow-chain", "giving at most 1,000,000"),
    hostile("{{ 9**(9**9) }}", "pow-right", "giving at most 1,000,000"),
    hostile("{{ (login|length) ** 64 }}", "pow-length", "giving at most 1,000,000"),
    hostile("{{ 99999 * 99999 }}", "times-numbers", "above 1,000,000"),
    hostile("{{ -login }}", "negate-text", "- on a text"),
    hostile("{{ " + "9" * 32 + " }}", "long-number", None),
    # loops and the usual globals
    hostile("{% for c in login %}{% for d in login %}x{% endfor %}{% endfor %}", "for", "{% if %}"),
    hostile("{{ range(99999) }}", "range", "a call"),
    hostile("{{ range }}", "range-name", "'range'"),
    hostile("{{ lipsum(999, false, 999, 999) }}", "lipsum", "a call"),
    hostile("{{ dict(a=login) }}", "dict-call", "a call"),
    hostile("{{ {'a': login} }}", "dict-literal", "a dictionary"),
    hostile("{{ cycler(login).next() }}", "cycler", "the method next()"),
    hostile("{{ joiner(login)() }}", "joiner", "a call"),
    hostile("{{ namespace(a=login) }}", "namespace", "a call"),
    hostile("{% set a = login ~ login %}{{ a }}", "set", "{% if %}"),
    hostile("{% macro m() %}{{ login }}{% endmacro %}{{ m() }}", "macro", "{% if %}"),
    hostile("{% filter upper %}{{ login }}{% endfilter %}", "filter-block", "{% if %}"),
    hostile("{% with a = login %}{{ a }}{% endwith %}", "with", "{% if %}"),
    hostile("{% autoescape false %}{{ login }}{% endautoescape %}", "autoescape", "{% if %}"),
    hostile("{% if login %}" * 30 + "{{ login }}" + "{% endif %}" * 30, "nested-if", None),
    hostile("{% if login %}{{ login }}{% elif reset %}x{% else %}y{% endif %}" * 50,
     "many-ifs", None),
    # attributes
    hostile("{{ login.__class__ }}", "class", "'__class__'"),
    hostile("{{ login.__class__.mro() }}", "mro", "the method mro()"),
    hostile("{{ login.upper }}", "uncalled-method", "'upper'"),
    hostile("{{ login.upper().__class__ }}", "class-of-result", "'__class__'"),
    hostile("{{ login['__class__'] }}", "class-by-subscript", "[ ]"),
    hostile("{{ self }}", "self", "'self'"),
    hostile("{{ login is sameas login }}", "test-outside", "the test 'sameas'"),
    # shrinking filters with large arguments stay small
    hostile("{{ login|truncate(99999999) }}", "truncate-long", None),
    hostile("{{ login|truncate(5, true, '...', 0) }}", "truncate-short", None),
    hostile("{{ login|default(login ~ login) }}", "default", None),
    hostile("{{ login[0:99999999] }}{{ login[::-1] }}", "slices", None),
    hostile("{{ login|trim(login) }}{{ login.strip(login) }}", "strip", None),
]


def test_the_table_is_large_and_each_row_named_once():
    assert len({p.id for p in HOSTILE}) == len(HOSTILE) >= 80


def form(client, payload: str) -> dict:
    token = csrf_token(client, f"/admin/templates/{KIND}")
    return {**SAFE, "text": payload, "csrf_token": token}


def saved() -> int:
    db.session.expire_all()
    return db.session.query(NotificationTemplate).count()


def assert_refused(page: str, refused: str) -> None:
    """The page says the template cannot be used, and why, in words."""
    text = html.unescape(page)
    assert "This template cannot be used" in text
    assert refused in text, text[text.index("cannot be used"):][:600]
    assert "Traceback" not in text and "<built-in" not in text


# --- through the editor: the live preview and the save --------------------------------


@pytest.mark.parametrize(("payload", "refused"), HOSTILE)
def test_the_preview_renders_small_or_says_why_not(app, as_admin, payload, refused):
    status, page = post_in_child(as_admin, f"/admin/templates/{KIND}/preview",
                                 form(as_admin, payload))
    assert status == 200 and len(page) < PAGE
    if refused is None:
        assert "cannot be used" not in page
        text = page[page.index('<pre class="preview-text">'):page.index("</pre>")]
        assert len(html.unescape(text)) <= SMALL + len('<pre class="preview-text">')
    else:
        assert_refused(page, refused)
    assert saved() == 0


@pytest.mark.parametrize(("payload", "refused"), HOSTILE)
def test_the_editor_saves_only_what_renders_small(app, as_admin, payload, refused):
    status, page = post_in_child(as_admin, f"/admin/templates/{KIND}", form(as_admin, payload))
    if refused is None:
        assert status == 302 and saved() == 1
        preview = as_admin.get(f"/admin/templates/{KIND}").get_data(as_text=True)
        assert len(preview) < PAGE and "cannot be used" not in preview
    else:
        assert status == 200 and len(page) < PAGE
        assert_refused(page, refused)
        assert saved() == 0


def verdicts(payload: str) -> list[str | None]:
    """check()'s answer with ``payload`` as the text, the subject and the HTML version."""
    return [mail_templates.check(KIND, {**SAFE, part: payload}) for part in mail_templates.PARTS]


@pytest.mark.parametrize(("payload", "refused"), HOSTILE)
def test_the_subject_and_the_html_version_are_held_to_the_same(app, payload, refused):
    outcome, value = in_child(verdicts, payload)
    assert outcome == "ok", value
    if refused is None:
        assert value == [None, None, None]
    else:
        assert all(refused in problem for problem in value), value


# --- at send time: a template that is in the database all the same --------------------


def sent(tenant_id: int) -> tuple[str, str, int]:
    """The subject, text and size of the notification built for the tenant, as the
    outbound worker builds it."""
    tenant = db.session.get(Tenant, tenant_id)
    message = mail_templates.build(KIND, "pat@partner.test", tenant, **SAMPLE)
    return (message["Subject"], message.get_body(("plain",)).get_content(),
            len(message.as_bytes()))


@pytest.mark.parametrize(("payload", "refused"), HOSTILE)
def test_at_send_time_it_renders_small_or_the_built_in_wording_goes(app, make_tenant,
                                                                     payload, refused):
    """Stored before these limits, or imported: whatever is in the database is held to
    them when the notification is built, by the same function as the preview."""
    tenant = make_tenant("acme")
    db.session.add(NotificationTemplate(tenant=tenant, kind=KIND, **{**SAFE, "text": payload}))
    db.session.commit()
    outcome, value = in_child(sent, tenant.id)
    assert outcome == "ok", value
    subject, text, size = value
    assert size < PAGE
    if refused is None:
        rendered, problem = mail_templates.render_samples(KIND, {**SAFE, "text": payload})
        assert problem is None and len(rendered["text"]) <= SMALL
        assert (subject, text.rstrip("\n")) == (SAFE["subject"], rendered["text"])
    else:
        built_in = mail_templates.render_sources(mail_templates.builtin(KIND), SAMPLE)
        assert (subject, text.rstrip("\n")) == (built_in["subject"],
                                                built_in["text"].rstrip("\n"))


def test_a_hostile_template_in_the_database_sends_the_built_in_wording(app, make_tenant):
    """The whole way: a message arrives, its notifications are queued, the worker builds
    them with the tenant's own template, which is over the limits, and sends the built-in
    one."""
    tenant = make_tenant("acme")
    db.session.add(NotificationTemplate(
        tenant=tenant, kind="secure_message", subject="{{ recipient ~ recipient }}",
        text="{{ ('{:' ~ '9'*8 ~ '}').format(1) }}", html="{{ '%99999999d' % 1 }}"))
    db.session.commit()
    raw = mail(to="pat@partner.test").replace("\n", "\r\n").encode()
    ingest.receive(raw, "alice@acme.test", ["pat@partner.test"], mode="all")
    db.session.commit()
    outcome, value = in_child(
        lambda: [(m["Subject"], len(m.as_bytes())) for m in read_outbox(app)])
    assert outcome == "ok", value
    assert "Secure message from Acme Corp: sign in to read it" in [subject for subject, _ in value]
    assert all(size < PAGE for _, size in value)


# --- the size and time limits ---------------------------------------------------------


def test_output_past_the_size_limit_is_refused_and_rendering_stops_there(app, as_admin):
    """Each piece is small, and there are many: the limit is checked after each, so the
    error further on is never reached."""
    pieces = "{{ portal_url }}" * (mail_templates.MAX_SOURCE // 16 - 1)
    assert len(pieces) <= mail_templates.MAX_SOURCE
    assert 45 * pieces.count("{{") > mail_templates.MAX_RENDERED
    templates = {**SAFE, "html": pieces + "{{ 1 // 0 }}"}
    assert mail_templates.check(KIND, templates) == (
        f"the notification renders to more than {mail_templates.MAX_RENDERED:,} characters "
        "(subject, text and HTML together)")
    status, page = post_in_child(as_admin, f"/admin/templates/{KIND}",
                                 {**form(as_admin, SAFE["text"]), "html": templates["html"]})
    assert status == 200
    assert_refused(page, "renders to more than")
    assert saved() == 0
    tenant = db.session.scalar(db.select(Tenant).where(Tenant.slug == "acme"))
    db.session.add(NotificationTemplate(tenant=tenant, kind=KIND, **templates))
    db.session.commit()
    outcome, value = in_child(sent, tenant.id)
    assert outcome == "ok", value
    built_in = mail_templates.render_sources(mail_templates.builtin(KIND), SAMPLE)
    assert value[0] == built_in["subject"] and value[2] < PAGE


def test_the_size_limit_counts_the_three_versions_together(app):
    pieces = "{{ portal_url }}" * 8000  # each renders to 45 characters
    assert 45 * 8000 < mail_templates.MAX_RENDERED < 2 * 45 * 8000
    assert mail_templates.check(KIND, {**SAFE, "text": pieces}) is None
    problem = mail_templates.check(KIND, {**SAFE, "text": pieces, "html": pieces})
    assert "renders to more than" in problem


def test_a_template_longer_than_the_editor_allows_is_refused(app):
    """Imported ones too (ccm config import checks with the same function)."""
    long = "x" * (mail_templates.MAX_SOURCE + 1)
    assert mail_templates.check(KIND, {**SAFE, "text": long}) == (
        f"a template may be at most {mail_templates.MAX_SOURCE:,} characters long")


def test_a_template_over_the_time_limit_is_refused_and_not_saved(app, as_admin, monkeypatch):
    """Not a timed test: with no time at all, any template is over the limit."""
    monkeypatch.setattr(mail_templates, "RENDER_SECONDS", -1)
    page = post_form(as_admin, f"/admin/templates/{KIND}", SAFE).get_data(as_text=True)
    assert_refused(page, "takes more than -1 seconds to render")
    assert saved() == 0


# --- the allowlist, systematically -----------------------------------------------------


def problem_with(text: str) -> str | None:
    return mail_templates.check(KIND, {**SAFE, "text": text})


@pytest.mark.parametrize("name", sorted(set(jinja2.filters.FILTERS) - mail_templates.FILTERS))
def test_every_other_filter_is_refused(app, name):
    assert f"the filter {name!r}; the filters are" in problem_with(f"{{{{ login|{name} }}}}")


STR_METHODS = sorted(set(dir(str)) - mail_templates.METHODS)


@pytest.mark.parametrize("name", STR_METHODS)
def test_every_other_method_or_attribute_of_a_text_is_refused(app, name):
    assert f"the method {name}(); the methods are" in problem_with(f"{{{{ login.{name}() }}}}")
    assert f"the attribute {name!r}" in problem_with(f"{{{{ login.{name} }}}}")


@pytest.mark.parametrize("name", sorted(n for n in set(jinja2.tests.TESTS) - mail_templates.TESTS
                                        if n.isidentifier()))
def test_every_other_test_is_refused(app, name):
    assert f"the test {name!r}" in problem_with(f"{{% if login is {name} %}}x{{% endif %}}")


@pytest.mark.parametrize("name", sorted(jinja2.defaults.DEFAULT_NAMESPACE))
def test_jinjas_globals_are_not_there(app, name):
    assert f"the name {name!r}, which is not a template variable" in problem_with(
        f"{{{{ {name} }}}}")
    assert "only the methods of a text can be called" in problem_with(f"{{{{ {name}() }}}}")


#: compiled without the allowlist check: the sandbox itself refuses at run time
AT_RUN_TIME = [
    ("{{ login.__class__ }}", "the attribute '__class__'"),
    ("{{ login.zfill(99) }}", "the attribute 'zfill'"),
    ("{{ login.format(1) }}", "the attribute 'format'"),
    ("{{ login['format'] }}", "[ ] takes"),
    ("{{ login['upper'] }}", "[ ] takes"),
    ("{{ '%9999d' % 1 }}", "% on a text"),
    ("{{ login * 2 }}", "* on a text"),
    ("{{ -login }}", "- on a text"),
    ("{{ 99 ** 99 }}", "giving at most 1,000,000"),
    ("{{ 2.5 ** 2 }}", "only of whole numbers"),
    ("{{ (login ~ login).expandtabs(9) }}", "the attribute 'expandtabs'"),
]


@pytest.mark.parametrize(("source", "refused"), AT_RUN_TIME)
@pytest.mark.parametrize("html_part", [False, True], ids=["text", "html"])
def test_the_sandbox_refuses_at_run_time_too(app, source, refused, html_part):
    environment = mail_templates._html if html_part else mail_templates._text
    with pytest.raises(SecurityError) as refusal:
        environment.from_string(source).render(SAMPLE)
    assert refused in str(refusal.value)


def test_case_changes_at_most_triple_a_text_however_chained():
    """The bound on one piece of output rests on this: upper, lower, title and capitalize
    change each character by itself (the first of a word title-cased, the others upper-
    or lower-cased), so the most one character can become is a fixed point over every
    character that changes at all."""
    mappings = (str.upper, str.lower, str.title)
    changing = [c for c in map(chr, range(sys.maxunicode + 1))
                if any(m(c) != c for m in mappings)]
    most = dict.fromkeys(changing, 1)
    for _ in range(10):
        grown = {c: max(1, *(sum(most.get(d, 1) for d in m(c)) for m in mappings))
                 for c in changing}
        if grown == most:
            break
        most = grown
    assert grown == most and max(most.values()) == 3


# --- what administrators write: rendered as before -------------------------------------


ORDINARY = [
    "Hello {{ login }},\nyour password is {{ password }}.\n",
    "{% if reset %}Reset{% elif login %}New for {{ login }}{% else %}?{% endif %}",
    "{%- if not reset -%}\n  {{ tenant_name }}\n{%- endif %} {# a note #}",
    "{{ tenant_name|upper }} {{ tenant_name|lower }} {{ login|title }} {{ login|capitalize }}",
    "{{ login.upper() }} {{ tenant_name.strip() }} {{ ' x '.lstrip() ~ '|' ~ ' y '.rstrip() }}",
    "{% if login.endswith('@example.com') and not reset %}ours{% endif %}",
    "{% if login.startswith('pat') or login is none %}Pat{% endif %}",
    "{{ portal_url|truncate(30) }} {{ password|length }} {{ tenant_name|wordcount }}",
    "{{ reset|default('no') }} {{ recipient|default('you') }} {{ login|d('-', true) }}",
    "{{ 'Dear ' ~ login ~ ',' }} {{ 'Dear ' + tenant_name }}",
    "{{ '(new)' if not reset else '(reset)' }}",
    "{{ login[:3] }}…{{ login[-4:] }} {{ password|first }}{{ password|last }}",
    "{{ 7 * 24 }} {{ 60 // 7 }} {{ 10 % 3 }} {{ 2 ** 10 }} {{ 1 / 4 }} {{ -3 + 1 }}",
    "{{ '<b>x</b>'|striptags }} {{ '  x  '|trim }} {{ login|count }} {{ 'é'|upper }}",
    "{{ login is string }} {{ reset is false }} {{ 3 is odd }} {{ login is defined }}",
    "{% if 'example' in login and password|length > 12 %}long{% endif %}",
    "{% raw %}{{ not code }}{% endraw %} 100% {{ tenant_name }}",
    "<p style=\"color: #52606d\">{{ tenant_name }} &amp; {{ '<b>' }} {{ login }}</p>\n",
]


@pytest.mark.parametrize("source", ORDINARY)
def test_ordinary_templates_render_as_jinjas_own_sandbox_renders_them(app, source):
    templates = {"subject": "About {{ tenant_name }}", "text": source, "html": source}
    rendered, problem = mail_templates.render_samples(KIND, templates)
    assert problem is None
    for part in ("text", "html"):
        stock = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined,
                                              keep_trailing_newline=True,
                                              autoescape=part == "html")
        assert rendered[part] == stock.from_string(source).render(SAMPLE)


@pytest.mark.parametrize("kind", sorted(mail_templates.KINDS))
def test_the_built_in_templates_render_as_jinjas_own_sandbox_renders_them(app, kind):
    sample = {name: mail_templates.SAMPLES[name] for name in mail_templates.KINDS[kind]}
    rendered = mail_templates.render_sources(mail_templates.builtin(kind), sample)
    for part in ("text", "html"):
        stock = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined,
                                              keep_trailing_newline=True,
                                              autoescape=part == "html")
        assert rendered[part] == stock.from_string(
            mail_templates.builtin(kind)[part]).render(sample)


def test_an_ordinary_template_is_saved_and_sent_as_previewed(app, as_admin, make_tenant):
    source = ORDINARY[1] + "\n" + ORDINARY[3] + "\n" + ORDINARY[8]
    response = post_form(as_admin, f"/admin/templates/{KIND}", {**SAFE, "text": source})
    assert response.status_code == 302 and saved() == 1
    preview = html.unescape(as_admin.get(f"/admin/templates/{KIND}").get_data(as_text=True))
    rendered, _ = mail_templates.render_samples(KIND, {**SAFE, "text": source})
    assert f'<pre class="preview-text">{rendered["text"]}</pre>' in preview
    tenant = db.session.scalar(db.select(Tenant).where(Tenant.slug == "acme"))
    assert sent(tenant.id)[:2] == (SAFE["subject"], rendered["text"] + "\n")


def test_the_editor_says_what_templates_may_use(app, as_admin):
    page = html.unescape(as_admin.get(f"/admin/templates/{KIND}").get_data(as_text=True))
    for name in mail_templates.METHODS:
        assert f"<code>.{name}()</code>" in page
    for name in mail_templates.FILTERS:
        assert f"<code>{name}</code>" in page
    assert f"at most {mail_templates.MAX_RENDERED:,} characters" in page
