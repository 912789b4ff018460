"""Generated mail: rendered from templates in Jinja's sandbox and built as MIME.

Each kind has a subject, a text and an HTML template. A tenant's own version (edited by
its administrator, or imported) is used when there is one, else the built-in one from
``app/templates/email/KIND.{subject.txt,txt,html}``, whose HTML is set in the shared
frame ``_layout.html``. Both are rendered the same way, in an immutable sandbox,
because an administrator's template is untrusted input.

A notification is written in its addressee's language (:func:`language_of`): the one
they chose in the portal, else their tenant's default. The built-in templates are
written once, in English, their words marked ``[% trans %]…[% endtrans %]`` (delimiters
of their own, so that ``{{ }}`` and ``{% if %}`` are left to the sandbox):
:func:`builtin` translates them from the portal's catalogs into a plain template in
one language, which is what the editor shows and an administrator's version for that
language starts from. A tenant's own version is kept per language; one without a
language (from before there were languages, or imported) is for every language that has
none of its own. Dates and durations are written in the language, in the tenant's zone.

A notification should not look like phishing: it comes from the tenant's portal name at
an address of the tenant's (:func:`sender`), carries the tenant's logo inside the mail
(an inline ``cid:`` image, never a remote one) and no attachment, and says how to tell a
genuine one.
"""

from __future__ import annotations

import logging
import re
import textwrap
import time
from datetime import datetime
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from functools import cache, lru_cache
from importlib import resources
from urllib.parse import urlsplit

from babel import Locale, UnknownLocaleError
from babel.support import Translations
from babel.units import format_unit
from jinja2 import (
    Environment,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateSyntaxError,
    Undefined,
    UndefinedError,
    nodes,
)
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from sqlalchemy import or_, select

from app import clock
from app.config import settings
from app.extensions import db
from app.mail import addresses
from app.models import NotificationTemplate, Tenant, User

#: a child of Flask's application logger ("app"), so it goes where that goes
log = logging.getLogger(__name__)

#: every kind, and the variables its templates may use (shown beside the editor)
KINDS = {
    "secure_message": ("tenant_name", "recipient", "portal_url", "visible_until",
                       "new_account", "portal_host", "logo_src"),
    "password": ("tenant_name", "login", "password", "portal_url", "reset", "portal_host",
                 "logo_src"),
    "activation": ("tenant_name", "login", "activation_url", "lifetime_hours", "lifetime",
                   "passkey", "portal_url", "portal_host", "logo_src"),
    "password_reset": ("tenant_name", "email", "reset_url", "lifetime_minutes", "lifetime",
                       "portal_url", "portal_host", "logo_src"),
    "expiry_warning": ("tenant_name", "recipient", "portal_url", "visible_until",
                       "portal_host", "logo_src"),
}
#: filled by :func:`build` for every kind: the portal's host name (how a recipient tells
#: a genuine notification) and the logo's ``cid:`` address, empty without a logo
EVERY_KIND_AT_SENDING = frozenset({"portal_host", "logo_src"})
#: variables filled only when the notification is sent, never queued: those above, the
#: generated password (app/domain/notices.py, password_to_give) and the link's lifetime
#: written out in the addressee's language ("72 Stunden", from lifetime_hours or _minutes)
AT_SENDING = {kind: EVERY_KIND_AT_SENDING | ({"password"} if kind == "password" else set())
              | ({"lifetime"} if "lifetime" in names else set())
              for kind, names in KINDS.items()}
