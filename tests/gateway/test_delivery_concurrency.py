"""Several deliveries to one domain at once, bounded; several messages under one lease;
the outcomes of a run's threads recorded in one commit."""

import pytest
from servers import serve_mail_for
from sqlalchemy import event
from support import mail

from app.delivery import leases, queue, runner, sessions
from app.domain import outbound_queue
from app.extensions import db
from app.models import OutboundItem


@pytest.fixture
def partner(gateway, network):
    sink = serve_mail_for(network, "partner.test", "127.0.1.1")
    sink.delay(0.5)  # each DATA takes a while, so deliveries overlap if they can
    return sink


@pytest.fixture(autouse=True)
def patient(monkeypatch):
    """Sessions wait for the next message however slowly the test machine runs."""
    monkeypatch.setattr(sessions, "IDLE_SECONDS", 600)


def send_alone(lease: leases.Lease) -> None:
    """What a run's thread does with a lease."""
    run = runner._Run(None, poll=1)
    try:
        run._send(lease)
    finally:
        run.sessions.close()


def item_states() -> dict[str, str]:
    db.session.expire_all()
    return {item.rcpt_to: item.state for item in db.session.query(OutboundItem)}


@pytest.mark.parametrize("per_destination", [1, 2, 4])
def test_deliveries_to_one_domain_run_at_once_up_to_the_limit(app, gateway, partner,
                                                              per_destination):
    app.config.update(DELIVERY_THREADS=4, DESTINATION_CONCURRENCY=per_destination)
    rcpts = [f"r{n}@partner.test" for n in range(6)]
    for rcpt in rcpts:
        gateway.send(mail(to=rcpt), [rcpt])
    gateway.run_queue()
    assert len(partner.wait_for(6)) == 6
    # One session per delivery under way at once: sessions are kept and reused. (A
    # thread that starts late, on a busy machine, may find one kept for it.)
    assert partner.sessions == 1 if per_destination == 1 \
        else 2 <= partner.sessions <= per_destination
    assert set(item_states().values()) == {"done"}


def test_a_recipient_s_generated_mail_waits_for_the_one_under_way_messages_do_not(
        gateway, partner):
    notice = queue.queue(mail(to="kim@partner.test").replace("\n", "\r\n").encode(),
                         tenant=gateway.tenant, to="kim@partner.test")
    db.session.commit()
    # While a run sends kim generated mail, the next waits...
    assert leases.take(set(), {"kim@partner.test"}, items=8) is None
    # ...but a message relayed to kim does not.
    message = gateway.send(mail(to="kim@partner.test"), ["kim@partner.test"])
    lease = leases.take(set(), {"kim@partner.test"}, items=8)
    (delivery,) = db.session.query(OutboundItem).filter_by(
        recipient_id=message.recipients[0].id)
    assert lease.item_ids == (delivery.id,)
    assert lease.recipients == frozenset()
    taken = leases.take(set(), set(), items=8)
    assert taken.item_ids == (notice.id,) and taken.recipients == {"kim@partner.test"}


def test_one_lease_takes_several_messages_for_one_destination_in_order(gateway, partner):
    for n in range(3):
        gateway.send(mail(subject=f"number {n}"), ["pat@partner.test"])
    gateway.send(mail(to="ann@elsewhere.test"), ["ann@elsewhere.test"])
    lease = leases.take(set(), items=8)
    assert lease.destination == "partner.test" and len(lease.sends) == 3
    assert all(len(send) == 1 for send in lease.sends)
    send_alone(lease)
    assert [d.message["Subject"] for d in partner.wait_for(3)] == [f"number {n}"
                                                                   for n in range(3)]
    assert partner.sessions == 1
    assert item_states()["pat@partner.test"] == "done"
    assert item_states()["ann@elsewhere.test"] == "pending"


def test_a_stopping_run_hands_back_the_rest_of_its_lease(gateway, partner):
    for n in range(3):
        gateway.send(mail(subject=f"number {n}"), ["pat@partner.test"])
    lease = leases.take(set(), items=8)
    runner.stopping.set()
    try:
        send_alone(lease)
    finally:
        runner.stopping.clear()
    assert [d.message["Subject"] for d in partner.wait_for(1)] == ["number 0"]
    db.session.expire_all()
    items = sorted(db.session.query(OutboundItem), key=lambda item: item.id)
    assert [(i.state, i.attempts, i.lease_token) for i in items] == [
        ("done", 1, None), ("pending", 0, None), ("pending", 0, None)]


