"""The delivery runner: the worker's job that sends what the queue holds.

``run_due`` (the worker's job) delivers due items on ``CCM_DELIVERY_THREADS`` threads at
once, each with its own application context and database session, at most
``CCM_DESTINATION_CONCURRENCY`` of them to one recipient domain (Postfix's
default_destination_concurrency_limit), never all of them: a domain with deliveries
under way does not take the last free thread, so one is always left for a domain that
has none. The next lease goes to the domains in turn (round-robin, as Postfix's queue
manager): the oldest due item among the domains neither busy nor served already this
round, and only when there is none, the oldest among the rest; a backlog for one
domain does not make another's mail wait behind it. A thread leases a message's due
items for one recipient domain (up to :data:`leases.RCPTS_PER_TRANSACTION`, those with
the same route and TLS requirement) under a token drawn for that take, and, when the
other threads are busy, the next messages due for that domain too, up to
:data:`ITEMS_PER_LEASE` items in one commit (they hold one thread: the domain's limit
and the last free thread count threads, so a batch keeps no other domain waiting). It
sends them one message after the other, each in one SMTP transaction with a RCPT an
item, and records what happened to each message's items as soon as the server
answered: delivered, deferred with growing back-off, bounced with a delivery status
notification to the sender, or sent by CCM after a TLS failure. The outcomes the
threads record at the same moment share one commit (:func:`leases.record_each`), with
the next take if one is under way (one thread takes at a time); an
outcome's log line and metrics come once the commit that records it succeeds (a failed
group is written again an outcome at a time). The run's threads share the SMTP sessions
the transport keeps open, so the next message to the same server goes over the same session.

Order: relayed messages to one recipient may go several at once, as from Postfix
(SMTP promises no order between messages); a recipient's generated mail (a password
notice, then the messages it opens) is sent one at a time, in order. One slow server
holds up only its own domain's deliveries, the other threads go on with other domains,
and while deliveries are in progress they keep taking mail that falls due meanwhile.
A worker that dies holds what its threads had leased (up to ITEMS_PER_LEASE items
each); those items wait for their lease to run out, nothing else does.

Several workers on PostgreSQL take disjoint items (``FOR UPDATE SKIP LOCKED``); on
SQLite, one worker process is the supported setup, its threads' writes serialised by
the process (:class:`leases._GroupCommit`) and SQLite's lock. A worker records an
attempt only if it still holds the item under its token, so an item taken over after
its lease ran out is recorded once, by its new holder; it checks the lease before it
sends each message, and renews it before each further server it tries (many slow MX
hosts can take longer than a lease), stopping if another worker has taken the item
over meanwhile; a thread hands back the rest of its lease once it has spent
:data:`LEASE_USED_SECONDS` on it. The one window in which a recipient can get a
message twice is between the remote server's 250 and our commit of it, which comes
right after that 250, shared with whatever other outcomes are being committed at that
moment (app/delivery/transport.py says what remains).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from functools import partial

from flask import Flask, current_app
from sqlalchemy import Row, bindparam, select
from sqlalchemy.exc import OperationalError

from app import clock, database, metrics
from app.delivery import dsn, leases, mail_templates, transport
from app.delivery.destinations import RemoteAnswer
from app.delivery.queue import signed
from app.domain import isolation, notices, outbound_queue
from app.domain.delivery_events import record
from app.extensions import db
from app.mail import mime
from app.models import Message, OutboundItem, QueueState, Recipient

log = logging.getLogger(__name__)

#: set when the process is stopping (``ccm worker`` on SIGTERM): no thread of a run takes
#: another item; those in flight finish, or are handed back (:func:`leases.hand_back`)
stopping = threading.Event()


def target_of(item: OutboundItem) -> tuple[str, bool]:
    """Where an item goes (the tenant's internal relay, CCM_INTERNAL_RELAY or
    CCM_OUTBOUND), and whether a tenant administrator chose it: the transport then
    connects only where one may aim it."""
    config = current_app.config
    tenant = item.tenant if item.route == "internal" else None  # loaded only if needed
    if tenant is not None and tenant.internal_relay:
        return tenant.internal_relay, not tenant.internal_relay_trusted
    return config["INTERNAL_RELAY" if item.route == "internal" else "OUTBOUND"], False


def run_due(limit: int | None = None) -> int:
    """Deliver what is due, until nothing is due and nothing is in flight (or ``limit``
    items were taken); the number of items handled.

    ``CCM_DELIVERY_THREADS`` deliveries at once, this thread one of them, at most
    ``CCM_DESTINATION_CONCURRENCY`` of them to one recipient domain. A maildir is
    written one message at a time: there is no network to wait for.
    """
    app = current_app._get_current_object()
    threads = 1 if app.config["OUTBOUND"].startswith("maildir:") \
        else max(1, app.config["DELIVERY_THREADS"])
    run = _Run(limit, poll=app.config["WORKER_INTERVAL"], threads=threads,
               per_destination=app.config["DESTINATION_CONCURRENCY"])
    helpers = [threading.Thread(target=_helper, args=(app, run), name=f"deliver-{n}",
                                daemon=True) for n in range(1, threads)]
    for helper in helpers:
        helper.start()
    try:
        run.work()
    finally:
        for helper in helpers:
            helper.join()
        run.sessions.close()
        db.session.expire_all()  # what the other threads recorded is read afresh
    return run.taken


def _helper(app: Flask, run: _Run) -> None:
    with app.app_context():
        try:
            run.work()
        except Exception:
            log.exception("a delivery thread stopped")
        finally:
            db.session.remove()


class _Run:
    """One run of the queue, shared by its threads: what they took, where they send."""

    def __init__(self, limit: int | None, poll: float, threads: int = 1,
                 per_destination: int = 1):
        self.limit, self.poll, self.threads = limit, poll, threads
        #: deliveries to one domain at once: never every thread, so that one slow domain
        #: always leaves one for the others
        self.per_destination = per_destination if threads == 1 \
            else min(per_destination, threads - 1)
        #: deliveries at once beyond which a thread has no use for more work than it
        #: takes (exact for one destination, near enough for several)
        self.slots = min(threads, self.per_destination)
        self.taken = 0
        #: deliveries under way, by recipient domain
        self.in_flight: Counter[str] = Counter()
        #: their number: read without the lock where a stale count does no harm
        self.busy = 0
        #: leases ended so far: a take that found nothing while one ended may have been
        #: kept from what that lease held back (``work``)
        self.ended = 0
        #: the domains leased to in this round: each domain with mail due gets its turn
        #: before any gets a second one (round-robin, as Postfix's queue manager)
        self.served: set[str] = set()
        #: the addresses of the generated mail under way: none is overtaken by a later one
        self.recipients: Counter[str] = Counter()
        self.changed = threading.Condition()
        #: held by the thread taking its next lease
        self.taking = threading.Lock()
        #: SMTP sessions kept open for the next message to the same server
        self.sessions = transport.Sessions()

    def work(self) -> None:
        while True:
            self.sessions.close_idle()
            with self.changed:
                ended = self.ended
            lease = self._take()
            if lease is None:
                with self.changed:
                    if not self._over() and not self.in_flight and self.ended != ended:
                        # a lease ended during the take: what it held back (its domain
                        # full, its address's next notice) may be due now
                        continue
                    if self._over() or not self.in_flight:
                        self.changed.notify_all()  # the threads waiting stop too
                        return  # nothing due, nothing in flight
                    # Watch for mail that falls due while another thread is sending.
                    self.changed.wait(self.poll)
                continue
            try:
                self._send(lease)
            finally:
                self._done(lease)

    def _over(self) -> bool:
        return stopping.is_set() or (self.limit is not None and self.taken >= self.limit)

    def _take(self) -> leases.Lease | None:
        """Lease this thread's next work, fairly among the domains.

        One thread takes at a time (``taking``), so what is full cannot grow meanwhile;
        ``changed`` is held only to read and count, not while the take waits for the
        process's writer, so that the threads finishing a message are not held up."""
        with self.taking:
            with self.changed:
                if self._over():
                    return None
                full = self._full()
                later = (set(self.in_flight) | self.served) - full
                recipients, room = set(self.recipients), self._room()
                most = None if self.limit is None else self.limit - self.taken
            lease = leases.take(full, recipients, items=room, later=later, most=most)
            if lease is None:
                return None
            with self.changed:
                self.taken += len(lease.item_ids)
                self.in_flight[lease.destination] += 1
                self.busy += 1
                self.recipients.update(lease.recipients)
                if lease.destination in later or len(self.served) >= ROUND_DOMAINS:
                    self.served = set()  # every domain with mail due had its turn
                self.served.add(lease.destination)
                if self._room_left(lease.destination):
                    self.changed.notify()  # a thread waiting may take the next
            return lease

    def _done(self, lease: leases.Lease) -> None:
        """Let the lease's slot go. No thread waiting is woken for it: this one takes
        next, with the same view of what is full, so a waiting thread would only repeat
        its take for nothing (a statement and the process's write lock each time);
        unless the run is stopping, which they must hear at once, not at their next poll."""
        with self.changed:
            self.in_flight -= Counter({lease.destination: 1})
            self.busy -= 1
            self.ended += 1
            self.recipients -= Counter(lease.recipients)
            if stopping.is_set():
                self.changed.notify_all()

    def _room_left(self, destination: str) -> bool:
        """Whether, after a take for ``destination``, another thread might take too
        (that domain or another has a slot free), so that a short queue filling up
        wakes the threads one by one (the caller holds ``changed``)."""
        return self.in_flight[destination] < self.per_destination \
            and self.busy + 1 < self.threads

    def _give_way(self) -> bool:
        """Whether a thread sending a batch should hand back its rest: every thread is
        busy and a domain with nothing under way has mail due, which would otherwise
        wait for the whole batch (to a slow server, minutes). Not with one thread: a
        maildir is written at once, and a lone thread would hand back a batch for each
        other domain's message (a take and a hand-back for each)."""
        if self.threads == 1 or self.busy < self.threads:
            return False  # read without the lock, which a take may hold a while
        with self.changed:
            busy, recipients = set(self.in_flight), set(self.recipients)
        try:
            return leases.due_elsewhere(busy, recipients)
        except OperationalError:  # the database failing: go on with the batch
            db.session.rollback()
            return False

    def _full(self) -> set[str]:
        """The domains this thread may not take for: those at their limit, and, when it
        is the last thread free, every domain with a delivery under way (the last thread
        is kept for a domain that has none, however many domains are busy)."""
        last_free = self.busy + 1 >= self.threads
        return {domain for domain, count in self.in_flight.items()
                if count >= self.per_destination or (count and last_free)}

    def _room(self) -> int:
        """How many items to take: several when this take fills the last free slot (a
        commit saved a message), one while other slots are free, so that a short queue
        is shared out among the threads instead of sent by one."""
        room = ITEMS_PER_LEASE if self.busy + 1 >= self.slots else 1
        return room if self.limit is None else min(room, self.limit - self.taken)

    def _send(self, lease: leases.Lease) -> None:
        """Send the lease's messages one after the other, each recorded as it goes; the
        rest goes back to the queue if the run is stopping, the lease grows old, or
        another domain waits for this thread."""
        taken_at = time.monotonic()
        for number, item_ids in enumerate(lease.sends):
            if number and (stopping.is_set()
                           or time.monotonic() - taken_at > LEASE_USED_SECONDS
                           or self._give_way()):
                _release([item for rest in lease.sends[number:] for item in rest],
                         lease.token)
                return
            _deliver(item_ids, lease.token, self.sessions)