#: values a notification queued before its template had them is sent with: an activation
#: link from before the passkey wording led to a password
QUEUED_WITHOUT = {"activation": {"passkey": False}}
#: sample values for previews and for checking a template before it is saved
SAMPLES = {
    "tenant_name": "Acme Corp",
    "recipient": "pat@example.com",
    "login": "pat@example.com",
    "email": "pat@example.com",
    "password": "kM7pQ2xW9rT4vN8bH3cZ",
    "portal_url": "https://securemail.example.com/t/acme/sign-in",
    "activation_url": "https://securemail.example.com/password/reset/sample-token",
    "reset_url": "https://securemail.example.com/password/reset/sample-token",
    # queued as a moment in UTC, written out when sent ("29 December 2026, 21:00 EST")
    "visible_until": "2026-12-30T02:00:00+00:00",
    "new_account": True,
    "reset": False,
    "lifetime_hours": 72,
    "lifetime_minutes": 60,
    # the activation link leads to creating a passkey (the tenant's choice; see
    # app/domain/passkeys.py, activation_by_passkey) instead of choosing a password
    "passkey": False,
    "lifetime": "72 hours",  # written from lifetime_hours or lifetime_minutes when sent
    "portal_host": "securemail.example.com",
    "logo_src": "",
}
#: the time zone the samples are written in (a tenant's own, where it has one)
SAMPLE_ZONE = "America/New_York"
PARTS = ("subject", "text", "html")
_SUFFIX = {"subject": "subject.txt", "text": "txt", "html": "html"}

#: a notification's three parts together render to at most this many characters, in at
#: most this many seconds: in the editor's preview, when it is saved and when it is sent
MAX_RENDERED = 512 * 1024
RENDER_SECONDS = 2.0
#: no part's source may be longer (as the editor's largest field; bounds imported ones)
MAX_SOURCE = 200_000
#: names, texts, operators and filters in one {{ }} or {% if %}: a ceiling on what one
#: expression can build before the size limit sees it (see below)
MAX_EXPRESSION_PARTS = 50

# What templates may use: an allowlist. Without loops, assignments and macros every part
# of a template runs at most once, so the time is bounded too. None of these makes a
# text longer than its inputs together, except a case change (at most three times,
# however chained: "ß".upper() is "SS"); with no escape filter no value is ever marked
# safe, so the HTML version escapes each exactly once (at most five times longer). So
# one {{ }} is at most 15 times the variables and texts its at most MAX_EXPRESSION_PARTS
# parts name: no single piece of output is large before the size limit, checked after
# each piece, stops the rendering.
VARIABLES = frozenset(name for names in KINDS.values() for name in names)
FILTERS = frozenset({"capitalize", "count", "d", "default", "first", "last", "length",
                     "lower", "string", "striptags", "title", "trim", "truncate", "upper",
                     "wordcount"})
#: the methods of a text; every other attribute, and str.format, is out of reach
METHODS = frozenset({"capitalize", "endswith", "lower", "lstrip", "rstrip", "startswith",
                     "strip", "title", "upper"})
TESTS = frozenset({"boolean", "defined", "divisibleby", "eq", "even", "false", "float",
                   "ge", "gt", "in", "integer", "le", "lower", "lt", "ne", "none", "number",
                   "odd", "string", "true", "undefined", "upper"})
_NODES = frozenset({nodes.Template, nodes.Output, nodes.TemplateData, nodes.If, nodes.Name,
                    nodes.Const, nodes.Concat, nodes.CondExpr, nodes.And, nodes.Or, nodes.Not,
                    nodes.Neg, nodes.Pos, nodes.Add, nodes.Sub, nodes.Mul, nodes.Div,
                    nodes.FloorDiv, nodes.Mod, nodes.Pow, nodes.Compare, nodes.Operand,
                    nodes.Getitem, nodes.Slice, nodes.Keyword, nodes.Filter, nodes.Test,
                    nodes.Call})
_LARGEST = 10**6


class LimitExceeded(TemplateError):
    """A template longer, or rendering larger or slower, than the limits allow."""


