"""Generated mail: rendered from templates in Jinja's sandbox and built as MIME.

Each kind has a subject, a text and an HTML template. A tenant's own version (edited by
its administrator, or imported) is used when there is one, else the built-in one from
``app/templates/email/KIND.{subject.txt,txt,html}``. Both are rendered the same way, in
an immutable sandbox, because an administrator's template is untrusted input.
"""

from __future__ import annotations

import re
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from functools import cache, lru_cache
from importlib import resources
from urllib.parse import urlsplit

from flask import current_app
from jinja2 import (
    StrictUndefined,
    Template,
    TemplateError,
    TemplateSyntaxError,
    UndefinedError,
    nodes,
)
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from sqlalchemy import select

from .extensions import db
from .models import NotificationTemplate, Tenant

#: every kind, and the variables its templates may use (shown beside the editor)
KINDS = {
    "secure_message": ("tenant_name", "recipient", "portal_url", "visible_until",
                       "new_account"),
    "password": ("tenant_name", "login", "password", "portal_url", "reset"),
    "activation": ("tenant_name", "login", "activation_url", "lifetime_hours", "portal_url"),
    "password_reset": ("tenant_name", "email", "reset_url", "lifetime_minutes", "portal_url"),
    "expiry_warning": ("tenant_name", "recipient", "portal_url", "visible_until"),
}
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
    "visible_until": "30 December 2026",
    "new_account": True,
    "reset": False,
    "lifetime_hours": 72,
    "lifetime_minutes": 60,
}
PARTS = ("subject", "text", "html")
_SUFFIX = {"subject": "subject.txt", "text": "txt", "html": "html"}

#: no template needs numbers this long in its code; a limit on literals stops
#: "{:>999999999}" and |center(999999999), and the operator checks below stop computing
#: them (plain text outside {{ }} and {% %}, such as a colour #52606d, is no code)
_LONG_NUMBER = re.compile(r"\d{5,}")
_CODE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_LARGEST = 10**6


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, with arithmetic that cannot exhaust time or memory.

    Intercepted operators are also never folded at compile time, so ``9**(9**9)``
    cannot hang the compiler either.
    """

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context, operator, left, right):
        numbers = all(isinstance(v, int) for v in (left, right))
        if operator == "**" and not (numbers and abs(right) <= 64
                                     and abs(left) ** min(abs(right), 64) <= _LARGEST):
            raise SecurityError("numbers that large are not allowed in templates")
        if operator == "*":
            sizes = [len(v) if isinstance(v, str | list | tuple) else abs(v)
                     for v in (left, right) if isinstance(v, str | list | tuple | int)]
            if len(sizes) == 2 and sizes[0] * sizes[1] > _LARGEST:
                raise SecurityError("results that large are not allowed in templates")
        return super().call_binop(context, operator, left, right)


#: filters whose output is never much larger than their input; the others (center,
#: indent, replace, format, int, wordwrap, ...) can turn a short template into gigabytes
FILTERS = frozenset({"capitalize", "count", "d", "default", "e", "escape", "first", "last",
                      "length", "lower", "string", "striptags", "title", "trim", "truncate",
                      "upper", "urlencode", "wordcount"})
#: tags a notification does not need, and with which a short template could run for hours
#: or fill memory (nested loops, doubling assignments, macros calling macros) whatever
#: the data it was checked with; includes and imports reach outside the template
_REFUSED_TAGS = (nodes.For, nodes.Macro, nodes.CallBlock, nodes.Assign, nodes.AssignBlock,
                 nodes.FilterBlock, nodes.Include, nodes.Import, nodes.FromImport,
                 nodes.Extends)

_text = _Sandbox(undefined=StrictUndefined, keep_trailing_newline=True)
_html = _Sandbox(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=True)
for _environment in (_text, _html):
    # Templates need only their own variables: no range, lipsum, cycler, joiner, namespace.
    _environment.globals.clear()
    _environment.filters = {name: f for name, f in _environment.filters.items()
                            if name in FILTERS}


@cache
def builtin(kind: str) -> dict[str, str]:
    """The shipped subject, text and HTML of ``kind``."""
    folder = resources.files("app").joinpath("templates/email")
    return {part: folder.joinpath(f"{kind}.{_SUFFIX[part]}").read_text(encoding="utf-8")
            for part in PARTS}


def sources(kind: str, tenant: Tenant | None) -> dict[str, str]:
    """The templates in force for ``kind`` at ``tenant``: its own, else the built-in ones."""
    if tenant is not None and tenant.id is not None:
        own = db.session.scalar(
            select(NotificationTemplate).where(
                NotificationTemplate.tenant_id == tenant.id, NotificationTemplate.kind == kind
            )
        )
        if own is not None:
            return {"subject": own.subject, "text": own.text, "html": own.html}
    return builtin(kind)


@lru_cache(maxsize=256)
def _compiled(source: str, html: bool) -> Template:
    """A template compiled once, not per notification: compiling costs ten times more
    than rendering. Keyed by the source, so an edited template is compiled afresh."""
    if any(_LONG_NUMBER.search(code) for code in _CODE.findall(source)):
        raise SecurityError("numbers of five digits or more are not allowed in templates")
    environment = _html if html else _text
    if next(environment.parse(source).find_all(_REFUSED_TAGS), None) is not None:
        raise SecurityError("only {% if %} is allowed among the tags: no for, set, macro, "
                            "call, filter, include or import")
    return environment.from_string(source)


def render_sources(templates: dict[str, str], context: dict) -> dict[str, str]:
    """Render subject, text and HTML; raises Jinja's errors (syntax, sandbox, undefined)."""
    compiled = {part: _compiled(templates[part], part == "html") for part in PARTS}
    rendered = {part: template.render(context) for part, template in compiled.items()}
    rendered["subject"] = " ".join(rendered["subject"].split())
    return rendered


