"""First contact costs intake no more than any other recipient.

A recipient new to a tenant gets an account with no usable password and a password
notification queued without one; the worker generates the password and hashes it when it
sends that notification (app/delivery/runner.py, _given_password), stores the hash before
the mail leaves, and keeps the password nowhere in clear. Mail enters by the real SMTP
ingress; the queue is run as the worker runs it; the notifications go to a real SMTP
server on loopback.
"""

from __future__ import annotations

import email
import email.policy
import re
import threading
from collections import Counter

import pytest
from aiosmtpd.controller import Controller
from argon2 import PasswordHasher
from servers import free_port
from sqlalchemy import select
from support import post_form

from app.domain import accounts, people
from app.extensions import db
from app.models import DeliveryEvent, OutboundItem, User


class NoticeServer:
    """The server notifications go to (CCM_OUTBOUND): it reads every message it is
    given, and refuses the next ``refuse`` password notifications with a 451 after
    reading them, as a server failing for a while does."""

    def __init__(self):
        self.accepted: list[bytes] = []
        self.refused: list[bytes] = []
        self.refuse = 0
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())

    async def handle_DATA(self, server, session, envelope):
        if self.refuse and is_password_notice(envelope.original_content):
            self.refuse -= 1
            self.refused.append(envelope.original_content)
            return "451 4.3.0 Try again later"
        self.accepted.append(envelope.original_content)
        return "250 2.0.0 OK"

    def passwords(self, which: list[bytes] | None = None) -> dict[str, str]:
        """Addressee -> password, of the password notifications (accepted by default)."""
        found = {}
        for raw in self.accepted if which is None else which:
            mail = parsed(raw)
            if is_password_notice(raw):
                text_ = mail.get_body(("plain",)).get_content()
                found[str(mail["To"])] = re.search(r"Password:\s+(\S+)", text_)[1]
        return found


