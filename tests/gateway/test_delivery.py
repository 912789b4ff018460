"""Delivery out: TLS levels and fallbacks, MX look-up rules, retries and bounces."""

import threading
from datetime import timedelta

import pytest
from sqlalchemy import text
from support import in_app_context, mail

from app.clock import utcnow
from app.delivery import leases, runner
from app.delivery.leases import LEASE
from app.extensions import db
from app.models import DELIVERED_VIA_MX, OutboundItem


def events(recipient) -> list[str]:
    db.session.refresh(recipient)
    return [e.text for e in recipient.events]


def items(kind=None) -> list[OutboundItem]:
    query = db.session.query(OutboundItem).order_by(OutboundItem.id)
    return [i for i in query if kind is None or i.kind == kind]


# --- TLS ------------------------------------------------------------------------------


def test_starttls_is_used_whenever_offered(gateway):
    sink = gateway.network.mx("partner.test", tls="self-signed")
    message = gateway.send(mail(), ["pat@partner.test"])
    gateway.run_queue()
    (delivery,) = sink.wait_for(1)
    assert delivery.tls_version == "TLSv1.3"
    assert "encrypted with TLSv1.3)" in events(message.recipients[0])[-1]


def test_plain_delivery_when_tls_is_not_offered_and_not_required(gateway):
    sink = gateway.network.mx("partner.test")
    gateway.send(mail(), ["pat@partner.test"])
    gateway.run_queue()
    assert sink.wait_for(1)[0].tls_version is None


def secure(gateway, tls, fallback):
    gateway.policy(name="Bank TLS", kind="secure_delivery", to_pattern="*@bank.test", tls=tls,
                   fallback=fallback)


def test_encrypt_is_met_by_any_certificate(gateway):
    sink = gateway.network.mx("bank.test", tls="self-signed")
    secure(gateway, "encrypt", "ccm")
    message = gateway.send(mail(to="ann@bank.test"), ["ann@bank.test"])
    gateway.run_queue()
    assert sink.wait_for(1)[0].tls_version
    assert message.recipients[0].state == "delivered"


def test_encrypt_against_a_server_without_starttls_falls_back_to_ccm(app, gateway):
    sink = gateway.network.mx("bank.test")
    secure(gateway, "encrypt", "ccm")
    message = gateway.send(mail(to="ann@bank.test"), ["ann@bank.test"])
    gateway.run_queue()
    assert all(d.message["Subject"] != "Quarterly figures" for d in sink.messages)
    recipient = message.recipients[0]
    db.session.refresh(recipient)
    assert (recipient.route, recipient.state) == ("ccm", "held")
    texts = events(recipient)
    assert any("does not offer STARTTLS" in t and "fell back to CCM" in t for t in texts)
    assert "Delivered to CCM isolation area" in texts
    # the history tells the fallback once, and never as a delivery
    fallback = [e for e in recipient.events if "fell back to CCM" in e.text]
    assert [e.kind for e in fallback] == ["tls_fallback"]
    # The recipient was told, by notification, through the same loopback MX.
    notifications = [d.message["Subject"] for d in sink.wait_for(2)]
    assert "Secure message from Acme Corp: sign in to read it" in notifications


def _refusing_starttls(address: str, port: int, reply: bytes):
    """A server that offers STARTTLS and answers ``reply`` to it, then to nothing else."""
    import socket

    listener = socket.create_server((address, port))

    def serve() -> None:
        with listener:
            connection, _ = listener.accept()
            with connection, connection.makefile("rb") as lines:
                connection.sendall(b"220 refuser.test ESMTP\r\n")
                for line in lines:
                    command = line[:8].upper()
                    if command.startswith(b"EHLO"):
                        connection.sendall(b"250-refuser.test\r\n250 STARTTLS\r\n")
                    elif command.startswith(b"STARTTLS"):
                        connection.sendall(reply + b"\r\n")
                    elif command.startswith(b"QUIT"):
                        connection.sendall(b"221 Bye\r\n")
                        return
                    else:
                        connection.sendall(b"503 5.5.1 Not now\r\n")

    threading.Thread(target=serve, daemon=True).start()