#: domains a round remembers at most: past that a new round starts (each remembered
#: domain is one more condition in the take's query)
ROUND_DOMAINS = 64
#: items one thread leases at once, sent as one or more messages one after the other:
#: one commit takes them all (more would leave other threads idle on a short queue)
ITEMS_PER_LEASE = 8
#: how long a thread sends a lease's messages before it hands the rest back (a lease
#: lasts leases.LEASE; slow servers must not let it run out under the later messages)
LEASE_USED_SECONDS = leases.LEASE.total_seconds() / 4


def _release(item_ids, token: str) -> None:
    try:
        leases.release(item_ids, token)
    except Exception:  # the database failing: the leases run out, as for a dead worker
        db.session.rollback()
        log.exception("could not hand back outbound items %s", item_ids)


def _deliver(item_ids: tuple[int, ...], token: str, sessions: transport.Sessions) -> None:
    """Send one message of a lease and record the outcome; what goes wrong with this
    message stays with it."""
    try:
        _attempt(item_ids[0], token, *item_ids[1:], sessions=sessions)
    except OperationalError as error:
        # The database failing (locked, gone): a try, retried like a busy server.
        db.session.rollback()
        log.exception("outbound items %s: the database failed", item_ids)
        _count_as_a_try(item_ids, token, f"4.3.0 Database error ({type(error).__name__})")
    except Exception as error:
        # A bug: it must not stop the queue, nor leave the item "sending" for ever,
        # nor bounce the sender for it. The items are set aside for the operator.
        db.session.rollback()
        log.exception("outbound items %s failed unexpectedly: set aside until an "
                      "operator retries them", item_ids)
        _shunt(item_ids, token, error)


