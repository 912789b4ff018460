"""Storing received messages: one commit for those that arrived together, and
a deadline after which the client is told to try again and its message is not kept."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

from flask import Flask
from sqlalchemy import exc, select

from app import database
from app.domain import ingest
from app.extensions import db
from app.models import Message
from app.smtp import inserts

log = logging.getLogger(__name__)

#: seconds the storing thread keeps asking whether a COMMIT whose connection was lost
#: happened, while its clients wait: well under the idle timeout (300 s) after which
#: they would be cut off, and under the 10 minutes clients wait for the end of DATA
SETTLE_FOR = 120


class StoreTimeout(Exception):
    """The message was not stored by the deadline; it never will be: answer 451."""


@dataclass(eq=False)
class Job:
    """One message to store, and who answers for it; both flags change under the lock."""

    message: tuple  # raw, mail_from, rcpt_tos, and ingest.receive's keywords of arrival
    outcome: Future = field(default_factory=Future)
    #: by the storing thread: the commit that holds it is under way, its result is the answer
    claimed: bool = False
    #: by the session: its client was told 451, or left; it must not be committed
    given_up: bool = False


class GroupCommit:
    """Stores received messages, those that arrived together in one commit: on
    PostgreSQL in CCM_SMTP_STORE_THREADS threads, one receiving a group while the others
    commit theirs (``_store``); on SQLite, which writes one transaction at a time, in one.

    A commit waits for the disk, and SQLite lets one transaction write at a time: rather
    than connections queueing for the lock, the messages that arrived meanwhile are
    stored together and one commit answers them all. They are written together, one
    INSERT a table (``inserts``); when one fails midway, the group is stored again with
    each message in a savepoint of its own, so one refused or failing message never
    takes the others with it. No 250 goes out before the commit that holds its message.

    **The deadline.** A stalled database must neither keep clients waiting until their
    own timeouts fire (they then send again: a duplicate if we committed meanwhile) nor
    answer 451 for a message it commits later (the same duplicate). So each message has
    one of two fates, decided once, under ``lock``, by whichever side gets there first:

    - the session, at the deadline, *gives the job up* unless it is claimed: it answers
      451 and the job is never committed;
    - the storing thread, just before COMMIT, *claims* every job of the transaction, or
      none when one was given up: then it rolls the transaction back and stores the
      others again, in a transaction of their own.

    A claimed job's session waits past the deadline for the commit's own result: that
    wait is one COMMIT, bounded by the database's timeouts (app/config.py), not a stall.
    A session whose client hangs up gives its job up the same way.

    A COMMIT whose connection is lost may have reached the server all the same. Then
    the thread waits for the server process that ran it to exit (its outcome is final
    then) and looks for one of its messages (``database.settle_lost_commit``): found,
    the clients get 250; not found, 451. Only if the database cannot tell within
    SETTLE_FOR seconds do they get 451 for what may be stored: a duplicate when they
    send again, the window every MTA has between its commit and its reply (RFC 1047).
    """

    MAX_MESSAGES = 50
    MAX_BYTES = 16 * 1024 * 1024
    #: on SQLite: a second thread, receiving while the first commits, made ``ccm smtp``
    #: slower (a fifth fewer messages a second, a sixth more CPU a message, in four
    #: pairs of runs of bench/ingest.py): its groups were smaller, it waited for the same
    #: write lock, and the threads took turns for the GIL. Sibling processes use the
    #: CPU while one waits for its COMMIT.
    ONE_WRITER_THREADS = 1

    def __init__(self, app: Flask, deadline: float | None = None):
        self.app = app
        self.deadline = app.config["SMTP_STORE_TIMEOUT"] if deadline is None else deadline
        self.lock = threading.Lock()
        self.waiting: queue.SimpleQueue[Job] = queue.SimpleQueue()
        with app.app_context():
            one_writer = db.engine.dialect.name == "sqlite"
        #: PostgreSQL commits several groups at once, each in its own transaction, and
        #: merges their waits for the disk: a group need not wait for the last one's
        #: COMMIT (CCM_SMTP_STORE_THREADS); SQLite writes one at a time
        self.threads = (self.ONE_WRITER_THREADS if one_writer
                        else app.config["SMTP_STORE_THREADS"])
        self.thread = ThreadPoolExecutor(max_workers=self.threads,
                                         thread_name_prefix="ccm-store")
        #: held by the thread receiving a group, from taking it until it is received
        self.receiving = threading.Lock()
        #: SQLite writes one transaction at a time: its writers take turns
        #: (``_turn_to_write``)
        self.one_writer = one_writer

    async def __call__(self, raw: bytes, mail_from: str, rcpt_tos: list[str],
                       **arrival) -> None:
        """Store one message; raises ``ingest.Refused``, ``StoreTimeout``, or whatever
        else stopped it."""
        job = Job((raw, mail_from, rcpt_tos, arrival))
        self.waiting.put(job)
        self.thread.submit(self._store_waiting)
        outcome = asyncio.wrap_future(job.outcome)
        try:
            await asyncio.wait_for(asyncio.shield(outcome), self.deadline)
        except TimeoutError:
            if self.give_up(job):
                raise StoreTimeout(f"not stored within {self.deadline} s") from None
            await outcome  # its commit is under way: the commit's result is the answer
        except asyncio.CancelledError:
            self.give_up(job)  # the client left: no answer is owed, it will send again
            raise

    def give_up(self, job: Job) -> bool:
        """The session's side: True when the job will never be committed."""
        with self.lock:
            job.given_up = job.given_up or not job.claimed
            return job.given_up

    def _claim_all(self, batch: list[Job]) -> bool:
        """The storing thread's side, before COMMIT: all the jobs, or none."""
        with self.lock:
            if any(job.given_up for job in batch):
                return False
            for job in batch:
                job.claimed = True
            return True

    def _store_waiting(self) -> None:
        batch: list[Job] = []  # filled with what waits when this thread's turn comes
        while True:
            outcomes = self._store(batch)
            if not batch:
                return  # an earlier call took them: each call finds its own job stored
            if outcomes is None:  # some were given up meanwhile: store the others again
                batch = [job for job in batch if not job.given_up]
                continue
            with self.lock:  # a failure is answered to those still waiting for it
                answered = [(job, outcome) for job, outcome in zip(batch, outcomes, strict=True)
                            if job.claimed or not job.given_up]
                for job, _ in answered:
                    job.claimed = True
            for job, outcome in answered:
                if outcome is None:
                    job.outcome.set_result(None)
                else:
                    job.outcome.set_exception(outcome)
            return

    def _take(self) -> list[Job]:
        batch, size = [], 0
        while len(batch) < self.MAX_MESSAGES and size < self.MAX_BYTES:
            try:
                job = self.waiting.get_nowait()
            except queue.Empty:
                break
            if not job.given_up:  # a hint only: _claim_all decides
                batch.append(job)
                size += len(job.message[0])
        return batch

    def _store(self, batch: list[Job]) -> list[BaseException | None] | None:
        """Store ``batch`` and, added to it, what is waiting once this thread's turn to
        receive comes: each job's outcome, or None when one was given up and nothing
        was committed.

        **One thread receiving while the others commit** (PostgreSQL's several). A
        thread receives its group (parsing, routing, the reads) while the other threads'
        groups are being written and committed, which is mostly a wait for the disk, and
        takes what arrived meanwhile only once the last thread has received its own:
        groups stay as large as one thread would make them, and several commit at once.

        The messages are received before the transaction writes: on SQLite each read
        sees the database as last committed, as on PostgreSQL (READ COMMITTED), and the
        write lock is taken only for the inserts and the COMMIT. What another writer
        committed in between and contradicts a read (an account created or removed
        meanwhile) fails a constraint, and the group is received again under the lock, a
        message at a time.
        """
        if not batch and self.waiting.empty():
            return []  # what this call was for was taken by another, which stores it
        outcomes: list[BaseException | None] | None = []
        probe, committing = None, None  # a stored message; who runs the COMMIT, once sent
        with self.app.app_context():
            # the tenant, its policies and account ids, kept until they change
            database.keep_lookups()
            try:
                with self.receiving:
                    batch += self._take()
                    if not batch:
                        return []
                    outcomes, received = self._receive_together(batch)
                with self._turn_to_write():
                    if outcomes is None or not self._insert_together():
                        # one failed midway: each in a savepoint of its own
                        db.session.rollback()
                        database.begin_writing()
                        outcomes, probe = self._receive_apart(batch)
                    else:
                        probe = received[0].id if received else None
                    if not self._claim_all(batch):
                        db.session.rollback()
                        return None
                    committing = database.server_process()
                    db.session.commit()
            except Exception as problem:
                db.session.rollback()
                if not self._committed_after_all(problem, committing, probe):
                    outcomes = [problem] * len(batch)  # nothing stored: all try again
            finally:
                db.session.remove()
        return outcomes

    @contextmanager
    def _turn_to_write(self) -> Iterator[None]:
        """Hold the database's write lock until the COMMIT, on SQLite after this
        process's turn among the ``ccm smtp`` processes on the same file
        (``database.writers_take_turns``, which wakes the next the moment the last
        commits; SQLite's own wait sleeps in steps of up to 100 ms). A first contact may
        already have taken the lock (``isolation``): it then writes at once."""
        if not self.one_writer or database.holds_write_lock():
            yield
            return
        with database.writers_take_turns():
            database.begin_writing()
            yield

    @staticmethod
    def _receive_together(batch: list[Job]) -> tuple[list | None, list[Message]]:
        """Receive every job, writing nothing yet (but a first contact's account).

        A refused message adds nothing to the session (``ingest.receive`` refuses before
        it stores), so it is only answered; any other failure returns None, and the
        caller stores the group again with a savepoint a message.
        """
        outcomes: list[BaseException | None] = []
        messages = []
        db.session.begin()  # what is looked up once a transaction is shared from the first
        try:
            with db.session.no_autoflush:  # else each message's queries flush the last one
                for job in batch:
                    raw, mail_from, rcpt_tos, arrival = job.message
                    try:
                        messages.append(ingest.receive(raw, mail_from, rcpt_tos, **arrival))
                        outcomes.append(None)
                    except ingest.Refused as refused:
                        outcomes.append(refused)
        except Exception:
            log.debug("a message failed in a group: storing each apart", exc_info=True)
            return None, []
        return outcomes, messages

    @staticmethod
    def _insert_together() -> bool:
        """Write the received group at once: each table's rows of the whole group in one
        INSERT, by Core (``inserts.insert_new``), not the ORM's flush, whose bookkeeping
        was a third of the DATA transaction's CPU. False when that fails (a constraint
        that a read before the write lock did not foresee, say)."""
        try:
            inserts.insert_new(db.session)
        except Exception:
            log.debug("a group failed to insert: storing each apart", exc_info=True)
            return False
        return True

    @staticmethod
    def _receive_apart(batch: list[Job]) -> tuple[list, int | None]:
        """Receive each job in a savepoint of its own: one that fails takes only itself."""
        outcomes: list[BaseException | None] = []
        probe = None
        for job in batch:
            raw, mail_from, rcpt_tos, arrival = job.message
            try:
                with db.session.begin_nested():
                    message = ingest.receive(raw, mail_from, rcpt_tos, **arrival)
                outcomes.append(None)
                probe = probe or message.id
            except Exception as problem:  # this message only
                outcomes.append(problem)
        return outcomes, probe

    def _committed_after_all(self, problem: Exception, process: int | None,
                             probe: int | None) -> bool:
        """Whether a COMMIT that failed with its connection was carried out all the same
        (it reached the server, its reply was lost): then its 250s are owed."""
        lost = isinstance(problem, exc.DBAPIError) and problem.connection_invalidated
        if process is None or probe is None or not lost:
            return False
        settled = database.settle_lost_commit(
            process, lambda connection: connection.execute(
                select(Message.id).where(Message.id == probe)).first() is not None,
            within=SETTLE_FOR)
        if settled is None:
            log.error("a COMMIT lost its connection and the database could not say within "
                      "%s s whether it happened: its clients are told 451 and, if it did, "
                      "will send their messages again", SETTLE_FOR)
        return bool(settled)
