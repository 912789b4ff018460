"""Delivery events: one line of a recipient's history each, in words administrators search.

Senders and tenant administrators read these lines, so they are written for people: what
happened and where, never the gateway's own file paths (the operator's log has those).
"""

import re

from sqlalchemy import Select, insert, literal

from app import clock
from app.extensions import db
from app.models import WRITTEN_TO_OUTBOX, DeliveryEvent, Recipient
from app.words import N_, Words

#: longest event text kept
TEXT_LIMIT = 2000

#: an absolute path on the server (two parts at least), as an error message quotes one;
#: not a URL's path, a date or "and/or" (a word, ':', '/' or '.' right before it)
_SERVER_PATH = re.compile(r"(?<![\w:/.~-])/(?:[^\s/'\"<>()]+/)+[^\s/'\"<>(),;]*"
                          r"|\b[A-Za-z]:\\[^\s'\"<>]+")
#: what stands in for a path in an event
HIDDEN_PATH = "[a file on the server]"


def record(recipient: Recipient, kind: str, text: str) -> None:
    """Add an event to ``recipient``'s history.

    Set from the event's side, so the recipient's list of events is not loaded for it
    (a recipient whose list is loaded sees the event in it at once; one whose list is
    not loaded finds it there when it is).
    """
    db.session.add(DeliveryEvent(recipient=recipient, kind=kind, text=for_people(text)))


#: built once: the worker runs it for every group of deliveries it records
_INSERT = insert(DeliveryEvent.__table__)


def record_rows(events: list[tuple[int, str, str]]) -> None:
    """Add events given as (recipient id, kind, text), in one INSERT: for the worker,
    which records several deliveries' outcomes at once."""
    if events:
        now = clock.utcnow()
        db.session.execute(_INSERT, [
            {"recipient_id": recipient_id, "at": now, "kind": kind, "text": for_people(text)}
            for recipient_id, kind, text in events])


def record_all(recipients: Select, kind: str, text: str) -> None:
    """Add the same event to every recipient ``recipients`` (a query of their ids)
    selects, in one INSERT ... SELECT: for work on many recipients at once."""
    rows = recipients.with_only_columns(
        Recipient.id, literal(clock.utcnow()), literal(kind), literal(for_people(text)))
    db.session.execute(insert(DeliveryEvent).from_select(
        ["recipient_id", "at", "kind", "text"], rows))


def for_people(text: str) -> str:
    """``text`` as a tenant's people may read it: bounded, and with no server path (an
    unexpected error, say, quotes the file it failed on)."""
    return _SERVER_PATH.sub(HIDDEN_PATH, text)[:TEXT_LIMIT]


def delivered_how(recipient: Recipient) -> Words:
    """How a delivered copy left, in a few words for a status column: a copy written to
    the maildir outbox (a trial installation) was not delivered by SMTP."""
    last = next((event.text for event in reversed(recipient.events)
                 if event.kind == "delivered"), "")
    return Words(N_("Written to the outbox") if last.startswith(WRITTEN_TO_OUTBOX)
                 else N_("Delivered by SMTP"))
