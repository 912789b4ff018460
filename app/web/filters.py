"""Template filters for showing mail and moments: people by name, times in the reader's zone.

A moment is stored as naive UTC. The page shows it in the time zone of the reader's
tenant (its setting, UTC by default), with the zone's abbreviation (its name in the
``title``), inside a ``<time>``
whose ``datetime`` is the moment in UTC to the millisecond. Where JavaScript runs,
app/static/js/ccm.js rewrites the text into the browser's own zone, in the same style
(``data-style``: one of :data:`STYLES`).

English reads as :data:`STYLES` says; every other language is written by Babel in that
language's own order and words (:data:`SKELETONS`), with the same zone abbreviation.
"""

from datetime import UTC, datetime, tzinfo
from email.utils import parseaddr
from functools import lru_cache

from babel import Locale
from babel.units import format_unit
from flask import Flask, g, has_request_context
from flask_babel import get_locale
from flask_login import current_user
from markupsafe import Markup, escape

from app import clock
from app.extensions import htmx

#: how each style of moment reads, by strftime; ccm.js knows the same names
STYLES = {
    "date": "%d %B %Y",  # 06 December 2026
    "day": "%d %b",  # 06 Dec
    "minute": "%d %b %Y, %H:%M %Z",  # 06 Dec 2026, 14:05 CET
    "second": "%d %b %Y, %H:%M:%S %Z",
    "short": "%d %b, %H:%M %Z",  # 06 Dec, 14:05 CET: rows of this year's lists
    "time": "%H:%M:%S %Z",
}
#: each style for the other languages: CLDR skeletons of its date and of its time
SKELETONS = {
    "date": ("yMMMMd", None),
    "day": ("MMMd", None),
    "minute": ("yMMMd", "Hm"),
    "second": ("yMMMd", "Hms"),
    "short": ("MMMd", "Hm"),
    "time": (None, "Hms"),
}


@lru_cache(maxsize=4096)  # the inbox shows the same few senders on every row
def person(value: str) -> str:
    """'Alice Example <alice@acme.test>' → 'Alice Example'; a bare address stays."""
    name, address = parseaddr(value or "")
    return name or address or value


def address(value: str) -> str:
    return parseaddr(value or "")[1] or value


def iso_utc(moment: datetime) -> str:
    """The moment in UTC as HTML's ``datetime`` wants it: at most three digits of the
    second's fraction (cut, not rounded, so a moment never moves into the next second)."""
    moment = clock.as_utc(moment)
    fraction = f".{moment.microsecond // 1000:03d}" if moment.microsecond else ""
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def shown_in(moment: datetime, zone: tzinfo, style: str = "minute") -> str:
    """The moment as a person in ``zone`` reads it, in one of :data:`STYLES`, in the
    language of the page."""
    local = clock.as_utc(moment).astimezone(zone)
    locale = _page_locale()
    if locale is None:
        return local.strftime(STYLES[style])
    day, time = SKELETONS[style]
    text = clock.in_locale(local, locale, day, time)
    return f"{text} {local.strftime('%Z')}" if time else text


def _page_locale() -> Locale | None:
    """The page's language when it is not English; None outside a request or in English."""
    if not has_request_context():
        return None
    locale = get_locale()
    return None if locale is None or locale.language == "en" else locale


def moment(value: datetime | None, style: str = "minute") -> Markup:
    """``<time>`` for a stored moment, shown in the reader's zone; nothing for None."""
    if value is None:
        return Markup("")
    zone = reader_zone()
    return Markup('<time datetime="{}" data-style="{}" title="{}">{}</time>').format(
        iso_utc(value), style, zone, shown_in(value, zone, style))


def mail_date(value: str, fallback: datetime | None = None) -> Markup:
    """A Date header in the reader's zone, else the time the gateway received it.

    A Date without a zone is shown as it was written: there is nothing to convert from.
    """
    written = clock.parse_date(value)
    if written is None:
        return moment(fallback) if fallback else escape(value)
    if written.tzinfo is None:
        locale = _page_locale()
        if locale is None:
            return escape(written.strftime("%d %b %Y, %H:%M"))
        return escape(clock.in_locale(written, locale, "yMMMd", "Hm"))
    return moment(written)


def reader_zone() -> tzinfo:
    """The time zone of the signed-in person's tenant; UTC for anyone else."""
    if not has_request_context():
        return UTC
    if "reader_zone" not in g:
        tenant = current_user.tenant if current_user.is_authenticated else None
        g.reader_zone = clock.zone(tenant.time_zone if tenant else None)
    return g.reader_zone


def _swapped() -> dict:
    """``swapped``: this answer is a fragment htmx swaps into a page (rendering.page
    chooses the same way), so a ``<title>`` in it is htmx's to move into the head."""
    return {"swapped": has_request_context() and bool(htmx)
            and not htmx.history_restore_request}


#: CLDR's units of data, each 1,024 times the last (as Jinja's filesizeformat(true) counts)
SIZE_UNITS = ("digital-byte", "digital-kilobyte", "digital-megabyte", "digital-gigabyte")


def size(value: int) -> str:
    """A size in bytes in the page's language and its units ("1,2 ko", "14 بايت")."""
    amount, unit = float(value or 0), 0
    while amount >= 1024 and unit < len(SIZE_UNITS) - 1:
        amount, unit = amount / 1024, unit + 1
    return format_unit(amount if unit else int(amount), SIZE_UNITS[unit],
                       length="short" if unit else "long",  # "14 bytes", "1.4 kB"
                       format="#,##0.#", locale=_page_locale() or "en")


def register(app: Flask) -> None:
    app.add_template_filter(person)
    app.add_template_filter(size)
    app.add_template_filter(address)
    app.add_template_filter(mail_date)
    app.add_template_filter(moment)
    app.add_template_filter(iso_utc)
    app.context_processor(_swapped)