def _number(value) -> bool:
    return isinstance(value, int | float)


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, reaching only the allowlist, with arithmetic on numbers
    only and bounded: texts are neither repeated (*) nor formatted (%, str.format).

    The template is vetted against the allowlist before it is compiled (``_vet``); these
    checks are the second line. Every operator is intercepted, so none is folded at
    compile time either: ``9**(9**9)`` cannot hang the compiler.
    """

    intercepted_binops = frozenset(ImmutableSandboxedEnvironment.default_binop_table)
    intercepted_unops = frozenset(ImmutableSandboxedEnvironment.default_unop_table)

    def is_safe_attribute(self, obj, attr: str, value) -> bool:
        return isinstance(obj, str) and attr in METHODS

    def is_safe_callable(self, obj) -> bool:
        return (isinstance(getattr(obj, "__self__", None), str)
                and getattr(obj, "__name__", None) in METHODS)

    def wrap_str_format(self, value):
        # Jinja's getattr and getitem hand out a sandboxed str.format through this; ours
        # replace them, and format is no method of the allowlist: nothing is ever wrapped.
        return None

    def getattr(self, obj, attribute: str):
        if isinstance(obj, Undefined):
            return obj  # using it raises the undefined error, which names the variable
        if not self.is_safe_attribute(obj, attribute, None):
            raise SecurityError(_after_a_dot(attribute))
        return getattr(obj, attribute)

    def getitem(self, obj, argument):
        if isinstance(obj, Undefined):
            return obj
        if not (isinstance(obj, str) and isinstance(argument, int | slice)):
            raise SecurityError("[ ] takes a character or a slice of a text, by number")
        try:
            return obj[argument]
        except IndexError:
            return self.undefined(obj=obj, name=argument)

    def call(self, context, obj, /, *args, **kwargs):
        if not (isinstance(obj, Undefined) or self.is_safe_callable(obj)):
            raise SecurityError(f"only the methods of a text can be called: {_methods()}")
        return obj(*args, **kwargs)

    def call_binop(self, context, operator: str, left, right):
        joined = operator == "+" and isinstance(left, str) and isinstance(right, str)
        undefined = isinstance(left, Undefined) or isinstance(right, Undefined)
        if _number(left) and _number(right):
            _bounded(operator, left, right)
        elif not (joined or undefined):  # using an undefined one raises its own error
            raise SecurityError(f"{operator} on a text: arithmetic is for numbers only "
                                "(join texts with ~; texts are not repeated or formatted)")
        return self.binop_table[operator](left, right)

    def call_unop(self, context, operator: str, arg):
        if not (_number(arg) or isinstance(arg, Undefined)):
            raise SecurityError(f"{operator} on a text: arithmetic is for numbers only")
        return self.unop_table[operator](arg)


def _bounded(operator: str, left, right) -> None:
    """Refuse ``left operator right`` on numbers when its result could be huge."""
    if operator == "**":
        small = (isinstance(left, int) and isinstance(right, int) and abs(right) <= 64
                 and abs(left) <= _LARGEST and abs(left) ** abs(right) <= _LARGEST)
        if not small:
            raise SecurityError(f"** only of whole numbers, giving at most {_LARGEST:,}")
    elif (operator == "*" and isinstance(left, int) and isinstance(right, int)
          and abs(left) * abs(right) > _LARGEST):
        raise SecurityError(f"* giving a number above {_LARGEST:,}")


def _methods() -> str:
    return ", ".join(f"{name}()" for name in sorted(METHODS))


def _after_a_dot(attribute: str) -> str:
    return f"the attribute {attribute!r}: after a dot only a method call may follow, {_methods()}"


_text = _Sandbox(undefined=StrictUndefined, keep_trailing_newline=True)
_html = _Sandbox(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=True)
for _environment in (_text, _html):
    # Templates need only their own variables: no range, lipsum, cycler, joiner, namespace.
    _environment.globals.clear()
    _environment.filters = {name: _environment.filters[name] for name in FILTERS}
    _environment.tests = {name: _environment.tests[name] for name in TESTS}


def _vet(tree: nodes.Template) -> None:
    """Raise SecurityError at the first thing in ``tree`` outside the allowlist.

    Judged by what the template contains, not by one rendering: a costly construct behind
    a condition the sample data does not meet is refused all the same.
    """
    methods = {id(call.node) for call in tree.find_all(nodes.Call)}
    for node in (tree, *tree.find_all(nodes.Node)):
        if type(node) is nodes.Getattr:
            problem = None if id(node) in methods else _after_a_dot(node.attr)
        else:
            problem = _problem(node) or _too_long(node)
        if problem is not None:
            lines = [n.lineno for n in (node, *node.find_all(nodes.Node)) if n.lineno]
            raise SecurityError(f"line {lines[0]}: {problem}" if lines else problem)


def _problem(node: nodes.Node) -> str | None:
    """What is wrong with ``node`` itself (its children are vetted on their own)."""
    kind = type(node)
    if kind not in _NODES:
        if isinstance(node, nodes.Stmt):
            return ("only {% if %} is allowed among the tags: no for, set, macro, call, "
                    "filter, block, with, include or import")
        return f"{_WHAT.get(kind, 'this expression')} (only variables, texts and numbers)"
    if kind is nodes.Name and node.name not in VARIABLES:
        return f"the name {node.name!r}, which is not a template variable"
    if kind is nodes.Filter and node.name not in FILTERS:
        return f"the filter {node.name!r}; the filters are {', '.join(sorted(FILTERS))}"
    if kind is nodes.Test and node.name not in TESTS:
        return f"the test {node.name!r}; the tests are {', '.join(sorted(TESTS))}"
    if kind is nodes.Call and type(node.node) is not nodes.Getattr:
        return f"a call: only the methods of a text can be called, {_methods()}"
    if kind is nodes.Call and node.node.attr not in METHODS:
        return f"the method {node.node.attr}(); the methods are {_methods()}"
    if getattr(node, "dyn_args", None) or getattr(node, "dyn_kwargs", None):
        return "* or ** in a call"
    return None


_WHAT = {nodes.List: "a list", nodes.Tuple: "a tuple", nodes.Dict: "a dictionary"}


def _too_long(node: nodes.Node) -> str | None:
    """Whether an expression in ``node`` (a {{ }} or an {% if %}) has too many parts."""
    if isinstance(node, nodes.Output):
        expressions = [n for n in node.nodes if not isinstance(n, nodes.TemplateData)]
    else:
        expressions = [node.test] if isinstance(node, nodes.If) else []
    for expression in expressions:
        if sum(1 for _ in expression.find_all(nodes.Node)) >= MAX_EXPRESSION_PARTS:
            return (f"an expression of more than {MAX_EXPRESSION_PARTS} parts: split it "
                    "into several {{ }}")
    return None


#: where ``_layout.html`` and ``_layout.txt`` take a kind's own part, and where the HTML
#: takes the line a mail client previews after the subject (``KIND.preheader.txt``)
CONTENT, PREHEADER = "<!-- content -->", "<!-- preheader -->"


#: the language of a notification with no other to go by
DEFAULT_LANGUAGE = "en"
#: the built-in templates' own layer: ``[% trans %]`` marks what is translated, and each
#: ``{{ name }}`` stays itself for the sandbox (``[% trans %]`` makes it ``%(name)s`` in
#: the catalogs); ``{% if %}`` is plain text here. babel.cfg extracts with the same.
#: It writes template source from our own files and catalogs, not HTML from input: the
#: sandbox escapes every value when the notification is rendered.
_BUILTIN = Environment(
    block_start_string="[%", block_end_string="%]", comment_start_string="[#",
    comment_end_string="#]", extensions=["jinja2.ext.i18n"], undefined=StrictUndefined,
    keep_trailing_newline=True, autoescape=False)  # noqa: S701 (the sandbox escapes)
_BUILTIN.policies["ext.i18n.trimmed"] = True  # a paragraph may span lines in the source
#: a line of the plain text is wrapped at this width, as it was before translation
TEXT_WIDTH = 78
_SANDBOX_PIECE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}")


@cache
def builtin(kind: str, language: str = DEFAULT_LANGUAGE) -> dict[str, str]:
    """The shipped subject, text and HTML of ``kind`` in ``language``, its text and HTML
    each set in the shared layout (header, how to tell a genuine notification, footer)
    as one template: what the editor shows and a tenant's own version starts from."""
    folder = resources.files("app").joinpath("templates/email")

    def read(name: str) -> str:
        return folder.joinpath(name).read_text(encoding="utf-8")

    parts = {part: read(f"{kind}.{_SUFFIX[part]}") for part in PARTS}
    for part, suffix in (("text", "txt"), ("html", "html")):
        parts[part] = read(f"_layout.{suffix}").replace(CONTENT, parts[part].strip())
    parts["html"] = parts["html"].replace(PREHEADER, read(f"{kind}.preheader.txt").strip())
    parts = {part: _translated(source, language) for part, source in parts.items()}
    parts["text"] = _wrapped(parts["text"])
    # A subject is one line: not the file's closing line feed (the editor's input shows it).
    parts["subject"] = parts["subject"].rstrip("\n")
    return parts