@pytest.mark.parametrize("reply", [b"454 4.7.0 TLS not available", b"554 5.7.0 No TLS for you"])
def test_a_refused_starttls_falls_back_to_ccm_when_tls_is_required(app, gateway, network,
                                                                   reply):
    network.dns.add_mx("bank.test", 10, "mx.bank.test")
    network.dns.add_a("mx.bank.test", "127.0.0.77")
    _refusing_starttls("127.0.0.77", network.port, reply)
    secure(gateway, "encrypt", "ccm")
    message = gateway.send(mail(to="ann@bank.test"), ["ann@bank.test"])
    gateway.run_queue()
    recipient = message.recipients[0]
    db.session.refresh(recipient)
    assert (recipient.route, recipient.state) == ("ccm", "held")
    assert any("refused STARTTLS" in t and "fell back to CCM" in t for t in events(recipient))


def test_verify_refuses_a_self_signed_certificate_and_falls_back(gateway):
    sink = gateway.network.mx("bank.test", tls="self-signed")
    secure(gateway, "verify", "ccm")
    message = gateway.send(mail(to="ann@bank.test"), ["ann@bank.test"])
    gateway.run_queue()
    recipient = message.recipients[0]
    db.session.refresh(recipient)
    assert recipient.route == "ccm"
    assert any("CERTIFICATE_VERIFY_FAILED" in t for t in events(recipient))
    assert all(d.message["Subject"] != "Quarterly figures" for d in sink.messages)


def test_verify_with_a_valid_certificate_for_the_mx_name_delivers(gateway):
    sink = gateway.network.mx("bank.test", tls="valid")
    secure(gateway, "verify", "bounce")
    message = gateway.send(mail(to="ann@bank.test"), ["ann@bank.test"])
    gateway.run_queue()
    assert sink.wait_for(1)[0].tls_version == "TLSv1.3"
    assert message.recipients[0].state == "delivered"


def test_verify_with_bounce_fallback_bounces_to_the_sender(gateway):
    gateway.network.mx("bank.test", tls="self-signed")
    secure(gateway, "verify", "bounce")
    message = gateway.send(mail(to="ann@bank.test"), ["ann@bank.test"])
    gateway.run_queue()
    recipient = message.recipients[0]
    db.session.refresh(recipient)
    assert recipient.state == "bounced"
    assert any(t.startswith("Bounced: 5.7.10") for t in events(recipient))
    (report,) = gateway.relay.wait_for(1)
    assert report.rcpt_tos == ["alice@acme.test"]
    assert report.mail_from == "<>"
    assert report.message.get_content_type() == "multipart/report"


def test_tls_requirement_tries_every_mx_before_giving_up(gateway):
    gateway.network.mx("bank.test", preference=10)  # no STARTTLS
    good = gateway.network.mx("bank.test", tls="valid", preference=20)
    secure(gateway, "verify", "bounce")
    gateway.send(mail(to="ann@bank.test"), ["ann@bank.test"])
    gateway.run_queue()
    assert len(good.wait_for(1)) == 1


# --- MX look-up -----------------------------------------------------------------------


def test_mx_preference_is_followed_and_a_dead_host_skipped(gateway, network):
    network.dns.add_mx("partner.test", 5, "dead.partner.test")
    network.dns.add_a("dead.partner.test", "127.0.0.250")  # nothing listens there
    second = network.mx("partner.test", preference=20)
    first = network.mx("partner.test", preference=10)
    gateway.send(mail(), ["pat@partner.test"])
    gateway.run_queue()
    assert len(first.wait_for(1)) == 1
    assert second.messages == []


def test_a_domain_without_mx_is_delivered_to_its_address_record(gateway, network):
    from servers import SmtpSink

    sink = SmtpSink(host="127.0.0.9", port=network.port).start()
    try:
        network.dns.add_a("noMX.test", "127.0.0.9")
        gateway.send(mail(to="x@nomx.test"), ["x@nomx.test"])
        gateway.run_queue()
        assert len(sink.wait_for(1)) == 1
    finally:
        sink.stop()


