"""A stored message as the portal shows it: headers, one body, attachments, inline images.

Parts are numbered in the order ``email``'s ``walk()`` meets them, so a number names the
same part on every request. Nothing here raises on a malformed message: what cannot be
understood is shown as text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import getaddresses

from werkzeug.utils import secure_filename

from .gateway import mime


@dataclass
class Part:
    number: int
    filename: str
    content_type: str
    size: int
    content_id: str | None = None


@dataclass
class Readable:
    subject: str
    sender: str
    to: list[str]
    cc: list[str]
    date: str
    html: str | None = None
    text: str | None = None
    attachments: list[Part] = field(default_factory=list)
    inline: dict[str, Part] = field(default_factory=dict)


def leaves(message: EmailMessage) -> list[EmailMessage]:
    """The non-multipart parts, in walk order: index = part number."""
    return [part for part in message.walk() if not part.is_multipart()]


def read(raw: bytes) -> Readable:
    message = mime.parse_message(raw)
    readable = Readable(
        subject=mime.header(message, "Subject"),
        sender=mime.header(message, "From"),
        to=addresses(message, "To"),
        cc=addresses(message, "Cc"),
        date=mime.header(message, "Date"),
    )
    try:
        body = message.get_body(preferencelist=("html", "plain"))
    except mime.DECODE_ERRORS:
        body = None
    parts = leaves(message)
    alternatives = _alternatives_of(body, message)
    for number, part in enumerate(parts):
        if part is body:
            content = mime.part_text(part)
            if part.get_content_subtype() == "html":
                readable.html = content
            else:
                readable.text = content
            continue
        if part in alternatives:
            continue
        described = Part(number, filename(part, number), part.get_content_type(),
                         len(part.get_payload(decode=True) or b""),
                         _content_id(part))
        if described.content_id and part.get_content_maintype() == "image" and \
                part.get_content_disposition() != "attachment":
            readable.inline[described.content_id] = described
        else:
            readable.attachments.append(described)
    if readable.html is None and readable.text is None:
        readable.text = _fallback_text(raw, message, body)
    return readable


def part_bytes(raw: bytes, number: int) -> tuple[bytes, str, str] | None:
    """(content, content type, safe file name) of part ``number``, or None."""
    parts = leaves(mime.parse_message(raw))
    if not 0 <= number < len(parts):
        return None
    part = parts[number]
    return (part.get_payload(decode=True) or b"", part.get_content_type(),
            filename(part, number))


def addresses(message: EmailMessage, name: str) -> list[str]:
    """The addresses in header ``name``, lower-cased, in order."""
    try:
        values = message.get_all(name, [])
        pairs = getaddresses([str(v) for v in values])
    except mime.DECODE_ERRORS:
        return []
    return [address.lower() for _, address in pairs if "@" in address]


def filename(part: EmailMessage, number: int) -> str:
    """A file name that is safe on any system, whatever the sender wrote."""
    try:
        given = part.get_filename() or ""
    except mime.DECODE_ERRORS:
        given = ""
    safe = secure_filename(given)[:120]
    if not safe or safe.startswith("."):
        extension = {"text/plain": ".txt", "text/html": ".html", "image/png": ".png",
                     "image/jpeg": ".jpg", "application/pdf": ".pdf"}.get(
            part.get_content_type(), ".bin")
        safe = f"part-{number}{extension}"
    return safe


def _content_id(part: EmailMessage) -> str | None:
    value = mime.header(part, "Content-ID").strip().strip("<>")
    return value or None


def _alternatives_of(body: EmailMessage | None, message: EmailMessage) -> set:
    """The other versions of the body: the text parts of the multipart/alternative that
    holds it (the plain text beside the HTML, say, even when the HTML sits in a
    multipart/related with its images)."""
    if body is None:
        return set()
    for part in message.walk():
        if part.get_content_type() != "multipart/alternative":
            continue
        texts = [leaf for leaf in part.walk()
                 if not leaf.is_multipart() and leaf.get_content_maintype() == "text"
                 and leaf.get_content_disposition() != "attachment"]
        if any(leaf is body for leaf in texts):
            return {leaf for leaf in texts if leaf is not body}
    return set()


def _fallback_text(raw: bytes, message: EmailMessage, body) -> str:
    """A safe text view of a message whose body could not be found or decoded."""
    if message.is_multipart():
        return "(This message has no readable text.)"
    head_end = re.search(rb"\r?\n\r?\n", raw)
    content = raw[head_end.end():] if head_end else raw
    return content.decode("utf-8", errors="replace")
