"""Times as the reader reads them: in the tenant's zone, the datetime attribute in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from app import clock
from app.web import filters

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


@pytest.mark.parametrize(("moment", "iso"), [
    (datetime(2026, 12, 6, 5, 53, 55, 558176), "2026-12-06T05:53:55.558Z"),
    (datetime(2026, 12, 6, 5, 53, 55, 999999), "2026-12-06T05:53:55.999Z"),  # cut, not rounded
    (datetime(2026, 12, 6, 5, 53, 55, 1000), "2026-12-06T05:53:55.001Z"),
    (datetime(2026, 12, 6, 5, 53, 55, 999), "2026-12-06T05:53:55.000Z"),
    (datetime(2026, 12, 6, 5, 53, 55), "2026-12-06T05:53:55Z"),
    (datetime(2026, 12, 6, 6, 53, 55, tzinfo=timezone(timedelta(hours=1))),
     "2026-12-06T05:53:55Z"),
    (datetime(2026, 7, 1, 14, 0, tzinfo=BERLIN), "2026-07-01T12:00:00Z"),
])
def test_the_datetime_attribute_is_utc_to_the_millisecond(moment, iso):
    assert filters.iso_utc(moment) == iso


@pytest.mark.parametrize(("moment", "zone", "shown"), [
    # Berlin: CET (+1) in winter, CEST (+2) in summer
    (datetime(2026, 1, 15, 12, 0), BERLIN, "15 Jan 2026, 13:00 CET"),
    (datetime(2026, 7, 15, 12, 0), BERLIN, "15 Jul 2026, 14:00 CEST"),
    # the spring change, 29 March 2026 01:00 UTC: a minute before and on it
    (datetime(2026, 3, 29, 0, 59), BERLIN, "29 Mar 2026, 01:59 CET"),
    (datetime(2026, 3, 29, 1, 0), BERLIN, "29 Mar 2026, 03:00 CEST"),
    # the autumn change, 25 October 2026 01:00 UTC: 02:30 happens twice, told apart
    (datetime(2026, 10, 25, 0, 30), BERLIN, "25 Oct 2026, 02:30 CEST"),
    (datetime(2026, 10, 25, 1, 30), BERLIN, "25 Oct 2026, 02:30 CET"),
    # the date itself moves: late evening in New York is the next day in UTC
    (datetime(2026, 11, 1, 3, 30), NEW_YORK, "31 Oct 2026, 23:30 EDT"),
    (datetime(2026, 11, 1, 6, 30), NEW_YORK, "01 Nov 2026, 01:30 EST"),
    (datetime(2026, 11, 1, 6, 30), UTC, "01 Nov 2026, 06:30 UTC"),
    # a zone whose name the tz database gives as an offset
    (datetime(2026, 1, 15, 12, 0), ZoneInfo("Asia/Dubai"), "15 Jan 2026, 16:00 +04"),
])
def test_a_moment_is_shown_in_the_zone_with_its_abbreviation(moment, zone, shown):
    assert filters.shown_in(moment, zone) == shown


def test_each_style():
    moment = datetime(2026, 12, 6, 23, 5, 9)  # already 7 December in Berlin
    assert {style: filters.shown_in(moment, BERLIN, style) for style in filters.STYLES} == {
        "date": "07 December 2026", "day": "07 Dec", "minute": "07 Dec 2026, 00:05 CET",
        "second": "07 Dec 2026, 00:05:09 CET", "short": "07 Dec, 00:05 CET",
        "time": "00:05:09 CET"}


def test_the_time_element_outside_a_request_is_in_utc():
    markup = filters.moment(datetime(2026, 12, 6, 5, 53, 55, 558176), "second")
    assert markup == ('<time datetime="2026-12-06T05:53:55.558Z" data-style="second" '
                      'title="UTC">06 Dec 2026, 05:53:55 UTC</time>')
    assert filters.moment(None) == ""


def test_a_date_header_is_converted_and_one_without_a_zone_is_left_as_written():
    assert "15 Jul 2026, 12:00 UTC" in filters.mail_date("Wed, 15 Jul 2026 14:00:00 +0200")
    assert filters.mail_date("Wed, 15 Jul 2026 14:00:00 -0000") == "15 Jul 2026, 14:00"
    fallback = datetime(2026, 7, 15, 9, 0)
    assert 'datetime="2026-07-15T09:00:00Z"' in filters.mail_date("garbage", fallback)
    assert filters.mail_date("<b>garbage</b>") == "&lt;b&gt;garbage&lt;/b&gt;"


@pytest.mark.parametrize("name", ["Europe/Berlin", "America/Argentina/Buenos_Aires", "UTC"])
def test_a_known_zone_is_accepted(name):
    assert clock.zone_problem(name) is None
    assert clock.zone(name) == ZoneInfo(name)


@pytest.mark.parametrize("name", ["Mars/Olympus", "europe/berlin", "../../etc/passwd",
                                  "/etc/localtime", "Europe/Berlin\n", " Europe/Berlin",
                                  "x" * 300, "a\x00b", "CET/"])
def test_an_unknown_zone_is_refused_and_shown_as_utc(name):
    assert clock.zone_problem(name) == \
        "Use a time zone name such as Europe/Berlin or America/New_York."
    assert clock.zone(name) is UTC
