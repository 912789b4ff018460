"""The SMTP ingress as a mail server sees it: real SMTP on loopback."""

import smtplib
import threading

import pytest
from servers import ThrowawayCA
from support import mail, without_trace

from app.extensions import db
from app.models import Domain, Message, OutboundItem
from app.smtp.ingress import RELAY_DENIED


def stored() -> list[Message]:
    db.session.expire_all()
    return db.session.query(Message).order_by(Message.id).all()


def test_a_message_is_acknowledged_only_once_it_is_committed(gateway, ingress_server):
    client = ingress_server()
    code, _ = client.ehlo()
    assert code == 250
    refused = client.sendmail("alice@acme.test", ["pat@partner.test"], mail().encode())
    assert refused == {}
    # The 250 has been received: the message and its routing are already durable.
    (message,) = stored()
    assert message.recipients[0].route == "external"
    assert db.session.query(OutboundItem).count() == 1
    assert message.received_over_tls is False
    assert message.client_address == "127.0.0.1"


def test_size_is_advertised_and_oversized_mail_refused_with_552(app, gateway, ingress_server):
    app.config["MAX_MESSAGE_BYTES"] = 2000
    client = ingress_server()
    client.ehlo()
    assert client.esmtp_features["size"] == "2000"
    with pytest.raises(smtplib.SMTPResponseException) as refused:
        client.sendmail("alice@acme.test", ["pat@partner.test"], mail(body="x" * 5000).encode())
    assert refused.value.smtp_code == 552
    assert stored() == []


def test_a_sender_outside_every_tenant_is_refused(gateway, ingress_server):
    client = ingress_server()
    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        client.sendmail("eve@elsewhere.test", ["pat@partner.test"], mail().encode())
    assert refused.value.smtp_code == 550
    assert b"5.7.1" in refused.value.smtp_error
    assert stored() == []


def test_a_domain_removed_after_it_was_served_is_refused_at_data(gateway, ingress_server):
    client = ingress_server()
    client.sendmail("alice@acme.test", ["pat@partner.test"], mail().encode())
    # MAIL FROM remembers acme.test as served; DATA asks the database again.
    db.session.query(Domain).filter_by(name="acme.test").delete()
    db.session.commit()
    with pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail("alice@acme.test", ["pat@partner.test"], mail(subject="Late").encode())
    assert refused.value.smtp_code == 550
    assert b"not in a domain this gateway serves" in refused.value.smtp_error
    assert [m.subject for m in stored()] == ["Quarterly figures"]


def test_a_domain_added_is_served_at_once(gateway, ingress_server, make_tenant):
    client = ingress_server()
    with pytest.raises(smtplib.SMTPSenderRefused):
        client.sendmail("bob@beta.test", ["pat@partner.test"], mail().encode())
    make_tenant("beta", domains=["beta.test"])
    assert client.sendmail("bob@beta.test", ["pat@partner.test"], mail().encode()) == {}


def test_no_open_relay_from_an_untrusted_network(app, gateway, ingress_server):
    app.config["RELAY_NETWORKS"] = "192.0.2.0/24"
    client = ingress_server()
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        client.sendmail("alice@acme.test", ["pat@partner.test"], mail().encode())
    code, text = refused.value.recipients["pat@partner.test"]
    assert (code, text.decode()) == (550, RELAY_DENIED.removeprefix("550 "))
    assert stored() == []


def test_auth_is_offered_only_after_starttls(app, gateway, ingress_server, tmp_path):
    ca = ThrowawayCA()
    app.config["SMTP_TLS_CERT"] = str(ca.server_files("gateway.test", tmp_path))
    app.config["RELAY_NETWORKS"] = "192.0.2.0/24"
    client = ingress_server()
    client.ehlo()
    assert client.has_extn("starttls")
    assert not client.has_extn("auth")
    client.starttls(context=_client_context(ca))
    client.ehlo()
    assert client.has_extn("auth")
    with pytest.raises(smtplib.SMTPAuthenticationError):
        client.login("alice@acme.test", "not her password at all")
    client.login("alice@acme.test", "correct horse battery staple")
    assert client.sendmail("alice@acme.test", ["pat@partner.test"], mail().encode()) == {}
    (message,) = stored()
    assert message.received_over_tls is True


