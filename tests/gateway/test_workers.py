"""The worker: several at once never send one item twice; the scheduler runs the queue."""

import threading
import time

import pytest
from servers import serve_mail_for
from support import in_app_context, mail, run_queue_in_workers

from app import worker
from app.extensions import db


def test_two_workers_on_postgresql_deliver_each_item_exactly_once(app, make_tenant,
                                                                  relay):
    sink = relay
    if db.engine.dialect.name != "postgresql":
        pytest.skip("several workers are supported on PostgreSQL only (one on SQLite)")
    from app.domain import ingest

    make_tenant("acme", domains=["acme.test"])
    app.config["OUTBOUND"] = f"smtp://127.0.0.1:{sink.port}"
    for n in range(40):
        ingest.receive(mail(subject=f"number {n}").replace("\n", "\r\n").encode(),
                       "alice@acme.test", [f"r{n}@partner.test"])
    db.session.commit()

    run_queue_in_workers(app, workers=2, limit=5)
    delivered = sorted(d.message["Subject"] for d in sink.wait_for(40))
    assert delivered == sorted(f"number {n}" for n in range(40))


def test_the_scheduler_runs_the_queue_in_an_app_context(app, make_tenant, relay):
    sink = relay
    from app.domain import ingest

    make_tenant("acme", domains=["acme.test"])
    app.config["OUTBOUND"] = f"smtp://127.0.0.1:{sink.port}"
    ingest.receive(mail().replace("\n", "\r\n").encode(), "alice@acme.test",
                   ["pat@partner.test"])
    db.session.commit()
    scheduler = worker.scheduler(app, blocking=False)
    scheduler.start()
    try:
        assert len(sink.wait_for(1)) == 1
    finally:
        scheduler.shutdown(wait=True)
    assert list(worker.jobs(app)) == ["deliver", "expire", "warn", "prove", "clean"]


def test_ccm_send_takes_the_same_path_as_smtp(app, runner, make_tenant, tmp_path):
    make_tenant("acme", domains=["acme.test"])
    eml = tmp_path / "figures.eml"
    eml.write_bytes(mail(headers="X-CCM-Mode: all\n").encode())
    result = runner.invoke(args=["send", str(eml), "--mail-from", "alice@acme.test",
                                 "--rcpt", "pat@partner.test", "--rcpt", "bob@acme.test"])
    assert result.exit_code == 0, result.output
    # alice has no Send Secure permission here, so the header is ignored.
    assert "pat@partner.test: external" in result.output
    assert "bob@acme.test: internal" in result.output
    refused = runner.invoke(args=["send", str(eml), "--mail-from", "eve@evil.test",
                                  "--rcpt", "pat@partner.test"])
    assert refused.exit_code == 1
    assert "5.7.1" in refused.output


