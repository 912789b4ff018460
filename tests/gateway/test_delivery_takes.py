"""A run's takes when something goes wrong beside them: an outcome that cannot be
written, a lease ending while another thread's take runs, a run's limit."""

import threading
import time

from app.delivery import leases, runner
from app.extensions import db
from app.models import OutboundItem


def queue_notifications(*addresses: str) -> None:
    for address in addresses:
        db.session.add(OutboundItem(kind="notification", route="external", mail_from="",
                                    rcpt_to=address, raw=b"Subject: n\r\n\r\nx\r\n"))
    db.session.commit()


def test_a_failing_outcome_joined_to_a_take_fails_alone_and_the_take_goes_on(app):
    queue_notifications("pat@one.example", "pat@two.example")
    first = leases.take(set())
    assert first is not None and first.destination == "one.example"

    def broken(item):
        item.rcpt_to = None  # outbound_item.rcpt_to is NOT NULL: writing it fails

    outcome = leases._Outcome(first.item_ids, first.token, apply=broken)
    leases._group_commit._waiting.append(outcome)  # as record_each leaves it for a take
    try:
        second = leases.take(set())
    finally:
        leases._group_commit._waiting.clear()
    assert outcome.error is not None  # this outcome alone is not recorded
    assert second is not None and second.destination == "two.example"
    db.session.expire_all()
    assert db.session.get(OutboundItem, second.item_id).state == "sending"


def test_a_limited_run_takes_no_more_than_its_limit_generated_mail_included(app):
    queue_notifications(*["pat@example.org"] * 3)
    run = runner._Run(1, poll=1, threads=1)
    try:
        lease = run._take()
        assert lease is not None
        assert len(lease.item_ids) == 1
        assert run.taken == 1
    finally:
        run.sessions.close()


def test_a_thread_does_not_quit_while_a_lease_ending_during_its_take_frees_work(
        monkeypatch):
    """Thread B's take finds nothing only because the one domain is full; thread A ends
    its lease meanwhile and takes that domain's next message: B must keep watching,
    not leave the run one thread short for the rest of it. (The take is played, so
    that the lease ends exactly while B's statement runs.)"""
    run = runner._Run(None, poll=30, threads=2, per_destination=4)  # one a domain
    first = leases.Lease(((1,),), "t1", "d.test")
    second = leases.Lease(((2,),), "t2", "d.test")
    b_in_take, a_done, a_second_taken, release_a = (threading.Event() for _ in range(4))
    calls = []
    lock = threading.Lock()

    def take(full, in_flight, **_):
        with lock:
            calls.append(set(full))
            n = len(calls)
        if n == 1:
            return first  # thread A: the only domain's first message
        if n == 2:  # thread B: d.test is full, nothing else is due
            assert full == {"d.test"}
            b_in_take.set()
            assert a_done.wait(10)  # A ends its lease while B's statement runs
            return None
        if n == 3:  # the next take: d.test's next message
            a_second_taken.set()
            time.sleep(0.3)
            return second
        return None

    def send(lease):
        if lease is first:
            assert b_in_take.wait(10)
        else:
            assert release_a.wait(10)

    done = run._done

    def _done(lease):
        done(lease)
        if lease is first:
            a_done.set()

    monkeypatch.setattr(leases, "take", take)
    monkeypatch.setattr(run, "_send", send)
    monkeypatch.setattr(run, "_done", _done)
    a = threading.Thread(target=run.work, name="A")
    a.start()
    b = threading.Thread(target=run.work, name="B")
    b.start()
    try:
        assert a_second_taken.wait(10)
        time.sleep(1)
        # d.test has a message under way: both threads are still in the run
        assert a.is_alive() and b.is_alive(), "a thread left the run while work was due"
    finally:
        runner.stopping.set()
        release_a.set()
        with run.changed:
            run.changed.notify_all()
        a.join(10)
        b.join(10)
        runner.stopping.clear()
        run.sessions.close()
    assert not a.is_alive() and not b.is_alive()
