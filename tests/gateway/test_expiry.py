"""The visibility window: on time to the second, content gone, tracking kept, warnings once."""

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from support import mail, statements

from app import worker
from app.clock import utcnow
from app.domain import expiry, mailbox
from app.extensions import db
from app.models import Job, Message, OutboundItem, Recipient

CCM = Path(sys.executable).with_name("ccm")


def secure(gateway, to="pat@partner.test", **kwargs):
    return gateway.send(mail(to=to, **kwargs), [to], mode="external")


def raw_in_database(message_id) -> bytes | None:
    """The content, or anything derived from it (the part index), still stored."""
    raw, parts = db.session.execute(text("SELECT raw, parts FROM message WHERE id = :id"),
                                    {"id": message_id}).one()
    assert (raw is None) == (parts is None)  # the tests index every message
    return raw


def expired(copy) -> bool:
    fate = mailbox.fate_of(copy)
    return fate is not None and not fate.withdrawn


def test_the_window_ends_to_the_second_with_the_tenant_default(gateway, frozen_clock):
    message = secure(gateway)
    (copy,) = message.recipients
    assert copy.visible_until == message.received_at + timedelta(days=30)
    end = copy.visible_until
    frozen_clock.set(end - timedelta(seconds=1))
    assert expiry.purge_expired() == 0
    assert raw_in_database(message.id) is not None
    assert mailbox.fate_of(copy) is None
    frozen_clock.set(end + timedelta(seconds=1))
    assert expired(copy)
    assert expiry.purge_expired() == 1
    assert raw_in_database(message.id) is None


def test_a_policy_override_shortens_or_lengthens_the_window(gateway, frozen_clock):
    gateway.policy(name="Short", kind="route", to_pattern="*@brief.test", visibility_days=2)
    gateway.policy(name="Long", kind="route", to_pattern="*@archive.test", visibility_days=90)
    short = gateway.send(mail(to="a@brief.test"), ["a@brief.test"])
    long = gateway.send(mail(to="b@archive.test"), ["b@archive.test"])
    assert short.recipients[0].visible_until == short.received_at + timedelta(days=2)
    assert long.recipients[0].visible_until == long.received_at + timedelta(days=90)
    frozen_clock.set(short.received_at + timedelta(days=30, seconds=1))
    expiry.purge_expired()
    db.session.expire_all()
    assert raw_in_database(short.id) is None
    assert raw_in_database(long.id) is not None  # the longest window keeps the content
    frozen_clock.set(long.received_at + timedelta(days=90, seconds=1))
    assert expiry.purge_expired() == 1


def test_purging_keeps_the_tracking_record_and_events(gateway, frozen_clock):
    message = secure(gateway, subject="Keep my tracking")
    frozen_clock.set(message.expires_at + timedelta(seconds=1))
    expiry.purge_expired()
    db.session.expire_all()
    kept = db.session.get(Message, message.id)
    assert kept.subject == "Keep my tracking" and kept.purged_at is not None
    (copy,) = kept.recipients
    assert copy.state == "expired"
    kinds = [e.kind for e in copy.events]
    assert kinds[-1] == "expired" and "ccm" in kinds
    # Expired copies leave the inbox and their pages say so, whatever the clock says.
    assert expired(copy)


def test_a_message_waiting_for_delivery_keeps_its_content(gateway, frozen_clock):
    message = gateway.send(mail(), ["pat@partner.test"])  # no MX answers: still queued
    frozen_clock.set(message.expires_at + timedelta(days=1))
    assert expiry.purge_expired() == 0
    item = db.session.query(OutboundItem).filter_by(kind="delivery").one()
    item.state = "failed"
    db.session.commit()
    assert expiry.purge_expired() == 1


def test_purging_works_in_batches(gateway, frozen_clock):
    messages = [secure(gateway, subject=f"n{n}") for n in range(7)]
    frozen_clock.set(max(m.expires_at for m in messages) + timedelta(seconds=1))
    assert expiry.purge_expired(batch=3) == 7
    assert db.session.query(Message).filter(Message.purged_at.is_(None)).count() == 0


def test_an_expiry_warning_goes_once_and_only_for_unopened_messages(gateway, frozen_clock):
    opened, unopened = secure(gateway, to="pat@partner.test"), secure(gateway,
                                                                    to="sam@partner.test")
    copy = opened.recipients[0]
    copy.first_opened_at = copy.message.received_at
    db.session.commit()
    frozen_clock.set(unopened.recipients[0].visible_until - timedelta(days=2))
    assert expiry.warn_unopened() == 1
    assert expiry.warn_unopened() == 0
    warnings = db.session.query(OutboundItem).filter(
        OutboundItem.recipient_id == unopened.recipients[0].id,
        OutboundItem.kind == "notification").order_by(OutboundItem.id).all()
    assert len(warnings) == 3  # secure message, password, then the warning


def test_no_warning_before_the_tenants_number_of_days(gateway, frozen_clock):
    message = secure(gateway)
    frozen_clock.set(message.recipients[0].visible_until - timedelta(days=4))
    assert expiry.warn_unopened() == 0
    gateway.tenant.expiry_warning_days = 0
    db.session.commit()
    frozen_clock.set(message.recipients[0].visible_until - timedelta(hours=1))
    assert expiry.warn_unopened() == 0


def test_the_warning_names_no_sender_subject_or_content(gateway, monkeypatch):
    from app.delivery.mail_templates import KINDS, SAMPLES, render_sources, sources

    rendered = render_sources(sources("expiry_warning", gateway.tenant), {
        k: SAMPLES[k] for k in KINDS["expiry_warning"]})
    assert SAMPLES["visible_until"] in rendered["text"]
    assert SAMPLES["portal_url"] in rendered["text"]


