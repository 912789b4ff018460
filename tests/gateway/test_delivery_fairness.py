"""A slow domain holds up only its own mail: it never takes a run's last free thread, and
the domains take their turns (round-robin); an outcome is logged and counted once, when
the commit that records it succeeds, however its group commit went."""

import logging
import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families
from servers import serve_mail_for
from support import mail

from app.delivery import leases, runner, sessions
from app.domain import outbound_queue
from app.extensions import db
from app.models import OutboundItem

SLOW, FAST = "slow.test", "fast.test"


@pytest.fixture(autouse=True)
def patient(monkeypatch):
    """Sessions wait for the next message however slowly the test machine runs."""
    monkeypatch.setattr(sessions, "IDLE_SECONDS", 600)


@pytest.fixture
def arrivals(gateway, network):
    """A slow and a fast mail server, and the domains of what they accepted, in the order
    they accepted it (across both)."""
    order: list[str] = []
    lock = threading.Lock()
    sinks = {}
    for domain, address in ((SLOW, "127.0.1.1"), (FAST, "127.0.1.2")):
        sink = sinks[domain] = serve_mail_for(network, domain, address)
        capture = sink._capture

        def noted(delivery, capture=capture, domain=domain):
            with lock:
                order.append(domain)
            capture(delivery)

        sink._capture = noted
    sinks[SLOW].delay(3)  # each DATA takes 3 s (the gateway waits 5)
    return order, sinks


def backlog(gateway, count: int) -> None:
    for n in range(count):
        gateway.send(mail(to=f"r{n}@{SLOW}", subject=f"slow {n}"), [f"r{n}@{SLOW}"])


def first_contact(gateway) -> None:
    """A relayed message to ann at fast.test, and a message kept at CCM for pat there:
    pat's notice and password go to fast.test too."""
    gateway.send(mail(to=f"ann@{FAST}", subject="fast"), [f"ann@{FAST}"])
    gateway.policy(name="Fast", kind="route", to_pattern=f"pat@{FAST}")  # kept at CCM
    gateway.send(mail(to=f"pat@{FAST}", subject="kept"), [f"pat@{FAST}"])


@pytest.mark.parametrize("threads, per_destination", [(None, None), (4, 4)])
def test_a_slow_domain_s_backlog_does_not_hold_up_another_domain(app, gateway, arrivals,
                                                                  threads, per_destination):
    """The review's case: 24 messages to a server that takes its time over each DATA,
    then mail to another domain: a message and a first contact's notice and password.
    They all arrive before the slow server has answered its first DATA, at the defaults
    (8 threads, 4 a domain) and when the limit is all the threads (4 and 4: before,
    the slow domain's leases took every thread until its whole backlog was leased)."""
    if threads is None:
        assert (app.config["DELIVERY_THREADS"], app.config["DESTINATION_CONCURRENCY"]) \
            == (8, 4)
    else:
        app.config.update(DELIVERY_THREADS=threads, DESTINATION_CONCURRENCY=per_destination)
    order, sinks = arrivals
    backlog(gateway, 24)
    first_contact(gateway)
    worker = threading.Thread(target=_run_queue, args=(app, gateway))
    worker.start()
    try:
        fast = sinks[FAST].wait_for(3, timeout=30)
        assert order[:3] == [FAST] * 3, order
    finally:
        runner.stopping.set()  # the rest of the backlog goes back to the queue
        worker.join()
        runner.stopping.clear()
    subjects = [d.message["Subject"] for d in fast]
    assert "fast" in subjects and any("sign-in details" in s for s in subjects)
    assert sinks[SLOW].wait_for(1)  # the slow server was being sent to all along


def _run_queue(app, gateway) -> None:
    with app.app_context():
        try:
            gateway.run_queue()
        finally:
            db.session.remove()


