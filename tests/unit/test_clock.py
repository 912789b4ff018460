"""One clock: freezing app/clock.py moves the time for every module at once."""

from datetime import UTC, datetime, timedelta

from app import clock
from app.delivery import runner
from app.domain import expiry, ingest, mailbox

MOMENT = datetime(2031, 5, 4, 3, 2, 1)


def test_a_frozen_clock_holds_and_moves_the_time_for_everyone(frozen_clock):
    frozen_clock.set(MOMENT)
    assert clock.utcnow() == MOMENT
    for module in (expiry, mailbox, ingest, runner):
        assert module.clock.utcnow() == MOMENT
    frozen_clock.advance(timedelta(days=30, seconds=1))
    assert ingest.clock.utcnow() == MOMENT + timedelta(days=30, seconds=1)


def test_unfrozen_it_is_the_real_time_in_naive_utc():
    """Run after the test above: its fixture let the time go again."""
    before = datetime.now(UTC).replace(tzinfo=None)
    now = clock.utcnow()
    assert before <= now <= datetime.now(UTC).replace(tzinfo=None)
    assert now.tzinfo is None