def parsed(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def is_password_notice(raw: bytes) -> bool:
    return "sign-in details" in parsed(raw)["Subject"]


@pytest.fixture
def notices_server(app, gateway):
    server = NoticeServer()
    server.controller.start()
    app.config["OUTBOUND"] = f"smtp://127.0.0.1:{server.controller.port}"
    gateway.policy(name="Partners", kind="route", to_pattern="*@partner.test")  # by CCM
    try:
        yield server
    finally:
        server.controller.stop()


@pytest.fixture
def hashing(monkeypatch) -> Counter:
    """The argon2 hashes computed, by the name of the thread that computed them: a
    measurement wrapped round the library, which still does the work."""
    counts: Counter = Counter()
    original = PasswordHasher.hash

    def counted(self, *args, **kwargs):
        counts[threading.current_thread().name] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(PasswordHasher, "hash", counted)
    return counts


def send_over_smtp(ingress_server, rcpts: list[str]) -> None:
    smtp = ingress_server()
    data = (f"From: alice@acme.test\r\nTo: {rcpts[0]}\r\nSubject: Terms\r\n"
            "Message-ID: <terms@acme.test>\r\n\r\nThe terms.\r\n")
    assert smtp.sendmail("alice@acme.test", rcpts, data) == {}


@pytest.fixture
def signs_in(app, client):
    """Whether a password opens an account at the portal, in a browser of its own (made
    like the ``client`` fixture's: each request in contexts of its own)."""
    def attempt(email: str, password: str) -> bool:
        response = post_form(app.test_client(), "/t/acme/sign-in",
                             {"email": email, "password": password})
        return response.status_code == 302 \
            and response.headers["Location"] == "/password/change"
    return attempt


def assert_stored_nowhere(secrets: list[str]) -> None:
    """No row of any table holds any of ``secrets``."""
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(select(table)):
            stored = repr(tuple(row))
            assert not [s for s in secrets if s in stored], table.name


def accounts_of(emails: list[str]) -> list[User]:
    db.session.expire_all()
    return list(db.session.scalars(select(User).where(User.email.in_(emails))))


def test_a_hundred_new_recipients_cost_intake_no_hashing_and_each_gets_a_working_password(
        gateway, notices_server, ingress_server, hashing, signs_in):
    rcpts = [f"person{n}@partner.test" for n in range(100)]
    send_over_smtp(ingress_server, rcpts)

    # Intake hashed nothing, and stored nothing secret: no hash, no password queued.
    assert hashing == Counter()
    created = accounts_of(rcpts)
    assert len(created) == 100
    assert all(u.password_hash is None and u.must_change_password for u in created)
    queued = db.session.scalars(select(OutboundItem).where(
        OutboundItem.kind == "notification")).all()
    password_notices = [i for i in queued if i.notice["kind"] == "password"]
    assert len(password_notices) == 100
    assert all("password" not in i.notice["context"] and i.raw is None
               for i in password_notices)

    gateway.run_queue()
    sent = notices_server.passwords()
    assert sorted(sent) == sorted(rcpts)
    assert len(set(sent.values())) == 100
    assert sum(hashing.values()) == 100  # one per account, by the threads that sent them
    assert all(u.password_hash is not None and u.must_change_password
               for u in accounts_of(rcpts))
    assert all(signs_in(email, password) for email, password in sent.items())
    assert_stored_nowhere(list(sent.values()))


def test_a_retry_gives_a_new_password_and_the_old_one_stops_working(
        gateway, notices_server, ingress_server, signs_in):
    notices_server.refuse = 1
    send_over_smtp(ingress_server, ["pat@partner.test"])
    gateway.run_queue()
    (first,) = notices_server.passwords(notices_server.refused).values()
    assert notices_server.passwords() == {}
    assert signs_in("pat@partner.test", first)  # stored before the mail left

    gateway.make_due()
    gateway.run_queue()
    second = notices_server.passwords()["pat@partner.test"]
    assert second != first
    assert signs_in("pat@partner.test", second)
    assert not signs_in("pat@partner.test", first)
    assert_stored_nowhere([first, second])


CHOSEN = "plum orbit lantern meadow"


def chose_a_password(user: User) -> None:
    """What following a reset or activation link does."""
    accounts.set_password(user, CHOSEN)


def was_disabled(user: User) -> None:
    people.disable(user, True)


@pytest.mark.parametrize("meanwhile", [chose_a_password, was_disabled])
@pytest.mark.parametrize("when", ["before the first try", "between two tries"])
def test_a_password_set_or_an_account_closed_meanwhile_is_left_alone(
        gateway, notices_server, ingress_server, meanwhile, when):
    """Nothing is generated then: no password notification goes out, the secure message
    notification does, and the account keeps the password it has."""
    if when == "between two tries":
        notices_server.refuse = 1
    send_over_smtp(ingress_server, ["pat@partner.test"])
    if when == "between two tries":
        gateway.run_queue()
        assert notices_server.refused
        gateway.make_due()
    meanwhile(gateway.account("pat@partner.test"))
    db.session.commit()
    kept = gateway.account("pat@partner.test").password_hash

    gateway.run_queue()
    assert notices_server.passwords() == {}
    assert [parsed(raw)["Subject"] for raw in notices_server.accepted] == [
        "Secure message from Acme Corp: sign in to read it"]
    db.session.expire_all()
    assert gateway.account("pat@partner.test").password_hash == kept
    item = db.session.scalars(select(OutboundItem).where(
        OutboundItem.kind == "notification").order_by(OutboundItem.id.desc())).first()
    assert (item.state, item.notice) == ("done", None)
    events = db.session.scalars(select(DeliveryEvent.text)).all()
    assert any("password was set meanwhile" in e for e in events)
    if meanwhile is chose_a_password:
        assert accounts.check_credentials("pat@partner.test", CHOSEN, gateway.tenant)


def test_an_administrators_reset_keeps_no_password_in_the_queue_and_sends_one_that_works(
        gateway, notices_server, ingress_server, signs_in):
    """The reset takes the old password away at once; the worker generates the new one.
    A reset while the first-contact notification still waits: the notification sent
    first gives the password, the other finds it set and is not sent, so the one
    password mail pat gets is one that works."""
    send_over_smtp(ingress_server, ["pat@partner.test"])
    pat = gateway.account("pat@partner.test")
    people.reset_password(pat)
    db.session.commit()
    queued = db.session.scalars(select(OutboundItem).where(
        OutboundItem.notice.is_not(None))).all()
    assert [item.notice["kind"] for item in queued] == ["secure_message", "password",
                                                         "password"]
    assert all("password" not in item.notice["context"] for item in queued)

    gateway.run_queue()
    (password,) = notices_server.passwords().values()
    assert signs_in("pat@partner.test", password)
    assert_stored_nowhere([password])

    # Later, a reset on its own: the password sent before stops working at once.
    people.reset_password(gateway.account("pat@partner.test"))
    db.session.commit()
    assert not signs_in("pat@partner.test", password)
    notices_server.accepted.clear()
    gateway.run_queue()
    (new,) = notices_server.passwords().values()
    assert signs_in("pat@partner.test", new)
    assert "has reset the password" in parsed(notices_server.accepted[0]).get_body(
        ("plain",)).get_content()


def test_a_password_notification_queued_before_the_upgrade_is_sent_as_it_was(
        gateway, notices_server):
    """One queued by an earlier version carries its password (whose hash is stored):
    it goes out with that password, and nothing is generated."""
    from app.delivery import queue
    from app.domain import links

    pat = User(tenant=gateway.tenant, email="pat@partner.test", kind="external",
               role="external", failed_signins=0, disabled=False)
    old = accounts.set_generated_password(pat)
    db.session.add(pat)
    queue.notify("password", pat.email, {
        "tenant_name": "Acme Corp", "portal_url": links.sign_in(gateway.tenant),
        "login": pat.email, "password": old, "reset": False}, tenant=gateway.tenant)
    db.session.commit()
    kept = pat.password_hash
    gateway.run_queue()
    assert notices_server.passwords() == {"pat@partner.test": old}
    assert gateway.account("pat@partner.test").password_hash == kept
