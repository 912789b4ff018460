"""Delivery as mail servers do it: one transaction per message and destination with a RCPT
per recipient, each recipient's outcome its own, and one session carrying message after
message to the same server."""

import ipaddress
from collections import Counter
from datetime import timedelta

import pytest
from servers import serve_mail_for
from support import mail, run_queue_in_workers

from app.clock import utcnow
from app.delivery import leases, runner, sessions, transport
from app.extensions import db
from app.models import OutboundItem

FIVE = [f"r{n}@partner.test" for n in range(5)]


@pytest.fixture
def partner(gateway, network):
    return serve_mail_for(network, "partner.test", "127.0.1.1")


@pytest.fixture
def patient(monkeypatch):
    """Sessions wait for the next message however slowly the test machine runs."""
    monkeypatch.setattr(sessions, "IDLE_SECONDS", 600)


def states(message) -> dict[str, str]:
    db.session.expire_all()
    return {r.address: r.state for r in message.recipients}


def events(message, address) -> list[str]:
    (recipient,) = [r for r in message.recipients if r.address == address]
    return [e.text for e in recipient.events]


def make_due() -> None:
    for item in db.session.query(OutboundItem).filter_by(state="pending"):
        item.next_attempt_at = utcnow() - timedelta(seconds=1)
    db.session.commit()


def test_five_recipients_at_one_domain_go_in_one_session_and_one_transaction(gateway,
                                                                            partner):
    message = gateway.send(mail(to=", ".join(FIVE)), FIVE)
    gateway.run_queue()
    (delivery,) = partner.wait_for(1)
    assert delivery.rcpt_tos == FIVE
    assert (partner.sessions, partner.rcpt_commands) == (1, 5)
    assert set(states(message).values()) == {"delivered"}
    assert all(events(message, a)[-1].startswith("Email Delivered via MX") for a in FIVE)


def test_each_recipient_has_its_own_outcome(gateway, partner):
    partner.fail("RCPT", 550, "5.1.1 No such user")       # r0
    partner.fail("RCPT", 451, "4.2.1 Mailbox busy")       # r1
    message = gateway.send(mail(to=", ".join(FIVE)), FIVE)
    gateway.run_queue()
    (delivery,) = partner.wait_for(1)
    assert delivery.rcpt_tos == FIVE[2:]
    assert states(message) == {FIVE[0]: "bounced", FIVE[1]: "deferred",
                               **dict.fromkeys(FIVE[2:], "delivered")}
    assert any("550 5.1.1 No such user" in e for e in events(message, FIVE[0]))
    assert any("Deferred:" in e and "451 4.2.1" in e for e in events(message, FIVE[1]))
    assert len(db.session.query(OutboundItem).filter_by(kind="dsn").all()) == 1
    make_due()
    gateway.run_queue()
    assert partner.wait_for(2)[1].rcpt_tos == [FIVE[1]]
    assert states(message)[FIVE[1]] == "delivered"


def test_a_refused_data_defers_every_recipient_of_the_transaction(gateway, partner):
    partner.fail("DATA", 451, "4.3.0 Try later")
    message = gateway.send(mail(to=", ".join(FIVE[:3])), FIVE[:3])
    gateway.run_queue()
    assert set(states(message).values()) == {"deferred"}
    make_due()
    gateway.run_queue()
    assert partner.wait_for(1)[0].rcpt_tos == FIVE[:3]
    items = db.session.query(OutboundItem).filter_by(kind="delivery").all()
    assert {(i.state, i.attempts) for i in items} == {("done", 2)}


def test_messages_in_a_row_to_one_server_share_one_session(app, gateway, partner, patient):
    # The run's threads share the kept sessions; one delivery to the domain at a time.
    app.config.update(DELIVERY_THREADS=4, DESTINATION_CONCURRENCY=1)
    for n in range(3):
        gateway.send(mail(subject=f"number {n}"), ["pat@partner.test"])
    gateway.run_queue()
    assert [d.message["Subject"] for d in partner.wait_for(3)] == [f"number {n}"
                                                                   for n in range(3)]
    assert partner.sessions == 1