def check(kind: str, templates: dict[str, str]) -> str | None:
    """Why these templates cannot be used for ``kind`` (syntax, sandbox, unknown variable)."""
    try:
        render_sources(templates, {name: SAMPLES[name] for name in KINDS[kind]})
    except TemplateSyntaxError as error:
        return f"{error.message} (line {error.lineno})"
    except SecurityError as error:
        return f"not allowed in a template: {error}"
    except UndefinedError as error:
        return f"{error.message}; the variables are {', '.join(KINDS[kind])}"
    except TemplateError as error:
        return str(error)
    except Exception as error:  # a template can raise anything; none of it may escape
        return f"it fails with sample data ({type(error).__name__}: {error})"[:500]
    return None


def build(kind: str, to: str, tenant: Tenant | None = None, **context) -> EmailMessage:
    """A ready-to-send message of notification ``kind`` for ``to``."""
    try:
        rendered = render_sources(sources(kind, tenant), context)
    except Exception:
        # An administrator's template that breaks on real data must not stop the mail:
        # send the built-in wording, and say so in the log.
        current_app.logger.exception("the %s template of %s failed; using the built-in one",
                                     kind, tenant.slug if tenant else "-")
        rendered = render_sources(builtin(kind), context)
    message = EmailMessage()
    message["From"] = sender_address(tenant)
    message["To"] = to
    message["Subject"] = rendered["subject"]
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=portal_host())
    # RFC 3834: tells auto-responders and vacation replies not to answer.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(rendered["text"])
    message.add_alternative(rendered["html"], subtype="html")
    return message


def sender_address(tenant: Tenant | None = None) -> str:
    """The tenant's own From address, else the gateway's."""
    if tenant is not None and tenant.mail_from:
        return tenant.mail_from
    return current_app.config["MAIL_FROM"] or f"postmaster@{portal_host()}"


def portal_host() -> str:
    return urlsplit(current_app.config["BASE_URL"]).hostname or "localhost"
