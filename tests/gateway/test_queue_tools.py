"""`ccm queue`: the operator's list, show, retry, hold, release and delete, as Postfix's
postqueue and postsuper, each change in the audit log."""

from __future__ import annotations

import pytest
from support import mail

from app.domain import outbound_queue
from app.extensions import db
from app.models import AuditEvent, OutboundItem, QueueState


@pytest.fixture
def deferred(gateway, network):
    """Two deliveries the partner's server put off (451): waiting for their next try."""
    sink = network.mx("partner.test")
    sink.fail("RCPT", 451, "4.2.0 try later", times=2)
    for subject in ("first", "second"):
        gateway.send(mail(subject=subject), ["pat@partner.test"])
    gateway.run_queue()
    items = deliveries()
    assert [i.state for i in items] == ["pending", "pending"]
    return items, sink


def deliveries() -> list[OutboundItem]:
    db.session.expire_all()
    return db.session.query(OutboundItem).filter_by(kind="delivery") \
        .order_by(OutboundItem.id).all()


def ccm(runner, *args: str):
    result = runner.invoke(args=["queue", *args])
    db.session.expire_all()
    return result


def test_list_shows_what_waits_and_why(runner, deferred):
    first, _second = deferred[0]
    listed = ccm(runner, "list")
    assert listed.exit_code == 0
    lines = listed.output.splitlines()
    assert lines[-1] == "-- 2 item(s)"
    assert str(first.id) in lines[0] and "pending" in lines[0] and "<pat@partner.test>" in lines[0]
    assert "4.2.0 try later" in lines[1]
    assert ccm(runner, "list", "--state", "shunted").output == "-- 0 item(s)\n"
    assert ccm(runner, "list", "--tenant", "acme").output.endswith("-- 2 item(s)\n")
    assert ccm(runner, "list", "--tenant", "nobody").exit_code == 1
    assert ccm(runner, "list", "--state", "sideways").exit_code == 2


def test_show_gives_the_item_and_its_history(runner, deferred):
    first, _ = deferred[0]
    shown = ccm(runner, "show", str(first.id))
    assert shown.exit_code == 0
    assert "state:           pending" in shown.output
    assert "Deferred:" in shown.output and "received" in shown.output
    missing = ccm(runner, "show", "999999")
    assert missing.exit_code == 1 and "no queue item 999999" in missing.output


def test_retry_makes_them_due_now_and_they_go(runner, gateway, deferred):
    (first, _second), sink = deferred
    assert ccm(runner, "retry", str(first.id)).output == f"retry: 1 item(s) ({first.id})\n"
    gateway.run_queue()
    assert [i.state for i in deliveries()] == ["done", "pending"]
    assert ccm(runner, "retry", "--all").exit_code == 0
    gateway.run_queue()
    assert [i.state for i in deliveries()] == ["done", "done"]
    assert len(sink.wait_for(2)) == 2


def test_a_held_item_is_not_sent_until_released(runner, gateway, deferred):
    (first, _second), _sink = deferred
    assert ccm(runner, "hold", str(first.id)).exit_code == 0
    ccm(runner, "retry", "--all")  # does not take what is on hold
    gateway.run_queue()
    assert [i.state for i in deliveries()] == [QueueState.ON_HOLD, "done"]
    assert ccm(runner, "release", str(first.id)).output == f"release: 1 item(s) ({first.id})\n"
    gateway.run_queue()
    assert [i.state for i in deliveries()] == ["done", "done"]


@pytest.mark.parametrize("bounce", [False, True])
def test_delete_ends_an_item_and_bounces_only_when_asked(runner, gateway, deferred, bounce):
    (first, _second), _ = deferred
    args = ["delete", str(first.id)] + (["--bounce"] if bounce else [])
    assert ccm(runner, *args).exit_code == 0
    first = deliveries()[0]
    assert first.state == "failed" and "Deleted from the queue by operator" in first.last_error
    assert first.recipient.state == "bounced"
    reports = db.session.query(OutboundItem).filter_by(kind="dsn").count()
    assert reports == (1 if bounce else 0)
    audit = db.session.query(AuditEvent).filter_by(action="queue delete").one()
    assert audit.actor.startswith("operator ") and f"item {first.id}" in audit.detail
    assert audit.tenant_id == gateway.tenant.id


def test_what_a_worker_is_sending_or_has_finished_is_left_alone(runner, gateway, deferred):
    (first, second), _ = deferred
    db.session.get(OutboundItem, first.id).state = QueueState.SENDING
    db.session.commit()
    for command in ("retry", "hold", "release", "delete"):
        assert ccm(runner, command, str(first.id)).output == f"{command}: 0 item(s)\n"
    assert deliveries()[0].state == QueueState.SENDING
    assert outbound_queue.delete([second.id], by="test") != []
    assert outbound_queue.retry([second.id], by="test") == []  # deleted: finished


@pytest.mark.parametrize("args", [[], ["1", "--all"]])
def test_a_command_names_its_items_or_says_all(runner, args):
    for command in ("retry", "hold", "release", "delete"):
        result = ccm(runner, command, *args)
        assert result.exit_code == 2 and "name the items, or give --all" in result.output
