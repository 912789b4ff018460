"""Template filters for showing mail: people by name, dates as people write them."""

from datetime import UTC, datetime
from email.utils import parseaddr, parsedate_to_datetime
from functools import lru_cache

from flask import Flask


@lru_cache(maxsize=4096)  # the inbox shows the same few senders on every row
def person(value: str) -> str:
    """'Alice Example <alice@acme.test>' → 'Alice Example'; a bare address stays."""
    name, address = parseaddr(value or "")
    return name or address or value


def address(value: str) -> str:
    return parseaddr(value or "")[1] or value


def mail_date(value: str, fallback: datetime | None = None) -> str:
    """A Date header as '30 Nov 2026, 14:05', else the time the gateway received it."""
    try:
        moment = parsedate_to_datetime(value)
        if moment.tzinfo is not None:
            return moment.astimezone(UTC).strftime("%d %b %Y, %H:%M UTC")
        return moment.strftime("%d %b %Y, %H:%M")
    except (TypeError, ValueError, IndexError):
        return fallback.strftime("%d %b %Y, %H:%M UTC") if fallback else value


def register(app: Flask) -> None:
    app.add_template_filter(person)
    app.add_template_filter(address)
    app.add_template_filter(mail_date)
