"""Replies from the portal: only to the people on the message, through the gateway."""

from __future__ import annotations

from email.message import EmailMessage
from html import escape

from app import clock
from app.domain import composing, reading
from app.domain.delivery_events import record
from app.mail import mime
from app.models import Recipient, User
from app.words import N_, Words


def parties(copy: Recipient) -> list[str]:
    """Everyone a reply may go to: the original sender and To/Cc, less the replier."""
    return _parties(copy, _headers(copy))


def _headers(copy: Recipient) -> EmailMessage:
    """The original's headers; none once its content is purged."""
    return reading.headers(copy.message) or mime.parse_message(b"")


def _parties(copy: Recipient, message: EmailMessage) -> list[str]:
    sender = reading.addresses(message, "From") or [copy.message.mail_from.lower()]
    everyone = [*sender[:1], *reading.addresses(message, "To"),
                *reading.addresses(message, "Cc")]
    own = copy.user.email if copy.user else copy.address.lower()
    return [a for a in dict.fromkeys(everyone) if a != own]


def defaults(copy: Recipient, *, reply_all: bool) -> tuple[list[str], list[str]]:
    """(To, Cc) as the reply form first shows them."""
    allowed = parties(copy)
    if not allowed:
        return [], []
    return allowed[:1], allowed[1:] if reply_all else []


#: the most of the original a reply quotes, in characters
QUOTE_LIMIT = 100_000
#: the line before the quoted original, as mail programs write it; the reply form gives
#: it in the replier's language (app/web/inbox/routes.py), ending with ":" in each
#: (conversations.split_quote folds the quote by it)
QUOTE_INTRO = "On %(when)s, %(sender)s wrote:"


def quoted(copy: Recipient) -> str:
    """The original quoted as mail programs quote it. The reply form starts with it in the
    text, where the replier may edit or remove it; nothing adds it again on sending."""
    when, sender, original = _original(copy)
    return _in_lines(QUOTE_INTRO % {"when": when, "sender": sender}, original)


def _in_lines(intro: str, original: list[str]) -> str:
    lines = "\n".join(f"> {line}".rstrip() for line in original)
    return f"{intro}\n{lines}\n"


def _original(copy: Recipient, language: str = "en") -> tuple[str, str, list[str]]:
    """The original's date (written in ``language``), its sender, and the lines of its
    text."""
    readable = reading.read_message(copy.message)
    text = reading.body_text(readable).strip()
    if len(text) > QUOTE_LIMIT:  # the reply's text has a limit too (app/web/inbox/forms.py)
        text = text[:QUOTE_LIMIT].rstrip() + "\n[…]"
    when = clock.written_date(readable.date, copy.message.received_at,
                              copy.message.tenant.time_zone, language)
    return when, readable.sender or copy.message.mail_from, text.splitlines()


def drafts(copy: Recipient, intro: str = QUOTE_INTRO,
           language: str = "en") -> tuple[str, str]:
    """What the reply starts as, the original read once: its text (room to write above
    the original quoted in "> " lines, after ``intro`` filled: "On <date>, <sender>
    wrote:", its date in ``language``) and its HTML for the editor (the same, the
    original in a <blockquote>; the date and sender isolated, so an address keeps its
    order in a right-to-left sentence)."""
    when, sender, original = _original(copy, language)
    intro_html = escape(intro) % {"when": f"<bdi>{escape(when)}</bdi>",
                                  "sender": f"<bdi>{escape(sender)}</bdi>"}
    quote = "<br>".join(escape(line) for line in original)
    return (f"\n\n{_in_lines(intro % {'when': when, 'sender': sender}, original)}",
            f"<div><br></div><div><br></div><div>{intro_html}</div>"
            f"<blockquote>{quote}</blockquote>")


def send(copy: Recipient, user: User, *, to: list[str], cc: list[str], body: str,
         uploads: list[composing.Upload], mode: str, client_address: str | None,
         body_html: str | None = None) -> None:
    """Send a reply to ``copy``'s message through the gateway; the caller commits. With
    ``body_html`` from the editor, its sanitized HTML and its text go instead of ``body``."""
    rich = composing.formatted(body_html)
    original_headers = _headers(copy)
    allowed = set(_parties(copy, original_headers))
    chosen = list(dict.fromkeys(a.strip().lower() for a in [*to, *cc] if a.strip()))
    strangers = [a for a in chosen if a not in allowed]
    if strangers:
        raise composing.ComposeRefused(Words(N_(
            "A reply can only go to the people on the message; %(addresses)s is not one of "
            "them."), addresses=", ".join(strangers)))
    if not chosen:
        raise composing.ComposeRefused(Words(N_("Choose at least one person to reply to.")))
    mode = composing.mode_for(user, mode)
    original = copy.message
    subject = original.subject or ""
    headers = {}
    if original.message_id_header:
        references = mime.header(original_headers, "References")
        headers = {"In-Reply-To": original.message_id_header,
                   "References": f"{references} {original.message_id_header}".strip()}
    wanted_to = {a.strip().lower() for a in to}
    to_line = [a for a in chosen if a in wanted_to] or chosen[:1]
    composing.submit(
        user, to=to_line, cc=[a for a in chosen if a not in to_line],
        subject=subject if subject.lower().startswith("re:") else f"Re: {subject}",
        text=rich.text if rich else body.rstrip() + "\n", uploads=uploads, mode=mode,
        client_address=client_address, headers=headers, html=rich.html if rich else None)
    copy.replied_at = clock.utcnow()
    record(copy, "replied", f"Replied by the recipient to {', '.join(chosen)}")
