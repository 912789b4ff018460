"""Writing mail in the portal: new messages, replies and drafts, all through the gateway."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid

from sqlalchemy import func, select

from app.config import settings
from app.delivery import mail_templates
from app.domain import ingest, reading
from app.domain.routing import MODES
from app.extensions import db
from app.mail import rich_text, sanitize
from app.models import Draft, Message, Mode, Side, User
from app.words import N_, Words

_PART = r"[^@\s<>,;\"\x00-\x1f\x7f]+"  # no separator, quote or control character
_ADDRESS = re.compile(rf"^{_PART}@{_PART}\.{_PART}$")

# --- limits ----------------------------------------------------------------------------
# What one message written in the portal may hold. ``check`` applies them to sending and
# to drafts alike, so that a saved draft can be sent and nothing is ever cut short.

#: characters in the To field, and in the Cc field
MAX_ADDRESS_FIELD = 5_000
#: characters in one address: RFC 5321's 256-octet path less its angle brackets
MAX_ADDRESS = 254
#: addresses in To and Cc together: what every SMTP server must accept (RFC 5321 4.5.3.1.8)
MAX_RECIPIENTS = 100
#: characters in the subject: RFC 5322's longest line
MAX_SUBJECT = 998
#: characters of message text (a longer document goes as an attachment)
MAX_BODY = 500_000
#: characters of the editor's HTML kept as HTML; a longer one goes as its text alone, as
#: a recipient would be shown it (sanitizing costs more than linear time on dense markup)
MAX_HTML = reading.HTML_DISPLAY_LIMIT
#: drafts one person keeps: room for work in progress, not a store of documents
MAX_DRAFTS = 50

#: the composer's fields, as its form labels them, with the characters each may hold
FIELDS = {"to": (Words(N_("To")), MAX_ADDRESS_FIELD),
          "cc": (Words(N_("Cc")), MAX_ADDRESS_FIELD),
          "subject": (Words(N_("Subject")), MAX_SUBJECT),
          "body": (Words(N_("Message")), MAX_BODY)}

#: the refusal of a field holding what is not text
NOT_TEXT = N_("%(label)s holds characters that are not text (a control character such as "
              "NUL, or bytes that are not UTF-8). Remove them and try again.")

# Control characters other than tab and line breaks (PostgreSQL refuses NUL outright),
# lone surrogates, and U+FFFD, which the form parser puts where bytes were not UTF-8.
_NOT_TEXT = re.compile(r"[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffd]")


class ComposeRefused(ValueError):
    """The message cannot be sent as asked; ``words`` say why, for the person writing
    (str() is them in English; a page says them in its reader's language).

    ``field`` names the composer's field at fault (a key of ``FIELDS``), when there is one.
    """

    def __init__(self, words: Words, field: str | None = None) -> None:
        super().__init__(words)
        self.words, self.field = words, field


class DraftNotFound(LookupError):
    """No draft of this user has that id: another's, already sent, or deleted."""


@dataclass(frozen=True)
class Formatted:
    """Text written in the editor: its HTML, sanitized, and the plain text of that HTML."""

    html: str
    text: str


def formatted(html: str | None) -> Formatted | None:
    """What the editor sent, made safe by the sanitizer that cleans received mail; None
    when it sent nothing that shows (no editor, no script, or an empty editor) or more
    than MAX_HTML: then the text alone goes, as for a browser without script.

    The browser's HTML is never kept as it came: only the cleaned HTML and the text
    made from it, never the browser's own text, go any further.
    """
    if not html or not html.strip():
        return None
    if len(html) > MAX_HTML:
        return None
    if _NOT_TEXT.search(html):
        raise ComposeRefused(Words(NOT_TEXT, label=FIELDS["body"][0]), "body")
    clean = sanitize.clean_composed(html)
    text = rich_text.to_text(clean)
    return Formatted(clean, text) if text.strip() else None


def formatted_or_none(html: str | None) -> Formatted | None:
    """``formatted``, or None for what it refuses: to show a form again as it was sent."""
    try:
        return formatted(html)
    except ComposeRefused:
        return None


@dataclass
class Upload:
    filename: str
    content_type: str
    data: bytes


def attachment_limit() -> int:
    """How many bytes of files fit in one message once base64 has grown them by a third."""
    return settings().max_message_bytes * 7 // 10


def check(*, to: str, cc: str, subject: str, body: str) -> None:
    """Refuse, with ComposeRefused, what a message written in the portal may not hold.

    Half-typed addresses pass (a draft may hold them); ``addresses`` checks them at sending.
    """
    values = {"to": to, "cc": cc, "subject": subject, "body": body}
    for name, (label, most) in FIELDS.items():
        if _NOT_TEXT.search(values[name]):
            raise ComposeRefused(Words(NOT_TEXT, label=label), name)
        if len(values[name]) > most:
            raise ComposeRefused(Words(
                N_("%(label)s is too long: %(count)s characters, the most is %(most)s."),
                label=label, count=len(values[name]), most=most), name)
    everyone = [*_entries(to, "to"), *_entries(cc, "cc")]
    if (count := len(dict.fromkeys(everyone))) > MAX_RECIPIENTS:
        raise ComposeRefused(Words(
            N_("A message can go to at most %(most)s recipients; this one lists %(count)s. "
               "Send it as several messages."), most=MAX_RECIPIENTS, count=count))


def _entries(text: str, field: str | None = None) -> list[str]:
    """What a To or Cc field lists (comma, semicolon or space separated), each no longer
    than an address can be."""
    found = [a.strip().strip("<>").lower() for a in re.split(r"[,;\s]+", text or "")]
    found = [a for a in found if a]
    if too_long := next((a for a in found if len(a) > MAX_ADDRESS), None):
        raise ComposeRefused(Words(
            N_("An address can be at most %(most)s characters; one has %(count)s: %(start)s…"),
            most=MAX_ADDRESS, count=len(too_long), start=too_long[:40]), field)
    return found


def addresses(text: str, field: str | None = None) -> list[str]:
    """The addresses in a To or Cc field (comma, semicolon or space separated)."""
    found = _entries(text, field)
    wrong = [a for a in found if not _ADDRESS.match(a)]
    if wrong:
        raise ComposeRefused(Words(N_("Not an email address: %(addresses)s"),
                                   addresses=", ".join(wrong)), field)
    return list(dict.fromkeys(found))


def submit(
    user: User,
    *,
    to: list[str],
    cc: list[str],
    subject: str,
    text: str,
    uploads: list[Upload],
    mode: str,
    client_address: str | None,
    headers: dict[str, str] | None = None,
    html: str | None = None,
) -> Message:
    """Build the MIME of a message written in the portal and hand it to the gateway.

    ``mode`` is the CCM mode to ask for; the caller has already decided whether this
    user may choose one. With ``html`` (already sanitized: ``formatted``) the text and
    the HTML go as multipart/alternative, the text first. The caller commits.
    """
    if mode not in MODES:
        raise ComposeRefused(Words(N_("Choose a CCM mode from the list.")))
    everyone = list(dict.fromkeys([*to, *cc]))
    if not everyone:
        raise ComposeRefused(Words(N_("Add at least one recipient.")))
    message = EmailMessage()
    message["From"] = user.email
    message["To"] = ", ".join(to or cc[:1])
    if rest := [a for a in cc if a not in to]:
        message["Cc"] = ", ".join(rest)
    message["Subject"] = " ".join(subject.split())
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=mail_templates.portal_host())
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(text)
    if html is not None:
        message.add_alternative(_HTML_PAGE.format(body=html), subtype="html")
    for upload in uploads:
        maintype, _, subtype = upload.content_type.partition("/")
        message.add_attachment(
            upload.data,
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=upload.filename,
        )
    raw = message.as_bytes(policy=SMTP)
    if len(raw) > settings().max_message_bytes:
        raise ComposeRefused(Words(N_(
            "The message with its attachments is larger than this portal "
            "accepts. Remove an attachment and try again.")))
    return ingest.receive(
        raw,
        user.email,
        everyone,
        client_address=client_address or "portal",
        tls=settings().https,
        mode=mode,
        tenant=user.tenant,
        via="portal",
    )


