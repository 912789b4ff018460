"""The one source of the current time, so tests can move it.

Every module asks ``clock.utcnow()``. The time it answers can be held still at a moment
(:func:`freeze`); the state is kept here, so freezing moves the time for every module at
once, even one that imported ``utcnow`` by name. Only tests freeze it (tests/conftest.py,
``frozen_clock``).
"""

from datetime import UTC, datetime

#: the moment utcnow() answers while the time is held still; None: the real time
_frozen: datetime | None = None


def utcnow() -> datetime:
    """Naive UTC: the form both SQLite and PostgreSQL columns store here."""
    if _frozen is not None:
        return _frozen
    return datetime.now(UTC).replace(tzinfo=None)


def freeze(moment: datetime | None) -> None:
    """Hold the time at ``moment`` (naive UTC); None lets it run again."""
    global _frozen
    _frozen = moment
