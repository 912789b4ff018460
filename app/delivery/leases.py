"""Leases on outbound items: how a worker takes items to send, holds them while it
sends, records what happened only while it still holds them, and hands them back when it
stops (app/delivery/runner.py's docstring tells the whole story).

A lease is a token drawn for one take and a time (:data:`LEASE`): an item is recorded only
while it is ``sending`` under the token that took it, so an item taken over after its
lease ran out is recorded once, by its new holder. Several workers on PostgreSQL take
disjoint items (``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

import functools
import logging
import secrets
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from sqlalchemy import Row, bindparam, func, or_, select, update
from sqlalchemy.orm import aliased, joinedload

from app import clock
from app.extensions import db
from app.models import OutboundItem, Recipient

log = logging.getLogger(__name__)

#: how long a worker may hold an item before another may take it
LEASE = timedelta(minutes=10)
#: recipients of one message sent in one SMTP transaction at most (Postfix's
#: smtp_destination_recipient_limit); RFC 5321 4.5.3.1.8 has servers take 100
RCPTS_PER_TRANSACTION = 50
#: generated mail to one address a take leases at most: no other thread may send it
#: while the first is under way, so this one sends it, in order, under one take
GENERATED_PER_LEASE = 8
#: the start of every lease token this process draws: what it still holds when it stops
#: is exactly the items in ``sending`` under a token with this mark
_PROCESS_MARK = secrets.token_hex(4)

T = TypeVar("T")


@dataclass(frozen=True)
class Lease:
    """Items taken together under one token, all to one destination: one or more
    messages (``sends``, in the order they are due), each sent in one SMTP transaction
    with a RCPT an item."""

    sends: tuple[tuple[int, ...], ...]
    token: str
    destination: str
    #: the addresses of its generated mail (lower case), which no other of the run may
    #: overtake while this lease is being sent
    recipients: frozenset[str] = frozenset()

    @property
    def item_ids(self) -> tuple[int, ...]:
        return tuple(item_id for send in self.sends for item_id in send)

    @property
    def item_id(self) -> int:
        return self.sends[0][0]


def destination_of(rcpt_to: str) -> str:
    """What a run limits its concurrent deliveries by: the recipient's domain, as
    ``take`` matches it."""
    return rcpt_to.rpartition("@")[2].lower()


def due(now):
    return or_(
        (OutboundItem.state == "pending") & (OutboundItem.next_attempt_at <= now),
        (OutboundItem.state == "sending") & (OutboundItem.lease_until < now),
    )


def take(full: Collection[str], in_flight: Collection[str] = (), items: int = 1,
         later: Collection[str] = (), most: int | None = None) -> Lease | None:
    """Lease the next due item for a destination not in ``full``, with, for a delivery,
    the message's other due items that go with it in one transaction; then, up to
    ``items`` items in all, the next due items for the same destination. One commit.

    Destinations in ``later`` (the run's busy ones, and those it served this round) come
    after the others: the oldest due item of another destination is taken first, so that
    a backlog for one domain does not keep another's mail waiting behind it.

    Generated mail to an address in ``in_flight`` (lower case: the run's generated
    mail under way) is left for later, so that a recipient's notifications arrive in
    order (the password before the messages it opens) while several deliveries to one
    domain run at once. Received messages relayed on are not held back so: SMTP makes
    no promise of order between messages, and Postfix, like any MTA, sends several at
    once to one recipient. The generated mail due next to the lead's address comes along
    (up to GENERATED_PER_LEASE in all): ``most`` caps that at a run's limit.
    """
    with _group_commit.writing:
        # The outcomes waiting are written in the take's own transaction: one commit
        # (on SQLite one disk sync) for both, and no take comes between a remote
        # server's 250 and our commit of it.
        return _group_commit.joined(lambda: _take(full, in_flight, items, later, most))


def _take(full: Collection[str], in_flight: Collection[str], items: int,
          later: Collection[str], most: int | None) -> Lease | None:
    now = clock.utcnow()
    token = _PROCESS_MARK + secrets.token_hex(12)
    leased = {"b_now": now, "b_held": sorted(in_flight), "b_until": now + LEASE,
              "b_token": token}
    taken = None
    for skipped in ([{*full, *later}, full] if later else [full]):
        domains = {f"b_skip{n}": _at_domain(domain) for n, domain in enumerate(sorted(skipped))}
        taken = _statement(_lead_statement(len(skipped)),
                                   leased | domains).first()
        if taken is not None:
            break
    if taken is None:
        db.session.commit()
        return None
    destination = destination_of(taken.rcpt_to)
    others = _take_companions(taken, destination, token, now) \
        if taken.kind == "delivery" else []
    sends = [(taken.id, *sorted(others))]
    recipients = {taken.rcpt_to.lower()} if taken.kind != "delivery" else set()
    if items > 1 + len(others):
        sends += _take_followers(destination, leased, items - 1 - len(others), recipients)
    elif taken.kind != "delivery":
        same = GENERATED_PER_LEASE if most is None else min(most, GENERATED_PER_LEASE)
        sends += _take_same_address(taken.rcpt_to, leased, same - 1)
    db.session.commit()
    return Lease(tuple(sends), token, destination, frozenset(recipients))


def _statement(statement, values: dict):
    """Run one of the take's statements (built once) on the session's connection: as
    plain rows, without the ORM's handling of an UPDATE's RETURNING, which cost more
    than the statement itself. The session's changes are flushed first, as its own
    execute would."""
    db.session.flush()
    return db.session.connection().execute(statement, values)


def _not_at(pattern):
    """Leaving aside the items for the domain whose ``_at_domain`` pattern (a value or
    a bound parameter) is given."""
    return ~func.lower(OutboundItem.rcpt_to).like(pattern, escape="/")


#: a bound list of the addresses whose generated mail is under way: their next is left
#: for later (``take``); an empty list leaves nothing aside
_NOT_HELD_BACK = or_(OutboundItem.kind == "delivery",
                     func.lower(OutboundItem.rcpt_to).not_in(
                         bindparam("b_held", expanding=True)))
_WHEN = OutboundItem.lease_until.type


def _leasing(due_items):
    """An UPDATE leasing the items whose ids ``due_items`` (a subquery) selects, to the
    bound token until the bound time; it returns their ids."""
    return (update(OutboundItem).where(OutboundItem.id.in_(due_items.scalar_subquery()))
            .values(state="sending", lease_until=bindparam("b_until", type_=_WHEN),
                    lease_token=bindparam("b_token"))
            .returning(OutboundItem.id)
            .execution_options(synchronize_session=False))


@functools.cache
def _lead_statement(skipped: int):
    """Lease the oldest due item (the first to fall due) for a destination not among
    ``skipped`` bound ones (``b_skip0``...), and return it. Built once for each number
    of domains skipped: a take runs it for every lease."""
    next_due = (
        select(OutboundItem.id)
        .where(due(bindparam("b_now", type_=_WHEN)), _NOT_HELD_BACK,
               *[_not_at(bindparam(f"b_skip{n}")) for n in range(skipped)])
        .order_by(OutboundItem.next_attempt_at, OutboundItem.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    return _leasing(next_due).returning(OutboundItem.rcpt_to, OutboundItem.kind,
                                        OutboundItem.route, OutboundItem.recipient_id)


def due_elsewhere(busy: Collection[str], in_flight: Collection[str] = ()) -> bool:
    """Whether an item is due for a destination not in ``busy`` (generated mail to an
    address in ``in_flight`` left aside, as ``take`` leaves it)."""
    found = db.session.execute(
        select(OutboundItem.id)
        .where(due(clock.utcnow()), _NOT_HELD_BACK,
               *[_not_at(_at_domain(domain)) for domain in sorted(busy)])
        .limit(1), {"b_held": sorted(in_flight)}).first()
    db.session.commit()  # ends the read
    return found is not None


def hand_back() -> list[int]:
    """Put the items this process still leases back in the queue, due as they were (a
    stopping worker, once its grace period is over); their ids.

    Only items still in ``sending`` under one of this process's tokens change, in one
    statement: an outcome recorded meanwhile (which first takes the row under the same
    token) is never undone, and an item another worker took over is not touched. The
    handed-back item is not counted as a try. One handed back while its delivery was in
    the middle of DATA, or after the remote server's 250 but before our commit, may
    reach its recipient twice: the same window as a worker killed outright, only retried
    at once rather than when the lease runs out. Its thread records nothing more (the
    token no longer holds the item).
    """
    handed = _put_back(OutboundItem.lease_token.startswith(_PROCESS_MARK, autoescape=True))
    if handed:
        log.warning("stopping: outbound items %s handed back to the queue unfinished",
                    sorted(handed))
    return handed


def _take_companions(lead, destination: str, token: str, now) -> list[int]:
    """Lease the due deliveries of the lead item's message that go where it goes: the
    same route, the same recipient domain, the same TLS requirement."""
    return list(_statement(_COMPANIONS, {
        "b_now": now, "b_lead": lead.id, "b_lead_recipient": lead.recipient_id,
        "b_route": lead.route, "b_at_domain": _at_domain(destination),
        "b_until": now + LEASE, "b_token": token}).scalars())


def _at_domain(destination: str) -> str:
    """A LIKE pattern (escape ``/``) for the addresses at ``destination``."""
    escaped = destination.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return f"%@{escaped}"


def _companions_statement():
    """The statement of :func:`_take_companions`, built once (it runs for every take)."""
    lead_recipient = aliased(Recipient)
    return _leasing(
        select(OutboundItem.id)
        .join(Recipient, OutboundItem.recipient_id == Recipient.id)
        .join(lead_recipient, lead_recipient.id == bindparam("b_lead_recipient"))
        .where(due(bindparam("b_now", type_=_WHEN)), OutboundItem.id != bindparam("b_lead"),
               OutboundItem.kind == "delivery", OutboundItem.route == bindparam("b_route"),
               Recipient.message_id == lead_recipient.message_id,
               Recipient.tls.is_not_distinct_from(lead_recipient.tls),
               func.lower(OutboundItem.rcpt_to).like(bindparam("b_at_domain"), escape="/"))
        .order_by(OutboundItem.id)
        .limit(RCPTS_PER_TRANSACTION - 1)
        .with_for_update(skip_locked=True, of=OutboundItem)
    )


_COMPANIONS = _companions_statement()
#: the statements of :func:`_take_followers`, built once
_FOLLOWERS = _leasing(
    select(OutboundItem.id)
    .where(due(bindparam("b_now", type_=_WHEN)), _NOT_HELD_BACK,
           func.lower(OutboundItem.rcpt_to).like(bindparam("b_at_domain"), escape="/"))
    .order_by(OutboundItem.next_attempt_at, OutboundItem.id)
    .limit(bindparam("b_count"))
    .with_for_update(skip_locked=True))
#: the statement of :func:`_take_same_address`, built once
_SAME_ADDRESS = _leasing(
    select(OutboundItem.id)
    .where(due(bindparam("b_now", type_=_WHEN)), OutboundItem.kind != "delivery",
           func.lower(OutboundItem.rcpt_to) == bindparam("b_address"))
    .order_by(OutboundItem.next_attempt_at, OutboundItem.id)
    .limit(bindparam("b_count"))
    .with_for_update(skip_locked=True))
_FOLLOWERS_TAKEN = (
    select(OutboundItem.id, OutboundItem.kind, OutboundItem.route, OutboundItem.rcpt_to,
           Recipient.message_id, Recipient.tls)
    .outerjoin(Recipient, OutboundItem.recipient_id == Recipient.id)
    .where(OutboundItem.id.in_(bindparam("b_ids", expanding=True)))
    .order_by(OutboundItem.next_attempt_at, OutboundItem.id))


def _take_followers(destination: str, leased: dict, count: int,
                    recipients: set[str]) -> list[tuple[int, ...]]:
    """Lease the next ``count`` due items for ``destination`` (after the lead's), as the
    messages to send, in the order they are due: a message's deliveries by the same
    route and TLS requirement together, each notification alone. ``leased`` binds the
    time, the lease and the addresses held back (``take``'s). The addresses of the
    generated mail are added to ``recipients``."""
    taken = list(_statement(_FOLLOWERS, leased | {
        "b_at_domain": _at_domain(destination), "b_count": count}).scalars())
    if not taken:
        return []
    rows = _statement(_FOLLOWERS_TAKEN, {"b_ids": taken})
    sends: list[list[int]] = []
    open_for: dict[tuple, list[int]] = {}  # a message's transaction still taking RCPTs
    for row in rows:
        if row.kind != "delivery":
            recipients.add(row.rcpt_to.lower())
            sends.append([row.id])
            continue
        together = (row.message_id, row.route, row.tls)
        send = open_for.get(together)
        if send is None or len(send) >= RCPTS_PER_TRANSACTION:
            send = open_for[together] = []
            sends.append(send)
        send.append(row.id)
    return [tuple(ids) for ids in sends]


def _take_same_address(address: str, leased: dict, count: int) -> list[tuple[int]]:
    """Lease the next ``count`` generated mails due to ``address`` (the lead's), each a message of
    its own, in the order due: it would wait for the lead's lease to end in any case
    (``take`` holds back an address's generated mail while some is under way), so the
    thread sending the lead sends it next, without a take (a commit) for each."""
    if count < 1:
        return []
    taken = list(_statement(_SAME_ADDRESS, leased | {
        "b_address": address.lower(), "b_count": count}).scalars())
    if not taken:
        return []
    return [(row.id,) for row in _statement(_FOLLOWERS_TAKEN, {"b_ids": taken})]


def release(item_ids, token: str) -> None:
    """Put items still leased under ``token`` back in the queue untried, due as they were
    (the rest of a lease a stopping run does not send)."""
    _put_back(OutboundItem.id.in_(list(item_ids)), OutboundItem.lease_token == token)


def _put_back(*held) -> list[int]:
    """Put the items still in ``sending`` that ``held`` selects back in the queue, due as
    they were and not counted as a try, in one statement, and commit; their ids."""
    ids = list(db.session.execute(
        update(OutboundItem)
        .where(OutboundItem.state == "sending", *held)
        .values(state="pending", lease_until=None, lease_token=None)
        .returning(OutboundItem.id)
        .execution_options(synchronize_session=False)).scalars())
    db.session.commit()
    return ids


def holds(item: OutboundItem, token: str) -> bool:
    return (item.state == "sending" and item.lease_token == token
            and item.lease_until is not None and item.lease_until > clock.utcnow())


class LeaseLost(Exception):
    """Another worker holds the item now: this one must stop sending it."""


def renew(item_ids: list[int], token: str) -> set[int]:
    """Extend the leases before the next server is tried, so that a delivery going
    through many slow servers does not outlive them; the items still held. Raises
    LeaseLost when none is: their leases ran out and another worker took them over."""
    renewed = {item_id for item_id in item_ids
               if update_if_held(item_id, token, lease_until=clock.utcnow() + LEASE)}
    db.session.commit()
    if not renewed:
        raise LeaseLost(item_ids)
    return renewed


def update_if_held(item_id: int, token: str, **values) -> bool:
    """Set ``values`` on the item if the lease ``token`` still holds it; whether it did.
    The UPDATE locks the row (PostgreSQL) or the database (SQLite) until the commit."""
    return db.session.execute(
        update(OutboundItem)
        .where(OutboundItem.id == item_id, OutboundItem.state == "sending",
               OutboundItem.lease_token == token)
        .values(**values)
        .execution_options(synchronize_session=False)).rowcount == 1


def record_each(item_ids, token: str, outcome: Callable[[OutboundItem], None]) -> None:
    """Apply ``outcome`` to each item the lease ``token`` still holds, and commit.

    The commit is shared with the outcomes other threads of this process record at the
    same moment (a group commit: one disk sync for several deliveries); this returns
    once it is done, or raises what applying or committing this outcome raised. Each
    item's first statement holds it until the commit, so no other worker can take it
    over in between.
    """
    _group_commit.record(_Outcome(tuple(item_ids), token, apply=outcome))


@dataclass(frozen=True)
class Sent:
    """A delivery to record (:func:`record_sent`): the event for the recipients'
    histories, what logs each item's row, and the statements that write it, which are
    the domain's (``outbound_queue.finish_sent`` and ``sent_to``): ``finish`` ends the
    items still held under a token and returns their rows, ``recipients`` records the
    rows' recipients, for a whole group at once."""

    event: str
    logged: Callable[[Row], None]
    finish: Callable[[tuple[int, ...], str], list[Row]]
    recipients: Callable[[list[tuple[Row, str]]], None]


def record_sent(item_ids, token: str, sent: Sent) -> None:
    """Record the items the lease ``token`` still holds as delivered, as
    :func:`record_each` records an outcome (the same group commit), in a few statements
    for the whole group instead of loaded objects: the commonest outcome, written while
    the process's one writer is held. ``sent.logged`` is called with each item's row
    before the commit."""
    _group_commit.record(_Outcome(tuple(item_ids), token, sent=sent))


@dataclass
class _Outcome:
    item_ids: tuple[int, ...]
    token: str
    apply: Callable[[OutboundItem], None] | None = None
    #: a delivery (record_sent)
    sent: Sent | None = None
    error: Exception | None = None


def _apply_where_held(group: list[_Outcome]) -> None:
    """Apply each outcome to the items its token still holds. A delivery's outcome is
    written by statements alone (:func:`_write_sent`). For the others an UPDATE an
    outcome takes the items (holding them to the commit), and one SELECT loads them all
    with their recipients and messages, so that recording does not stop to load them
    one by one (each such load would flush what the outcomes before had changed)."""
    _write_sent([outcome for outcome in group if outcome.sent is not None])
    held: list[tuple[_Outcome, int]] = []
    for outcome in group:
        if outcome.sent is not None:
            continue
        still = set(db.session.execute(
            update(OutboundItem)
            .where(OutboundItem.id.in_(outcome.item_ids), OutboundItem.state == "sending",
                   OutboundItem.lease_token == outcome.token)
            .values(lease_token=outcome.token)
            .returning(OutboundItem.id)
            .execution_options(synchronize_session=False)).scalars())
        _warn_taken_over(outcome, still)
        held += [(outcome, item_id) for item_id in outcome.item_ids if item_id in still]
    if not held:
        return
    items = {item.id: item for item in db.session.scalars(
        select(OutboundItem).where(OutboundItem.id.in_([item_id for _, item_id in held]))
        .options(joinedload(OutboundItem.recipient).joinedload(Recipient.message))
        .execution_options(populate_existing=True))}
    for outcome, item_id in held:
        outcome.apply(items[item_id])


def _write_sent(group: list[_Outcome]) -> None:
    """Record deliveries: an UPDATE an outcome ends its items still held (and holds
    them to the commit), then one UPDATE of their recipients and one INSERT of their
    events for the whole group (for each way of writing them: there is one)."""
    ended: dict[Callable, list[tuple[Row, str]]] = {}
    for outcome in group:
        sent = outcome.sent
        rows = sent.finish(outcome.item_ids, outcome.token)
        _warn_taken_over(outcome, {row.id for row in rows})
        for row in rows:
            sent.logged(row)
        ended.setdefault(sent.recipients, []).extend((row, sent.event) for row in rows)
    for recipients, rows in ended.items():
        if rows:
            recipients(rows)


def _warn_taken_over(outcome: _Outcome, still: set[int]) -> None:
    for item_id in outcome.item_ids:
        if item_id not in still:
            log.warning("outbound item %s was taken over by another worker: its "
                        "outcome here is not recorded", item_id)


class _GroupCommit:
    """Outcomes recorded by several threads at once, written in one transaction by
    whichever of them gets to commit first, in its own session; the others wait for
    that commit. If the group fails, each outcome is recorded again alone, so one
    failing outcome takes no other with it.

    ``writing`` is held by the thread writing; a take holds it too, so that within the
    process writers queue here rather than in SQLite's busy timeout, which sleeps, and
    writes the outcomes waiting in its own transaction (:meth:`joined`), so that no
    take comes between a remote server's 250 and our commit of it.
    """

    def __init__(self):
        self.writing = threading.Lock()
        self._waiting: list[_Outcome] = []
        self._waiting_lock = threading.Lock()

    def record(self, outcome: _Outcome) -> None:
        with self._waiting_lock:
            self._waiting.append(outcome)
        with self.writing:
            self.commit_waiting()  # ours, unless the thread before wrote it
        if outcome.error is not None:
            raise outcome.error

    def commit_waiting(self) -> None:
        """Write the outcomes waiting (the caller holds ``writing``)."""
        group = self._take_waiting()
        if group:
            self._commit(group)

    def joined(self, work: Callable[[], T]) -> T:
        """Write the outcomes waiting and then do ``work`` (which commits) in the same
        transaction (the caller holds ``writing``). If either fails, the outcomes are
        written on their own, as a group that fails is, and ``work`` is done again
        alone: an outcome that cannot be written never fails the take."""
        group = self._take_waiting()
        if group:
            try:
                _apply_where_held(group)
                db.session.flush()  # what cannot be written fails here, not in ``work``
            except Exception:
                db.session.rollback()
                self._commit(group)  # again, then each alone; the work goes on
                group = []
        try:
            return work()
        except Exception:
            db.session.rollback()
            if not group:
                raise
        self._commit(group)  # the COMMIT may have failed on an outcome's account
        return work()

    def _take_waiting(self) -> list[_Outcome]:
        with self._waiting_lock:
            group, self._waiting = self._waiting, []
        return group

    @staticmethod
    def _commit(group: list[_Outcome]) -> None:
        try:
            _apply_where_held(group)
            db.session.commit()
        except Exception as error:
            db.session.rollback()
            if len(group) == 1:
                group[0].error = error
            else:
                for outcome in group:
                    try:
                        _apply_where_held([outcome])
                        db.session.commit()
                    except Exception as alone:
                        db.session.rollback()
                        outcome.error = alone


_group_commit = _GroupCommit()
