"""What intake keeps between storing transactions (the sender's tenant, its policies,
recipients' account ids) is given up as soon as any of it changes, in whatever process."""

import subprocess
import sys

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session
from support import mail

from app import database
from app.extensions import db
from app.models import Domain, Message, Policy, Tenant, User
from app.smtp.group_commit import GroupCommit, Job


def generation() -> int | None:
    """The counter as intake reads it, in a transaction of its own."""
    with Session(db.engine) as session:
        return database._change_count(session)


def kept() -> dict:
    return database._kept().values


def routes() -> list[str]:
    db.session.expire_all()
    return [m.recipients[0].route for m in db.session.query(Message).order_by(Message.id)]


def test_the_change_counter_moves_with_every_change_intake_keeps(app, gateway, make_user):
    """Triggers move it (migration 0024): a later migration that rebuilds one of these
    tables on SQLite would drop its triggers with it, and fail here."""
    tenant_id = gateway.tenant.id
    user_id = make_user(gateway.tenant, email="pat@acme.test").id
    db.session.commit()
    changes = [
        update(Tenant).where(Tenant.id == tenant_id).values(visibility_days=9),
        insert(Domain).values(tenant_id=tenant_id, name="new.test", verified=True),
        update(Domain).where(Domain.name == "new.test").values(verified=False),
        delete(Domain).where(Domain.name == "new.test"),
        insert(Policy).values(tenant_id=tenant_id, name="P", kind="route", enabled=True,
                              phrases=[], where=[]),
        update(Policy).values(enabled=False),
        delete(Policy),
        update(User).where(User.id == user_id).values(email="pat2@acme.test"),
        delete(User).where(User.id == user_id),
    ]
    for change in changes:
        before = generation()
        with db.engine.begin() as connection:
            connection.execute(change)
        assert generation() > before, change
    unwatched = [  # an account's other columns and a new account change no kept value
        insert(User).values(tenant_id=tenant_id, email="new@acme.test", kind="internal",
                            role="internal", failed_signins=0, disabled=False,
                            must_change_password=True),
        update(User).values(failed_signins=3),
    ]
    for change in unwatched:
        before = generation()
        with db.engine.begin() as connection:
            connection.execute(change)
        assert generation() == before, change


def test_a_policy_changed_elsewhere_between_two_messages_routes_the_second(
        app, gateway, ingress_server):
    """Disabled by another session, then enabled again by another process, each between
    two messages on one SMTP connection: each next message goes by the change."""
    policy_id = gateway.policy(name="Partner", kind="route", to_pattern="*@partner.test").id
    tenant_id = gateway.tenant.id
    client = ingress_server()
    send = lambda subject: client.sendmail(  # noqa: E731
        "alice@acme.test", ["pat@partner.test"], mail(subject=subject).encode())

    send("One")
    send("Two")  # from what was kept
    assert ("policies", tenant_id) in kept()
    with db.engine.begin() as other:
        other.execute(update(Policy).where(Policy.id == policy_id).values(enabled=False))
    send("Three")
    subprocess.run([sys.executable, "-c", (  # another process, in plain SQL
        "import sys, sqlalchemy as sa\n"
        "with sa.create_engine(sys.argv[1]).begin() as c:\n"
        "    c.execute(sa.text('UPDATE policy SET enabled = true WHERE id = :id'),"
        " {'id': int(sys.argv[2])})\n"),
        db.engine.url.render_as_string(hide_password=False), str(policy_id)], check=True)
    send("Four")
    assert routes() == ["ccm", "ccm", "external", "ccm"]


def test_what_is_kept_is_labelled_with_the_count_read_before_it_was_looked_up(app, gateway):
    """A change that commits between reading the counter and looking the value up (here
    inside the look-up) leaves the value stale for the next transaction: it is looked up
    again, not kept as fresh under the new count."""
    looked_up = []

    def look_up():
        if not looked_up:
            with db.engine.begin() as other:  # another writer, just after the counter's read
                other.execute(update(Tenant).values(visibility_days=12))
        looked_up.append(f"look-up {len(looked_up) + 1}")
        return looked_up[-1]

    values = []
    for _ in range(3):
        database.keep_lookups()
        values.append(database.kept_until_changed(("test",), look_up))
        db.session.commit()
        db.session.remove()
    # the first was kept under the count before the change: looked up again, then kept
    assert values == ["look-up 1", "look-up 2", "look-up 2"]


def test_an_account_seen_in_a_transaction_rolled_back_is_not_kept(app, gateway):
    database.keep_lookups()
    assert database.kept_until_changed(("account", 1, "x@y.test"), lambda: 41) == 41
    db.session.rollback()
    assert database.kept_until_changed(("account", 1, "x@y.test"), lambda: 42) == 42
    db.session.commit()
    db.session.remove()
    database.keep_lookups()
    assert database.kept_until_changed(("account", 1, "x@y.test"), lambda: 43) == 42


def test_an_account_removed_and_its_address_given_a_new_one_gets_the_new_one(app, gateway):
    """On SQLite another account may even get the removed one's id: the message must go
    to the address's account as it now is, never by the id that was kept."""
    gateway.policy(name="Law firm", kind="route", to_pattern="*@lawfirm.test")

    def job(subject: str):
        return Job((mail(subject=subject).replace("\n", "\r\n").encode(), "alice@acme.test",
                    ["counsel@lawfirm.test"], {"client_address": "127.0.0.1", "tls": False}))

    store = GroupCommit(app)
    assert store._store([job("First")]) == [None]  # first contact: the account
    assert store._store([job("Second")]) == [None]  # the account's id, kept
    tenant_id = gateway.tenant.id
    with db.engine.begin() as other:
        other.execute(delete(User).where(User.email == "counsel@lawfirm.test"))
        other.execute(insert(User).values(  # someone else, who may take the removed id
            tenant_id=tenant_id, email="someone@else.test", kind="external",
            role="external", failed_signins=0, disabled=False, must_change_password=True))
        other.execute(insert(User).values(
            tenant_id=tenant_id, email="counsel@lawfirm.test", kind="external",
            role="external", failed_signins=0, disabled=False, must_change_password=True))
        new = other.execute(select(User.id).where(
            User.email == "counsel@lawfirm.test")).scalar()
    assert store._store([job("Third")]) == [None]
    db.session.expire_all()
    third = db.session.scalars(select(Message).where(Message.subject == "Third")).one()
    assert third.recipients[0].user_id == new