def _count_as_a_try(item_ids, token: str, reply: str) -> None:
    _record_failure(item_ids, token, lambda item: _defer(_tried(item), reply))


def _shunt(item_ids, token: str, error: Exception) -> None:
    """Set the item aside (state ``shunted``) with the error on it and in the
    recipient's history: not tried again until an operator retries it
    (``ccm queue retry``)."""
    problem = f"Unexpected error ({type(error).__name__}: {error})"

    def set_aside(item: OutboundItem) -> None:
        # Not _finish: a notification keeps what it would send, for the retry.
        _tried(item)
        item.state, item.last_error = QueueState.SHUNTED, problem
        item.lease_until = item.lease_token = None
        metrics.delivery_outcome(item.kind, item.route, "shunted", 0.0)
        if item.recipient is not None:
            record(item.recipient, QueueState.SHUNTED,
                   f"Held for the operator: {problem}; not tried again until an operator "
                   "retries it")

    _record_failure(item_ids, token, set_aside)


def _record_failure(item_ids, token: str, outcome: Callable[[OutboundItem], None]) -> None:
    try:
        leases.record_each(item_ids, token, outcome)
    except Exception:  # the database itself failing: the lease runs out, as before
        db.session.rollback()
        log.exception("could not record the failure of outbound items %s", item_ids)


