"""A stalled database: clients are told 451 at the deadline, and what got 451 is never
stored afterwards (it would arrive twice when they send it again)."""

from __future__ import annotations

import os
import smtplib
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from servers import TcpRelay, free_port
from sqlalchemy.engine import make_url
from support import mail

from app import create_app
from app.extensions import db
from app.models import Message
from app.smtp import ingress
from app.smtp.group_commit import GroupCommit, Job

DATABASE_URL = os.environ.get("CCM_TEST_DATABASE_URL")


def stored() -> list[str]:
    db.session.expire_all()
    return [m.subject for m in db.session.query(Message).order_by(Message.id)]


def raw(subject: str) -> bytes:
    return mail(subject=subject).replace("\n", "\r\n").encode()


def send(client: smtplib.SMTP, subject: str) -> int:
    """The reply code to the message's DATA (250, or 451 and the like)."""
    try:
        client.sendmail("alice@acme.test", ["pat@partner.test"], raw(subject))
    except smtplib.SMTPDataError as refused:
        return refused.smtp_code
    return 250


def job(subject: str) -> Job:
    return Job((raw(subject), "alice@acme.test", ["pat@partner.test"],
               {"client_address": "127.0.0.1", "tls": False}))


@pytest.mark.skipif(bool(DATABASE_URL), reason="SQLite's write lock")
def test_a_message_answered_451_at_the_deadline_is_not_stored_when_the_lock_comes_free(
        app, gateway, ingress_server):
    app.config["SMTP_STORE_TIMEOUT"] = 0.5
    holder = sqlite3.connect(make_url(app.config["DATABASE_URL"]).database,
                             isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing, for as long as it likes
    client = ingress_server()
    try:
        with pytest.raises(smtplib.SMTPDataError) as late:
            client.sendmail("alice@acme.test", ["pat@partner.test"], raw("Stalled"))
        assert late.value.smtp_code == 451 and b"4.3.0" in late.value.smtp_error
    finally:
        holder.execute("ROLLBACK")  # the storing thread, waiting for the lock, goes on
        holder.close()
    # One thread stores, in order: once this is answered, "Stalled" has been dealt with.
    assert send(client, "After") == 250
    assert stored() == ["After"]


def test_a_transaction_holding_a_message_given_up_is_not_committed(app, gateway):
    store = GroupCommit(app)
    gone, kept = job("Given up"), job("Kept")
    assert store.give_up(gone)  # its session's deadline passed while it was being stored
    assert store._store([gone, kept]) is None
    assert stored() == []
    assert store._store([kept]) == [None]  # the others are stored again, alone
    assert stored() == ["Kept"]


def test_a_message_whose_commit_is_under_way_is_not_given_up(app, gateway):
    store = GroupCommit(app)
    claimed = job("Committing")
    assert store._claim_all([claimed])
    assert not store.give_up(claimed)  # its session waits for the commit's result
    late = job("Late")
    assert store.give_up(late)
    assert not store._claim_all([job("Fresh"), late])  # all or none


@pytest.mark.skipif(not DATABASE_URL, reason="PostgreSQL behind a relay that can be cut")
@pytest.mark.parametrize("outage", TcpRelay.OUTAGES)
def test_postgresql_cut_mid_traffic(app, gateway, tmp_path, outage):
    """Eight clients send while the network to PostgreSQL is cut for longer than the
    deadline: each message got 250 and is stored once, or got 451 and is not stored."""
    url = make_url(DATABASE_URL)
    with TcpRelay((url.host or "127.0.0.1", url.port or 5432)) as relay:
        relayed = url.set(host="127.0.0.1", port=relay.port)
        ccm = create_app({**app.config, "SMTP_STORE_TIMEOUT": 1, "DATABASE_CONNECT_TIMEOUT": 2,
                          "DATABASE_URL": relayed.render_as_string(hide_password=False)},
                         instance_path=str(tmp_path / "relayed"))
        controller = ingress.controller(ccm, f"127.0.0.1:{free_port()}")
        controller.start()
        replies: dict[str, int] = {}
        progress, stop = threading.Condition(), threading.Event()

        def wait_for(condition) -> None:
            with progress:
                assert progress.wait_for(condition, timeout=60)

        def client(number: int) -> None:
            sent = 0
            with smtplib.SMTP("127.0.0.1", controller.port, timeout=60) as session:
                while not stop.is_set():
                    subject = f"Client {number} message {sent}"
                    code = send(session, subject)
                    sent += 1
                    with progress:
                        replies[subject] = code
                        progress.notify_all()

        try:
            with ThreadPoolExecutor(8) as pool:
                running = [pool.submit(client, number) for number in range(8)]
                wait_for(lambda: len(replies) >= 24)  # mid-traffic
                relay.cut(outage)
                wait_for(lambda: 451 in replies.values())  # the deadline has passed
                relay.restore()
                after = len(replies)
                # storing resumes: forty more messages accepted
                wait_for(lambda: list(replies.values())[after:].count(250) >= 40)
                stop.set()
                for each in running:
                    each.result()
        finally:
            stop.set()
            controller.stop()
            with ccm.app_context():
                db.engine.dispose()
    accepted = sorted(subject for subject, code in replies.items() if code == 250)
    assert sorted(stored()) == accepted  # each once, and nothing that got 451
    assert set(replies.values()) <= {250, 451}
    assert 451 in replies.values()

