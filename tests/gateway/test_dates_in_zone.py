"""Dates the gateway writes into mail (notifications, reply quotes) are in the tenant's
time zone, to the minute, with the zone named (app/clock.py, ``written``)."""

from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from support import mail, read_outbox

from app import clock
from app.domain import expiry, replies
from app.extensions import db
from app.models import OutboundItem

#: received at 02:00 UTC on 30 November: 30 days on is 30 December, 02:00 UTC, which in
#: New York is still 29 December, 21:00
RECEIVED = datetime(2026, 11, 30, 2, 0)


@pytest.mark.parametrize(("moment", "zone", "text"), [
    (datetime(2026, 12, 30, 2, 0), "America/New_York", "29 December 2026, 21:00 EST"),
    (datetime(2026, 7, 30, 2, 0), "America/New_York", "29 July 2026, 22:00 EDT"),
    (datetime(2026, 12, 30, 2, 0), "Europe/Berlin", "30 December 2026, 03:00 CET"),
    (datetime(2026, 12, 30, 2, 0), "Asia/Kolkata", "30 December 2026, 07:30 IST"),
    (datetime(2026, 12, 30, 2, 0), "America/Sao_Paulo", "29 December 2026, 23:00 UTC-03"),
    (datetime(2026, 12, 30, 2, 0), "Asia/Kathmandu", "30 December 2026, 07:45 UTC+0545"),
    (datetime(2026, 12, 30, 2, 0), "UTC", "30 December 2026, 02:00 UTC"),
    (datetime(2026, 12, 30, 2, 0), None, "30 December 2026, 02:00 UTC"),
    (datetime(2026, 12, 30, 2, 0), "Not/A_Zone", "30 December 2026, 02:00 UTC"),
    (datetime.fromisoformat("2026-12-30T03:00:00+01:00"), "America/New_York",
     "29 December 2026, 21:00 EST"),  # an aware moment is converted, not taken as UTC
])
def test_a_moment_is_written_in_the_zone_and_names_it(moment, zone, text):
    assert clock.written(moment, zone) == text


@pytest.mark.parametrize(("header", "text"), [
    ("Wed, 02 Dec 2026 15:30:00 +0100", "02 December 2026, 09:30 EST"),
    ("Wed, 2 Dec 2026 09:30:00 -0500 (EST)", "02 December 2026, 09:30 EST"),
    # no zone ("-0000" reads the same), unreadable, none: when the gateway received it
    ("Wed, 02 Dec 2026 15:30:00 -0000", "29 November 2026, 21:00 EST"),
    ("Wed, 02 Dec 2026 15:30:00", "29 November 2026, 21:00 EST"),
    ("yesterday, around tea time", "29 November 2026, 21:00 EST"),
    ("", "29 November 2026, 21:00 EST"),
    (None, "29 November 2026, 21:00 EST"),
])
def test_a_date_header_is_written_in_the_zone(header, text):
    assert clock.written_date(header, RECEIVED, "America/New_York") == text


@pytest.fixture
def new_york(gateway, frozen_clock):
    gateway.tenant.time_zone = "America/New_York"
    db.session.commit()
    frozen_clock.set(RECEIVED)
    return gateway


def notices_of(kind: str) -> list[dict]:
    return [item.notice["context"] for item in db.session.scalars(
        select(OutboundItem).where(OutboundItem.kind == "notification").order_by(
            OutboundItem.id)) if item.notice["kind"] == kind]


def test_readable_until_is_the_tenants_evening_not_the_utc_day(new_york, frozen_clock):
    message = new_york.send(mail(to="pat@partner.test"), ["pat@partner.test"],
                            mode="external")
    assert message.recipients[0].visible_until == datetime(2026, 12, 30, 2, 0)
    [notice] = notices_of("secure_message")
    # queued as the moment; the mail writes it out in its reader's language when sent
    assert notice["visible_until"] == "2026-12-30T02:00:00+00:00"
    frozen_clock.set(datetime(2026, 12, 28, 12, 0))
    assert expiry.warn_unopened() == 1
    [warning] = notices_of("expiry_warning")
    assert warning["visible_until"] == "2026-12-30T02:00:00+00:00"


def test_the_sent_notification_says_it(new_york, app):
    app.config["OUTBOUND"] = f"maildir:{Path(app.instance_path) / 'outbox'}"
    new_york.send(mail(to="pat@partner.test"), ["pat@partner.test"], mode="external")
    texts = [m.get_body(("plain",)).get_content() for m in read_outbox(app)]
    assert any("Readable until: 29 December 2026, 21:00 EST" in t for t in texts)


def test_the_reply_quote_is_dated_in_the_tenants_zone_and_names_it(new_york):
    dated = new_york.send(mail(subject="Dated", to="pat@partner.test",
                               headers="Date: Wed, 02 Dec 2026 15:30:00 +0100\n"),
                          ["pat@partner.test"], mode="external")
    undated = new_york.send(mail(subject="Undated", to="pat@partner.test"),
                            ["pat@partner.test"], mode="external")
    assert replies.quoted(dated.recipients[0]).startswith(
        "On 02 December 2026, 09:30 EST, alice@acme.test wrote:\n> Numbers attached.")
    assert replies.quoted(undated.recipients[0]).startswith(
        "On 29 November 2026, 21:00 EST, alice@acme.test wrote:\n")
