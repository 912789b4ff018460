"""Reading received MIME with the standard ``email`` package, whatever state it is in.

Nothing here may raise on hostile input: a message is stored raw whatever happens, and
what cannot be decoded is shown with replacement characters.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from html import unescape

from app.mail import parts, threads
from app.mail.decoding import DECODE_ERRORS, fall_back
from app.mail.email_policy import RECEIVED


@dataclass
class Parsed:
    """What the gateway needs from a message before routing it."""

    subject: str = ""
    header_from: str = ""
    message_id: str = ""
    #: the conversation: app/mail/threads.py
    thread: str = ""
    #: the text of the body: plain parts, and the HTML parts' text (no markup)
    body_text: str = ""
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
    message_id = header(message, "Message-ID")
    parsed = Parsed(
        subject=header(message, "Subject"),
        header_from=header(message, "From"),
        message_id=message_id,
        thread=threads.root(message_id, header(message, "In-Reply-To"),
                            header(message, "References")),
        body_text="\n".join(body_texts(message)),
    )
    parsed.defects = [type(d).__name__ for part in message.walk() for d in part.defects]
    parsed.index = index
    return parsed


def header(message: EmailMessage, name: str) -> str:
    """A header's decoded value, or its raw text when it cannot be decoded; "" if absent."""
    try:
        value = message.get(name)
    except DECODE_ERRORS as error:
        fall_back(error, f"the {name} header")
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
    """The part index to store with ``raw`` (as received, less STRIPPED_HEADERS): the
    one routing used, or, when a header was removed since, the same index found again."""
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
    except DECODE_ERRORS as error:
        fall_back(error, "a text part")
        payload = part.get_payload(decode=True) or b""
        return payload.decode("utf-8", errors="replace")


#: what html_to_text reads, one match at a time: a comment's start, a tag (quoted
#: attribute values may hold ">"), any other markup, text, or a "<" that starts nothing.
#: No part can run past the next "<", so hostile markup costs linear time; the standard
#: library's HTMLParser is quadratic on unclosed tags and quotes (CVE-2025-6069).
_MARKUP = re.compile(r"""<!--|<(/?)([A-Za-z][A-Za-z0-9]*)((?:[^<>"']|"[^"<]*"|'[^'<]*')*)>"""
                     r"|<[!?/][^<>]*>|[^<]+|<")
_SKIPPED = frozenset({"script", "style", "head", "title"})
_BREAKS = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3"})
_CELLS = frozenset({"td", "th"})


#: elements with no content, and those a new one of their kind closes (HTML's optional
#: end tags): a hidden one of these holds nothing after its next sibling
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
                   "param", "source", "track", "wbr"})
_ENDS_AT_NEXT = frozenset({"p", "li", "dt", "dd", "tr", "td", "th", "option"})


def html_to_text(html: str, hidden: Callable[[str], bool] | None = None) -> str:
    """The text of an HTML document, for routing: every word, hidden ones too (a policy
    must not be slipped past by hiding a word), no markup, no scripts or styles, entities
    decoded, a line break for each block. What a reader is shown, quoted or printed is
    ``sanitize.visible_text``, which passes ``hidden``: whether a tag's attributes hide
    it and all it holds, then left out to its end tag."""
    chunks: list[str] = []
    skipping, position = 0, 0
    hiding, depth = "", 0  # the hidden element being left out, and its own nesting
    while position < len(html):
        match = _MARKUP.match(html, position)
        position = match.end()
        piece, closing, name = match.group(0), match.group(1), (match.group(2) or "").lower()
        if piece == "<!--":
            end = html.find("-->", position)
            position = len(html) if end < 0 else end + 3
            continue
        opens = bool(name) and not closing and name not in _VOID  # "<div/>" opens a div
        if hiding:
            if name == hiding and opens and name in _ENDS_AT_NEXT:
                hiding = ""  # its sibling ended it: read this tag as any other
            else:
                depth += (name == hiding) * (-1 if closing else opens)
                hiding = hiding if depth else ""
                continue
        if name in _SKIPPED and not match.group(3).endswith("/"):
            skipping = max(0, skipping - 1) if closing else skipping + 1
        elif name:
            if opens and hidden is not None and hidden(match.group(3)):
                hiding, depth = name, 1
            elif name in _BREAKS and not closing:
                chunks.append("\n")
            elif name in _CELLS and not closing:
                chunks.append(" ")  # a table's cells are apart on the screen
        elif not skipping and (piece == "<" or not piece.startswith("<")):
            chunks.append(unescape(piece))
    return re.sub(r" ?\n ?", "\n", re.sub(r"[ \t]+", " ", "".join(chunks))).strip()


