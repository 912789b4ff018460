"""The one source of the current time, so tests can move it.

Every module asks ``clock.utcnow()``. The time it answers can be held still at a moment
(:func:`freeze`); the state is kept here, so freezing moves the time for every module at
once, even one that imported ``utcnow`` by name. Only tests freeze it (tests/conftest.py,
``frozen_clock``). Time zones are looked up here too: times are stored in UTC and shown
in a tenant's zone (app/web/filters.py for pages; :func:`written` for the text the
gateway writes, in notifications and reply quotes).
"""

from datetime import UTC, datetime, tzinfo
from email.utils import parsedate_to_datetime
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from babel import Locale
from babel.dates import format_skeleton

from app.words import N_, Words

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
        return Words(N_("Use a time zone name such as Europe/Berlin or America/New_York."))
    return None


@cache
def _zone_names() -> frozenset[str]:
    # Looked up in the list, never as a file name: the name may come from a form.
    return frozenset(available_timezones())


#: a moment written out in full, with its zone, where no page can show it in the reader's
#: own: "29 December 2026, 21:00 EST" (the pages' "date" style, to the minute)
WRITTEN = "%d %B %Y, %H:%M %Z"


def written(moment: datetime, zone_name: str | None, language: str = "en") -> str:
    """``moment`` (naive: UTC) as a person in the zone ``zone_name`` reads it, the zone
    named: its abbreviation, or its offset from UTC where it has none ("UTC-03"). In
    English as :data:`WRITTEN` says; in another ``language`` in its own words and order
    (Babel: "29. Dezember 2026, 21:00 EST")."""
    local = as_utc(moment).astimezone(zone(zone_name))
    text = local.strftime(WRITTEN) if language == "en" else _in_words(local, language)
    name = local.tzname() or ""
    if name[:1] in ("+", "-"):  # tzdata writes "-03" where a zone has no abbreviation
        text = text.removesuffix(name) + "UTC" + name
    return text


def written_date(header: str | None, fallback: datetime, zone_name: str | None,
                 language: str = "en") -> str:
    """A message's Date header as :func:`written` writes a moment, in ``zone_name`` and
    ``language``;
    ``fallback`` (when the gateway received it) for a missing or unreadable one, and for
    one without a zone (or "-0000", which the parser cannot tell from none): a time
    named in the wrong zone would be worse than one a few seconds late."""
    moment = parse_date(header)
    return written(fallback if moment is None or moment.tzinfo is None else moment, zone_name,
                   language)


def parse_date(header: str | None) -> datetime | None:
    """A Date header's moment (naive when it names no zone); None when it cannot be read."""
    try:
        return parsedate_to_datetime(header or "")
    except (TypeError, ValueError, IndexError):
        return None


def as_utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC time; a naive one is UTC already (as stored)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _in_words(local: datetime, language: str) -> str:
    """``local`` to the minute in ``language``, the zone's abbreviation after it (as
    :data:`WRITTEN` has it)."""
    return f"{in_locale(local, Locale.parse(language), 'yMMMMd', 'Hm')} {local.strftime('%Z')}"


def in_locale(local: datetime, locale: Locale, day: str | None, time: str | None) -> str:
    """``local`` in ``locale``'s own words and order: its date by the CLDR skeleton
    ``day`` and its time by ``time`` (either may be None), joined as the locale joins a
    date and a time; no zone named (the callers name it as they need)."""
    parts = [format_skeleton(skeleton, local, tzinfo=local.tzinfo, locale=locale)
             if skeleton else None for skeleton in (day, time)]
    if all(parts):
        return locale.datetime_formats["medium"].format(parts[1], parts[0]).replace("'", "")
    return parts[0] or parts[1]
