"""What reading received mail may fall back on, and what it must not hide.

The ``email`` package raises, on input it cannot read, more than its documentation says.
Fuzzing it with mutated messages (tests/unit/test_mime_errors.py) shows: unknown or
malformed charsets (LookupError, ValueError "embedded null character"), bad transfer
encodings (UnicodeError, ValueError), a content type no content manager reads
(KeyError), and on hostile headers the header parser's own slips (IndexError,
TypeError, AttributeError; its ``assert``s too). Each is a reason to fall back to the
raw text, when the email package (or the codecs under it) raised it. The same types
raised by code of ours would be bugs the fallback hides: those are logged, with their
traceback, and the reader still falls back, so no message is lost to them.
"""

from __future__ import annotations

import base64
import codecs
import email
import encodings
import logging
import quopri
import traceback
from pathlib import Path

log = logging.getLogger(__name__)

#: the errors reading falls back on (IndexError and KeyError are LookupErrors)
DECODE_ERRORS = (LookupError, UnicodeError, ValueError, TypeError, AttributeError,
                 AssertionError)

#: where the errors of unreadable input come from: the email package and its codecs
_READERS = (Path(email.__file__).parent, Path(encodings.__file__).parent)
_READER_FILES = {Path(module.__file__) for module in (base64, codecs, quopri)}


def raised_by_the_reader(error: BaseException) -> bool:
    """Whether ``error`` was raised inside the email package or the codecs it uses
    (a C codec's error shows as raised by its Python caller there)."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return False
    where = Path(frames[-1].filename)
    return where in _READER_FILES or any(where.is_relative_to(p) for p in _READERS)


def fall_back(error: BaseException, what: str) -> None:
    """Say why reading ``what`` falls back, if it is not the input's fault."""
    if not raised_by_the_reader(error):
        log.error("unexpected %s reading %s; falling back to its raw text",
                  type(error).__name__, what, exc_info=error)