def _translated(source: str, language: str) -> str:
    """A built-in template's ``source`` in ``language``: a template for the sandbox."""
    catalog = translations(language)
    return _BUILTIN.from_string(source).render(
        {name: f"{{{{ {name} }}}}" for name in VARIABLES}, gettext=catalog.gettext,
        ngettext=catalog.ngettext, language=language, direction=direction(language))


def _wrapped(text: str) -> str:
    """Each line of ``text`` longer than :data:`TEXT_WIDTH` broken between words, never
    inside a ``{{ }}`` or ``{% %}``."""
    lines = []
    for line in text.split("\n"):
        if len(line) <= TEXT_WIDTH:
            lines.append(line)
            continue
        joined = _SANDBOX_PIECE.sub(lambda piece: piece.group().replace(" ", "\0"), line)
        lines += [part.replace("\0", " ") for part in textwrap.wrap(
            joined, TEXT_WIDTH, break_long_words=False, break_on_hyphens=False)]
    return "\n".join(lines)


@cache
def translations(language: str) -> Translations:
    """The portal's catalog of ``language`` (app/translations); English is the source."""
    folder = resources.files("app").joinpath("translations")
    return Translations.load(str(folder), [language])


def direction(language: str) -> str:
    """``rtl`` for a language written right to left (Arabic), else ``ltr``."""
    return _locale(language).text_direction