#: where the header section ends: at its first empty line, which may be the very first
#: line (a message without headers)
_HEADER_END = re.compile(rb"\A\r?\n|\r?\n\r?\n")
_LINE_END = re.compile(rb"(\r\n|\r|\n)")

#: The headers the gateway removes from every message it receives, before it is stored,
#: and so before any delivery (MX, smart host, internal relay, maildir), portal page,
#: download or report: X-CCM-Mode is an instruction to the gateway alone; Bcc and
#: Resent-Bcc name recipients whom the others must not see (RFC 5322 3.6.3, 3.6.6).
#: Their sender still sees those recipients: they are the message's recipients that its
#: To and Cc do not name (app/web/queries/sent_items.py).
STRIPPED_HEADERS = ("X-CCM-Mode", "Bcc", "Resent-Bcc")
#: the start of a line that is one of them: any case, blanks allowed before the colon
#: (RFC 5322's obsolete syntax, which Postfix and others still read as a header)
_STRIPPED = re.compile(rb"(?:\A|(?<=[\r\n]))(?:" + rb"|".join(
    re.escape(name.encode()) for name in STRIPPED_HEADERS) + rb")[ \t]*:", re.IGNORECASE)


#: an X-CCM-Mode line, read as _STRIPPED reads it
_CCM_MODE = re.compile(rb"X-CCM-Mode[ \t]*:", re.IGNORECASE)


def ccm_modes(raw: bytes) -> list[str]:
    """The value of each X-CCM-Mode header of ``raw``, unfolded and lower-cased, read as
    strip_headers reads its header section: whatever way it is written (any case, blanks
    before the colon, folded, empty, repeated), what strip_headers removes is what is read
    here, and nothing else."""
    values: list[list[bytes]] = []
    current: list[bytes] | None = None
    for text in _LINE_END.split(raw[:_header_end(raw)])[0::2]:
        if text[:1] in (b" ", b"\t"):  # a folded line continues the header above
            if current is not None:
                current.append(text)
            continue
        match = _CCM_MODE.match(text)
        current = [text[match.end():]] if match else None
        if current is not None:
            values.append(current)
    return [" ".join(b" ".join(lines).decode("utf-8", "replace").split()).lower()
            for lines in values]


def _header_end(raw: bytes) -> int:
    match = _HEADER_END.search(raw)
    return match.start() if match else len(raw)


def header_block(raw: bytes) -> bytes:
    """The header section of ``raw`` (everything before the first blank line)."""
    match = _HEADER_END.search(raw)
    return raw[: match.start()] if match else raw


def strip_headers(raw: bytes) -> bytes:
    """``raw`` without the STRIPPED_HEADERS of its header section (each with its folded
    lines), every other byte kept; ``raw`` itself when it has none of them.

    Lines are read as ending at CRLF, LF or a bare CR, as the ``email`` parser reads
    them: whether the next reader splits lines at CRLF only, at LF, or at a bare CR too,
    every line it could take for one of these headers starts after one of those, so a
    header smuggled in after a bare LF or CR goes too. A removed header takes the line
    end *before* it, so the line before it ends as the removed one did: removing
    ``Subject: x<LF>Bcc: y<CRLF>`` leaves ``Subject: x<CRLF>``, one header for every
    reader, not a Subject that a CRLF-only reader would run into the next header.
    The section ends at the first empty line as LF-reading mail servers see it, so a
    Bcc line after a "blank line" of bare CRs goes too: body to the ``email`` parser,
    but to such a server part of the header above it, which a client that breaks lines
    at a CR shows on a line of its own. Headers of attached messages (message/rfc822)
    and of MIME parts are content, and stay.
    """
    match = _HEADER_END.search(raw)
    end = match.start() if match else len(raw)
    if not _STRIPPED.search(raw, 0, end):
        return raw  # most mail: looked through, nothing copied
    pieces = _LINE_END.split(raw[:end])  # text, line end, text, line end, ..., text
    kept: list[bytes] = []
    dropping = False
    for before, text in zip([b"", *pieces[1::2]], pieces[0::2], strict=True):
        if text[:1] not in (b" ", b"\t"):  # a header's first line, not a folded one
            dropping = _STRIPPED.match(text) is not None
        if not dropping:
            kept += [before if kept else b"", text]  # the first line has nothing before it
    if not kept and match:
        end = match.start() + len(_LINE_END.match(raw, end).group())  # no header is left
    return b"".join([*kept, memoryview(raw)[end:]])  # one copy of the body, not two
