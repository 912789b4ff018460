"""A stored message as the portal shows it: headers, one body, attachments, inline images.

Parts are numbered in the order ``email``'s ``walk()`` meets them, so a number names the
same part on every request. Nothing here raises on a malformed message: what cannot be
understood is shown as text.

A message with a part index (app/mail/parts.py) is read slice by slice from the
database: the page reads its headers and its body's part, a download streams one part;
a message without one is parsed whole, as it always was.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import getaddresses

from sqlalchemy import LargeBinary, func, select

from app.extensions import db
from app.mail import decoding, filenames, mime, parts, rich_text, sanitize
from app.models import Message

#: how much of a part a download reads from the database at a time
CHUNK = 2**20
#: a larger HTML body is shown as its text: sanitizing costs more than linear time on
#: some markup (a quarter of a megabyte of table rows took seconds a view)
HTML_DISPLAY_LIMIT = 256 * 1024


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
    #: the body was HTML too large to show as such (HTML_DISPLAY_LIMIT): ``text`` is its text
    html_as_text: bool = False
    attachments: list[Part] = field(default_factory=list)
    inline: dict[str, Part] = field(default_factory=dict)


leaves = parts.leaves


def read(raw: bytes) -> Readable:
    """The message page's content of ``raw``, parsed whole."""
    message = mime.parse_message(raw)

    def size(number: int, part: EmailMessage) -> int:
        return len(part.get_payload(decode=True) or b"")

    return _readable(message, size, lambda number, part: None, lambda: _raw_body(raw))


def body_text(readable: Readable) -> str:
    """The body as text, for quoting and conversations: an HTML body as its text part
    would say it (sanitized first; lists, links and quotes kept readable)."""
    return readable.text if readable.text is not None else \
        rich_text.html_as_text(readable.html)


def read_message(message: Message) -> Readable:
    """The message page's content of a stored message, read through its part index."""
    index = parts.Index.from_json(message.parts)
    if index is None:
        return read(message.raw or b"")
    return read_indexed(index, Slices(message.id).fetch)


def headers(message: Message) -> EmailMessage | None:
    """A stored message parsed for its headers (with its parts' headers; their bodies are
    empty when it has a part index); None once its content is purged."""
    if message.purged_at is not None:
        return None
    index = parts.Index.from_json(message.parts)
    if index is not None:
        return index.skeleton(Slices(message.id).fetch)
    return None if message.raw is None else mime.parse_message(message.raw)


def read_indexed(index: parts.Index,
                 fetch: Callable[[list[tuple[int, int]]], list[bytes]]) -> Readable:
    """What ``read`` gives, from the skeleton and the body's slice only."""
    skeleton = index.skeleton(fetch)

    def hydrate(number: int, part: EmailMessage) -> None:
        leaf = index.leaves[number]
        parts.hydrate(part, fetch([(leaf.start, leaf.end)])[0])

    def raw_body() -> bytes:
        leaf = index.leaves[0]
        return fetch([(leaf.start, leaf.end)])[0]

    return _readable(skeleton, lambda number, part: index.leaves[number].size, hydrate,
                     raw_body)


def _readable(message: EmailMessage, size: Callable[[int, EmailMessage], int],
              hydrate: Callable[[int, EmailMessage], None],
              raw_body: Callable[[], bytes]) -> Readable:
    readable = Readable(
        subject=mime.header(message, "Subject"),
        sender=mime.header(message, "From"),
        to=addresses(message, "To"),
        cc=addresses(message, "Cc"),
        date=mime.header(message, "Date"),
    )
    try:
        body = message.get_body(preferencelist=("html", "plain"))
    except mime.DECODE_ERRORS as error:
        decoding.fall_back(error, "the structure of a message")
        body = None
    alternatives = _alternatives_of(body, message)
    for number, part in enumerate(leaves(message)):
        if part is body:
            hydrate(number, part)
            content = mime.part_text(part)
            if part.get_content_subtype() != "html":
                readable.text = content
            elif len(content) > HTML_DISPLAY_LIMIT:
                readable.text = sanitize.visible_text(content, large=True)
                readable.html_as_text = True
            else:
                readable.html = content
            continue
        if part in alternatives:
            continue
        described = Part(number, filename(part, number), part.get_content_type(),
                         size(number, part), _content_id(part))
        if described.content_id and part.get_content_maintype() == "image" and \
                part.get_content_disposition() != "attachment":
            readable.inline[described.content_id] = described
        else:
            readable.attachments.append(described)
    if readable.html is None and readable.text is None:
        readable.text = _fallback_text(raw_body, message)
    return readable