def _locale(language: str) -> Locale:
    try:
        return Locale.parse(language)
    except (ValueError, UnknownLocaleError):
        return Locale.parse(DEFAULT_LANGUAGE)


@cache
def offered(language: str | None) -> bool:
    """Whether notifications can be written in ``language``: English, or a language
    with a catalog."""
    return language == DEFAULT_LANGUAGE or bool(
        language and language.isalpha()
        and resources.files("app").joinpath(f"translations/{language}").is_dir())


def language_of(to: str, tenant: Tenant | None) -> str:
    """The language to write to ``to`` in: the one they chose in ``tenant``'s portal,
    else the tenant's default language, else English."""
    if tenant is not None and tenant.id is not None:
        chosen = db.session.scalar(select(User.language).where(
            User.tenant_id == tenant.id, User.email == addresses.normalise(to)))
        if offered(chosen):
            return chosen
        if offered(tenant.default_language):
            return tenant.default_language
    return DEFAULT_LANGUAGE


def own(kind: str, tenant: Tenant, language: str | None) -> NotificationTemplate | None:
    """``tenant``'s own version of ``kind`` for ``language`` (None: for every language
    without its own)."""
    return db.session.scalar(select(NotificationTemplate).where(
        NotificationTemplate.tenant_id == tenant.id, NotificationTemplate.kind == kind,
        NotificationTemplate.language.is_(None) if language is None
        else NotificationTemplate.language == language))


def in_force(kind: str, tenant: Tenant | None,
             language: str = DEFAULT_LANGUAGE) -> NotificationTemplate | None:
    """The tenant's own version of ``kind`` a notification in ``language`` uses: the one
    for that language, else the one for every language; None: the built-in one."""
    if tenant is None or tenant.id is None:
        return None
    return db.session.scalar(  # one query: the language's own first, if there is one
        select(NotificationTemplate).where(
            NotificationTemplate.tenant_id == tenant.id, NotificationTemplate.kind == kind,
            or_(NotificationTemplate.language == language,
                NotificationTemplate.language.is_(None)))
        .order_by(NotificationTemplate.language.is_(None)).limit(1))


def sources(kind: str, tenant: Tenant | None,
            language: str = DEFAULT_LANGUAGE) -> dict[str, str]:
    """The templates in force for ``kind`` at ``tenant`` in ``language``: its own, else
    the built-in ones."""
    if (version := in_force(kind, tenant, language)) is not None:
        return {"subject": version.subject, "text": version.text, "html": version.html}
    return builtin(kind, language)


