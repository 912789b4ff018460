"""File names of attachments: the name a person gave, kept, but safe to save anywhere.

A name comes from a browser's upload or from a sender's MIME header, so anyone may have
written it. It keeps its spaces, accents and scripts (``NDA signed.pdf``, ``Übersicht
März.xlsx``, ``契約書.pdf``) and loses only what could mislead or do harm: a folder part
(``../../etc/passwd``, ``C:\\Users\\x\\a.pdf``), control characters, the invisible
characters that reorder or hide text (a right-to-left override makes ``invoice‮fdp.exe``
read as ``invoiceexe.pdf``), characters Windows refuses in a name, leading dots (a hidden
file) and trailing dots and spaces, device names Windows reserves (``CON``, ``NUL``), and
any length past :data:`MAX_CHARACTERS` characters or :data:`MAX_BYTES` bytes of UTF-8.

A name is read in its compatibility form (NFKC) before any of that, so a character that
only looks different is judged as what it stands for: fullwidth full stops and solidi
(U+FF0E, U+FF0F) are ``../etc/passwd``, a fullwidth ``CON`` is ``CON``. Blank characters
that are not spaces to Unicode (the Braille blank, Hangul fillers) are spaces, so
``invoice.pdf`` and three Braille blanks before ``.exe`` cannot push ``.exe`` out of
sight, and the download header's ASCII form is made safe again.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

#: longest name kept, in characters and in UTF-8 bytes (most file systems allow 255)
MAX_CHARACTERS = 120
MAX_BYTES = 200
#: longest extension kept whole when a long name is shortened
MAX_EXTENSION = 16

#: format characters (Unicode category Cf: bidi controls, zero-width space, word joiner,
#: invisible operators, BOM, soft hyphen, tag characters U+E0000-E007F, interlinear
#: annotations U+FFF9-FFFB) change the direction or visibility of the text around them
#: and are dropped, all but the zero-width joiners that Persian and emoji need
_KEPT_FORMAT = frozenset("\u200c\u200d")
#: invisible marks of other categories, dropped too
_INVISIBLE = frozenset("\u034f\u17b4\u17b5")  # grapheme joiner, Khmer inherent vowels
#: characters that show as blank without being spaces to Unicode: spaces here
_BLANK = frozenset("\u2800\u115f\u1160\u3164\uffa0")
#: refused in file names on Windows, and a path separator anywhere
_RESERVED = frozenset('<>:"/\\|?*')
#: a device name, with any extension (Windows ignores spaces before it: "CON .txt")
_WINDOWS_DEVICES = re.compile(
    r"(?i)(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$|clock\$) *(\..*)?")


def safe(given: str | None) -> str:
    """The name ``given`` as it may be saved and shown; "" when nothing usable is left."""
    name = given or ""
    for _ in range(3):  # what a pass removes may let NFKC join what it separated
        cleaned = _cleaned(name)
        if cleaned == name:
            break
        name = cleaned
    return name


def _cleaned(given: str) -> str:
    """One pass of the rules, on the NFKC form of ``given``."""
    name = unicodedata.normalize("NFKC", given)
    name = re.split(r"[/\\]", name)[-1]  # the last part of a path, either way written
    name = re.sub(r"\A[A-Za-z]:", "", name)  # a Windows drive ("C:report.pdf")
    kept = []
    for character in name:
        category = unicodedata.category(character)
        if category in ("Zs", "Zl", "Zp") or character.isspace() or character in _BLANK:
            kept.append(" ")  # tabs and line breaks too
        elif character in _INVISIBLE or category in ("Cc", "Cs", "Cn") or \
                (category == "Cf" and character not in _KEPT_FORMAT):
            continue
        elif character in _RESERVED:
            kept.append("_")
        else:
            kept.append(character)
    name = re.sub(r" {2,}", " ", "".join(kept)).strip(" .").lstrip(".").strip()
    if _WINDOWS_DEVICES.fullmatch(name):
        name = f"_{name}"
    name = _bounded(name)
    return "" if not name.strip("_ .") else name


def _bounded(name: str) -> str:
    """``name`` cut to the limits, its extension kept."""
    if len(name) <= MAX_CHARACTERS and len(name.encode()) <= MAX_BYTES:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension) > MAX_EXTENSION or " " in extension:
        stem, extension = name, ""
    tail = f".{extension}" if extension else ""
    room_characters = MAX_CHARACTERS - len(tail)
    room_bytes = MAX_BYTES - len(tail.encode())
    stem = stem[:room_characters]
    while len(stem.encode()) > room_bytes:
        stem = stem[:-1]
    return stem.rstrip(" .") + tail


def content_disposition(name: str, disposition: str = "attachment") -> str:
    """A ``Content-Disposition`` value for ``name``, as RFC 6266 writes one: ``filename``
    for older clients, in ASCII with accents dropped and other characters as ``_``;
    ``filename*`` in UTF-8 (RFC 8187) when that lost anything. Both are :func:`safe`
    (the name again, as one stored before a rule was added may not be; the ASCII form
    anew, as dropping accents can leave a trailing dot or a device name)."""
    name = safe(name) or "attachment"
    simple = unicodedata.normalize("NFKD", name)
    simple = "".join(c for c in simple if not unicodedata.combining(c))
    simple = "".join(c if " " <= c <= "~" and c not in '"\\%' else "_" for c in simple)
    simple = safe(simple) or "attachment"
    value = f'{disposition}; filename="{simple}"'
    if simple != name:
        value += f"; filename*=UTF-8''{quote(name, safe='!#$&+-.^_`|~')}"
    return value
