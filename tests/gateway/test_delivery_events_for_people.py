"""Delivery events as senders and tenant administrators read them: what happened and
where, the server's answer quoted, never a path on the gateway's own disk."""

import mailbox

from support import mail

from app.domain import delivery_events
from app.extensions import db
from app.models import DELIVERED_VIA_MX, WRITTEN_TO_OUTBOX, DeliveryEvent
from app.web.queries import sent_items


def events(recipient) -> list[str]:
    db.session.refresh(recipient)
    return [e.text for e in recipient.events]


def test_a_maildir_delivery_is_written_to_the_outbox_with_no_path(app, gateway, tmp_path,
                                                                   client, signed_in):
    outbox = tmp_path / "secret-place" / "outbox"
    outbox.parent.mkdir()
    app.config["OUTBOUND"] = f"maildir:{outbox}"
    message = gateway.send(mail(), ["pat@partner.test"])
    gateway.run_queue()
    (recipient,) = message.recipients
    assert events(recipient)[-1] == WRITTEN_TO_OUTBOX
    assert sent_items.status(recipient) == "Written to the outbox"
    signed_in("alice@acme.test")
    page = client.get(f"/sent/{message.public_id}").get_data(as_text=True)
    assert "Written to the outbox (maildir)" in page
    assert str(tmp_path) not in page and "Delivered by SMTP" not in page


def test_each_maildir_copy_names_its_envelope_recipient(app, gateway, tmp_path):
    outbox = tmp_path / "outbox"
    app.config["OUTBOUND"] = f"maildir:{outbox}"
    gateway.send(mail(to="pat@partner.test"), ["pat@partner.test", "sam@partner.test"])
    gateway.run_queue()
    box = mailbox.Maildir(outbox, create=False)
    copies = sorted((m["Delivered-To"], m["X-Original-To"], m["Return-Path"], m["Subject"])
                    for m in box)
    assert copies == [("pat@partner.test", "pat@partner.test", "<alice@acme.test>",
                       "Quarterly figures"),
                      ("sam@partner.test", "sam@partner.test", "<alice@acme.test>",
                       "Quarterly figures")]


def test_an_mx_delivery_names_the_host_and_quotes_its_answer(gateway):
    gateway.network.mx("partner.test", name="mx.partner.test", tls="self-signed")
    message = gateway.send(mail(), ["pat@partner.test"])
    gateway.run_queue()
    last = events(message.recipients[0])[-1]
    assert last.startswith(f"{DELIVERED_VIA_MX}: mx.partner.test accepted it (250 ")
    assert last.endswith("; encrypted with TLSv1.3)")
    assert sent_items.status(message.recipients[0]) == "Delivered by SMTP"


def test_a_relay_delivery_says_so_and_whether_it_was_encrypted(gateway):
    message = gateway.send(mail(to="bob@acme.test"), ["bob@acme.test"])
    gateway.run_queue()
    last = events(message.recipients[0])[-1]
    assert last.startswith("Relayed to 127.0.0.1:") and "which accepted it (250 " in last
    assert last.endswith("; not encrypted)")


def test_a_maildir_that_cannot_be_written_is_held_without_naming_its_path(app, gateway,
                                                                          tmp_path, caplog):
    app.config["OUTBOUND"] = f"maildir:{tmp_path / 'missing' / 'outbox'}"
    message = gateway.send(mail(), ["pat@partner.test"])
    gateway.run_queue()
    last = events(message.recipients[0])[-1]
    assert last.startswith("Held for the operator: Unexpected error (FileNotFoundError")
    assert "[a file on the server]" in last and str(tmp_path) not in last
    assert str(tmp_path / "missing") in caplog.text  # the operator's log keeps it


def test_a_path_in_any_event_is_hidden_from_people(gateway):
    message = gateway.send(mail(), ["pat@partner.test"])
    (recipient,) = message.recipients
    delivery_events.record(
        recipient, "shunted", "Held for the operator: Unexpected error (PermissionError: "
        "[Errno 13] Permission denied: '/srv/ccm/instance/outbox/tmp/1.eml'); see "
        "https://example.test/help/maildir, and/or C:\\ccm\\outbox on 2026/12/06")
    db.session.commit()
    assert events(recipient)[-1] == (
        "Held for the operator: Unexpected error (PermissionError: [Errno 13] Permission "
        "denied: '[a file on the server]'); see https://example.test/help/maildir, and/or "
        "[a file on the server] on 2026/12/06")


def test_the_migration_rewords_old_maildir_events(app, gateway):
    """What 0013 does to the rows written before it (run here on the test database)."""
    import importlib

    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    message = gateway.send(mail(), ["pat@partner.test"])
    db.session.add(DeliveryEvent(recipient=message.recipients[0], kind="delivered",
                                 text="Delivered to the maildir /srv/ccm/instance/outbox"))
    db.session.commit()
    migration = importlib.import_module("app.migrations.versions.0015_outbox_wording")
    with db.engine.begin() as connection, \
            Operations.context(MigrationContext.configure(connection)):
        migration.upgrade()
    assert events(message.recipients[0])[-1] == WRITTEN_TO_OUTBOX
