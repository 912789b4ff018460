"""Delivery events: one line of a recipient's history each, in words administrators search."""

from sqlalchemy import Select, insert, literal

from app import clock
from app.extensions import db
from app.models import DeliveryEvent, Recipient

#: longest event text kept
TEXT_LIMIT = 2000


def record(recipient: Recipient, kind: str, text: str) -> None:
    """Add an event to ``recipient``'s history.

    Set from the event's side, so the recipient's list of events is not loaded for it
    (a recipient whose list is loaded sees the event in it at once; one whose list is
    not loaded finds it there when it is).
    """
    db.session.add(DeliveryEvent(recipient=recipient, kind=kind, text=text[:TEXT_LIMIT]))


def record_all(recipients: Select, kind: str, text: str) -> None:
    """Add the same event to every recipient ``recipients`` (a query of their ids)
    selects, in one INSERT ... SELECT: for work on many recipients at once."""
    rows = recipients.with_only_columns(
        Recipient.id, literal(clock.utcnow()), literal(kind), literal(text[:TEXT_LIMIT]))
    db.session.execute(insert(DeliveryEvent).from_select(
        ["recipient_id", "at", "kind", "text"], rows))