def _client_context(ca):
    context = ca.client_context()
    context.check_hostname = False  # smtplib names the host 127.0.0.1; the chain is checked
    return context


def test_external_recipients_cannot_use_auth_to_relay(gateway, tls_client, make_user):
    make_user(gateway.tenant, "pat@partner.test")  # a CCM recipient's portal account
    with pytest.raises(smtplib.SMTPAuthenticationError):
        tls_client().login("pat@partner.test", "correct horse battery staple")


def test_malformed_mime_is_stored_raw_and_routed(gateway, ingress_server):
    raw = (b"From: alice@acme.test\r\nTo: pat@partner.test\r\nSubject: =?bogus?Q?x?=\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"never-closed\"\r\n"
           b"\r\n--never-closed\r\nContent-Type: text/plain; charset=no-such-charset\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n!!! not base64 \xff\xfe\r\n")
    client = ingress_server()
    assert client.sendmail("alice@acme.test", ["pat@partner.test"], raw) == {}
    (message,) = stored()
    assert without_trace(message.raw) == raw
    events = [e.text for e in message.recipients[0].events]
    assert any(e.startswith("Malformed MIME kept as received") for e in events)


def test_an_internal_error_answers_451_and_stores_nothing(app, gateway, ingress_server,
                                                         monkeypatch):
    from app.domain import ingest

    def broken(*args, **kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(ingest, "receive", broken)
    client = ingress_server()
    with pytest.raises(smtplib.SMTPDataError) as failed:
        client.sendmail("alice@acme.test", ["pat@partner.test"], mail().encode())
    assert failed.value.smtp_code == 451
    assert failed.value.smtp_error == b"4.3.0 Temporary failure, please try again later"
    assert b"fire" not in failed.value.smtp_error
    assert stored() == []


def test_a_failure_midway_leaves_no_half_stored_message(app, gateway, ingress_server,
                                                        monkeypatch):
    from app.domain import isolation

    calls = []

    def fail_on_second(recipient):  # of each attempt: a group is stored again apart
        calls.append(recipient.address)
        if len(calls) % 2 == 0:
            raise RuntimeError("disk full")
        return real(recipient)

    real = isolation.hold
    monkeypatch.setattr(isolation, "hold", fail_on_second)
    client = ingress_server()
    with pytest.raises(smtplib.SMTPDataError):
        client.sendmail("alice@acme.test", ["pat@partner.test", "sam@partner.test"],
                        mail(headers="X-CCM-Mode: external\n").encode())
    assert stored() == []
    assert db.session.query(OutboundItem).count() == 0


def test_messages_arriving_together_are_each_stored_once_and_acknowledged(gateway,
                                                                         ingress_server):
    from concurrent.futures import ThreadPoolExecutor

    clients = [ingress_server() for _ in range(4)]

    def send(connection: int) -> list[dict]:  # one thread per connection
        return [clients[connection].sendmail("alice@acme.test", ["pat@partner.test"],
                                             mail(subject=f"Together {number}").encode())
                for number in range(connection, 40, 4)]

    with ThreadPoolExecutor(4) as pool:
        assert [refused for each in pool.map(send, range(4)) for refused in each] == [{}] * 40
    assert sorted(m.subject for m in stored()) == sorted(f"Together {n}" for n in range(40))


@pytest.mark.parametrize("threads", [1, 4])
def test_messages_stored_by_several_threads_are_each_stored_once_and_acknowledged(
        app, gateway, ingress_server, threads):
    """CCM_SMTP_STORE_THREADS storing threads on PostgreSQL (SQLite keeps its 2)."""
    from concurrent.futures import ThreadPoolExecutor

    app.config["SMTP_STORE_THREADS"] = threads
    clients = [ingress_server() for _ in range(6)]

    def send(connection: int) -> list[dict]:
        return [clients[connection].sendmail("alice@acme.test", ["pat@partner.test"],
                                             mail(subject=f"Threads {number}").encode())
                for number in range(connection, 48, 6)]

    with ThreadPoolExecutor(6) as pool:
        assert [refused for each in pool.map(send, range(6)) for refused in each] == [{}] * 48
    assert sorted(m.subject for m in stored()) == sorted(f"Threads {n}" for n in range(48))


def test_groups_commit_at_once_on_postgresql_each_message_with_its_own_fate(
        app, gateway, monkeypatch):
    """On PostgreSQL several groups are written and commit at once, each in its own
    transaction: here two groups have both inserted their rows before either commits,
    while a third, one of whose messages fails midway, is stored message by message
    beside them. Each message gets its own outcome and is stored whole or not at all."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite writes one group at a time")
    from concurrent.futures import ThreadPoolExecutor

    from app.domain import ingest
    from app.smtp.group_commit import GroupCommit, Job

    app.config["SMTP_STORE_THREADS"] = 3
    store = GroupCommit(app)
    assert store.threads == 3
    both_written = threading.Barrier(2, timeout=10)  # broken if the groups took turns
    insert = GroupCommit._insert_together

    def insert_then_wait_for_the_other() -> bool:
        written = insert()
        if written:  # only the two whole groups get here: the third goes apart before
            both_written.wait()
        return written

    monkeypatch.setattr(GroupCommit, "_insert_together",
                        staticmethod(insert_then_wait_for_the_other))
    real_route = ingest._route

    def route(message, routing, how):
        real_route(message, routing, how)  # its rows are in the session now
        if message.subject == "Bad":
            raise RuntimeError("disk full")

    monkeypatch.setattr(ingest, "_route", route)

    def job(subject: str) -> Job:
        return Job((mail(subject=subject).replace("\n", "\r\n").encode(), "alice@acme.test",
                    ["pat@partner.test"], {"client_address": "127.0.0.1", "tls": False}))

    groups = {"a": [job("A1"), job("A2")], "b": [job("B1"), job("B2"), job("B3")],
              "bad": [job("C1"), job("Bad"), job("C3")]}

    with ThreadPoolExecutor(3) as pool:
        outcomes = dict(zip(groups, pool.map(lambda name: store._store(groups[name]), groups),
                            strict=True))
    assert outcomes["a"] == [None, None] and outcomes["b"] == [None, None, None]
    assert outcomes["bad"][0] is None and outcomes["bad"][2] is None
    assert isinstance(outcomes["bad"][1], RuntimeError)
    assert not both_written.broken
    assert sorted(m.subject for m in stored()) == ["A1", "A2", "B1", "B2", "B3", "C1", "C3"]
    for message in stored():  # each whole: its recipient, events and notification
        (recipient,) = message.recipients
        assert recipient.events
    assert db.session.query(OutboundItem).count() == 7


def test_in_a_group_commit_a_refused_message_does_not_take_the_others_with_it(app, gateway):
    from app.domain.ingest import FOREIGN_SENDER, Refused
    from app.smtp.group_commit import GroupCommit, Job

    def job(sender: str, subject: str):
        raw = mail(subject=subject, sender=sender).replace("\n", "\r\n").encode()
        return Job((raw, sender, ["pat@partner.test"],
                   {"client_address": "127.0.0.1", "tls": False}))

    batch = [job("alice@acme.test", "First"), job("eve@elsewhere.test", "Forged"),
             job("alice@acme.test", "Third")]
    outcomes = GroupCommit(app)._store(batch)
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], Refused) and outcomes[1].reply == FOREIGN_SENDER
    assert [m.subject for m in stored()] == ["First", "Third"]


@pytest.mark.parametrize("failing", [0, 1, 2])
def test_in_a_group_commit_a_message_failing_midway_does_not_take_the_others_with_it(
        app, gateway, monkeypatch, failing):
    """The group is written in one flush; a message that fails after it added its rows
    (wherever it stands in the group) leaves nothing half stored, and the others are
    stored all the same."""
    from app.domain import ingest
    from app.smtp.group_commit import GroupCommit, Job

    real = ingest._route

    def route(message, routing, how):
        real(message, routing, how)  # its rows are in the session now
        if message.subject == f"Message {failing}":
            raise RuntimeError("disk full")

    monkeypatch.setattr(ingest, "_route", route)
    batch = [Job((mail(subject=f"Message {n}").replace("\n", "\r\n").encode(),
                  "alice@acme.test", ["pat@partner.test"],
                  {"client_address": "127.0.0.1", "tls": False})) for n in range(3)]
    outcomes = GroupCommit(app)._store(batch)
    assert [isinstance(outcome, RuntimeError) for outcome in outcomes] == \
        [n == failing for n in range(3)]
    assert sorted(m.subject for m in stored()) == \
        [f"Message {n}" for n in range(3) if n != failing]
    for message in stored():  # each whole: its recipient, events and notification
        recipient, = message.recipients
        assert recipient.events
    assert sorted(item.recipient.message.subject for item in
                  db.session.query(OutboundItem)) == sorted(m.subject for m in stored())


def test_a_group_commit_writes_the_rows_the_orm_writes(app, gateway, monkeypatch):
    """The group commit inserts its rows by Core (app/smtp/inserts.py), not by the ORM's
    flush: the same messages give the same rows, column for column, either way (first
    contact, a known account, a CCM route and an ordinary one, several recipients)."""
    from app import clock
    from app.models import DeliveryEvent, Recipient, User
    from app.smtp import inserts
    from app.smtp.group_commit import GroupCommit, Job

    real_insert = inserts._insert
    gateway.policy(name="Law firm", kind="route", to_pattern="*@lawfirm.test")
    messages = [(mail(subject=f"Message {n}").replace("\n", "\r\n").encode(), rcpts)
                for n, rcpts in enumerate([["counsel@lawfirm.test"],  # first contact
                                           ["counsel@lawfirm.test", "pat@partner.test"],
                                           ["pat@partner.test", "bob@acme.test"]])]
    moment = clock.utcnow()
    monkeypatch.setattr(clock, "utcnow", lambda: moment)

    def rows() -> list:
        db.session.expire_all()
        dropped = {"id", "public_id", "message_id", "recipient_id", "raw", "user_id",
                   "created_at", "next_attempt_at"}  # the column's default: now, each time

        def columns(obj) -> dict:
            return {c.key: getattr(obj, c.key) for c in obj.__table__.columns
                    if c.key not in dropped}
        def linked(notice: dict | None, recipient) -> dict | None:
            """The notice, its message link checked and set aside: public ids are random."""
            if not notice or "portal_url" not in notice.get("context", {}):
                return notice
            url = notice["context"]["portal_url"]
            assert url.endswith(f"/messages/{recipient.message.public_id}")
            return {**notice, "context": {**notice["context"], "portal_url": "(its message)"}}

        found = []
        for message in stored():
            _, _, rest = message.raw.partition(b"\r\n\t")  # the queue id differs
            found.append((columns(message), rest.partition(b"\r\n")[2], [
                (columns(recipient), recipient.user.email if recipient.user else None,
                 [(event.kind, event.text.split(", queue id")[0]) for event in
                  db.session.query(DeliveryEvent).filter_by(recipient_id=recipient.id)
                  .order_by(DeliveryEvent.id)],
                 [{**columns(item), "notice": linked(item.notice, recipient), "raw": item.raw}
                  for item in
                  db.session.query(OutboundItem).filter_by(recipient_id=recipient.id)
                  .order_by(OutboundItem.id)])
                for recipient in message.recipients]))
        return found

    for raw, rcpts in messages:  # the ORM's flush, as ccm send and the composer store
        gateway.send(raw, rcpts, client_address="127.0.0.1", tls=False)
    by_orm = rows()
    for model in (OutboundItem, DeliveryEvent, Recipient, Message):
        db.session.query(model).delete()
    db.session.query(User).filter_by(email="counsel@lawfirm.test").delete()
    db.session.commit()

    by_core = []
    monkeypatch.setattr(inserts, "_insert", lambda connection, mapper, *args: (
        by_core.append(mapper.class_.__name__), real_insert(connection, mapper, *args)))
    store = GroupCommit(app)
    jobs = [Job((raw, "alice@acme.test", rcpts, {"client_address": "127.0.0.1", "tls": False}))
            for raw, rcpts in messages]
    assert store._store(jobs[:1]) == [None]  # first contact: the ORM flushes this group
    assert by_core == []
    assert store._store(jobs[1:]) == [None, None]  # this one goes by Core
    assert by_core == ["Message", "Recipient", "DeliveryEvent", "OutboundItem"]
    by_group = rows()
    assert len(by_group) == 3 and by_group == by_orm


def test_what_a_group_read_before_the_write_lock_and_lost_meanwhile_is_read_again(
        app, gateway, monkeypatch):
    """A group is received before its transaction takes the write lock (so that it can
    be while another group commits): an account removed by another writer in between
    fails the recipient's foreign key, and the group is received again under the lock,
    where the recipient gets an account anew."""
    from sqlalchemy import delete

    from app.models import User
    from app.smtp.group_commit import GroupCommit, Job

    gateway.policy(name="Law firm", kind="route", to_pattern="*@lawfirm.test")

    def job(subject: str):
        return Job((mail(subject=subject).replace("\n", "\r\n").encode(), "alice@acme.test",
                    ["counsel@lawfirm.test"], {"client_address": "127.0.0.1", "tls": False}))

    store = GroupCommit(app)
    assert store._store([job("First")]) == [None]  # first contact: the account
    (first,) = db.session.query(User.id).filter_by(email="counsel@lawfirm.test").one()
    db.session.rollback()
    receive = GroupCommit._receive_together

    def receive_then_lose_the_account(batch):
        received = receive(batch)  # has read the account's id
        with db.engine.begin() as other:  # another writer, before the write lock
            other.execute(delete(User).where(User.id == first))
        return received

    monkeypatch.setattr(GroupCommit, "_receive_together",
                        staticmethod(receive_then_lose_the_account))
    assert store._store([job("Second")]) == [None]
    (message,) = [m for m in stored() if m.subject == "Second"]
    (recipient,) = message.recipients
    # an account of its own again (SQLite may give it the removed one's id)
    assert recipient.user is not None and recipient.user.email == "counsel@lawfirm.test"


def test_a_client_that_hung_up_before_its_message_was_stored_leaves_the_others_answered(
        app, gateway):
    from app.smtp.group_commit import GroupCommit, Job

    def job(subject: str):
        raw = mail(subject=subject).replace("\n", "\r\n").encode()
        return Job((raw, "alice@acme.test", ["pat@partner.test"],
                   {"client_address": "127.0.0.1", "tls": False}))

    store = GroupCommit(app)
    gone, waiting = job("Gone"), job("Waiting")
    assert store.give_up(gone)  # what the session does when its client disconnected
    store.waiting.put(gone)
    store.waiting.put(waiting)
    store._store_waiting()
    assert waiting.outcome.result(timeout=0) is None
    # No 250 was owed to the client that left, and it will send again: not stored.
    assert [m.subject for m in stored()] == ["Waiting"]


@pytest.mark.parametrize("mechanism,initial", [("PLAIN", True), ("PLAIN", False),
                                               ("LOGIN", True), ("LOGIN", False)])
def test_auth_plain_and_login_with_and_without_an_initial_response(tls_client, mechanism,
                                                                   initial):
    client = tls_client()
    client.user, client.password = "alice@acme.test", "not her password at all"
    method = getattr(client, f"auth_{mechanism.lower()}")
    with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
        client.auth(mechanism, method, initial_response_ok=initial)
    assert refused.value.smtp_code == 535
    client.password = "correct horse battery staple"
    assert client.auth(mechanism, method, initial_response_ok=initial)[0] == 235
    assert client.sendmail("alice@acme.test", ["pat@partner.test"], mail().encode()) == {}


def test_auth_with_garbage_is_answered_and_the_connection_stays_usable(tls_client):
    client = tls_client()
    assert client.docmd("AUTH", "PLAIN not-base64!")[0] == 501
    assert client.docmd("AUTH", "PLAIN " + "bm8gc2VwYXJhdG9ycw==")[0] == 501  # "no separators"
    assert client.docmd("AUTH", "LOGIN")[0] == 334
    assert client.docmd("*")[0] == 501  # the client gave up (RFC 4954)
    assert client.noop()[0] == 250


@pytest.fixture
def signed_in_client(tls_client):
    """A client outside CCM_RELAY_NETWORKS, over STARTTLS, authenticated as alice."""
    client = tls_client()
    client.login("alice@acme.test", "correct horse battery staple")
    return client


@pytest.mark.parametrize("app", [{"RATELIMIT_ENABLED": True}], indirect=True)
def test_after_ten_failed_auths_a_client_is_told_to_come_back_later(gateway, tls_client):
    for _ in range(3):  # successes do not count
        tls_client().login("alice@acme.test", "correct horse battery staple")
    client = tls_client()
    for number in range(10):  # guesses at accounts that do not even exist
        client.user, client.password = f"nobody{number}@acme.test", "a guess at a password"
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.auth("PLAIN", client.auth_plain)  # login() would try LOGIN as well
        assert refused.value.smtp_code == 535
    with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
        client.login("alice@acme.test", "correct horse battery staple")
    assert (refused.value.smtp_code, refused.value.smtp_error) == (
        454, b"4.7.0 Temporary authentication failure, try again later")
    assert gateway.account("alice@acme.test").failed_signins == 0  # never tested


def test_an_internal_account_outside_its_tenants_domains_cannot_relay(gateway, tls_client,
                                                                     make_tenant, make_user):
    make_tenant("globex", domains=["globex.test"])
    make_user(gateway.tenant, "ceo@globex.test", role="internal")  # made before the check
    with pytest.raises(smtplib.SMTPAuthenticationError):
        tls_client().login("ceo@globex.test", "correct horse battery staple")


@pytest.mark.parametrize("how", ["enrolled", "required by the tenant"])
def test_an_account_with_a_second_factor_cannot_relay_on_its_password_alone(
        gateway, tls_client, how):
    alice = gateway.account("alice@acme.test")
    if how == "enrolled":
        alice.totp_secret = "JBSWY3DPEHPK3PXP"
    else:
        gateway.tenant.second_factor_internal = "required"
    db.session.commit()
    with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
        tls_client().login("alice@acme.test", "correct horse battery staple")
    assert refused.value.smtp_code == 535  # as for a wrong password: no oracle


def test_an_authenticated_user_sends_only_as_themselves(signed_in_client, make_tenant,
                                                         make_user):
    beta = make_tenant("beta", domains=["beta.test"])
    make_user(beta, "ceo@beta.test", role="internal")
    for sender in ("ceo@beta.test", "bob@acme.test"):  # another tenant's staff, a colleague
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            signed_in_client.sendmail(sender, ["pat@partner.test"],
                                      mail(sender=sender, subject="Wire the money").encode())
        assert (refused.value.smtp_code, refused.value.smtp_error) == (
            553, b"5.7.1 Sender address is not the one you authenticated as")
    assert signed_in_client.sendmail("Alice@ACME.test", ["pat@partner.test"],
                                     mail().encode()) == {}
    assert [m.subject for m in stored()] == ["Quarterly figures"]


def test_auth_with_text_that_is_not_ascii_is_answered_501(tls_client):
    client = tls_client()
    client.send("AUTH PLAIN \u00e9\r\n".encode())
    assert client.getreply()[0] == 501
    client.send(b"AUTH LOGIN \xff\xfe\r\n")
    assert client.getreply()[0] == 501
    assert client.noop()[0] == 250


def test_a_sender_domain_that_is_not_utf8_is_refused_not_deferred(gateway, ingress_server):
    client = ingress_server()
    client.ehlo()
    client.send(b"MAIL FROM:<alice@acme.t\xffest>\r\n")
    code, text = client.getreply()
    assert (code, text) == (550, b"5.7.1 Sender address is not in a domain this gateway serves")


def test_an_unexpected_failure_is_answered_451_without_its_details(
        app, gateway, ingress_server, monkeypatch):
    from app.smtp.ingress import IngressHandler

    async def broken(*args, **kwargs):
        raise ValueError("secret internals")

    monkeypatch.setattr(IngressHandler, "handle_RCPT", broken)
    client = ingress_server()
    client.ehlo()
    client.mail("alice@acme.test")
    code, text = client.rcpt("pat@partner.test")
    assert code == 451 and b"secret" not in text


def test_ingress_processes_can_share_a_port_only_when_asked(app, gateway):
    from servers import free_port

    from app.smtp import ingress

    listen = f"127.0.0.1:{free_port()}"
    shared = [ingress.controller(app, listen, share_port=True) for _ in range(2)]
    for controller in shared:
        controller.start()
    try:
        for _ in range(4):  # whichever takes the connection, the message is stored
            with smtplib.SMTP("127.0.0.1", shared[0].port, timeout=10) as client:
                assert client.sendmail("alice@acme.test", ["pat@partner.test"],
                                       mail().encode()) == {}
        assert len(stored()) == 4
        alone = ingress.controller(app, listen)
        with pytest.raises(OSError, match="address already in use"):  # no --share-port
            alone.start()
        alone.loop.close()  # aiosmtpd leaves a loop that never ran open
    finally:
        for controller in shared:
            controller.stop()


def test_ingress_processes_on_one_sqlite_file_take_turns_to_write(app, gateway, ingress_server):
    """Another process holding the writers' turn (``database.writers_take_turns``) keeps
    a message from being committed, and the message is committed the moment it lets go:
    not after one of SQLite's own sleeps, as when only its lock stood between them."""
    import subprocess
    import sys
    import time

    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's writers only: PostgreSQL's write at once")
    path = db.engine.url.database + "-writers"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys\n"
         f"turn = os.open({path!r}, os.O_CREAT | os.O_RDWR)\n"
         "fcntl.flock(turn, fcntl.LOCK_EX)\nprint('held', flush=True)\nsys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        answers: list[float] = []
        client = ingress_server()
        sending = threading.Thread(target=lambda: answers.append(
            (client.sendmail("alice@acme.test", ["pat@partner.test"], mail().encode()),
             time.monotonic())[1]))
        sending.start()
        sending.join(timeout=1.0)
        assert answers == [] and stored() == []  # received, waiting for its turn
        released = time.monotonic()
        holder.stdin.close()
        sending.join(timeout=10)
        assert len(answers) == 1 and answers[0] - released < 0.5
        assert [m.subject for m in stored()] == ["Quarterly figures"]
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
        if not holder.stdin.closed:
            holder.stdin.close()


def test_a_write_committed_elsewhere_while_a_message_is_stored_does_not_refuse_it(
        app, gateway, ingress_server, monkeypatch):
    """SQLite refuses at once (no busy wait) to let a transaction that has read write
    after another connection committed: the store must not be such a transaction."""
    from app.domain import ingest
    from app.models import Tenant

    def write_elsewhere() -> None:  # the worker or the portal, in a connection of its own
        with app.app_context():
            db.session.query(Tenant).filter_by(id=tenant_id).update({"name": "Acme Ltd"})
            db.session.commit()
            db.session.remove()

    def plan_after_a_commit_elsewhere(*args, **kwargs):
        writer = threading.Thread(target=write_elsewhere)
        writer.start()
        writer.join(timeout=0.5)  # with the store holding the write lock, it waits
        writers.append(writer)
        return real_plan(*args, **kwargs)

    tenant_id = gateway.tenant.id
    writers: list[threading.Thread] = []
    real_plan = ingest.plan
    monkeypatch.setattr(ingest, "plan", plan_after_a_commit_elsewhere)
    client = ingress_server()
    assert client.sendmail("alice@acme.test", ["pat@partner.test"], mail().encode()) == {}
    writers[0].join(timeout=15)
    assert [m.subject for m in stored()] == ["Quarterly figures"]
    assert db.session.get(Tenant, tenant_id).name == "Acme Ltd"  # the other write went in too
