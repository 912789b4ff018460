"""The maildir outbox, read back for a person: what the gateway "sent" where no mail
server is set up (``CCM_OUTBOUND=maildir:PATH``, the default ``instance/outbox``).

A maildir holds each message as it would have gone out: quoted-printable and encoded
words a person cannot read (a reset link broken over two lines), and no envelope in
older copies. :func:`listing` and :func:`show` decode them; each copy names its envelope
recipient in ``Delivered-To`` (app/delivery/transport.py writes it, as Postfix's local
delivery does), and copies written before that fall back to ``To``.
"""

from __future__ import annotations

import mailbox
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from app.mail import mime


class NotFound(LookupError):
    """No such outbox, or no such message in it."""


@dataclass(frozen=True)
class Entry:
    """One message in the outbox, as ``ccm outbox list`` shows it."""

    number: int  # its place, oldest first: 1, 2, ...
    key: str  # the maildir's own name for it
    written_at: datetime  # UTC, when it was written to the outbox
    recipient: str  # the envelope recipient
    subject: str


def path_of(outbound: str, internal_relay: str, instance_path: str) -> str:
    """The outbox to read: CCM_OUTBOUND's maildir, else CCM_INTERNAL_RELAY's, else the
    default ``instance/outbox``."""
    for target in (outbound, internal_relay):
        if target and target.startswith("maildir:"):
            return target.removeprefix("maildir:")
    return os.path.join(instance_path, "outbox")


def listing(path: str) -> list[Entry]:
    """Every message in the outbox at ``path``, oldest first."""
    box = _box(path)
    entries = []
    for key in box.iterkeys():
        message = _parsed(box, key)
        entries.append((_written_at(box, key), key, message))
    entries.sort(key=lambda entry: (entry[0], _numbers(entry[1])))
    return [Entry(number, key, written_at, recipient(message), _header(message, "Subject"))
            for number, (written_at, key, message) in enumerate(entries, start=1)]


def show(path: str, wanted: str) -> str:
    """The message ``wanted`` (its number in :func:`listing`, or its maildir key): its
    headers decoded, then its text decoded (the HTML's text when it has no plain part)."""
    entries = listing(path)
    chosen = next((e for e in entries if wanted in (str(e.number), e.key)), None)
    if chosen is None:
        raise NotFound(f"no message {wanted!r} in the outbox {path} "
                       f"({len(entries)} there; see ccm outbox list)")
    message = _parsed(_box(path), chosen.key)
    lines = [f"{name}: {_unfolded(value)}" for name, value in _headers(message)]
    return "\n".join([*lines, "", body_text(message)]).rstrip("\n") + "\n"


def recipient(message: EmailMessage) -> str:
    """Who a copy was for: the envelope recipient, else what ``To`` says."""
    for name in ("Delivered-To", "X-Original-To", "To"):
        if message[name]:
            return _header(message, name)
    return "-"


def body_text(message: EmailMessage) -> str:
    """The message's text as a person reads it (quoted-printable and base64 undone)."""
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        kinds = ", ".join(p.get_content_type() for p in message.walk())
        return f"(no text part: {kinds})"
    text = mime.part_text(part).replace("\r\n", "\n")
    if part.get_content_type() == "text/html":
        text = mime.html_to_text(text)
    attachments = [p.get_filename() or p.get_content_type() for p in message.iter_attachments()]
    if attachments:
        text = text.rstrip("\n") + "\n\n" + "\n".join(f"[attached: {a}]" for a in attachments)
    return text


def _numbers(key: str) -> tuple[int, ...]:
    """A maildir key ("SECONDS.M<microseconds>P<pid>Q<counter>...") as numbers: within
    a second, "M99999" comes before "M100000"."""
    return tuple(int(n) for n in re.findall(r"\d+", key)[:4])


def _box(path: str) -> mailbox.Maildir:
    if not os.path.isdir(os.path.join(path, "new")) and not os.path.isdir(
            os.path.join(path, "cur")):
        raise NotFound(f"no maildir outbox at {path}")
    return mailbox.Maildir(path, factory=None, create=False)


def _parsed(box: mailbox.Maildir, key: str) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(box.get_bytes(key))


def _written_at(box: mailbox.Maildir, key: str) -> datetime:
    return datetime.fromtimestamp(box.get_message(key).get_date(), UTC).replace(tzinfo=None)


def _headers(message: EmailMessage) -> list[tuple[str, str]]:
    decoded = []
    for name, raw in message.raw_items():
        try:
            decoded.append((name, str(message.policy.header_fetch_parse(name, raw))))
        except mime.DECODE_ERRORS:
            decoded.append((name, raw))  # as written, rather than nothing
    return decoded


def _header(message: EmailMessage, name: str) -> str:
    try:
        return _unfolded(str(message[name] or ""))
    except mime.DECODE_ERRORS:
        return "(unreadable)"


def _unfolded(value: str) -> str:
    return " ".join(value.split())
