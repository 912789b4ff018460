"""The ``email`` policy received mail is read with: the standard one, headers cached.

Parsing a header is the dearest step in reading a message, and the modern policy does it
again on every look-up: a part's Content-Type is parsed for its type, again for its
subtype, again for its charset. Parsed headers are immutable, so one parse of each
(name, value) serves every look-up, and common values such as ``text/plain;
charset=utf-8`` are shared across messages.
"""

from __future__ import annotations

from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry
from functools import lru_cache

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
        if len(value) > CACHED_VALUE_LIMIT:
            return super().__call__(name, value)
        return self._cached(name, value)


RECEIVED = policy.default.clone(header_factory=_CachingRegistry())