#: the sanitized editor HTML as a document of its own
_HTML_PAGE = ('<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>\n'
              "<body>{body}</body></html>\n")


def send_new(
    user: User,
    *,
    to: str,
    cc: str,
    subject: str,
    body: str,
    uploads: list[Upload],
    mode: str | None,
    client_address: str | None,
    body_html: str | None = None,
) -> Message:
    """Send a new message, in the mode ``mode_for`` allows, within the composer's limits.

    With ``body_html`` from the editor, its sanitized HTML and the text made from it are
    sent, and ``body`` (the browser's text) is not used.
    """
    rich = formatted(body_html)
    body = rich.text if rich else body
    check(to=to, cc=cc, subject=subject, body=body)
    chosen = mode_for(user, mode)
    return submit(
        user,
        to=addresses(to, "to"),
        cc=addresses(cc, "cc"),
        subject=subject,
        text=body,
        uploads=uploads,
        mode=chosen,
        client_address=client_address,
        html=rich.html if rich else None,
    )


def mode_for(user: User, asked: str | None) -> str:
    """The CCM mode a message written in the portal goes with. An external recipient's
    reply always goes by CCM to external parties; an internal user chooses only with
    the permission, else "off" (the tenant's policies still apply)."""
    if user.kind != Side.INTERNAL:
        return Mode.EXTERNAL
    return asked if user.may_use_portal_ccm and asked else Mode.OFF


