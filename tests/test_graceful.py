"""Graceful stops: each process, sent SIGTERM in the middle of its work, finishes or hands
back what is in flight and exits 0 within its grace period (CCM_SHUTDOWN_GRACE).

Real processes (``ccm worker``, ``ccm smtp``, ``ccm web``) on the test's SQLite database,
a real SMTP sink, real sockets. The bounds on waiting are generous: they only keep a
broken stop from hanging the run.
"""

from __future__ import annotations

import http.client
import re
import signal
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from servers import LOOPBACK, Ccm, SmtpSink, free_port, wait_for_port
from support import mail

from app.extensions import db
from app.models import Message, OutboundItem

#: seconds a stop may take beyond its grace period (starting Python, closing up)
SLACK = 20


def queue_one_message(make_tenant) -> int:
    from app.domain import ingest

    make_tenant("acme", domains=["acme.test"])
    message = ingest.receive(mail().replace("\n", "\r\n").encode(), "alice@acme.test",
                             ["pat@partner.test"])
    db.session.commit()
    return db.session.query(OutboundItem).filter_by(
        recipient_id=message.recipients[0].id).one().id


def item(item_id: int) -> OutboundItem:
    db.session.expire_all()
    return db.session.get(OutboundItem, item_id)


# -- ccm worker


@pytest.mark.parametrize("server_takes, grace, outcome", [
    (3600, 1, "pending"),  # still in DATA when the grace is over: handed back
    (1, 60, "done"),       # answered within the grace: delivered and recorded
])
def test_a_worker_stopped_mid_delivery_leaves_nothing_sending(app, make_tenant, server_takes,
                                                               grace, outcome):
    item_id = queue_one_message(make_tenant)
    with SmtpSink() as sink:
        sink.delay(server_takes)
        settings = {"CCM_OUTBOUND": f"smtp://{LOOPBACK}:{sink.port}",
                    "CCM_SHUTDOWN_GRACE": str(grace)}
        with Ccm(app, "worker", **settings) as worker:
            sink.wait_for_command("DATA")  # the message is on the wire
            assert item(item_id).state == "sending"
            assert worker.stop(grace + SLACK) == 0, worker.output()
        assert "Traceback" not in worker.output()
        assert item(item_id).state == outcome
        assert item(item_id).lease_token is None
        if outcome == "pending":
            assert "handed back to the queue" in worker.output()
            # Due at once: the next worker sends it without waiting out any lease.
            sink.delay(0)
            with Ccm(app, "worker", **settings) as successor:
                assert len(sink.wait_for(1)) == 1
                assert successor.stop(grace + SLACK) == 0, successor.output()
            assert item(item_id).state == "done"
        assert len(sink.messages) == 1


# -- ccm smtp


def test_smtp_stopping_lets_data_finish_and_sends_everyone_else_421(app, make_tenant):
    make_tenant("acme", domains=["acme.test"])
    port = free_port()
    with Ccm(app, "smtp", port=port, CCM_SMTP_LISTEN=f"{LOOPBACK}:{port}",
             CCM_SHUTDOWN_GRACE="60") as ingress:
        idle = smtplib.SMTP(LOOPBACK, port, timeout=30)
        idle.ehlo("idle.test")
        between = smtplib.SMTP(LOOPBACK, port, timeout=30)
        between.ehlo("between.test")
        assert between.mail("alice@acme.test")[0] == 250
        sending = smtplib.SMTP(LOOPBACK, port, timeout=30)
        sending.ehlo("sending.test")
        sending.mail("alice@acme.test")
        sending.rcpt("pat@partner.test")
        assert sending.docmd("DATA")[0] == 354
        head, tail = mail(subject="In flight").replace("\n", "\r\n").split("\r\n\r\n", 1)
        sending.send(head.encode() + b"\r\n\r\n")

        ingress.process.send_signal(signal.SIGTERM)
        for client in (idle, between):
            code, text = client.getreply()
            assert (code, text.split()[0]) == (421, b"4.3.2"), text
            assert b"shutting down" in text
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((LOOPBACK, port), timeout=5)

        sending.send(tail.encode() + b".\r\n")
        assert sending.getreply()[0] == 250
        assert sending.getreply()[0] == 421  # then it too is closed
        assert ingress.process.wait(timeout=60 + SLACK) == 0, ingress.output()
        for client in (idle, between, sending):
            client.close()
    assert "Traceback" not in ingress.output()
    db.session.expire_all()
    assert [m.subject for m in db.session.query(Message)] == ["In flight"]


