"""Which conversation a message belongs to, from its Message-ID, In-Reply-To and References.

A conversation is named by the Message-ID of the message that began it: the first one a
reply's References lists (RFC 5322 3.6.4: the parent's References, then the parent),
else the one its In-Reply-To names, else its own. The sender writes these headers, so a
thread only groups; who may see a message is decided elsewhere (app/domain/conversations.py).
"""

from __future__ import annotations

import re

_MESSAGE_ID = re.compile(r"<[^<>\s]{1,994}>")


def message_ids(value: str) -> list[str]:
    """The ``<...>`` Message-IDs in a header's value, in order."""
    return _MESSAGE_ID.findall(value or "")


def root(message_id: str, in_reply_to: str, references: str) -> str:
    """The Message-ID that names the conversation; "" when the message has none."""
    for value in (references, in_reply_to, message_id):
        if found := message_ids(value):
            return found[0]
    return ""
