"""Database engine settings that SQLAlchemy does not set for us."""

import fcntl
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import flask_migrate
from flask import has_app_context
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    Table,
    event,
    exc,
    inspect,
    text,
)
from sqlalchemy.orm import InstanceState, Session

from app.extensions import db

#: any constant shared by every CCM process: the key of the migration lock
_MIGRATION_LOCK = 4242001
#: PostgreSQL's limits that app/config.py sets on every connection, lifted for migrations
_TIMEOUTS = ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")


def configure_sqlite() -> None:
    """Make every SQLite connection durable and strict.

    WAL lets readers run beside the single writer; ``synchronous=FULL`` makes a commit
    survive a power cut (WAL's default NORMAL can lose the last ones); SQLite enforces
    foreign keys only when asked on each connection. (The busy timeout, which makes a
    writer wait for another instead of failing at once, is CCM_DATABASE_LOCK_TIMEOUT,
    given to sqlite3.connect by app/config.py.)
    """
    if not event.contains(Engine, "connect", _on_connect):
        event.listen(Engine, "connect", _on_connect)


def _on_connect(dbapi_connection, _record) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def begin_writing() -> None:
    """Start the session's transaction as one that will write.

    On SQLite a transaction that has read and then writes after another connection
    committed is refused at once, without waiting for the busy timeout ("database is
    locked"); taking the write lock first (BEGIN IMMEDIATE) makes it wait its turn
    instead. Other databases need nothing. Once begun, it does nothing.
    """
    if db.engine.dialect.name == "sqlite" and not holds_write_lock():
        # by the driver on the session's connection: the session's own execute would
        # first flush what is pending, and SQLAlchemy's statement machinery costs a group
        # commit more than the statement (as for ``_change_count``)
        cursor = db.session.connection().connection.dbapi_connection.cursor()
        try:
            cursor.execute("BEGIN IMMEDIATE")
        finally:
            cursor.close()


@contextmanager
def writers_take_turns() -> Iterator[None]:
    """Hold this SQLite database's turn to write among the processes that ask for it,
    until the block ends; elsewhere (PostgreSQL, SQLite in memory) nothing.

    SQLite's own wait for its write lock polls, sleeping up to 100 ms a time, so two
    ``ccm smtp`` processes sharing a port left the lock idle while each slept, and
    together stored no more than one. A lock on a file beside the database wakes the
    next one the moment the last lets go (and goes with a process that dies). Only
    those that ask take turns here; every other writer still meets them in SQLite's
    lock, so nothing depends on all of them asking.
    """
    path = db.engine.url.database if db.engine.dialect.name == "sqlite" else None
    if not path or path == ":memory:" or path.startswith("file:"):
        yield
        return
    try:  # read only: a lock needs no more, and the file holds nothing
        turn = os.open(f"{path}-writers", os.O_CREAT | os.O_RDONLY, 0o600)
    except OSError as error:  # another user's (ccm run once as root, say)
        _cannot_take_turns(f"{path}-writers", error)
        yield
        return
    try:
        # held by a ccm smtp only for its INSERTs and COMMIT, which SQLite's busy
        # timeout and the disk bound; a client told 451 meanwhile sends again
        fcntl.flock(turn, fcntl.LOCK_EX)
        yield
    finally:
        os.close(turn)  # lets go of the lock


#: the lock files this process could not open, and said so
_CANNOT_OPEN: set[str] = set()


def _cannot_take_turns(path: str, error: OSError) -> None:
    """Said once a process: writing goes on, waiting in SQLite's own lock instead."""
    if path in _CANNOT_OPEN:
        return
    _CANNOT_OPEN.add(path)
    logging.getLogger(__name__).warning(
        "cannot open %s (%s): this process waits for SQLite's write lock without taking "
        "turns with the other ccm smtp processes; give the file to the user CCM runs as",
        path, error.strerror or error)


def holds_write_lock() -> bool:
    """Whether the session's transaction on SQLite has begun writing (``begin_writing``):
    until then its reads run each in a snapshot of its own, holding nothing. Only
    meaningful on SQLite."""
    return db.session.connection().connection.driver_connection.in_transaction


