"""The migrations build exactly the schema the models describe."""

from datetime import datetime

import flask_migrate
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from support import mail

from app.domain import ingest
from app.extensions import db
from app.models import DeliveryEvent


def test_models_and_migrations_agree(app):
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"render_as_batch": True})
        assert compare_metadata(context, db.metadata) == []


def test_sqlite_connections_are_durable_and_strict(app):
    if db.engine.dialect.name != "sqlite":
        return
    with db.engine.connect() as connection:
        pragma = {name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                  for name in ("journal_mode", "synchronous", "foreign_keys")}
    assert pragma == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1}


def test_recipients_that_exist_get_their_messages_received_at(app, make_tenant):
    """0008 fills recipient.received_at for rows written before it; up or down, it keeps
    the rows that refer to recipients (a table rebuild on SQLite would cascade-delete
    them)."""
    tenant_id = make_tenant().id
    ingest.receive(mail().replace("\n", "\r\n").encode(), "alice@acme.test",
                   ["pat@partner.test"], mode="external")
    db.session.commit()
    events = db.session.query(DeliveryEvent).count()
    db.session.remove()
    received = datetime(2026, 11, 1, 9, 30)
    flask_migrate.downgrade(revision="0007")
    try:
        with db.engine.connect() as connection:
            assert connection.execute(text(
                "SELECT count(*) FROM delivery_event")).scalar() == events
        with db.engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO message (id, public_id, tenant_id, mail_from, header_from, "
                "subject, message_id_header, received_at, client_address, received_over_tls, "
                "size) VALUES (7, 'p7', :tenant, 'a@acme.test', '', 'Old', '', :at, '', "
                ":false, 0)"), {"tenant": tenant_id, "at": received, "false": False})
            connection.execute(text(
                "INSERT INTO recipient (id, message_id, address, kind, route, reason, state) "
                "VALUES (70, 7, 'pat@partner.test', 'external', 'ccm', '', 'held')"))
            connection.execute(text(
                "INSERT INTO delivery_event (recipient_id, at, kind, text) "
                "VALUES (70, :at, 'ccm', 'Delivered to CCM isolation area')"), {"at": received})
    finally:
        flask_migrate.upgrade()
    with db.engine.connect() as connection:
        assert connection.execute(text(
            "SELECT received_at FROM recipient WHERE id = 70")).scalar() in (
            received, str(received))
        assert connection.execute(text(
            "SELECT count(*) FROM delivery_event")).scalar() == events + 1
    indexes = {i["name"] for i in inspect(db.engine).get_indexes("recipient")}
    assert "ix_recipient_inbox" in indexes and "ix_recipient_user_id" not in indexes


def test_downgrading_far_back_on_sqlite_keeps_every_row_that_outlives_it(app, make_tenant):
    """Batch operations copy and drop tables; they must not cascade-delete anything."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("the cascade through a table copy is SQLite's")
    make_tenant()
    ingest.receive(mail().replace("\n", "\r\n").encode(), "alice@acme.test",
                   ["pat@partner.test"], mode="external")
    db.session.commit()
    tables = ("tenant", "users", "message", "recipient", "delivery_event", "outbound_item")

    def counts():
        with db.engine.connect() as connection:
            return {t: connection.execute(text(f"SELECT count(*) FROM {t}")).scalar()
                    for t in tables}

    before = counts()
    assert all(before.values())
    db.session.remove()
    flask_migrate.downgrade(revision="0002")
    try:
        assert counts() == before
    finally:
        flask_migrate.upgrade()
    assert counts() == before
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_domains_that_exist_are_verified_by_0018(app, make_tenant):
    """Every domain before domain proof was accepted as it stood: it stays verified, and
    only a verified domain is unique after it."""
    make_tenant("acme", domains=["acme.test"])
    db.session.remove()
    flask_migrate.downgrade(revision="0017")
    try:
        with db.engine.begin() as connection:
            connection.execute(text("INSERT INTO domain (tenant_id, name) "
                                    "SELECT id, 'old.test' FROM tenant"))
    finally:
        flask_migrate.upgrade()
    with db.engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT name, verified, proof_token FROM domain ORDER BY name")).all()
    assert [(name, bool(verified), token) for name, verified, token in rows] == [
        ("acme.test", True, None), ("old.test", True, None)]