# -- ccm web


def test_the_portal_answers_a_request_in_flight_and_then_exits(app):
    port = free_port()
    with Ccm(app, "web", port=port, CCM_HTTP_LISTEN=f"{LOOPBACK}:{port}",
             CCM_SHUTDOWN_GRACE="60") as web:
        kept_alive = http.client.HTTPConnection(LOOPBACK, port, timeout=30)
        kept_alive.request("GET", "/healthz")
        assert kept_alive.getresponse().read() == b"ok\n"  # and the connection stays open
        slow = socket.create_connection((LOOPBACK, port), timeout=30)
        slow.sendall(f"GET /healthz HTTP/1.1\r\nHost: {LOOPBACK}\r\n".encode())

        web.process.send_signal(signal.SIGTERM)
        assert kept_alive.sock.recv(65536) == b""  # an idle connection is closed at once
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((LOOPBACK, port), timeout=5)
        slow.sendall(b"\r\n")  # the rest of the request that was arriving
        answer = _read_until_closed(slow)
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok\n"), answer
        assert web.process.wait(timeout=60 + SLACK) == 0, web.output()
        kept_alive.close()
        slow.close()
    assert "Traceback" not in web.output()


def _read_until_closed(connection: socket.socket) -> bytes:
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


# -- ccm serve: the three in one process


def test_serve_stops_all_three_at_once(app, make_tenant):
    item_id = queue_one_message(make_tenant)
    http, smtp = free_port(), free_port()
    with SmtpSink() as sink:
        sink.delay(3600)
        with Ccm(app, "serve", port=http, CCM_HTTP_LISTEN=f"{LOOPBACK}:{http}",
                 CCM_SMTP_LISTEN=f"{LOOPBACK}:{smtp}", CCM_SHUTDOWN_GRACE="1",
                 CCM_OUTBOUND=f"smtp://{LOOPBACK}:{sink.port}") as serve:
            wait_for_port(smtp, serve.process, serve.log)
            client = smtplib.SMTP(LOOPBACK, smtp, timeout=30)
            client.ehlo("idle.test")
            sink.wait_for_command("DATA")
            assert serve.stop(1 + SLACK) == 0, serve.output()
            assert client.getreply()[0] == 421
            client.close()
        assert "Traceback" not in serve.output()
        assert item(item_id).state == "pending"


def test_service_managers_wait_longer_than_the_grace_period():
    """systemd and compose send SIGKILL after their stop timeout: it must leave the
    default grace period and the hand-back time to finish."""
    from app.config import ENVIRONMENT

    grace = next(int(default) for name, _, default, _ in ENVIRONMENT
                 if name == "SHUTDOWN_GRACE")
    deploy = Path(__file__).resolve().parents[1] / "deploy"
    for unit in (deploy / "systemd").glob("*.service"):
        timeout = re.search(r"^TimeoutStopSec=(\d+)$", unit.read_text(), re.M)
        assert timeout and int(timeout[1]) >= grace + 10, unit.name
    compose = re.search(r"stop_grace_period: (\d+)s", (deploy / "compose.yaml").read_text())
    assert compose and int(compose[1]) >= grace + 10


STORM = """
import sys, time
from app import cli
stop = cli._stop_signal(repeat_ends=False)
print("waiting", flush=True)
until = time.monotonic() + 2
while time.monotonic() < until:  # waits in short slices, as ccm smtp's main loop does
    stop.wait(0.0001)
print("stopped" if stop.is_set() else "not stopped", flush=True)
"""


def test_a_storm_of_stop_signals_never_wedges_the_wait_for_them():
    """Signals can land at any step of the main thread, a lock held among them: the
    handler must take none (``threading.Event.set`` there waited forever for the lock
    its own thread held in ``Event.wait``: a ccm smtp sibling never stopped)."""
    process = subprocess.Popen([sys.executable, "-c", STORM], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               cwd=Path(__file__).parent.parent)
    try:
        assert process.stdout.readline().strip() == "waiting"
        until = time.monotonic() + 1.5
        while time.monotonic() < until and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            time.sleep(0.0003)
        output, errors = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, errors[-2000:]
    assert output.strip() == "stopped"