def test_an_outcome_that_fails_in_a_group_commit_takes_no_other_with_it(gateway,
                                                                        partner):
    for n in range(2):
        gateway.send(mail(subject=f"number {n}"), ["pat@partner.test"])
    lease = leases.take(set(), items=8)
    (good,), (bad,) = lease.sends

    def broken(item):
        raise RuntimeError("a bug in recording")

    def done(item):
        item.state, item.lease_token = "done", None

    outcomes = [leases._Outcome((good,), lease.token, done),
                leases._Outcome((bad,), lease.token, broken)]
    leases._GroupCommit._commit(outcomes)
    assert outcomes[0].error is None and isinstance(outcomes[1].error, RuntimeError)
    db.session.expire_all()
    assert db.session.get(OutboundItem, good).state == "done"
    assert db.session.get(OutboundItem, bad).state == "sending"


def test_a_take_writes_the_outcomes_waiting_in_its_own_commit(gateway, partner):
    """A delivery recorded while a take is due: one commit (one disk sync on SQLite)
    holds both, and the delivery is recorded in full."""
    for n in range(2):
        gateway.send(mail(subject=f"number {n}"), ["pat@partner.test"])
    first = leases.take(set(), items=1)
    commits = []

    def committed(session):
        commits.append(session)

    event.listen(db.session, "after_commit", committed)
    try:
        # What a thread does with its delivery while another thread takes.
        leases._group_commit._waiting.append(leases._Outcome(
            first.item_ids, first.token, sent=leases.Sent("250 2.0.0 Ok: queued", lambda row: None,
                                   outbound_queue.finish_sent, outbound_queue.sent_to)))
        second = leases.take(set(), items=8)
    finally:
        event.remove(db.session, "after_commit", committed)
    assert len(commits) == 1 and not leases._group_commit._waiting
    assert second.item_ids and set(second.item_ids).isdisjoint(first.item_ids)
    db.session.expire_all()
    item = db.session.get(OutboundItem, first.item_id)
    assert (item.state, item.attempts, item.lease_token) == ("done", 1, None)
    assert item.finished_at is not None and item.recipient.state == "delivered"
    assert [e.text for e in item.recipient.events if e.kind == "delivered"] == [
        "250 2.0.0 Ok: queued"]


def test_threads_waiting_are_not_woken_for_takes_that_find_nothing(
        app, gateway, partner, monkeypatch):
    """Eight threads, two deliveries at once to the one domain with mail: a thread that
    finishes a message takes the next itself; the six waiting do not each try a take
    that finds nothing (a statement and the process's write lock each) every time."""
    # (a long poll: waiting threads wake only when told)
    app.config.update(DELIVERY_THREADS=8, DESTINATION_CONCURRENCY=2, WORKER_INTERVAL=60)
    monkeypatch.setattr(runner, "ITEMS_PER_LEASE", 1)  # a take for every message
    rcpts = [f"r{n}@partner.test" for n in range(10)]
    for rcpt in rcpts:
        gateway.send(mail(to=rcpt), [rcpt])
    real_take, found_nothing = leases.take, []

    def counted(*args, **kwargs):
        lease = real_take(*args, **kwargs)
        if lease is None:
            found_nothing.append(1)
        return lease

    monkeypatch.setattr(leases, "take", counted)
    assert runner.run_due() == 10
    assert len(partner.wait_for(10)) == 10
    assert set(item_states().values()) == {"done"}
    # Each thread's first try and its last, once more for a thread whose take found
    # nothing while a lease ended (``_Run.work``), and a few more: not one for each
    # waiting thread each time a message is done (some sixty in all).
    assert len(found_nothing) <= 3 * 8 + 2, len(found_nothing)


def test_a_take_of_generated_mail_takes_the_next_to_the_same_address_along(gateway,
                                                                           partner):
    """The next notices to kim would wait for the first in any case: one take leases
    them all, sent one after the other in order by the same thread; a message relayed
    to the same domain is left for another thread."""
    notices = [queue.queue(mail(to="kim@partner.test", subject=f"notice {n}")
                           .replace("\n", "\r\n").encode(),
                           tenant=gateway.tenant, to="kim@partner.test") for n in range(3)]
    db.session.commit()
    gateway.send(mail(to="lee@partner.test"), ["lee@partner.test"])
    lease = leases.take(set(), items=1)
    assert lease.sends == tuple((notice.id,) for notice in notices)
    assert lease.recipients == {"kim@partner.test"}
    assert len(leases.take(set(), {"kim@partner.test"}, items=1).item_ids) == 1  # lee's
    send_alone(lease)
    assert [d.message["Subject"] for d in partner.wait_for(3)] == [
        f"notice {n}" for n in range(3)]
    db.session.expire_all()
    assert [db.session.get(OutboundItem, notice.id).state for notice in notices] == \
        ["done"] * 3
