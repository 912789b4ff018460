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

from app import outbound
from app.extensions import db
from app.models import Message

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
        while outbound.run_due():
            pass
        assert outbound.run_due() == 0
        (delivery,) = sink.wait_for(1)
        assert delivery.rcpt_tos == ["pat@partner.test"]
        time.sleep(0.2)
        assert len(sink.messages) == 1
    finally:
        sink.stop()
