"""File names of attachments: the name a person gave, kept, but safe to save anywhere.

A name comes from a browser's upload or from a sender's MIME header, so anyone may have
written it. It keeps its spaces, accents and scripts (``NDA signed.pdf``, ``Übersicht
März.xlsx``, ``契約書.pdf``) and loses only what could mislead or do harm: a folder part
(``../../etc/passwd``, ``C:\\Users\\x\\a.pdf``), control characters, the invisible
characters that reorder or hide text (a right-to-left override makes ``invoice‮fdp.exe``
read as ``invoiceexe.pdf``), characters Windows refuses in a name, leading dots (a hidden
file) and trailing dots and spaces, device names Windows reserves (``CON``, ``NUL``), and
any length past :data:`MAX_CHARACTERS` characters or :data:`MAX_BYTES` bytes of UTF-8.
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

#: characters that change the direction or visibility of the text around them (Unicode
#: bidi controls, zero-width space, word joiner and invisible operators, BOM); zero-width
#: joiners (U+200C, U+200D) stay, as Persian and emoji need them
_INVISIBLE = frozenset("\u061c\u200b\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2060\u2061"
                       "\u2062\u2063\u2064\u2066\u2067\u2068\u2069\u206a\u206b\u206c\u206d"
                       "\u206e\u206f\ufeff\u00ad\u180e")
#: refused in file names on Windows, and a path separator anywhere
_RESERVED = frozenset('<>:"/\\|?*')
_WINDOWS_DEVICES = re.compile(r"(?i)(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?")


def safe(given: str | None) -> str:
    """The name ``given`` as it may be saved and shown; "" when nothing usable is left."""
    name = unicodedata.normalize("NFC", given or "")
    name = re.split(r"[/\\]", name)[-1]  # the last part of a path, either way written
    name = re.sub(r"\A[A-Za-z]:", "", name)  # a Windows drive ("C:report.pdf")
    kept = []
    for character in name:
        category = unicodedata.category(character)
        if category in ("Zs", "Zl", "Zp") or character.isspace():  # tabs, line breaks too
            kept.append(" ")
        elif character in _INVISIBLE or category in ("Cc", "Cs", "Cn"):
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
    """A ``Content-Disposition`` value for ``name`` (already :func:`safe`), as RFC 6266
    writes one: ``filename`` for older clients, in ASCII with accents dropped and other
    characters as ``_``; ``filename*`` in UTF-8 (RFC 8187) when that lost anything."""
    simple = unicodedata.normalize("NFKD", name)
    simple = "".join(c for c in simple if not unicodedata.combining(c))
    simple = "".join(c if " " <= c <= "~" and c not in '"\\%' else "_" for c in simple)
    value = f'{disposition}; filename="{simple}"'
    if simple != name:
        value += f"; filename*=UTF-8''{quote(name, safe='!#$&+-.^_`|~')}"
    return value
