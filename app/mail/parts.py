"""The part index of a stored message: where each leaf part's body lies in the raw MIME.

Computed once at ingest (``scan``), stored beside the message, it lets routing, the
message page and a download see the same parts without building every attachment's
payload. The ``email`` package still does all the parsing: it parses a *skeleton*, the
raw message with every leaf body left out (headers, boundary lines, preambles and
epilogues stay), and gives exactly the tree it gives for the whole message. Each leaf's
body is then a slice of the raw message, decoded on its own when it is needed.

The boundary scanning here is deliberately narrow: it follows the stdlib feedparser's
rules (a line that is ``--boundary``, optionally ``--``, then blanks, ends a part; the
line end before it belongs to the boundary) and gives up on anything unusual: a bare CR,
a multipart without its boundary or its closing line, message/* parts, a digest, nesting
deeper than MAX_DEPTH, a skeleton over SKELETON_LIMIT, or any defect the parser reports.
Then ``scan`` returns None and callers parse the whole message with ``email`` as before.
"""

from __future__ import annotations

import binascii
import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser

from app.mail.email_policy import RECEIVED

#: smaller messages are parsed whole, as before: the scan's own header parsing costs more
#: CPU than the full parse of a few kilobytes, and their memory does not matter
INDEX_FROM = 32 * 1024
MAX_DEPTH = 8
MAX_LEAVES = 200
#: the headers, boundary lines, preambles and epilogues: what the page reads besides a body
SKELETON_LIMIT = 256 * 1024
#: an index may only describe the message it was made for
VERSION = 1

_BARE_CR = re.compile(rb"\r(?!\n)")
_HEADER_END = re.compile(rb"\n(\r?\n)")
#: base64 as the email package decodes it without a defect: the alphabet, line ends, and
#: at most two "=" at the very end
_BASE64 = re.compile(rb"[A-Za-z0-9+/\r\n]*+(?:=[\r\n]*+){0,2}")
#: the encodings whose decoded bytes are the raw bytes
_IDENTITY = frozenset({"", "7bit", "8bit", "binary"})


@dataclass(frozen=True)
class Leaf:
    """One non-multipart part: its body is ``raw[start:end]``."""

    start: int
    end: int
    #: the size of the decoded content, as ``get_payload(decode=True)`` gives it
    size: int
    #: valid base64 that ``binascii`` decodes exactly as ``email`` does, slice by slice
    base64: bool = False


@dataclass(frozen=True)
class Index:
    """The leaves of a message, in ``walk()`` order: index = part number."""

    length: int
    leaves: tuple[Leaf, ...]
    #: the skeleton as ``scan`` parsed it, so that routing need not parse it again
    message: EmailMessage | None = field(default=None, compare=False, repr=False)

    def gaps(self) -> list[tuple[int, int]]:
        """The ranges of the raw message that are not leaf bodies: the skeleton."""
        ranges, position = [], 0
        for leaf in self.leaves:
            ranges.append((position, leaf.start))
            position = leaf.end
        ranges.append((position, self.length))
        return ranges

    def skeleton(self, fetch: Callable[[list[tuple[int, int]]], list[bytes]]) -> EmailMessage:
        """The parsed message with every leaf's payload empty; ``fetch`` gives byte ranges."""
        return _parse(b"".join(fetch(self.gaps())))

    def to_json(self) -> dict:
        return {"v": VERSION, "length": self.length,
                "leaves": [[leaf.start, leaf.end, leaf.size, int(leaf.base64)]
                           for leaf in self.leaves]}

    @classmethod
    def from_json(cls, stored: dict | None) -> Index | None:
        """The stored index, or None (no index, or one this code does not know)."""
        if not isinstance(stored, dict) or stored.get("v") != VERSION:
            return None
        return cls(stored["length"], tuple(
            Leaf(start, end, size, bool(fast)) for start, end, size, fast in stored["leaves"]))


def leaves(message: EmailMessage) -> list[EmailMessage]:
    """The non-multipart parts, in walk order: index = part number."""
    return [part for part in message.walk() if not part.is_multipart()]


def hydrate(part: EmailMessage, body: bytes) -> EmailMessage:
    """Give a skeleton's leaf the payload the full parse gives it."""
    part.set_payload(bytes(body).decode("ascii", "surrogateescape"))
    return part