def test_simultaneous_first_messages_to_a_new_recipient_all_get_through(app, make_tenant):
    """Found by bench/ingest.py: on PostgreSQL each transaction used to insert the new
    account and all but one failed on the unique constraint (451, retried later)."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite serializes writers, so the race cannot happen there")
    from app.domain import ingest
    from app.models import User

    make_tenant("acme", domains=["acme.test"])
    barrier, failures = threading.Barrier(4), []

    def send(n):
        with app.app_context():
            try:
                barrier.wait()
                ingest.receive(mail(subject=f"first {n}").replace("\n", "\r\n").encode(),
                               "alice@acme.test", ["new@partner.test"], mode="external")
                db.session.commit()
            except Exception as error:
                failures.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=send, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert failures == []
    assert db.session.query(User).filter_by(email="new@partner.test").count() == 1


def test_a_slow_mail_server_does_not_hold_up_mail_for_other_domains(app, gateway):
    """Found by bench/faults.py: one thread sent one item after another, so mail for a
    healthy domain waited behind every message for a slow one."""
    app.config.update(WORKER_INTERVAL=1, DELIVERY_THREADS=4)
    slow = gateway.network.mx("slow.test")
    slow.delay(2)  # each message takes 2 s, within the 5 s time-out
    fast = gateway.network.mx("partner.test")
    for n in range(3):
        gateway.send(mail(to=f"s{n}@slow.test"), [f"s{n}@slow.test"])
    gateway.send(mail(subject="first"), ["pat@partner.test"])
    started = time.monotonic()
    queue = threading.Thread(target=in_app_context, args=(app, gateway.run_queue))
    queue.start()
    try:
        fast.wait_for(1, timeout=5)
        assert time.monotonic() - started < 1.5
        # Mail that falls due while the slow server still takes its time goes out too.
        gateway.send(mail(subject="second"), ["pat@partner.test"])
        fast.wait_for(2, timeout=5)
        assert time.monotonic() - started < 4
        assert len(slow.messages) < 3
    finally:
        queue.join(timeout=60)
    assert len(slow.messages) == 3
    assert [d.message["Subject"] for d in fast.messages] == ["first", "second"]


def test_mail_to_one_domain_goes_several_messages_at_once_up_to_the_limit(app, gateway):
    """As from Postfix: several sessions to one domain at once, even for one recipient
    (SMTP promises no order between messages; generated mail keeps its order,
    tests/gateway/test_delivery_concurrency.py); CCM_DESTINATION_CONCURRENCY of them."""
    app.config.update(DELIVERY_THREADS=4, DESTINATION_CONCURRENCY=2)
    sink = serve_mail_for(gateway.network, "partner.test", "127.0.1.1")
    sink.delay(0.3)
    for n in range(4):
        gateway.send(mail(subject=f"number {n}"), ["pat@partner.test"])
    gateway.run_queue()
    assert sorted(d.message["Subject"] for d in sink.wait_for(4)) == [f"number {n}"
                                                                      for n in range(4)]
    assert sink.sessions == 2


def test_mail_queued_between_runs_leaves_at_once_not_at_the_next_interval(
        app, make_tenant, relay, tmp_path):
    """A real ``ccm worker`` with the default 5 s between runs: mail queued after its run
    has ended (by ``ccm smtp``, say) is sent within a fraction of a second, not at the
    next run (app/worker.py, ``_start_delivery_when_due``)."""
    from servers import Ccm

    from app.domain import ingest

    make_tenant("acme", domains=["acme.test"])
    with Ccm(app, "worker", directory=tmp_path, CCM_WORKER_INTERVAL="5",
             CCM_OUTBOUND=f"smtp://127.0.0.1:{relay.port}") as worker:
        deadline = time.monotonic() + 30
        while "CCM worker started" not in worker.output():
            assert worker.process.poll() is None and time.monotonic() < deadline, \
                worker.output()
            time.sleep(0.05)
        time.sleep(1.0)  # its first run, at the start, has found nothing and ended
        for number in range(3):
            ingest.receive(mail(subject=f"number {number}").replace("\n", "\r\n").encode(),
                           "alice@acme.test", ["pat@partner.test"])
            db.session.commit()
            queued = time.monotonic()
            assert len(relay.wait_for(number + 1, timeout=10)) == number + 1
            assert time.monotonic() - queued < 2.0, "sent only at the next run"
            time.sleep(0.5)  # that run ends: the next message comes between runs again
        assert worker.stop(60) == 0
    assert "Traceback" not in worker.output()


def test_a_delivery_run_that_fails_is_not_started_again_four_times_a_second(
        app, make_tenant, monkeypatch):
    """Mail due and every run failing (the database, say): the runs come at the interval,
    as before, not at each look for due mail."""
    from app.delivery import runner
    from app.domain import ingest

    make_tenant("acme", domains=["acme.test"])
    app.config["WORKER_INTERVAL"] = 5
    ingest.receive(mail().replace("\n", "\r\n").encode(), "alice@acme.test",
                   ["pat@partner.test"])
    db.session.commit()
    runs = []

    def failing(*_args, **_kwargs):
        runs.append(time.monotonic())
        raise RuntimeError("the database is out")

    monkeypatch.setattr(runner, "run_due", failing)
    monkeypatch.setattr(worker, "_delivery_failed_at", None)
    scheduler = worker.scheduler(app, blocking=False)
    scheduler.start()
    try:
        time.sleep(2.0)
    finally:
        scheduler.shutdown(wait=True)
    assert len(runs) == 1  # the run at the start; the next at 5 s