@pytest.mark.parametrize(
    ("prepare", "status"),
    [
        (lambda dns: None, "5.1.2"),  # the domain does not exist
        (lambda dns: dns.add_mx("null.test", 0, "."), "5.1.10"),  # RFC 7505 null MX
    ],
)
def test_undeliverable_domains_bounce_at_once(gateway, network, prepare, status):
    prepare(network.dns)
    message = gateway.send(mail(to="x@null.test"), ["x@null.test"])
    gateway.run_queue()
    recipient = message.recipients[0]
    db.session.refresh(recipient)
    assert recipient.state == "bounced"
    assert any(status in t for t in events(recipient))
    (report,) = gateway.relay.wait_for(1)
    assert f"Status: {status}" in report.data.decode()


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.5", "169.254.1.1", "::1",
                                     "::ffff:127.0.0.1", "2002:7f00:1::", "64:ff9b::a00:5",
                                     "224.0.0.1"])
def test_an_mx_at_a_loopback_or_private_address_is_refused(app, gateway, network, address):
    """Outside DNS must not point the gateway at itself (a loop) or inside the network."""
    app.config["MX_ALLOWED_NETWORKS"] = ""
    network.dns.add_mx("evil.test", 10, "mx.evil.test")
    (network.dns.add_aaaa if ":" in address else network.dns.add_a)("mx.evil.test", address)
    message = gateway.send(mail(to="x@evil.test"), ["x@evil.test"])
    gateway.run_queue()
    recipient = message.recipients[0]
    db.session.refresh(recipient)
    assert recipient.state == "bounced"
    assert any("5.4.4 The mail servers of evil.test have no public address" in t
               for t in events(recipient))


def test_a_private_network_can_be_allowed_for_mx_hosts(app, gateway, network):
    app.config["MX_ALLOWED_NETWORKS"] = "127.0.0.0/8"
    sink = network.mx("partner.test")
    gateway.send(mail(), ["pat@partner.test"])
    gateway.run_queue()
    assert len(sink.wait_for(1)) == 1


def test_a_domain_name_dns_cannot_carry_bounces_at_once(gateway):
    rcpt = "x@" + "a" * 64 + ".test"  # a label over 63 characters
    message = gateway.send(mail(to=rcpt), [rcpt])
    gateway.run_queue()
    recipient = message.recipients[0]
    db.session.refresh(recipient)
    assert recipient.state == "bounced"
    assert any("5.1.2" in t and "not a valid domain name" in t for t in events(recipient))


def test_an_address_that_is_not_ascii_goes_with_smtputf8(gateway, network):
    sink = network.mx("partner.test")  # aiosmtpd offers SMTPUTF8
    gateway.send(mail(to="p\u00e4t@partner.test"), ["p\u00e4t@partner.test"])
    gateway.run_queue()
    (delivery,) = sink.wait_for(1)
    assert delivery.rcpt_tos == ["p\u00e4t@partner.test"]


# --- retries and bounces ------------------------------------------------------------------


def test_a_temporary_failure_is_retried_with_growing_back_off(gateway):
    sink = gateway.network.mx("partner.test")
    sink.fail("RCPT", 451, "4.3.0 greylisted, try later", times=2)
    message = gateway.send(mail(), ["pat@partner.test"])
    gateway.run_queue()
    (item,) = items("delivery")
    first_wait = item.next_attempt_at - utcnow()
    assert timedelta(minutes=4) < first_wait <= timedelta(minutes=5)
    assert message.recipients[0].state == "deferred"
    assert any("Deferred:" in t and "greylisted" in t for t in events(message.recipients[0]))
    gateway.make_due()
    gateway.run_queue()
    db.session.refresh(item)
    assert timedelta(minutes=9) < item.next_attempt_at - utcnow() <= timedelta(minutes=10)
    gateway.make_due()
    gateway.run_queue()
    assert len(sink.wait_for(1)) == 1
    db.session.refresh(item)
    assert (item.state, item.attempts) == ("done", 3)
    assert gateway.relay.messages == []  # no bounce


def test_back_off_is_capped(app, gateway):
    sink = gateway.network.mx("partner.test")
    sink.fail("MAIL", 421, "4.3.2 busy", times=20)
    gateway.send(mail(), ["pat@partner.test"])
    for _ in range(9):
        gateway.make_due()
        gateway.run_queue()
    (item,) = items("delivery")
    assert item.next_attempt_at - utcnow() <= timedelta(seconds=app.config["RETRY_MAX_SECONDS"])