def base64_chunks(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Decode a valid base64 body (``Leaf.base64``) given in slices of any length."""
    carry = b""
    for chunk in chunks:
        data = bytes(chunk).translate(None, b"\r\n")
        if carry:
            data = carry + data
        whole = len(data) - len(data) % 4
        if whole:
            yield binascii.a2b_base64(memoryview(data)[:whole])
        carry = data[whole:]
    if carry:
        raise ValueError("base64 body ends in the middle of a group")


def scan(raw: bytes) -> Index | None:
    """The part index of ``raw``, or None when only the full parse may be trusted."""
    try:
        if _BARE_CR.search(raw):
            return None
        #: (body start, body end, the part's headers, where they start) of each leaf
        found: list[tuple[int, int, EmailMessage, int]] = []
        if not _scan(raw, 0, len(raw), len(raw), (), found):
            return None
        index = Index(len(raw), tuple(Leaf(start, end, 0) for start, end, _, _ in found))
        if sum(end - start for start, end in index.gaps()) > SKELETON_LIMIT:
            return None
        if len(found) == 1 and found[0][3] == 0:
            skeleton = found[0][2]  # one part, the message itself: its headers are all
            expected = [skeleton]  # with no defect and no line the parser took for body
        else:
            skeleton = index.skeleton(lambda ranges: [raw[a:b] for a, b in ranges])
            expected = [headers for _, _, headers, _ in found]
        if not _same_shape(skeleton, expected):
            return None
        return Index(len(raw), tuple(
            _described(raw, start, end, part)
            for (start, end, _, _), part in zip(found, leaves(skeleton), strict=True)),
            skeleton)
    except (LookupError, UnicodeError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, AssertionError, RecursionError):
        return None


def _parse(data: bytes) -> EmailMessage:
    return BytesParser(policy=RECEIVED).parsebytes(data)


def _scan(raw: bytes, start: int, end: int, trimmed: int, boundaries: tuple[bytes, ...],
          found: list) -> bool:
    """Find the leaves of the entity in ``raw[start:end]``; ``trimmed`` is where its
    content ends once the line end that belongs to the next boundary is left out."""
    if len(boundaries) > MAX_DEPTH or len(found) > MAX_LEAVES:
        return False
    if raw.startswith((b"\r\n", b"\n"), start, end):  # no headers at all
        body = start + (2 if raw[start] == 13 else 1)
    else:
        blank = _HEADER_END.search(raw, start, end)
        if blank is None:
            return False
        body = blank.end()
    headers = BytesParser(policy=RECEIVED).parsebytes(raw[start:body], headersonly=True)
    maintype, _, subtype = headers.get_content_type().partition("/")  # parsed once: slow
    if headers.defects or maintype == "message":
        return False
    if maintype != "multipart":
        found.append((body, max(body, trimmed), headers, start))
        return True
    boundary = headers.get_boundary()
    if not boundary or not boundary.isascii() or subtype == "digest":
        return False
    boundary = boundary.encode("ascii")
    if any(b.startswith(boundary) or boundary.startswith(b) for b in boundaries):
        return False
    delimiter = re.compile(rb"^--" + re.escape(boundary) + rb"(--)?[ \t]*+\r?$", re.MULTILINE)
    lines = list(delimiter.finditer(raw, body, end))
    close = next((i for i, line in enumerate(lines) if line.group(1)), None)
    if close is None or close == 0:
        return False
    for opening, following in itertools.pairwise(lines[:close + 1]):
        part_start = opening.end() + 1  # after the delimiter line's "\n"
        part_end = following.start()
        if part_start > part_end or raw[opening.end():part_start] != b"\n":
            return False
        if part_start == part_end:  # two boundary lines in a row: the parser skips one
            return False
        part_trimmed = part_end - 1
        if part_trimmed > part_start and raw[part_trimmed - 1] == 13:
            part_trimmed -= 1
        if raw[part_end - 1] != 10:  # the boundary line is a line's start: cannot happen
            return False
        if not _scan(raw, part_start, part_end, part_trimmed, (*boundaries, boundary),
                     found):
            return False
    return True


def _same_shape(skeleton: EmailMessage, expected: list[EmailMessage]) -> bool:
    """Whether the parser saw in the skeleton the leaves the scan found, and no defect."""
    if any(part.defects for part in skeleton.walk()):
        return False
    found = leaves(skeleton)
    if len(found) != len(expected):
        return False
    return all(part.get_payload() == "" and list(part.raw_items()) == list(headers.raw_items())
               for part, headers in zip(found, expected, strict=True))


def _described(raw: bytes, start: int, end: int, part: EmailMessage) -> Leaf:
    """A leaf with the size of its decoded content, found without decoding base64."""
    encoding = str(part.get("content-transfer-encoding", "")).lower()
    if encoding in _IDENTITY:
        return Leaf(start, end, end - start)
    if encoding == "base64" and _BASE64.fullmatch(raw, start, end):
        letters = end - start - raw.count(b"\n", start, end) - raw.count(b"\r", start, end)
        if letters % 4 == 0:
            return Leaf(start, end, letters // 4 * 3 - raw.count(b"=", start, end), True)
    # decoded only to be measured: the part is left as it was, its defects included
    defects = list(part.defects)
    content = hydrate(part, memoryview(raw)[start:end]).get_payload(decode=True) or b""
    part.set_payload("")
    part.defects[:] = defects
    return Leaf(start, end, len(content))
