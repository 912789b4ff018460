"""Generated mail: rendered from templates in Jinja's sandbox and built as MIME.

Every template is rendered sandboxed, whether built in or (later) edited by an
administrator, so the same renderer serves both. Each kind of notification has three
templates under ``app/templates/email``: ``KIND.subject.txt``, ``KIND.txt`` and
``KIND.html``.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import urlsplit

from flask import current_app
from jinja2 import PackageLoader, select_autoescape
from jinja2.sandbox import ImmutableSandboxedEnvironment

_environment = ImmutableSandboxedEnvironment(
    loader=PackageLoader("app", "templates/email"),
    autoescape=select_autoescape(["html"]),
    keep_trailing_newline=True,
)


def render(kind: str, **context) -> tuple[str, str, str]:
    """(subject, text, html) of notification ``kind`` with ``context``."""
    subject = _environment.get_template(f"{kind}.subject.txt").render(context)
    text = _environment.get_template(f"{kind}.txt").render(context)
    html = _environment.get_template(f"{kind}.html").render(context)
    return " ".join(subject.split()), text, html


def build(kind: str, to: str, **context) -> EmailMessage:
    """A ready-to-send message of notification ``kind`` for ``to``."""
    subject, text, html = render(kind, **context)
    message = EmailMessage()
    message["From"] = sender_address()
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=_portal_host())
    # RFC 3834: tells auto-responders and vacation replies not to answer.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def sender_address() -> str:
    return current_app.config["MAIL_FROM"] or f"postmaster@{_portal_host()}"


def _portal_host() -> str:
    return urlsplit(current_app.config["BASE_URL"]).hostname or "localhost"