_ON_COMMIT = "ccm_on_commit"


def when_committed(action: Callable[[], object]) -> None:
    """Run ``action`` once the session's transaction commits, and never if it is rolled
    back: what a transaction records is counted and logged only when it is true (a group
    of received messages whose commit failed is sent again, and would be told twice).
    Outside an application there is no transaction: run now."""
    if not has_app_context():
        action()
        return
    db.session().info.setdefault(_ON_COMMIT, []).append(action)


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint: its outer transaction decides
        return
    for action in session.info.pop(_ON_COMMIT, ()):
        action()


@event.listens_for(Session, "after_transaction_end")
def _ended(session: Session, transaction) -> None:
    if transaction.parent is None:  # rolled back or closed (after a commit: empty)
        session.info.pop(_ON_COMMIT, None)


_MEMO = "ccm_once_a_transaction"
T = TypeVar("T")


def once_a_transaction(key: tuple, look_up: Callable[[], T]) -> T:
    """``look_up()``, called once for each ``key`` in the session's transaction: for
    what a group commit would otherwise look up again for every message of the group
    (the sender's tenant, its policies, a recipient's account). Not shared with the
    next transaction, which may see other data; a None is not kept (what was not found
    may be created in this transaction)."""
    session = db.session()
    transaction = session.get_transaction()
    if transaction is None:
        return look_up()
    memo = session.info.get(_MEMO)
    if memo is None or memo[0] is not transaction:
        memo = session.info[_MEMO] = (transaction, {})
    found = memo[1].get(key)
    if found is None:
        found = look_up()
        if found is not None:
            memo[1][key] = found
    return found


#: A number that moves on, in the same transaction, whenever a tenant, a domain, a
#: policy or an account's address changes: triggers do it (migration 0024), so every
#: process, ``ccm config import`` and a change by hand in SQL alike. What intake keeps
#: between transactions (``kept_until_changed``) is good while it stands still.
change_counter = Table(
    "change_counter", db.metadata,
    Column("id", Integer, primary_key=True),
    Column("generation", BigInteger, nullable=False),
)

_KEEPS = "ccm_keeps_lookups"
_GENERATION = ("change counter",)


def keep_lookups() -> None:
    """Let ``kept_until_changed`` keep what the session's transactions look up, for the
    next ones: for intake's storing threads, whose transactions change none of it. (A
    transaction that did, say a test's or the portal's, could have the kept values
    stand in for its own uncommitted ones, so it is asked for.)"""
    db.session().info[_KEEPS] = True


class _Kept:
    """What committed transactions looked up, good while the change counter stands at
    ``generation``; a process's threads share it."""

    #: kept values at most (one for each tenant, its policies, each recipient's account)
    LIMIT = 10_000

    def __init__(self):
        self.lock = threading.Lock()
        self.generation: int | None = None
        self.values: dict[tuple, object] = {}

    def get(self, generation: int, key: tuple) -> object | None:
        with self.lock:
            return self.values.get(key) if generation == self.generation else None

    def keep(self, generation: int, key: tuple, value: object) -> None:
        with self.lock:
            if self.generation is not None and generation < self.generation:
                return  # looked up before a change another transaction has already seen
            if generation != self.generation or len(self.values) >= self.LIMIT:
                self.generation, self.values = generation, {}
            self.values[key] = value


def kept_until_changed(key: tuple, look_up: Callable[[], T]) -> T:
    """``look_up()``, and kept for later transactions until the change counter moves:
    for what intake would otherwise look up again for every group it stores (the
    sender's tenant, its policies, a recipient's account id). ORM objects are kept
    detached and merged into each transaction's session without a query.

    **Why it never routes by what was changed before the transaction began.** The
    counter is read once a transaction, before any kept value is used, and moves in
    the transaction of the change: a change committed before that read is seen, and
    nothing kept from an earlier number is used. A value is kept under the number
    read *before* it was looked up, so a change that commits between the two only
    makes it look stale too soon, never fresh too long; and only once its transaction
    has committed, so an account created by a transaction that rolls back is never
    kept. Without ``keep_lookups`` this is ``once_a_transaction``.
    """
    session = db.session()
    if not session.info.get(_KEEPS):
        return once_a_transaction(key, look_up)

    def from_kept() -> T:
        generation = once_a_transaction(_GENERATION, lambda: _change_count(session))
        kept = _kept()
        if generation is not None and (value := kept.get(generation, key)) is not None:
            return _into_session(session, value)
        found = look_up()
        if generation is not None and found is not None:
            copy = _detached(found)
            when_committed(lambda: kept.keep(generation, key, copy))
        return found

    return once_a_transaction(key, from_kept)