def _attempt(item_id: int, token: str, *others: int,
             sessions: transport.Sessions | None = None) -> None:
    """Send leased items (one message, one destination) and record each outcome, as
    long as the lease is ours."""
    items = _load(item_id, *others)
    for item in items:
        if not leases.holds(item, token):
            log.warning("outbound item %s is no longer leased to this worker: not sent",
                        item.id)
    items = [item for item in items if leases.holds(item, token)]
    if not items:
        db.session.rollback()
        return
    lead = items[0]
    ids, rcpts = [item.id for item in items], [item.rcpt_to for item in items]
    raw = _content(lead, token)
    if raw is None:
        why = ("the account's password was set meanwhile by other means"
               if lead.kind == "notification" else "the message was withdrawn or has expired")
        leases.record_each(ids, token, lambda item: _finish(item, "done", f"Not sent: {why}"))
        return
    about = db.session.execute(_ABOUT, {"b_id": lead.recipient_id}).first() \
        if lead.recipient_id is not None else None
    tls = about.tls if lead.kind == "delivery" and about is not None else None
    (target, restricted), mail_from = target_of(lead), lead.mail_from
    options = transport.Options.from_config(current_app.config)
    message_id = about.public_id if about is not None else None
    generated = None if lead.kind == "delivery" else _generated_event(rcpts[0], raw)
    # No transaction stays open while the remote server takes its time.
    db.session.commit()

    def delivered(positions: list[int], event: str) -> None:
        text = generated or event
        leases.record_sent([ids[p] for p in positions], token, leases.Sent(
            text, lambda row: _log_line(row, message_id, "sent", text),
            outbound_queue.finish_sent, outbound_queue.sent_to))

    def still_ours() -> list[int]:
        held = leases.renew(ids, token)
        return [p for p, item_id in enumerate(ids) if item_id in held]

    try:
        failures = transport.send(target, raw, mail_from, rcpts, tls=tls, options=options,
                                  restricted=restricted, accepted=delivered,
                                  before_next=still_ours, sessions=sessions)
    except leases.LeaseLost:
        log.warning("outbound items %s were taken over by another worker while this one "
                    "tried their servers: not sent further", ids)
        return
    except (transport.TlsUnavailable, transport.DeliveryFailed) as whole:
        failures = dict.fromkeys(range(len(ids)), whole)
    if failures:  # one commit for all, as for the delivered ones
        outcome_of = {ids[position]: _failed(failure) for position, failure in failures.items()}
        leases.record_each(list(outcome_of), token, lambda item: outcome_of[item.id](item))