def test_a_message_deferred_too_long_bounces(gateway):
    sink = gateway.network.mx("partner.test")
    sink.fail("RCPT", 451, "4.3.0 try later", times=5)
    message = gateway.send(mail(), ["pat@partner.test"])
    gateway.run_queue()
    (item,) = items("delivery")
    item.created_at = utcnow() - timedelta(days=5, seconds=1)
    db.session.commit()
    gateway.make_due()
    gateway.run_queue()
    recipient = message.recipients[0]
    db.session.refresh(recipient)
    assert recipient.state == "bounced"
    assert any("4.4.7 Gave up after 2 tries" in t for t in events(recipient))
    assert len(gateway.relay.wait_for(1)) == 1


def test_a_permanent_failure_bounces_at_once_with_a_dsn(gateway):
    sink = gateway.network.mx("partner.test")
    sink.fail("RCPT", 550, "5.1.1 no such user")
    message = gateway.send(mail(), ["pat@partner.test"])
    gateway.run_queue()
    (report,) = gateway.relay.wait_for(1)
    assert report.mail_from == "<>"  # DSNs come from the null sender
    assert report.rcpt_tos == ["alice@acme.test"]
    dsn = report.message
    assert dsn["Auto-Submitted"] == "auto-replied"
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    parts = [p.get_content_type() for p in dsn.iter_parts()]
    assert parts == ["text/plain", "message/delivery-status", "text/rfc822-headers"]
    text = report.data.decode()
    assert "Final-Recipient: rfc822; pat@partner.test" in text
    assert "Action: failed" in text and "Status: 5.1.1" in text
    assert "Subject: Quarterly figures" in text
    recipient = message.recipients[0]
    db.session.refresh(recipient)
    assert recipient.state == "bounced"


def test_a_dropped_connection_during_data_is_retried(gateway):
    sink = gateway.network.mx("partner.test")
    sink.drop_during_data()
    gateway.send(mail(), ["pat@partner.test"])
    gateway.run_queue()
    assert sink.messages == []
    gateway.make_due()
    gateway.run_queue()
    assert len(sink.wait_for(1)) == 1


def test_an_item_left_by_a_dead_worker_is_taken_again_after_its_lease(gateway):
    sink = gateway.network.mx("partner.test")
    gateway.send(mail(), ["pat@partner.test"])
    (item,) = items("delivery")
    item.state, item.lease_until = "sending", utcnow() + LEASE  # a worker took it and died
    db.session.commit()
    gateway.run_queue()
    assert sink.messages == []
    item.lease_until = utcnow() - timedelta(seconds=1)
    db.session.commit()
    gateway.run_queue()
    assert len(sink.wait_for(1)) == 1


def test_everything_generated_is_marked_auto_generated(gateway):
    sink = gateway.network.mx("partner.test")
    gateway.send(mail(), ["pat@partner.test"], mode="external")
    gateway.run_queue()
    generated = sink.wait_for(2)
    assert {d.message["Auto-Submitted"] for d in generated} == {"auto-generated"}
    assert {d.mail_from for d in generated} == {"<>"}


# --- leases and the duplicate window --------------------------------------------------


def test_the_delivery_is_recorded_before_quit_and_a_failed_quit_changes_nothing(app,
                                                                                gateway):
    """Found by bench/crash.py: the worker waited for QUIT's 221 before it committed the
    delivery, so a crash or a server stalling after its 250 widened the duplicate window."""
    app.config["SMTP_TIMEOUT"] = 3
    sink = gateway.network.mx("partner.test")
    sink.delay_quit(30)  # never answers QUIT in time: the worker gives up on it
    message = gateway.send(mail(), ["pat@partner.test"])
    queue = threading.Thread(target=in_app_context, args=(app, gateway.run_queue))
    queue.start()
    try:
        sink.wait_for(1)
        sink.wait_for_command("QUIT")
        assert _state_in_database("delivery") == "done", "not recorded before QUIT was said"
        assert queue.is_alive(), "the worker should still be waiting for QUIT"
    finally:
        queue.join(timeout=30)
    (item,) = items("delivery")
    assert (item.state, item.attempts, item.last_error) == ("done", 1, None)
    assert events(message.recipients[0])[-1].startswith(DELIVERED_VIA_MX)
    assert items("dsn") == [] and len(sink.messages) == 1