def test_clean_up_removes_spent_links_sessions_and_old_queue_items(gateway):
    message = secure(gateway)
    gateway.run_queue()
    for item in db.session.query(OutboundItem):
        assert item.raw is None or item.kind == "delivery"  # passwords gone once sent
        item.finished_at = message.received_at - timedelta(days=8)
    db.session.commit()
    counts = expiry.clean_up()
    assert counts["queue items"] == 2
    assert db.session.query(OutboundItem).count() == 0


def test_a_job_runs_once_however_many_workers_ask(app, gateway):
    assert worker.run_job(app, "clean") is not None
    job = db.session.get(Job, "clean")
    assert job.last_ok and job.last_duration_ms is not None
    job.lease_until = job.last_finished_at + timedelta(hours=1)  # another worker has it
    db.session.commit()
    assert worker.run_job(app, "clean") is None


def test_ccm_jobs_lists_and_runs(runner, gateway):
    listing = runner.invoke(args=["jobs"])
    assert listing.exit_code == 0
    assert "expire" in listing.output and "never run" in listing.output
    ran = runner.invoke(args=["jobs", "run", "expire"])
    assert ran.exit_code == 0 and ran.output.startswith("expire: 0")
    assert "last run" in runner.invoke(args=["jobs"]).output
    assert runner.invoke(args=["jobs", "run", "nope"]).exit_code != 0


def test_two_worker_processes_on_postgresql_share_the_work_exactly_once(
        app, gateway, relay, tmp_path):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("several workers are supported on PostgreSQL only (one on SQLite)")
    app.config["OUTBOUND"] = f"smtp://127.0.0.1:{relay.port}"
    for n in range(30):
        gateway.send(mail(subject=f"ordinary {n}", to="bob@acme.test"), ["bob@acme.test"])
    expired = [secure(gateway, subject=f"old {n}") for n in range(10)]
    for message in expired:  # their window ended long ago
        message.expires_at = message.received_at - timedelta(days=1)
    db.session.query(OutboundItem).filter(OutboundItem.kind == "notification").delete()
    db.session.commit()
    env = {**os.environ, "CCM_INSTANCE_PATH": str(tmp_path),
           "CCM_DATABASE_URL": app.config["DATABASE_URL"], "CCM_WORKER_INTERVAL": "1",
           "CCM_OUTBOUND": f"smtp://127.0.0.1:{relay.port}",
           "CCM_INTERNAL_RELAY": f"smtp://127.0.0.1:{relay.port}"}
    workers = [subprocess.Popen([str(CCM), "worker"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL) for _ in range(2)]
    try:
        relay.wait_for(30, timeout=60)
        deadline = time.monotonic() + 30
        while db.session.query(Message).filter(Message.purged_at.is_(None),
                                               Message.subject.like("old%")).count():
            assert time.monotonic() < deadline, "the expired messages were not purged"
            time.sleep(0.5)
            db.session.expire_all()
        time.sleep(2)  # time enough for a duplicate to show up
    finally:
        for process in workers:
            process.terminate()
            process.wait(timeout=20)
    subjects = sorted(d.message["Subject"] for d in relay.messages)
    assert subjects == sorted(f"ordinary {n}" for n in range(30))
    for message in expired:
        (copy,) = db.session.query(Recipient).filter_by(message_id=message.id).all()
        assert [e.kind for e in copy.events].count("expired") == 1


def test_a_killed_worker_does_not_hold_up_delivery(app, gateway):
    """Found by bench/crash.py: the deliver job's own lease outlived a killed worker, so its
    restarted successor delivered nothing until the lease ran out."""
    worker.run_job(app, "deliver")
    job = db.session.get(Job, "deliver")
    job.lease_until = job.last_started_at + timedelta(hours=1)  # as a killed worker left it
    job.last_finished_at = None
    db.session.commit()
    assert worker.run_job(app, "deliver") is not None


def test_purging_takes_the_same_few_statements_however_many_recipients(gateway, frozen_clock):
    """Found by bench/expiry.py: recording each recipient's expired event loaded its
    events (flushing the one before): two round trips per recipient."""
    messages = [gateway.send(mail(to="pat@partner.test", subject=f"n{n}"),
                             ["pat@partner.test", "sam@partner.test"], mode="external")
                for n in range(4)]
    frozen_clock.set(max(m.expires_at for m in messages) + timedelta(seconds=1))
    with statements() as seen:
        assert expiry.purge_expired() == 4
    # One batch: its candidates, three writes, and the look for more that finds none.
    assert [s.split(None, 1)[0].upper() for s in seen] == [
        "SELECT", "UPDATE", "UPDATE", "INSERT", "SELECT"]
    db.session.expire_all()
    for message in messages:
        for copy in db.session.get(Message, message.id).recipients:
            assert copy.state == "expired"
            assert [e.kind for e in copy.events].count("expired") == 1
            assert copy.events[-1].kind == "expired"


def test_the_purge_finds_its_candidates_in_the_index_of_unpurged_messages(gateway):
    """Found by bench/expiry.py: the old index held purged messages too, so every batch
    walked past all the ones purged before it."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("the plan is checked on SQLite; PostgreSQL's depends on its statistics")
    query = expiry.due_for_purge(utcnow(), 500).compile(
        db.engine, compile_kwargs={"literal_binds": True})
    with db.engine.connect() as connection:
        plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {query}").all()
    steps = [row[-1] for row in plan]
    assert any("ix_message_unpurged_expires_at" in step for step in steps), steps
    assert not any("TEMP B-TREE" in step for step in steps), steps