def _load(*item_ids: int) -> list[OutboundItem]:
    """The items as they are now, in the order given (those gone left out), in one
    query. What a delivery needs of its recipient and message is read by statements
    (``_ABOUT``, ``_RAW``): loading them as objects cost more than the rest of a
    delivery's work."""
    found = {item.id: item for item in db.session.scalars(_ITEMS, {"b_ids": list(item_ids)})}
    return [found[item_id] for item_id in item_ids if item_id in found]


#: built once: a delivery runs them for every message
_ITEMS = (select(OutboundItem).where(OutboundItem.id.in_(bindparam("b_ids", expanding=True)))
          .execution_options(populate_existing=True))
#: a recipient's TLS requirement and its message's ids
_ABOUT = (select(Recipient.tls, Recipient.message_id, Message.public_id)
          .join(Message, Recipient.message_id == Message.id)
          .where(Recipient.id == bindparam("b_id")))
#: the content of a recipient's message
_RAW = (select(Message.raw).join(Recipient, Recipient.message_id == Message.id)
        .where(Recipient.id == bindparam("b_id")))


def _failed(failure: transport.DeliveryFailed | transport.TlsUnavailable
            ) -> Callable[[OutboundItem], None]:
    """What to record of an item that was not delivered."""
    if isinstance(failure, transport.TlsUnavailable):
        reason = str(failure)
        return lambda item: _tls_failed(_tried(item), reason)
    # A bounce's report quotes the remote's own answer.
    outcome = partial(_bounce, remote=failure.remote) if failure.permanent else _defer
    return lambda item: outcome(_tried(item), failure.reply)


def _tried(item: OutboundItem) -> OutboundItem:
    item.attempts += 1
    return item


def _content(item: OutboundItem, token: str) -> bytes | None:
    """The bytes to send: the message itself, or the generated mail (rendered now)."""
    if item.kind == "delivery":
        return db.session.scalar(_RAW, {"b_id": item.recipient_id})
    if item.notice is None:
        return item.raw
    context = item.notice["context"]
    if item.notice["kind"] == "password" and "password" not in context:
        password = _given_password(item, token)
        if password is None:
            return None
        context = {**context, "password": password}
    return signed(mail_templates.build(item.notice["kind"], item.rcpt_to, item.tenant,
                                       **context), item.tenant)


def _given_password(item: OutboundItem, token: str) -> str | None:
    """A new password for the notification's account, its hash stored and committed
    before the mail goes to the transport, so the password in a mail the remote has
    accepted always works; None when there is none to give (or the lease was lost).

    A retry (after a deferral) gives a fresh password and the last one stops working:
    the latest mail wins. The password is never stored in clear.
    """
    to_give = notices.password_to_give(item)  # hashed here, with no write transaction open
    if to_give is None:
        return None
    password, password_hash = to_give
    db.session.commit()  # ends the reading; the next statement takes the lease's row
    if leases.update_if_held(item.id, token, lease_token=token) \
            and notices.give_password(item, password_hash):
        db.session.commit()
        return password
    db.session.rollback()  # taken over (then not recorded here either) or set meanwhile
    return None