def part_bytes(raw: bytes, number: int) -> tuple[bytes, str, str] | None:
    """(content, content type, safe file name) of part ``number``, or None."""
    found = leaves(mime.parse_message(raw))
    if not 0 <= number < len(found):
        return None
    part = found[number]
    return (part.get_payload(decode=True) or b"", part.get_content_type(),
            filename(part, number))


def download(message: Message, number: int
             ) -> tuple[bytes | Iterator[bytes], int, str, str] | None:
    """(content, its size, content type, safe file name) of part ``number``, or None.

    With a part index only that part is read; valid base64 is decoded slice by slice as
    it is sent, so a large attachment is never whole in memory.
    """
    index = parts.Index.from_json(message.parts)
    if index is None:
        found = part_bytes(message.raw or b"", number)
        return None if found is None else (found[0], len(found[0]), *found[1:])
    if not 0 <= number < len(index.leaves):
        return None
    source = Slices(message.id)
    part = leaves(index.skeleton(source.fetch))[number]
    leaf = index.leaves[number]
    if leaf.base64 and leaf.end - leaf.start > CHUNK:
        content = parts.base64_chunks(source.stream(leaf.start, leaf.end))
    elif leaf.base64:
        content = b"".join(parts.base64_chunks(iter(source.fetch([(leaf.start, leaf.end)]))))
    else:
        parts.hydrate(part, source.fetch([(leaf.start, leaf.end)])[0])
        content = part.get_payload(decode=True) or b""
    return content, leaf.size, part.get_content_type(), filename(part, number)


class Slices:
    """Byte ranges of one stored message's raw MIME, read from the database.

    SQLite reads them with incremental blob I/O (its ``substr`` would load the whole
    value for every range); other databases with ``substr``. A purged message reads as
    empty.
    """

    def __init__(self, message_id: int):
        self.message_id = message_id

    def fetch(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        """The bytes of each of ``ranges``, in the request's transaction."""
        return self._fetch(db.session.connection(), ranges)

    def stream(self, start: int, end: int) -> Iterator[bytes]:
        """``raw[start:end]`` in slices of CHUNK bytes, read on a connection of its own
        as the response is sent (after the request's transaction has ended)."""
        return self._stream(db.engine, start, end)

    def _stream(self, engine, start: int, end: int) -> Iterator[bytes]:
        with engine.connect() as connection:
            for position in range(start, end, CHUNK):
                yield self._fetch(connection, [(position, min(end, position + CHUNK))])[0]

    def _fetch(self, connection, ranges: list[tuple[int, int]]) -> list[bytes]:
        driver = connection.connection.driver_connection
        if isinstance(driver, sqlite3.Connection):
            try:
                with driver.blobopen("message", "raw", self.message_id,
                                     readonly=True) as blob:
                    found = []
                    for start, end in ranges:
                        blob.seek(start)
                        found.append(blob.read(end - start) if end > start else b"")
                    return found
            except sqlite3.OperationalError:  # no such row, or raw is NULL: purged
                return [b"" for _ in ranges]
        wanted = [(start, end) for start, end in ranges if end > start]
        if not wanted:
            return [b"" for _ in ranges]
        row = connection.execute(select(*(
            func.substr(Message.raw, start + 1, end - start, type_=LargeBinary)
            for start, end in wanted)).where(Message.id == self.message_id)).first()
        values = iter(row or [b""] * len(wanted))
        return [(next(values) or b"") if end > start else b"" for start, end in ranges]


def addresses(message: EmailMessage, name: str) -> list[str]:
    """The addresses in header ``name``, lower-cased, in order."""
    try:
        values = message.get_all(name, [])
        pairs = getaddresses([str(v) for v in values])
    except mime.DECODE_ERRORS as error:
        decoding.fall_back(error, f"the {name} header")
        return []
    return [address.lower() for _, address in pairs if "@" in address]


def filename(part: EmailMessage, number: int) -> str:
    """The sender's file name, safe on any system whatever they wrote (app/mail/filenames.py)."""
    try:
        given = part.get_filename() or ""
    except mime.DECODE_ERRORS as error:
        decoding.fall_back(error, "a file name")
        given = ""
    safe = filenames.safe(given)
    if not safe:
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


def _fallback_text(raw_body: Callable[[], bytes], message: EmailMessage) -> str:
    """A safe text view of a message whose body could not be found or decoded."""
    if message.is_multipart():
        return "(This message has no readable text.)"
    return bytes(raw_body()).decode("utf-8", errors="replace")


def _raw_body(raw: bytes) -> bytes:
    head_end = re.search(rb"\r?\n\r?\n", raw)
    return raw[head_end.end():] if head_end else raw
