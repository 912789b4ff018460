"""An unexpected error while delivering (a bug, not the remote's answer) sets the item
aside for the operator: not retried, no bounce to the sender, the error on the item and
in the history, logged with its traceback; the operator's retry puts it back."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.exc import OperationalError
from support import mail

from app.delivery import mail_templates, transport
from app.domain import outbound_queue
from app.extensions import db
from app.models import OutboundItem


def items(kind: str) -> list[OutboundItem]:
    db.session.expire_all()
    return db.session.query(OutboundItem).filter_by(kind=kind).order_by(OutboundItem.id).all()


def history(recipient) -> list[str]:
    db.session.refresh(recipient)
    return [e.text for e in recipient.events]


def breaks_once(monkeypatch, module, name: str, error: Exception) -> None:
    """``module.name`` raises ``error`` at its first call, then works as it did."""
    real = getattr(module, name)
    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, broken)


def errors_logged(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_delivery_that_hits_a_bug_is_set_aside_and_retried_by_the_operator(
        gateway, network, monkeypatch, caplog):
    sink = network.mx("partner.test")
    breaks_once(monkeypatch, transport, "send", TypeError("a bug while sending"))
    message = gateway.send(mail(), ["pat@partner.test"])
    with caplog.at_level(logging.ERROR):
        for _ in range(3):  # however often the worker runs, it is not tried again
            gateway.run_queue()

    (item,) = items("delivery")
    assert (item.state, item.attempts) == ("shunted", 1)
    assert item.last_error == "Unexpected error (TypeError: a bug while sending)"
    recipient = message.recipients[0]
    assert history(recipient)[-1] == (
        "Held for the operator: Unexpected error (TypeError: a bug while sending); "
        "not tried again until an operator retries it")
    assert recipient.state != "bounced"
    assert items("dsn") == [] and gateway.relay.messages == []  # the sender is not bounced
    (logged,) = errors_logged(caplog)
    assert logged.exc_info[0] is TypeError and "set aside" in logged.getMessage()
    assert sink.messages == []

    assert len(outbound_queue.retry(by="ops")) == 1
    db.session.commit()
    gateway.run_queue()
    assert len(sink.wait_for(1)) == 1
    (item,) = items("delivery")
    assert (item.state, item.attempts) == ("done", 2)
    db.session.refresh(recipient)
    assert recipient.state == "delivered"


def test_a_notification_that_cannot_be_built_keeps_what_it_would_send(
        gateway, network, monkeypatch, caplog):
    sink = network.mx("partner.test")
    breaks_once(monkeypatch, mail_templates, "build", KeyError("tenant_name"))
    gateway.send(mail(), ["pat@partner.test"], mode="external")  # by CCM: notified
    with caplog.at_level(logging.ERROR):
        gateway.run_queue()

    shunted = [i for i in items("notification") if i.state == "shunted"]
    assert len(shunted) == 1 and shunted[0].attempts == 1
    assert shunted[0].last_error == "Unexpected error (KeyError: 'tenant_name')"
    assert shunted[0].notice is not None  # kept for the retry
    assert len(errors_logged(caplog)) == 1
    delivered = len(sink.messages)

    assert len(outbound_queue.retry([shunted[0].id], by="ops")) == 1
    db.session.commit()
    gateway.run_queue()
    assert len(sink.wait_for(delivered + 1)) == delivered + 1
    assert {i.state for i in items("notification")} == {"done"}


def test_a_retry_takes_only_the_items_named(gateway, network, monkeypatch):
    network.mx("partner.test")
    monkeypatch.setattr(transport, "send", lambda *a, **k: 1 / 0)
    for n in range(3):
        gateway.send(mail(subject=f"n{n}"), ["pat@partner.test"])
        gateway.run_queue()
    first = items("delivery")[0]
    assert {i.state for i in items("delivery")} == {"shunted"}
    assert outbound_queue.retry([first.id, 10_000], by="ops") == [first]
    db.session.commit()
    assert [i.state for i in items("delivery")] == ["pending", "shunted", "shunted"]
    assert len(outbound_queue.retry(by="ops")) == 3  # all: the pending one is due now too


@pytest.mark.parametrize("stage", ["MAIL", "RCPT", "DATA"])
def test_a_remotes_refusal_is_not_an_unexpected_error(gateway, network, stage):
    sink = network.mx("partner.test")
    sink.fail(stage, 451, "4.3.0 try later")
    gateway.send(mail(), ["pat@partner.test"])
    gateway.run_queue()
    (item,) = items("delivery")
    assert (item.state, item.attempts) == ("pending", 1)


def test_the_database_failing_is_a_try_like_a_busy_server(gateway, network, monkeypatch):
    network.mx("partner.test")
    breaks_once(monkeypatch, transport, "send",
                OperationalError("UPDATE outbound_item", {}, Exception("database is locked")))
    gateway.send(mail(), ["pat@partner.test"])
    gateway.run_queue()
    (item,) = items("delivery")
    assert (item.state, item.attempts) == ("pending", 1)
    assert item.last_error == "4.3.0 Database error (OperationalError)"


def test_ccm_queue_retry_puts_items_back(gateway, network, monkeypatch, runner):
    network.mx("partner.test")
    monkeypatch.setattr(transport, "send", lambda *a, **k: 1 / 0)
    for n in range(2):
        gateway.send(mail(subject=f"n{n}"), ["pat@partner.test"])
        gateway.run_queue()
    first, _ = items("delivery")
    assert runner.invoke(args=["queue", "retry"]).exit_code == 2  # neither ids nor --all
    result = runner.invoke(args=["queue", "retry", str(first.id)])
    assert (result.exit_code, result.output) == (0, f"retry: 1 item(s) ({first.id})\n")
    assert [i.state for i in items("delivery")] == ["pending", "shunted"]
    assert runner.invoke(args=["queue", "retry", "--all"]).output.startswith(
        "retry: 2 item(s)")
