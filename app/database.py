"""Database engine settings that SQLAlchemy does not set for us."""

import sqlite3

import flask_migrate
from sqlalchemy import Engine, event, text

from app.extensions import db

#: any constant shared by every CCM process: the key of the migration lock
_MIGRATION_LOCK = 4242001


def configure_sqlite() -> None:
    """Make every SQLite connection durable and strict.

    WAL lets readers run beside the single writer; ``synchronous=FULL`` makes a commit
    survive a power cut (WAL's default NORMAL can lose the last ones); SQLite enforces
    foreign keys only when asked on each connection; the busy timeout makes a writer
    wait for another instead of failing at once.
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
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def begin_writing() -> None:
    """Start the session's transaction as one that will write.

    On SQLite a transaction that has read and then writes after another connection
    committed is refused at once, without waiting for the busy timeout ("database is
    locked"); taking the write lock first (BEGIN IMMEDIATE) makes it wait its turn
    instead. Other databases need nothing.
    """
    if db.engine.dialect.name == "sqlite":
        db.session.execute(text("BEGIN IMMEDIATE"))


def upgrade() -> None:
    """Apply pending migrations; safe when several processes start at once on PostgreSQL."""
    if db.engine.dialect.name != "postgresql":
        flask_migrate.upgrade()
        return
    with db.engine.connect() as connection:
        # A session-level advisory lock: the other processes wait, then find nothing to do.
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK})
        try:
            flask_migrate.upgrade()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK})
            connection.commit()
