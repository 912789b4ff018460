"""What a signed-in user may see of the isolation area: their own copies, while visible.

A message is reached only through its recipient row for this user: anyone else's copy,
another tenant's, or an identifier that does not exist all answer the same None, so a
page cannot hint that a message exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.orm import contains_eager

from app import clock
from app.domain.delivery_events import record
from app.domain.searching import search_text
from app.extensions import db
from app.models import Message, Recipient, RecipientState, Route, User

PER_PAGE = 20


@dataclass
class Page:
    """A page of a counted listing (app/web/queries/sent_items.py)."""

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

    copies: list[Entry]
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


@dataclass(frozen=True)
class Fate:
    """What became of a copy that can no longer be read, and when."""

    withdrawn: bool
    at: datetime | None


def fate(state: str, revoked_at: datetime | None, visible_until: datetime | None,
         purged_at: datetime | None) -> Fate | None:
    """Withdrawn or expired, with the day; None while the copy can be read."""
    if state == RecipientState.REVOKED:
        return Fate(True, revoked_at)
    if (state == RecipientState.EXPIRED or purged_at is not None or visible_until is None
            or visible_until <= clock.utcnow()):
        return Fate(False, visible_until or purged_at)
    return None


def fate_of(copy: Recipient) -> Fate | None:
    return fate(copy.state, copy.revoked_at, copy.visible_until, copy.message.purged_at)


@dataclass(frozen=True)
class Entry:
    """One line of the inbox: what it shows of a copy and its message."""

    public_id: str
    header_from: str
    mail_from: str
    subject: str
    received_at: datetime
    visible_until: datetime | None
    first_opened_at: datetime | None
    fate: Fate | None


#: the states of a CCM copy the inbox lists: nothing leaves it silently
LISTED = (RecipientState.HELD, RecipientState.REVOKED, RecipientState.EXPIRED)


@cache
def _listing(searching: bool):
    """The inbox's statement, built once: what each row shows of a copy and its message.

    The first condition walks ix_recipient_inbox (user_id, received_at, id) newest
    first; the others are checked on the rows that walk yields, so a search reads only
    the user's own copies. Withdrawn and expired copies stay, greyed, saying so.
    Rows, not ORM objects: the list only shows them.
    """
    statement = (
        select(Recipient.first_opened_at, Recipient.visible_until, Recipient.state,
               Recipient.revoked_at, Message.public_id, Message.header_from,
               Message.mail_from, Message.subject, Message.received_at, Message.purged_at)
        .join(Recipient.message)
        .where(Recipient.user_id == bindparam("user_id"), Recipient.state.in_(LISTED),
               Recipient.route == Route.CCM, Message.tenant_id == bindparam("tenant_id"))
    )
    if searching:
        pattern = bindparam("pattern")
        statement = statement.where(or_(
            Message.subject.ilike(pattern, escape="/"),
            Message.header_from.ilike(pattern, escape="/"),
            Message.mail_from.ilike(pattern, escape="/"),
        ))
    return statement


@cache
def _page_of(searching: bool):
    """One page of :func:`_listing`, and the first row of the next if there is one."""
    return (_listing(searching)
            .order_by(Recipient.received_at.desc(), Recipient.id.desc())
            .offset(bindparam("offset")).limit(bindparam("limit")))


def inbox(user: User, *, query: str = "", number: int = 1) -> Listing:
    """The user's CCM messages at their tenant, newest first, searched and paged."""
    query = search_text(query)
    values = {"user_id": user.id, "tenant_id": user.tenant_id}
    if query:
        escaped = query.replace("/", "//").replace("%", "/%").replace("_", "/_")
        values["pattern"] = f"%{escaped}%"
    number = max(1, min(number, MAX_PAGE))
    copies = _page(query, values, number)
    if not copies and number > 1:
        # Past the end (an old link, an edited address): the last page, as counted now.
        total = db.session.scalar(
            select(func.count()).select_from(_listing(bool(query)).subquery()), values)
        number = max(1, -(-total // PER_PAGE))
        copies = _page(query, values, number)
    return Listing(copies[:PER_PAGE], number, query, has_next=len(copies) > PER_PAGE)


def _page(query: str, values: dict, number: int) -> list[Entry]:
    rows = db.session.execute(_page_of(bool(query)), {
        **values, "offset": (number - 1) * PER_PAGE, "limit": PER_PAGE + 1})
    return [Entry(row.public_id, row.header_from, row.mail_from, row.subject,
                  row.received_at, row.visible_until, row.first_opened_at,
                  fate(row.state, row.revoked_at, row.visible_until, row.purged_at))
            for row in rows]


def copy_for(user: User, public_id: str) -> Recipient | None:
    """The user's own copy of a message, expired or not; None when it is not theirs."""
    return db.session.scalar(
        select(Recipient).join(Recipient.message).options(contains_eager(Recipient.message))
        .where(Message.public_id == public_id, Recipient.user_id == user.id,
               Recipient.route == Route.CCM, Message.tenant_id == user.tenant_id)
    )


def opened(copy: Recipient, client_address: str | None) -> None:
    """Record the first time the recipient opens their copy."""
    if copy.first_opened_at is None:
        copy.first_opened_at = clock.utcnow()
        copy.first_opened_from = client_address
        record(copy, "opened", f"Opened by the recipient from {client_address or 'unknown'}")
