"""What a signed-in user may see of the isolation area: their own copies, while visible.

A message is reached only through its recipient row for this user: anyone else's copy,
another tenant's, or an identifier that does not exist all answer the same None, so a
page cannot hint that a message exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import contains_eager

from .clock import utcnow
from .extensions import db
from .gateway.tracking import record
from .models import Message, Recipient, User

PER_PAGE = 20


@dataclass
class Page:
    """A page of a counted listing (app/sent_items.py)."""

    copies: list[Recipient]
    total: int
    number: int
    query: str

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // PER_PAGE))

    @property
    def has_next(self) -> bool:
        return self.number < self.pages

    @property
    def has_previous(self) -> bool:
        return self.number > 1


@dataclass
class Listing:
    """One page of a user's inbox.

    It is not counted: an exact total would read every copy the user has on every view.
    One row more than a page is read instead, which says whether an older page exists.
    """

    copies: list[Recipient]
    number: int
    query: str
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def found(self) -> int:
        """How many matches this page and the ones before it hold: all of them when
        there is no next page, a lower bound otherwise."""
        return (self.number - 1) * PER_PAGE + len(self.copies)


#: pages beyond this are not asked for (and an OFFSET must fit in 64 bits)
MAX_PAGE = 100_000


def _visible_copies(user: User):
    # The first four conditions walk ix_recipient_inbox (user_id, state, received_at, id)
    # newest first; the rest are checked on the rows it yields.
    return (
        select(Recipient)
        .join(Recipient.message)
        .where(Recipient.user_id == user.id, Recipient.state == "held",
               Recipient.route == "ccm", Message.tenant_id == user.tenant_id,
               Recipient.visible_until > utcnow())
    )


def inbox(user: User, *, query: str = "", number: int = 1) -> Listing:
    """The user's CCM messages at their tenant, newest first, searched and paged."""
    statement = _visible_copies(user)
    query = query.strip()[:200]
    if query:
        # Only the user's own copies are searched: the walk above, filtered.
        statement = statement.where(or_(
            Message.subject.icontains(query, autoescape=True),
            Message.header_from.icontains(query, autoescape=True),
            Message.mail_from.icontains(query, autoescape=True),
        ))
    number = max(1, min(number, MAX_PAGE))
    copies = _page(statement, number)
    if not copies and number > 1:
        # Past the end (an old link, an edited address): the last page, as counted now.
        total = db.session.scalar(select(func.count()).select_from(statement.subquery()))
        number = max(1, -(-total // PER_PAGE))
        copies = _page(statement, number)
    return Listing(copies[:PER_PAGE], number, query, has_next=len(copies) > PER_PAGE)


def _page(statement, number: int) -> list[Recipient]:
    """Page ``number`` of ``statement``, and the first row of the next page if any."""
    return list(db.session.scalars(
        statement.options(contains_eager(Recipient.message))
        .order_by(Recipient.received_at.desc(), Recipient.id.desc())
        .offset((number - 1) * PER_PAGE).limit(PER_PAGE + 1)
    ))


def copy_for(user: User, public_id: str) -> Recipient | None:
    """The user's own copy of a message, expired or not; None when it is not theirs."""
    return db.session.scalar(
        select(Recipient).join(Recipient.message)
        .where(Message.public_id == public_id, Recipient.user_id == user.id,
               Recipient.route == "ccm", Message.tenant_id == user.tenant_id)
    )


def is_expired(copy: Recipient) -> bool:
    return copy.visible_until is None or copy.visible_until <= utcnow() or \
        copy.message.purged_at is not None


def opened(copy: Recipient, client_address: str | None) -> None:
    """Record the first time the recipient opens their copy."""
    if copy.first_opened_at is None:
        copy.first_opened_at = utcnow()
        copy.first_opened_from = client_address
        record(copy, "opened", f"Opened by the recipient from {client_address or 'unknown'}")