def test_a_session_carries_a_bounded_number_of_messages(app, gateway, partner, patient,
                                                        monkeypatch):
    monkeypatch.setattr(sessions, "MESSAGES_PER_SESSION", 2)
    app.config["DESTINATION_CONCURRENCY"] = 1  # one session at a time
    for n in range(5):
        gateway.send(mail(subject=f"number {n}"), ["pat@partner.test"])
    gateway.run_queue()
    by_session = Counter(delivery.peer for delivery in partner.wait_for(5))
    # 2 + 2 + 1, so at least three sessions, and one was used again. A session more
    # (seen once, with two test suites loading the machine: four, not reproduced since)
    # is not the fault this looks for; a third message in one session is.
    assert max(by_session.values()) == 2


def test_notifications_go_out_over_the_same_session(gateway, partner, patient):
    gateway.send(mail(), ["pat@partner.test"], mode="external")  # held in CCM
    gateway.run_queue()
    sent = partner.wait_for(2)
    assert {d.mail_from for d in sent} == {"<>"}
    assert {d.message["Auto-Submitted"] for d in sent} == {"auto-generated"}
    assert partner.sessions == 1
    kinds = {i.kind: i.state for i in db.session.query(OutboundItem)}
    assert kinds == {"notification": "done"}


def test_only_recipients_that_go_the_same_way_share_a_transaction(gateway, network,
                                                                  partner):
    bank = serve_mail_for(network, "bank.test", "127.0.1.2")
    gateway.policy(name="Ann TLS", kind="secure_delivery", to_pattern="ann@bank.test",
                   tls="encrypt", fallback="bounce")
    rcpts = ["ann@bank.test", "bob@bank.test", "cy@bank.test", "pat@partner.test"]
    message = gateway.send(mail(to=", ".join(rcpts)), rcpts)
    gateway.run_queue()
    assert [d.rcpt_tos for d in bank.wait_for(1)] == [["bob@bank.test", "cy@bank.test"]]
    assert [d.rcpt_tos for d in partner.wait_for(1)] == [["pat@partner.test"]]
    assert states(message)["ann@bank.test"] == "bounced"  # no STARTTLS at bank.test


def test_an_item_taken_over_is_left_out_of_its_message_s_transaction(gateway, partner):
    gateway.send(mail(to=", ".join(FIVE[:3])), FIVE[:3])
    lease = leases.take(set())
    assert len(lease.item_ids) == 3
    taken_over = db.session.get(OutboundItem, lease.item_ids[1])
    taken_over.lease_token = "another worker"
    db.session.commit()
    runner._attempt(lease.item_id, lease.token, *lease.item_ids[1:])
    assert partner.wait_for(1)[0].rcpt_tos == [FIVE[0], FIVE[2]]
    db.session.refresh(taken_over)
    assert (taken_over.state, taken_over.attempts) == ("sending", 0)


def test_a_kept_session_the_server_closed_is_replaced_without_a_try(gateway, partner,
                                                                    patient):
    options = transport.Options(dns_servers=gateway.network.dns.address,
                                delivery_port=gateway.network.port, timeout=5,
                                allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),))
    kept, tries, delivered = transport.Sessions(), [], []

    def send(subject: str) -> dict:
        return transport.send("mx", mail(subject=subject).encode(), "alice@acme.test",
                              ["pat@partner.test"], options=options, sessions=kept,
                              accepted=lambda positions, event: delivered.append(subject),
                              before_next=lambda: tries.append(1) or [0])

    try:
        assert send("first") == {}
        partner.close_sessions()  # as a server's idle time-out does
        assert send("second") == {}
    finally:
        kept.close()
    assert delivered == ["first", "second"] and tries == []
    assert partner.sessions == 2 and len(partner.wait_for(2)) == 2


def test_two_workers_on_postgresql_take_disjoint_groups(app, gateway, partner):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("several workers are supported on PostgreSQL only (one on SQLite)")
    for n in range(10):
        gateway.send(mail(subject=f"number {n}"), [f"r{n}.{k}@partner.test" for k in range(5)])

    run_queue_in_workers(app, workers=2, limit=3)
    rcpts = sorted(r for d in partner.wait_for(10) for r in d.rcpt_tos)
    assert rcpts == sorted(f"r{n}.{k}@partner.test" for n in range(10) for k in range(5))
    # Each transaction carries one message's recipients. (Two workers taking at the same
    # moment may split a message in two: each takes what the other has not locked.)
    assert all(len({r.partition(".")[0] for r in d.rcpt_tos}) == 1 for d in partner.messages)