def test_the_domains_take_turns_and_a_busy_one_never_takes_the_last_thread(gateway,
                                                                          arrivals):
    """The run's choices, lease by lease, with nothing sent: slow.test's backlog is
    older, fast.test has the next turn all the same; a busy domain leaves the last free
    thread for one with nothing under way."""
    backlog(gateway, 12)
    gateway.send(mail(to=f"ann@{FAST}"), [f"ann@{FAST}"])
    gateway.send(mail(to=f"bo@{FAST}"), [f"bo@{FAST}"])
    run = runner._Run(None, poll=1, threads=4, per_destination=4)
    try:
        first, second, third = run._take(), run._take(), run._take()
        assert [first.destination, second.destination, third.destination] == \
            [SLOW, FAST, SLOW]
        assert len(third.item_ids) == runner.ITEMS_PER_LEASE  # the last slot: a batch
        # The last free thread: both domains are busy, so neither takes it.
        assert run._take() is None
        run._done(second)
        fourth = run._take()
        assert fourth.destination == FAST  # its turn again, before the older backlog
        # At most threads - 1 to one domain, however high the limit.
        run._done(fourth)
        assert run.per_destination == 3
        assert run._take().destination == SLOW
        assert run._take() is None  # the last thread is kept
    finally:
        run.sessions.close()


def test_an_outcome_is_logged_and_counted_once_when_its_group_commit_failed(
        gateway, arrivals, client, caplog):
    """Two outcomes in one group commit; the second breaks a real constraint (NOT NULL),
    so the group is rolled back and each written again alone: the first is logged and
    counted once, the second, never recorded, neither."""
    for n in range(2):
        gateway.send(mail(to=f"pat@{FAST}", subject=f"number {n}"), [f"pat@{FAST}"])
    lease = leases.take(set(), items=8)
    (good,), (bad,) = lease.sends

    def logged(row):
        runner._log_line(row, None, "sent", "250 2.0.0 Ok")

    def delivered_then_broken(item):
        runner._log(item, "sent", "250 2.0.0 Ok")
        item.rcpt_to = None  # outbound_item.rcpt_to is NOT NULL: the commit fails

    before = delivery_outcomes(client)
    outcomes = [leases._Outcome((good,), lease.token, sent=leases.Sent(
                    "250 2.0.0 Ok", logged, outbound_queue.finish_sent, outbound_queue.sent_to)),
                leases._Outcome((bad,), lease.token, apply=delivered_then_broken)]
    with caplog.at_level(logging.INFO, logger=runner.log.name):
        leases._GroupCommit._commit(outcomes)
    assert outcomes[0].error is None and outcomes[1].error is not None
    sent = [r.getMessage() for r in caplog.records if "status=sent" in r.getMessage()]
    assert len(sent) == 1 and f"item {good} " in sent[0], sent
    assert delivery_outcomes(client) - before == 1
    db.session.expire_all()
    assert db.session.get(OutboundItem, good).state == "done"
    assert db.session.get(OutboundItem, bad).state == "sending"  # its lease runs out


def delivery_outcomes(client) -> float:
    """Deliveries counted as sent so far (the test process counts for all its tests)."""
    answer = client.get("/metrics")
    return sum(sample.value for family in text_string_to_metric_families(answer.text)
               for sample in family.samples
               if sample.name == "ccm_delivery_outcomes_total"
               and sample.labels.get("kind") == "delivery"
               and sample.labels.get("outcome") == "sent")


def test_a_batch_gives_way_when_another_domain_waits_for_its_thread(gateway, arrivals):
    """A thread with several messages for one domain hands back the rest when every
    thread is busy and a domain with nothing under way has mail due; then takes that."""
    _, sinks = arrivals
    sinks[SLOW].delay(0)
    backlog(gateway, 3)
    gateway.send(mail(to=f"ann@{FAST}"), [f"ann@{FAST}"])
    run = runner._Run(None, poll=1, threads=2, per_destination=4)
    try:
        batch = run._take()
        assert batch.destination == SLOW and len(batch.sends) == 3
        other = run._take()  # the last thread, for a domain with nothing under way
        assert other.destination == FAST
        gateway.send(mail(to="kim@late.test"), ["kim@late.test"])  # due now
        run._send(batch)
        assert [d.message["Subject"] for d in sinks[SLOW].wait_for(1)] == ["slow 0"]
        db.session.expire_all()
        rest = [db.session.get(OutboundItem, item_id) for (item_id,) in batch.sends[1:]]
        assert [(item.state, item.attempts) for item in rest] == [("pending", 0)] * 2
        run._done(batch)
        assert run._take().destination == "late.test"
    finally:
        run.sessions.close()