def test_an_item_taken_over_is_not_sent_by_its_old_holder(gateway):
    sink = gateway.network.mx("partner.test")
    gateway.send(mail(), ["pat@partner.test"])
    lease = leases.take(set())
    (item,) = items("delivery")
    # The lease ran out (a stalled worker) and another worker took the item over.
    item.lease_token, item.lease_until = "another worker", utcnow() + LEASE
    db.session.commit()
    runner._attempt(lease.item_id, lease.token)
    assert sink.messages == []
    db.session.refresh(item)
    assert (item.state, item.lease_token, item.attempts) == ("sending", "another worker", 0)


def test_an_item_taken_over_while_it_was_sent_is_recorded_by_its_new_holder_only(app,
                                                                                  gateway):
    sink = gateway.network.mx("partner.test")
    sink.delay(2)
    message = gateway.send(mail(), ["pat@partner.test"])
    lease = leases.take(set())
    sending = threading.Thread(target=in_app_context,
                               args=(app, runner._attempt, lease.item_id, lease.token))
    sending.start()
    sink.wait_for_command("DATA")  # the old holder waits for the 250 to its data
    (item,) = items("delivery")
    item.lease_token, item.lease_until = "another worker", utcnow() + LEASE
    db.session.commit()
    sending.join(timeout=30)
    assert len(sink.wait_for(1)) == 1
    db.session.refresh(item)
    assert (item.state, item.lease_token, item.attempts) == ("sending", "another worker", 0)
    recipient = message.recipients[0]
    assert not any(text.startswith(DELIVERED_VIA_MX) for text in events(recipient))
    assert recipient.state != "delivered"


def test_the_lease_is_renewed_before_each_further_server_and_a_lost_one_stops_the_send(
        app, gateway):
    slow = gateway.network.mx("partner.test", preference=10)
    slow.delay(1.5)
    slow.fail("DATA", 451, "4.3.0 Try later", times=2)
    backup = gateway.network.mx("partner.test", preference=20)
    backup.delay(1.5)
    gateway.send(mail(), ["pat@partner.test"])
    lease = leases.take(set())
    taken_until = _lease_in_database()[1]
    sending = threading.Thread(target=in_app_context,
                               args=(app, runner._attempt, lease.item_id, lease.token))
    sending.start()
    backup.wait_for_command("DATA")  # the first server said 451; the backup has the data
    token, until = _lease_in_database()
    assert token == lease.token and until > taken_until  # renewed, still this worker's
    sending.join(timeout=30)
    assert len(backup.wait_for(1)) == 1 and _state_in_database("delivery") == "done"

    # Once another worker has taken the item over, the old holder tries no further server.
    gateway.send(mail(subject="Second"), ["pat@partner.test"])
    lease = leases.take(set())
    sending = threading.Thread(target=in_app_context,
                               args=(app, runner._attempt, lease.item_id, lease.token))
    sending.start()
    slow.wait_for_command("DATA", 2)  # the first server is taking its time again
    (item,) = [i for i in items("delivery") if i.id == lease.item_id]
    item.lease_token, item.lease_until = "another worker", utcnow() + LEASE
    db.session.commit()
    sending.join(timeout=30)
    assert len(backup.messages) == 1  # still only the first message
    db.session.refresh(item)
    assert (item.state, item.lease_token, item.attempts) == ("sending", "another worker", 0)


def _lease_in_database() -> tuple:
    with db.engine.connect() as connection:
        token, until = connection.execute(text(
            "SELECT lease_token, lease_until FROM outbound_item WHERE state = 'sending'")).one()
    return token, str(until)  # SQLite gives text, PostgreSQL a datetime: compare as text


def _state_in_database(kind: str) -> str:
    """Read past the test's session, as another process would."""
    with db.engine.connect() as connection:
        return connection.execute(text("SELECT state FROM outbound_item WHERE kind = :kind"),
                                  {"kind": kind}).scalar()
