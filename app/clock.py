"""The one source of the current time, so tests can move it.

Every module asks ``clock.utcnow()``. The time it answers can be held still at a moment
(:func:`freeze`); the state is kept here, so freezing moves the time for every module at
once, even one that imported ``utcnow`` by name. Only tests freeze it (tests/conftest.py,
``frozen_clock``). Time zones are looked up here too: times are stored in UTC and shown
in a tenant's zone (app/web/filters.py).
"""

from datetime import UTC, datetime, tzinfo
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

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


def zone(name: str | None) -> tzinfo:
    """The IANA time zone ``name`` (``Europe/Berlin``); UTC for none or an unknown one,
    so a zone that a later tz database dropped still shows times."""
    if not name or zone_problem(name):
        return UTC
    return ZoneInfo(name)


def zone_problem(name: str) -> str | None:
    """Why ``name`` is not an IANA time zone this system knows, or None when it is."""
    if name not in _zone_names():
        return "Use a time zone name such as Europe/Berlin or America/New_York."
    return None


@cache
def _zone_names() -> frozenset[str]:
    # Looked up in the list, never as a file name: the name may come from a form.
    return frozenset(available_timezones())
