"""The ``email`` policy received mail is read with: the standard one, headers cached.

Parsing a header is the dearest step in reading a message, and the modern policy does it
again on every look-up: a part's Content-Type is parsed for its type, again for its
subtype, again for its charset. Parsed headers are immutable, so one parse of each
(name, value) serves every look-up, and common values such as ``text/plain;
charset=utf-8`` are shared across messages.
"""

from __future__ import annotations

from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry, UnstructuredHeader
from functools import lru_cache

from app.mail.decoding import DECODE_ERRORS, fall_back

#: longer values are parsed at every look-up, as before: a hostile message's huge
#: headers must not stay in memory
CACHED_VALUE_LIMIT = 256
#: parsed headers kept: the common Content-Types stay, being used all the time, beside
#: the latest messages' own headers; at most about 10 MB (address lists are the largest)
CACHED_HEADERS = 256


class _CachingRegistry(HeaderRegistry):
    def __init__(self):
        super().__init__()
        self._cached = lru_cache(maxsize=CACHED_HEADERS)(super().__call__)

    def __call__(self, name: str, value: str) -> BaseHeader:
        try:
            if len(value) > CACHED_VALUE_LIMIT:
                return super().__call__(name, value)
            return self._cached(name, value)
        except DECODE_ERRORS as error:
            # The header parser slips on some hostile values (a Content-Type parameter
            # broken across lines, a NUL in a charset); without this, reading the whole
            # message would fail, when the parser asks for the Content-Type mid-parse.
            fall_back(error, f"the {name} header")
            return _Unreadable(name, value)


class _Unreadable(UnstructuredHeader, BaseHeader):
    """A header the parser cannot read as what its name says: kept as unstructured
    text, which the ``email`` package's older string-based readers (``get_param``,
    ``get_content_type``) still read."""


RECEIVED = policy.default.clone(header_factory=_CachingRegistry())
