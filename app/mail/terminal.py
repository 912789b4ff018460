"""Text from mail made safe to print on an operator's terminal.

A subject, an address, a body or a remote server's reply is written by someone else, and
a terminal obeys the control sequences in what it prints: ``ESC [2J`` clears the screen,
``ESC ]52;c;…BEL`` writes the clipboard, ``CR`` overwrites the line, a right-to-left
override reorders it. Every command that prints mail content passes it through
:func:`printable`, which writes each such character as a visible escape (``\\x1b``,
``\\u202e``) and keeps the rest, line breaks and tabs among it.
"""

from __future__ import annotations

import re

#: C0 controls but tab and line feed, DEL, C1 controls, and the characters that reorder
#: or hide text (bidi embeddings, overrides, isolates and marks) or break lines unseen
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
                     "\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with every control character but ``\\n`` and ``\\t``, and every bidi
    control, written as a visible escape."""
    return _UNSAFE.sub(_escaped, text)


def one_line(text: str) -> str:
    """:func:`printable`, with line breaks and tabs escaped too: a log line's message,
    where a ``CR LF`` from a remote server or an address would forge the next line."""
    return printable(text).replace("\n", "\\n").replace("\t", "\\t")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
