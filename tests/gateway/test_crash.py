"""A crash after 250 loses nothing: the ingress killed outright, the message still delivered."""

import os
import signal
import smtplib
import subprocess
import sys
import time
from pathlib import Path

from servers import SmtpSink, free_port
from support import mail

from app.delivery import runner
from app.domain import ingest
from app.extensions import db
from app.models import Message, OutboundItem

CCM = Path(sys.executable).with_name("ccm")


def test_killed_after_250_the_message_survives_and_is_delivered_once(app, make_tenant,
                                                                     tmp_path):
    make_tenant("acme", domains=["acme.test"])
    sink = SmtpSink().start()
    port = free_port()
    env = {**os.environ, "CCM_INSTANCE_PATH": str(tmp_path),
           "CCM_DATABASE_URL": app.config["DATABASE_URL"],
           "CCM_SMTP_LISTEN": f"127.0.0.1:{port}"}
    process = subprocess.Popen([str(CCM), "smtp"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while "listening" not in process.stdout.readline():
            assert time.monotonic() < deadline and process.poll() is None, "smtp did not start"
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            assert client.sendmail("alice@acme.test", ["pat@partner.test"],
                                   mail().encode()) == {}
            # 250 received: kill the ingress before it can do anything more.
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
    try:
        app.config["OUTBOUND"] = f"smtp://127.0.0.1:{sink.port}"
        db.session.expire_all()
        (message,) = db.session.query(Message).all()
        assert message.subject == "Quarterly figures"
        while runner.run_due():
            pass
        assert runner.run_due() == 0
        (delivery,) = sink.wait_for(1)
        assert delivery.rcpt_tos == ["pat@partner.test"]
        assert len(sink.messages) == 1  # run_due is done: nothing more is on its way
    finally:
        sink.stop()


def test_a_killed_workers_successor_delivers_the_rest_at_once(app, make_tenant, tmp_path):
    """Found by bench/crash.py: a worker leased 100 items at a time, so when it was killed
    the rest of them waited 10 minutes for its lease to run out. A thread leases a few
    (runner.ITEMS_PER_LEASE) when the others are busy: only those wait."""
    make_tenant("acme", domains=["acme.test"])
    sink = SmtpSink().start()
    sink.delay(0.3)
    app.config["OUTBOUND"] = f"smtp://127.0.0.1:{sink.port}"
    for n in range(40):
        ingest.receive(mail(subject=f"number {n}").replace("\n", "\r\n").encode(),
                       "alice@acme.test", [f"r{n}@partner.test"])
    db.session.commit()
    env = {**os.environ, "CCM_INSTANCE_PATH": str(tmp_path),
           "CCM_DATABASE_URL": app.config["DATABASE_URL"], "CCM_WORKER_INTERVAL": "1",
           "CCM_OUTBOUND": app.config["OUTBOUND"]}
    process = subprocess.Popen([str(CCM), "worker"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        sink.wait_for(1, timeout=60)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        db.session.expire_all()
        left = db.session.query(OutboundItem).filter_by(state="sending").all()
        # What the dead worker's threads had leased, a few items each, waits; no more.
        assert len(left) <= 4 * runner.ITEMS_PER_LEASE
        started = time.monotonic()
        while runner.run_due():
            pass
        received = {d.message["Subject"] for d in sink.messages}
        assert received | {item.recipient.message.subject for item in left} == {
            f"number {n}" for n in range(40)}
        assert time.monotonic() - started < 10
        done = db.session.query(OutboundItem).filter_by(kind="delivery", state="done")
        assert done.count() == 40 - len(left)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        sink.stop()
