"""The one source of the current time, so tests can move it."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Naive UTC: the form both SQLite and PostgreSQL columns store here."""
    return datetime.now(UTC).replace(tzinfo=None)
