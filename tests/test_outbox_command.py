"""``ccm outbox list`` and ``ccm outbox show``: the maildir outbox read back decoded,
each copy under its envelope recipient."""

import re

from support import mail, post_form, read_outbox

from app.delivery import outbox
from app.domain import ingest
from app.extensions import db


def test_a_reset_mail_reads_whole_with_its_recipient(app, client, runner, make_tenant,
                                                     make_user):
    tenant = make_tenant("acme", domains=["acme.test"])
    make_user(tenant, "alice@acme.test", role="internal")
    post_form(client, "/password/forgot", {"email": "alice@acme.test"})
    assert len(read_outbox(app)) == 1  # runs the queue into the maildir outbox

    listed = runner.invoke(args=["outbox", "list"])
    assert listed.exit_code == 0, listed.output
    (line, total) = listed.output.splitlines()
    assert re.fullmatch(r"\s+1  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  alice@acme\.test  .*reset.*",
                        line, re.IGNORECASE), line
    assert total == "-- 1 message(s)"

    shown = runner.invoke(args=["outbox", "show", "1"])
    assert shown.exit_code == 0, shown.output
    headers, _, body = shown.output.partition("\n\n")
    assert "Delivered-To: alice@acme.test" in headers.splitlines()
    assert "X-Original-To: alice@acme.test" in headers.splitlines()
    assert "Return-Path: <>" in headers.splitlines()
    # the link on one line, whole, as the person must follow it
    (reset,) = re.findall(r"^\s*(http://\S+/password/reset/\S+)$", body, re.MULTILINE)
    assert client.get(reset.removeprefix("http://localhost")).status_code == 200


def test_each_copy_is_listed_under_its_own_envelope_recipient(app, runner, make_tenant,
                                                              make_user):
    tenant = make_tenant("acme", domains=["acme.test"])
    make_user(tenant, "alice@acme.test", role="internal")
    raw = mail(subject="Grüße aus Köln — ünïcödé", to="pat@partner.test").replace(
        "\n", "\r\n").encode()
    raw = raw.replace(b"Subject: Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln \xe2\x80\x94 "
                      b"\xc3\xbcn\xc3\xafc\xc3\xb6d\xc3\xa9",
                      b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln_=E2=80=94_?=\r\n"
                      b" =?utf-8?b?w7xuw69jw7Zkw6k=?=")
    ingest.receive(raw, "alice@acme.test", ["pat@partner.test", "sam@partner.test"],
                   mode="off")
    db.session.commit()
    read_outbox(app)
    listed = runner.invoke(args=["outbox", "list"]).output.splitlines()
    assert len(listed) == 3 and listed[-1] == "-- 2 message(s)"
    assert sorted(line.split()[3] for line in listed[:2]) == ["pat@partner.test",
                                                              "sam@partner.test"]
    assert all(line.endswith("Grüße aus Köln — ünïcödé") for line in listed[:2])
    shown = runner.invoke(args=["outbox", "show", "2"]).output
    assert "Subject: Grüße aus Köln — ünïcödé" in shown
    assert shown.rstrip().endswith("Quarterly figures") is False  # the body, not a header
    assert "Numbers attached." in shown


def test_an_unknown_message_or_outbox_is_a_clear_error(app, runner, tmp_path):
    missing = runner.invoke(args=["outbox", "list", "--path", str(tmp_path / "nowhere")])
    assert missing.exit_code == 1
    assert f"no maildir outbox at {tmp_path / 'nowhere'}" in missing.output
    (tmp_path / "box" / "new").mkdir(parents=True)
    (tmp_path / "box" / "cur").mkdir()
    (tmp_path / "box" / "tmp").mkdir()
    empty = runner.invoke(args=["outbox", "list", "--path", str(tmp_path / "box")])
    assert empty.exit_code == 0 and empty.output == "-- 0 message(s)\n"
    unknown = runner.invoke(args=["outbox", "show", "7", "--path", str(tmp_path / "box")])
    assert unknown.exit_code == 1 and "no message '7'" in unknown.output


def test_an_older_copy_without_an_envelope_falls_back_to_to(tmp_path):
    import mailbox

    box = mailbox.Maildir(tmp_path / "old", create=True)
    box.add(b"From: a@acme.test\r\nTo: Pat <pat@partner.test>\r\nSubject: old\r\n\r\nhi\r\n")
    (entry,) = outbox.listing(str(tmp_path / "old"))
    assert (entry.number, entry.recipient, entry.subject) == (
        1, "Pat <pat@partner.test>", "old")
    assert outbox.show(str(tmp_path / "old"), entry.key).endswith("\n\nhi\n")


def test_the_outbox_is_outbounds_maildir_else_the_instance_one():
    assert outbox.path_of("maildir:/srv/out", "mx", "/i") == "/srv/out"
    assert outbox.path_of("mx", "maildir:/srv/relay", "/i") == "/srv/relay"
    assert outbox.path_of("mx", "smtp://relay:25", "/i") == "/i/outbox"
