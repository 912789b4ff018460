"""Replies from the portal: only to the people on the message, through the gateway."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid

from flask import current_app

from . import notifications, reading
from .clock import utcnow
from .gateway import ingest, mime
from .gateway.tracking import record
from .models import Recipient, User


class ReplyRefused(ValueError):
    """The reply cannot be sent as asked; the message says why, for the person replying."""


@dataclass
class Upload:
    filename: str
    content_type: str
    data: bytes


def parties(copy: Recipient) -> list[str]:
    """Everyone a reply may go to: the original sender and To/Cc, less the replier."""
    message = mime.parse_message(copy.message.raw or b"")
    sender = reading.addresses(message, "From") or [copy.message.mail_from.lower()]
    everyone = [*sender[:1], *reading.addresses(message, "To"),
                *reading.addresses(message, "Cc")]
    own = copy.user.email if copy.user else copy.address
    return [a for a in dict.fromkeys(everyone) if a != own]


def defaults(copy: Recipient, *, reply_all: bool) -> tuple[list[str], list[str]]:
    """(To, Cc) as the reply form first shows them."""
    allowed = parties(copy)
    if not allowed:
        return [], []
    return allowed[:1], allowed[1:] if reply_all else []


def quoted(copy: Recipient) -> str:
    readable = reading.read(copy.message.raw or b"")
    text = readable.text if readable.text is not None else mime.html_to_text(readable.html)
    lines = "\n".join(f"> {line}" for line in text.strip().splitlines())
    return f"On {readable.date}, {readable.sender} wrote:\n{lines}\n"


def send(copy: Recipient, user: User, *, to: list[str], cc: list[str], body: str,
         uploads: list[Upload], mode: str, client_address: str | None) -> None:
    """Send a reply to ``copy``'s message through the gateway; the caller commits."""
    allowed = set(parties(copy))
    chosen = list(dict.fromkeys(a.strip().lower() for a in [*to, *cc] if a.strip()))
    strangers = [a for a in chosen if a not in allowed]
    if strangers:
        raise ReplyRefused(
            f"A reply can only go to the people on the message; {', '.join(strangers)} "
            "is not one of them.")
    if not chosen:
        raise ReplyRefused("Choose at least one person to reply to.")
    if user.kind != "internal":
        mode = "external"  # external recipients have no choice: CCM for external parties
    original = copy.message
    reply = EmailMessage()
    reply["From"] = user.email
    wanted_to = {a.strip().lower() for a in to}
    to_line = [a for a in chosen if a in wanted_to] or chosen[:1]
    cc_line = [a for a in chosen if a not in to_line]
    reply["To"] = ", ".join(to_line)
    if cc_line:
        reply["Cc"] = ", ".join(cc_line)
    subject = original.subject or ""
    reply["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}"
    reply["Date"] = formatdate(localtime=False)
    reply["Message-ID"] = make_msgid(domain=notifications.portal_host())
    if original.message_id_header:
        reply["In-Reply-To"] = original.message_id_header
        references = mime.header(mime.parse_message(original.raw or b""), "References")
        reply["References"] = f"{references} {original.message_id_header}".strip()
    reply.set_content(f"{body.rstrip()}\n\n{quoted(copy)}")
    for upload in uploads:
        maintype, _, subtype = upload.content_type.partition("/")
        reply.add_attachment(upload.data, maintype=maintype or "application",
                             subtype=subtype or "octet-stream", filename=upload.filename)
    raw = reply.as_bytes(policy=SMTP)
    if len(raw) > current_app.config["MAX_MESSAGE_BYTES"]:
        raise ReplyRefused("The reply with its attachments is larger than this portal "
                           "accepts. Remove an attachment and try again.")
    ingest.receive(raw, user.email, chosen, client_address=client_address or "portal",
                   tls=current_app.config["HTTPS"], mode=mode, tenant=original.tenant)
    copy.replied_at = utcnow()
    record(copy, "replied", f"Replied by the recipient to {', '.join(chosen)}")
