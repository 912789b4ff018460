"""Database engine settings that SQLAlchemy does not set for us."""

import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

import flask_migrate
from flask import has_app_context
from sqlalchemy import Connection, Engine, event, exc, text
from sqlalchemy.orm import Session

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
        # on the connection: the session's own execute would first flush what is pending
        db.session.connection().execute(text("BEGIN IMMEDIATE"))


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