def localized(context: dict, language: str, zone_name: str | None) -> dict:
    """``context`` with its moments and durations written out in ``language``: the copy's
    end (queued as a moment in UTC) in the zone ``zone_name``, and the link's lifetime."""
    values = dict(context)
    if isinstance(until := values.get("visible_until"), str) and (
            moment := _moment(until)) is not None:  # else queued written out, as before
        values["visible_until"] = clock.written(moment, zone_name, language)
    for unit in ("hour", "minute"):
        if isinstance(amount := values.get(f"lifetime_{unit}s"), int):
            values["lifetime"] = format_unit(amount, f"duration-{unit}", length="long",
                                             locale=_locale(language))
    return values


def _moment(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


@lru_cache(maxsize=256)
def _compiled(source: str, html: bool) -> Template:
    """A template vetted and compiled once, not per notification: compiling costs ten
    times more than rendering. Keyed by the source, so an edited one is compiled afresh."""
    if len(source) > MAX_SOURCE:
        raise LimitExceeded(f"a template may be at most {MAX_SOURCE:,} characters long")
    environment = _html if html else _text
    tree = environment.parse(source)
    _vet(tree)
    return environment.from_string(tree)


class _Budget:
    """What is left of the size and time limits while one notification renders."""

    def __init__(self) -> None:
        self.left = MAX_RENDERED
        self.deadline = time.monotonic() + RENDER_SECONDS

    def spend(self, piece: str) -> None:
        self.left -= len(piece)
        if self.left < 0:
            raise LimitExceeded(f"the notification renders to more than {MAX_RENDERED:,} "
                                "characters (subject, text and HTML together)")
        if time.monotonic() > self.deadline:
            raise LimitExceeded(f"the notification takes more than {RENDER_SECONDS:g} "
                                "seconds to render")


def _render(template: Template, context: dict, budget: _Budget) -> str:
    """``template`` rendered piece by piece (one piece per text or {{ }}), stopping at
    the first piece past a limit instead of building the whole output first."""
    pieces = []
    for piece in template.generate(context):
        budget.spend(piece)
        pieces.append(piece)
    return "".join(pieces)


def render_sources(templates: dict[str, str], context: dict) -> dict[str, str]:
    """Render subject, text and HTML within the limits: the one way every notification,
    preview and check is rendered. Raises Jinja's errors (syntax, sandbox, undefined) and
    LimitExceeded."""
    compiled = {part: _compiled(templates[part], part == "html") for part in PARTS}
    budget = _Budget()
    rendered = {part: _render(template, context, budget)
                for part, template in compiled.items()}
    rendered["subject"] = " ".join(rendered["subject"].split())
    return rendered


def render_samples(kind: str, templates: dict[str, str], language: str = DEFAULT_LANGUAGE,
                   zone_name: str | None = SAMPLE_ZONE,
                   tenant_values: dict | None = None) -> tuple[dict | None, str | None]:
    """``templates`` rendered with sample data written in ``language`` (dates in the zone
    ``zone_name``), or why they cannot be used for ``kind`` (syntax, outside the
    allowlist, unknown variable, over a limit): (rendered, None) or (None, the reason).
    ``tenant_values`` replace samples with what the tenant's own notifications carry
    (whether its activation links lead to a passkey)."""
    samples = localized({name: (tenant_values or {}).get(name, SAMPLES[name])
                         for name in KINDS[kind]}, language, zone_name)
    try:
        return render_sources(templates, samples), None
    except TemplateSyntaxError as error:
        return None, f"{error.message} (line {error.lineno})"
    except SecurityError as error:
        return None, f"not allowed in a template: {error}"
    except UndefinedError as error:
        return None, f"{error.message}; the variables are {', '.join(KINDS[kind])}"
    except TemplateError as error:
        return None, str(error)
    except Exception as error:  # a template can raise anything; none of it may escape
        return None, f"it fails with sample data ({type(error).__name__}: {error})"[:500]


def check(kind: str, templates: dict[str, str]) -> str | None:
    """Why these templates cannot be used for ``kind``, or None."""
    return render_samples(kind, templates)[1]


def build(kind: str, to: str, tenant: Tenant | None = None, **context) -> EmailMessage:
    """A ready-to-send message of notification ``kind`` for ``to``, in their language
    (:func:`language_of`): text and HTML, the HTML with the tenant's logo inline when it
    shows it (multipart/related)."""
    language = language_of(to, tenant)
    logo = _logo(tenant)
    cid = make_msgid("logo", domain=portal_host())[1:-1] if logo else ""
    context = localized({**QUEUED_WITHOUT.get(kind, {}), "portal_host": portal_host(),
                         "logo_src": f"cid:{cid}" if cid else "", **context},
                        language, tenant.time_zone if tenant else None)
    version = in_force(kind, tenant, language)
    # A version kept for every language is in whatever language its administrator wrote
    # it: the mail then claims none (RFC 3282 leaves the header out when unknown).
    written_in = None if version is not None and version.language is None else language
    try:
        rendered = render_sources(
            {"subject": version.subject, "text": version.text, "html": version.html}
            if version is not None else builtin(kind, language), context)
    except Exception:
        # An administrator's template that breaks on real data must not stop the mail:
        # send the built-in wording, and say so in the log.
        log.exception("the %s template of %s failed; using the built-in one",
                      kind, tenant.slug if tenant else "-")
        rendered = render_sources(builtin(kind, language), context)
        written_in = language
    message = EmailMessage()
    message["From"] = sender(tenant)
    message["To"] = to
    message["Subject"] = rendered["subject"]
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=portal_host())
    # RFC 3834: tells auto-responders and vacation replies not to answer.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(rendered["text"])
    message.add_alternative(rendered["html"], subtype="html")
    if logo and f"cid:{cid}" in rendered["html"]:
        # Only a logo the HTML shows goes in: an unreferenced part would show as an
        # attachment, and a genuine notification says it never has one.
        data, subtype = logo
        message.get_payload()[1].add_related(data, maintype="image", subtype=subtype,
                                             cid=f"<{cid}>", disposition="inline")
    # RFC 3282; set last, as set_content moves the Content- headers into the first part
    if written_in:
        message["Content-Language"] = written_in
    return message


