"""Reading received MIME with the standard ``email`` package, whatever state it is in.

Nothing here may raise on hostile input: a message is stored raw whatever happens, and
what cannot be decoded is shown with replacement characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from html.parser import HTMLParser

from . import parts
from .mailpolicy import RECEIVED

# The parser and the content managers raise many kinds of errors on broken input
# (unknown charsets, bad base64, malformed headers); each is a reason to fall back.
DECODE_ERRORS = (LookupError, UnicodeError, ValueError, TypeError, AttributeError,
                  IndexError, KeyError, AssertionError)


@dataclass
class Parsed:
    """What the gateway needs from a message before routing it."""

    subject: str = ""
    header_from: str = ""
    message_id: str = ""
    #: the text of the body: plain parts, and the HTML parts' text (no markup)
    body_text: str = ""
    #: the X-CCM-Mode header's value, lower-cased, if any
    ccm_mode: str | None = None
    defects: list[str] = field(default_factory=list)
    #: where each part's body lies in ``raw``; None when the whole message had to be parsed
    index: parts.Index | None = None


def parse_message(raw: bytes) -> EmailMessage:
    return BytesParser(policy=RECEIVED).parsebytes(raw)


def parse(raw: bytes, *, light: bool = True) -> Parsed:
    """The routing-relevant facts of ``raw``; never raises.

    With a part index, only the headers and the inline text parts are decoded: the
    parts ``body_texts`` reads, the same parts the portal shows. Messages under
    ``parts.INDEX_FROM``, and any with ``light=False`` (the tests compare the two), are
    parsed whole.
    """
    index = parts.scan(raw) if light and len(raw) >= parts.INDEX_FROM else None
    if index is None:
        message = parse_message(raw)
    else:
        message = index.message or index.skeleton(lambda ranges: [raw[a:b] for a, b in ranges])
        for leaf, part in zip(index.leaves, parts.leaves(message), strict=True):
            if _inline_text(part):
                parts.hydrate(part, memoryview(raw)[leaf.start:leaf.end])
    parsed = Parsed(
        subject=header(message, "Subject"),
        header_from=header(message, "From"),
        message_id=header(message, "Message-ID"),
        body_text="\n".join(body_texts(message)),
    )
    mode = header(message, "X-CCM-Mode").strip().lower()
    parsed.ccm_mode = mode or None
    parsed.defects = [type(d).__name__ for part in message.walk() for d in part.defects]
    parsed.index = index
    return parsed


def header(message: EmailMessage, name: str) -> str:
    """A header's decoded value, or its raw text when it cannot be decoded; "" if absent."""
    try:
        value = message.get(name)
    except DECODE_ERRORS:
        value = next((v for k, v in message.raw_items() if k.lower() == name.lower()), "")
    return " ".join(str(value or "").split())[:998]


def body_texts(message: EmailMessage):
    """The text of each inline text part; HTML is reduced to its text."""
    for part in message.walk():
        if not _inline_text(part):
            continue
        content = part_text(part)
        yield html_to_text(content) if part.get_content_subtype() == "html" else content


def _inline_text(part: EmailMessage) -> bool:
    return (not part.is_multipart() and part.get_content_maintype() == "text"
            and part.get_content_disposition() != "attachment")


def stored_index(raw: bytes, parsed: Parsed) -> dict | None:
    """The part index to store with ``raw`` (as received, less X-CCM-Mode): the one
    routing used, or, when a header was removed since, the same index found again."""
    index = parsed.index
    if index is None:
        return None
    if index.length == len(raw):
        return index.to_json()
    again = parts.scan(raw)
    if again is None or [(leaf.size, leaf.base64) for leaf in again.leaves] != \
            [(leaf.size, leaf.base64) for leaf in index.leaves]:
        return None
    return again.to_json()


def part_text(part: EmailMessage) -> str:
    """A text part decoded by its declared charset, else as UTF-8 with replacements."""
    try:
        return part.get_content()
    except DECODE_ERRORS:
        payload = part.get_payload(decode=True) or b""
        return payload.decode("utf-8", errors="replace")


class _TextExtractor(HTMLParser):
    _SKIP = frozenset({"script", "style", "head", "title"})

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in {"br", "p", "div", "li", "tr", "h1", "h2", "h3"}:
            self.chunks.append("\n")

    def handle_endtag(self, tag):
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1

    def handle_data(self, data):
        if not self._skipping:
            self.chunks.append(data)


def html_to_text(html: str) -> str:
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    return re.sub(r"[ \t]+", " ", "".join(extractor.chunks)).strip()


_HEADER_END = re.compile(rb"\r?\n\r?\n")


def header_block(raw: bytes) -> bytes:
    """The header section of ``raw`` (everything before the first blank line)."""
    match = _HEADER_END.search(raw)
    return raw[: match.start()] if match else raw


def remove_header(raw: bytes, name: str) -> bytes:
    """``raw`` without any ``name:`` header (and its folded lines), every other byte kept."""
    match = _HEADER_END.search(raw)
    end = match.start() if match else len(raw)
    head = raw[:end]
    prefix = name.lower().encode() + b":"
    kept, dropping = [], False
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):  # a folded continuation of the header above
            if not dropping:
                kept.append(line)
            continue
        dropping = line.lower().startswith(prefix)
        if not dropping:
            kept.append(line)
    return b"".join([*kept, memoryview(raw)[end:]])  # one copy of the body, not two