# --- drafts ----------------------------------------------------------------------------

#: what ``secrets.token_urlsafe(16)`` makes; anything else names no draft
_DRAFT_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def drafts(user: User) -> list[Draft]:
    return list(
        db.session.scalars(
            select(Draft).where(Draft.user_id == user.id).order_by(Draft.updated_at.desc())
        )
    )


def draft_for(user: User, public_id: str | None) -> Draft | None:
    """The user's own draft ``public_id``, or None: nobody else's is ever found."""
    if not public_id or not _DRAFT_ID.match(public_id):
        return None
    return db.session.scalar(
        select(Draft).where(Draft.user_id == user.id, Draft.public_id == public_id)
    )


def save_draft(
    user: User,
    public_id: str | None,
    *,
    to: str,
    cc: str,
    subject: str,
    body: str,
    mode: str | None,
    body_html: str | None = None,
) -> Draft:
    """Update the user's draft ``public_id``, or without one start a new draft; the
    caller commits.

    Raises DraftNotFound for an id that is not one of the user's drafts, and
    ComposeRefused for what could not be sent either or for a draft beyond MAX_DRAFTS;
    either way nothing has changed. Formatting is kept sanitized, as it would be sent.
    """
    draft = draft_for(user, public_id) if public_id else None
    if public_id and draft is None:
        raise DraftNotFound(public_id)
    rich = formatted(body_html)
    body = rich.text if rich else body
    check(to=to, cc=cc, subject=subject, body=body)
    if draft is None:
        if _draft_count(user) >= MAX_DRAFTS:
            raise ComposeRefused(Words(N_(
                "You already keep %(most)s drafts, the most there is room for. Send or "
                "delete one you no longer need (under Drafts), and this one is saved as you "
                "type."), most=MAX_DRAFTS))
        draft = Draft(user=user, public_id=secrets.token_urlsafe(16))
        db.session.add(draft)
    draft.to, draft.cc, draft.subject, draft.body = to, cc, subject, body
    draft.body_html = rich.html if rich else ""
    draft.mode = mode if user.may_use_portal_ccm and mode in MODES else Mode.OFF
    return draft


def _draft_count(user: User) -> int:
    return db.session.scalar(select(func.count()).where(Draft.user_id == user.id))


def discard_draft(user: User, public_id: str | None) -> bool:
    """Delete the user's draft ``public_id``; False when they have no such draft."""
    draft = draft_for(user, public_id)
    if draft is not None:
        db.session.delete(draft)
    return draft is not None