def _logo(tenant: Tenant | None) -> tuple[bytes, str] | None:
    """The tenant's uploaded logo and its image subtype (png, jpeg), if it has one."""
    if tenant is None or not tenant.logo_type or not tenant.logo:
        return None
    return tenant.logo, tenant.logo_type.partition("/")[2]


def sender(tenant: Tenant | None = None) -> str:
    """The From header of generated mail: :func:`sender_name` at :func:`sender_address`."""
    return formataddr((sender_name(tenant), sender_address(tenant)))


def sender_name(tenant: Tenant | None = None) -> str:
    """The name generated mail comes from: the tenant's portal name (the site's name
    without a tenant), on one line.

    The settings pages refuse a name or address that cannot be a sender's; one stored
    before they did (or written to the database by hand) must not fake a sender or stop
    the tenant's every notification in the worker: the site's name and address stand in
    (here and in :func:`sender_address`), and the log says so.
    """
    name = tenant.display_name if tenant is not None else settings().site_name
    if tenant is not None and (problem := addresses.display_name_problem(name)):
        log.error("tenant %s: its portal name cannot be a sender's name (%s); "
                  "notifications show the site's name instead", tenant.slug, problem)
        name = settings().site_name
    return " ".join(name.split())


def sender_address(tenant: Tenant | None = None) -> str:
    """The tenant's notification sender address, else the site-wide CCM_MAIL_FROM, else
    postmaster at the portal's host."""
    if tenant is not None and tenant.mail_from:
        problem = addresses.sender_problem(tenant.mail_from) or (
            None if addresses.sender_at(tenant.mail_from, tenant.verified_domains)
            else "not at one of its domains")
        if not problem:
            return tenant.mail_from
        log.error("tenant %s: its notification sender address cannot be used (%s); "
                  "notifications go from the site's address instead", tenant.slug, problem)
    return settings().mail_from or f"postmaster@{portal_host()}"


def sender_domain(tenant: Tenant | None = None) -> str:
    """The domain of :func:`sender_address`: where its DKIM record must be published."""
    return addresses.domain_of(sender_address(tenant))


def portal_host() -> str:
    return urlsplit(settings().base_url).hostname or "localhost"