#: one for each database (each application's engine: tests make one a test)
_KEPT: weakref.WeakKeyDictionary[Engine, _Kept] = weakref.WeakKeyDictionary()
_KEPT_LOCK = threading.Lock()


def _kept() -> _Kept:
    engine = db.engine
    with _KEPT_LOCK:
        kept = _KEPT.get(engine)
        if kept is None:  # not setdefault: it would make a _Kept, and its lock, each call
            kept = _KEPT[engine] = _Kept()
        return kept


def _change_count(session: Session) -> int | None:
    """The change counter (None when its row is missing: nothing is kept), read by the
    driver itself on the session's connection, in its transaction: SQLAlchemy's
    statement machinery would cost several times this one-row query."""
    cursor = session.connection().connection.dbapi_connection.cursor()
    try:
        cursor.execute("SELECT generation FROM change_counter WHERE id = 1")
        row = cursor.fetchone()
    finally:
        cursor.close()
    return None if row is None else row[0]


def _detached(value):
    """A copy of ``value`` belonging to no session, ORM objects (and lists of them) with
    what they had loaded, to be read by several threads at once."""
    if isinstance(value, list):
        return [_detached(item) for item in value]
    if not isinstance(inspect(value, raiseerr=False), InstanceState):
        return value
    with Session() as scratch:  # no connection: merge(load=False) runs no query
        return scratch.merge(value, load=False)


def _into_session(session: Session, value):
    """``value`` as the session's own: kept ORM objects merged in, without a query."""
    if isinstance(value, list):
        return [_into_session(session, item) for item in value]
    if not isinstance(inspect(value, raiseerr=False), InstanceState):
        return value
    return session.merge(value, load=False)


def server_process() -> int | None:
    """The PostgreSQL server process running the session's transaction; None on SQLite,
    whose COMMIT either happens or fails where we can see it."""
    if db.engine.dialect.name != "postgresql":
        return None
    return db.session.connection().connection.driver_connection.info.backend_pid


def settle_lost_commit(process: int, committed: Callable[[Connection], bool],
                       within: float) -> bool | None:
    """Whether a transaction was committed whose connection was lost during COMMIT.

    While its server process lives, a COMMIT still in its socket may yet be run; once
    the process has exited the outcome is final, and ``committed`` tells it on a new
    connection. None when the database could not tell within ``within`` seconds.
    """
    until = time.monotonic() + within
    while time.monotonic() < until:
        try:
            with db.engine.connect() as connection:
                alive = connection.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"),
                    {"pid": process}).scalar()
                if not alive:
                    return committed(connection)
        except exc.DBAPIError:
            pass  # not reachable yet
        time.sleep(0.2)
    return None


def upgrade() -> None:
    """Apply pending migrations; safe when several processes start at once on PostgreSQL."""
    if db.engine.dialect.name != "postgresql":
        flask_migrate.upgrade()
        return
    with db.engine.connect() as connection:
        # A session-level advisory lock: the other processes wait, then find nothing to do,
        # however long that takes (the statement and lock timeouts are for serving).
        for name in _TIMEOUTS:
            connection.execute(text(f"SET {name} = 0"))
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK})
        try:
            flask_migrate.upgrade()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK})
            # back to the connection's own settings before it returns to the pool
            for name in _TIMEOUTS:
                connection.execute(text(f"RESET {name}"))
            connection.commit()


def lift_timeouts(connection) -> None:
    """Let this transaction's statements take as long as they need: for migrations,
    which may rewrite a large table or wait for a process of the old version to finish."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SET LOCAL statement_timeout = 0"))
        connection.execute(text("SET LOCAL lock_timeout = 0"))
