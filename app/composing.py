"""Writing mail in the portal: new messages, replies and drafts, all through the gateway."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid

from flask import current_app
from sqlalchemy import select

from . import notifications
from .extensions import db
from .gateway import ingest
from .gateway.policies import MODES
from .models import Draft, Message, User

_ADDRESS = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+$")


class ComposeRefused(ValueError):
    """The message cannot be sent as asked; the text says why, for the person writing."""


@dataclass
class Upload:
    filename: str
    content_type: str
    data: bytes


def attachment_limit() -> int:
    """How many bytes of files fit in one message once base64 has grown them by a third."""
    return current_app.config["MAX_MESSAGE_BYTES"] * 7 // 10


def addresses(text: str) -> list[str]:
    """The addresses in a To or Cc field (comma, semicolon or space separated)."""
    found = [a.strip().strip("<>").lower() for a in re.split(r"[,;\s]+", text or "")]
    found = [a for a in found if a]
    wrong = [a for a in found if not _ADDRESS.match(a)]
    if wrong:
        raise ComposeRefused(f"Not an email address: {', '.join(wrong)}")
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
) -> Message:
    """Build the MIME of a message written in the portal and hand it to the gateway.

    ``mode`` is the CCM mode to ask for; the caller has already decided whether this
    user may choose one. The caller commits.
    """
    if mode not in MODES:
        raise ComposeRefused("Choose a CCM mode from the list.")
    everyone = list(dict.fromkeys([*to, *cc]))
    if not everyone:
        raise ComposeRefused("Add at least one recipient.")
    message = EmailMessage()
    message["From"] = user.email
    message["To"] = ", ".join(to or cc[:1])
    if rest := [a for a in cc if a not in to]:
        message["Cc"] = ", ".join(rest)
    message["Subject"] = " ".join(subject.split())
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=notifications.portal_host())
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(text)
    for upload in uploads:
        maintype, _, subtype = upload.content_type.partition("/")
        message.add_attachment(
            upload.data,
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=upload.filename,
        )
    raw = message.as_bytes(policy=SMTP)
    if len(raw) > current_app.config["MAX_MESSAGE_BYTES"]:
        raise ComposeRefused(
            "The message with its attachments is larger than this portal "
            "accepts. Remove an attachment and try again."
        )
    return ingest.receive(
        raw,
        user.email,
        everyone,
        client_address=client_address or "portal",
        tls=current_app.config["HTTPS"],
        mode=mode,
        tenant=user.tenant,
    )


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
) -> Message:
    """Send a new message, in the mode ``mode_for`` allows."""
    chosen = mode_for(user, mode)
    return submit(
        user,
        to=addresses(to),
        cc=addresses(cc),
        subject=subject,
        text=body,
        uploads=uploads,
        mode=chosen,
        client_address=client_address,
    )


def mode_for(user: User, asked: str | None) -> str:
    """The CCM mode a message written in the portal goes with. An external recipient's
    reply always goes by CCM to external parties; an internal user chooses only with
    the permission, else "off" (the tenant's policies still apply)."""
    if user.kind != "internal":
        return "external"
    return asked if user.may_use_portal_ccm and asked else "off"


# --- drafts ----------------------------------------------------------------------------


def drafts(user: User) -> list[Draft]:
    return list(
        db.session.scalars(
            select(Draft).where(Draft.user_id == user.id).order_by(Draft.updated_at.desc())
        )
    )


def draft_for(user: User, public_id: str | None) -> Draft | None:
    if not public_id:
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
) -> Draft:
    """Create or update the user's draft; the caller commits."""
    draft = draft_for(user, public_id)
    if draft is None:
        draft = Draft(user=user, public_id=secrets.token_urlsafe(16))
        db.session.add(draft)
    draft.to, draft.cc, draft.subject, draft.body = to[:5000], cc[:5000], subject[:998], body
    draft.mode = mode if user.may_use_portal_ccm and mode in MODES else "off"
    return draft


def discard_draft(user: User, public_id: str | None) -> None:
    draft = draft_for(user, public_id)
    if draft is not None:
        db.session.delete(draft)