def _generated_event(rcpt_to: str, raw: bytes) -> str:
    """Which notification went out, by its subject (which never carries the content)."""
    subject = mime.header(mime.parse_message(raw), "Subject")
    return f"Notification “{subject}” delivered to {rcpt_to}"


def _finish(item: OutboundItem, state: str, event: str | None) -> None:
    outbound_queue.finish(item, state, event)
    _log(item, "sent" if state == "done" else "bounced", event or "")


def _log(item: OutboundItem, status: str, detail: str) -> None:
    """One line an attempt's outcome, as Postfix's maillog has it, with the message's id;
    and its count in the metrics (delivery latency, notifications sent). Both once the
    transaction recording the outcome commits, never before: a group commit that fails
    is written again one outcome at a time, and an outcome not recorded was not sent."""
    message = item.recipient.message if item.recipient is not None else None
    _log_line(item, message.public_id if message is not None else None, status, detail)


def _log_line(item: OutboundItem | Row, message_id: str | None, status: str,
              detail: str) -> None:
    """As :func:`_log`, for an item or a row of outbound_queue.finish_sent, whose
    message's public id is given."""
    metrics.delivery_outcome(item.kind, item.route, status,
                             (clock.utcnow() - item.created_at).total_seconds())
    values = (message_id or "-", item.id, item.kind, item.rcpt_to, item.attempts, status,
              detail)  # read now: the item is expired once committed
    extra = {"message_id": message_id, "item_id": item.id}
    database.when_committed(lambda: log.info(
        "message %s item %s (%s) to=<%s> tries=%s status=%s (%s)", *values, extra=extra))


def _defer(item: OutboundItem, reply: str) -> None:
    config = current_app.config
    now = clock.utcnow()
    if now - item.created_at >= timedelta(seconds=config["RETRY_GIVE_UP_SECONDS"]):
        _bounce(item, f"4.4.7 Gave up after {item.attempts} tries; last reply: {reply}")
        return
    wait = min(config["RETRY_FIRST_SECONDS"] * 2 ** (item.attempts - 1),
               config["RETRY_MAX_SECONDS"])
    item.state = "pending"
    item.lease_until = item.lease_token = None
    item.last_error = reply
    item.next_attempt_at = now + timedelta(seconds=wait)
    if item.recipient is not None:
        if item.kind == "delivery":
            item.recipient.state = "deferred"
        record(item.recipient, "deferred",
               f"Deferred: {reply}; next try at {item.next_attempt_at:%Y-%m-%d %H:%M} UTC")
    _log(item, "deferred", f"{reply}; next try {item.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC")


def _bounce(item: OutboundItem, reply: str, remote: RemoteAnswer | None = None) -> None:
    """End the item as failed and tell the sender of a delivery (``remote``: the answer
    of the server that refused it). A report that cannot be built leaves the item
    failed all the same, the reply recorded: the remote is never tried again for it."""
    item.last_error = reply
    what = "Bounced" if item.kind == "delivery" else "Notification could not be delivered"
    _finish(item, "failed", f"{what}: {reply}")
    if item.kind != "delivery":
        return
    item.recipient.state = "bounced"
    try:
        dsn.queue_failure_report(item.recipient, reply, remote)
    except Exception as error:
        log.exception("outbound item %s bounced, and no report could be built for its "
                      "sender", item.id)
        record(item.recipient, "bounced", f"No report could be sent to the sender: "
                                          f"{type(error).__name__}")


def _tls_failed(item: OutboundItem, problem: str) -> None:
    recipient = item.recipient
    if recipient.fallback == "ccm":
        outbound_queue.finish(item, "done", None)  # not delivered: held, as the policy says
        record(recipient, "tls_fallback",
               f"TLS could not be negotiated ({problem}); fell back to CCM")
        _log(item, "ccm", f"TLS could not be negotiated ({problem}); fell back to CCM")
        recipient.route = "ccm"
        isolation.hold(recipient)
    else:
        _bounce(item, f"5.7.10 TLS is required for this recipient and could not be "
                      f"negotiated: {problem}")
