"""Notifications that are believed (DKIM, From), links that survive scanners, access log."""

import re

import dkim
import dns.resolver
import pytest
from sqlalchemy import text
from support import PASSWORD, mail

from app.delivery import dkim_signing
from app.domain import access_log
from app.domain.passwords import hash_password
from app.extensions import db
from app.models import AccessEvent


def test_a_notification_verifies_under_dkim_with_the_published_key(app, gateway, network):
    gateway.tenant.mail_from = "secure@acme.test"
    dkim_signing.generate(gateway.tenant)
    dkim_signing.activate(gateway.tenant, "acme.test")  # as if its record were published
    db.session.commit()
    name, value = dkim_signing.dns_record(gateway.tenant, "acme.test")
    network.dns.add_txt(name, value)
    sink = network.mx("partner.test")
    gateway.send(mail(), ["pat@partner.test"], mode="external")
    gateway.run_queue()
    notice = next(d for d in sink.wait_for(2)
                  if d.message["Subject"] == "Secure message from Acme Corp: sign in to read it")
    assert notice.message["From"] == "Acme Corp <secure@acme.test>"
    assert notice.message["DKIM-Signature"]

    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port = ["127.0.0.1"], network.dns.port

    def from_test_dns(qname, timeout=5):
        answer = resolver.resolve(qname.decode().rstrip("."), "TXT")
        return b"".join(b"".join(record.strings) for record in answer)

    assert dkim.verify(notice.data, dnsfunc=from_test_dns)
    tampered = notice.data.replace(b"secure message", b"secure messagE", 1)
    assert not dkim.verify(tampered, dnsfunc=from_test_dns)


def test_without_a_key_nothing_is_signed(gateway):
    assert dkim_signing.sign(b"From: a@acme.test\r\n\r\nx", gateway.tenant) == \
        b"From: a@acme.test\r\n\r\nx"


def snapshot() -> list:
    """Every row of every table: a GET must leave all of them as they were."""
    tables = [r[0] for r in db.session.execute(text(
        "SELECT name FROM sqlite_master WHERE type='table'" if db.engine.dialect.name == "sqlite"
        else "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))]
    return [db.session.execute(text(f'SELECT * FROM "{t}" ORDER BY 1')).all()
            for t in sorted(tables) if t != "alembic_version"]


@pytest.mark.parametrize("first_contact", ["password", "activation_link"])
def test_a_get_of_every_generated_link_changes_nothing(app, gateway, client, first_contact):
    gateway.tenant.first_contact = first_contact
    db.session.commit()
    app.config["OUTBOUND"] = f"maildir:{app.instance_path}/outbox"
    gateway.send(mail(), ["pat@partner.test"], mode="external")
    from support import post_form, read_outbox

    # A reset link too (the recipient's: a colleague's goes through the internal relay).
    post_form(client, "/password/forgot", {"email": "pat@partner.test"})
    links = set()
    for message in read_outbox(app):
        for part in message.walk():
            if part.get_content_maintype() == "text":
                links |= set(re.findall(r"http://localhost(/[^\s\"<>]+)", part.get_content()))
    assert any("/password/reset/" in link for link in links)
    assert any(link.startswith("/t/acme/sign-in") for link in links)
    db.session.expire_all()
    before = snapshot()
    scanner = app.test_client()  # a mail scanner following every link, twice
    for link in sorted(links) * 2:
        assert scanner.get(link).status_code in (200, 302, 404), link
    db.session.expire_all()
    assert snapshot() == before


def test_the_sender_sees_who_opened_and_downloaded(app, gateway, client, auth):
    from support import post_form

    raw = (b"From: alice@acme.test\r\nTo: pat@partner.test\r\nSubject: files\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
           b"--b\r\nContent-Type: application/pdf\r\n"
           b"Content-Disposition: attachment; filename=\"terms.pdf\"\r\n\r\n%PDF\r\n--b--\r\n")
    message = gateway.send(raw, ["pat@partner.test"], mode="external")
    pat = gateway.account("pat@partner.test")
    pat.password_hash, pat.must_change_password = hash_password(PASSWORD), False
    db.session.commit()
    reader = app.test_client()
    post_form(reader, "/t/acme/sign-in", {"email": "pat@partner.test", "password": PASSWORD})
    reader.get(f"/inbox/{message.public_id}", headers={"User-Agent": "Pat's browser"})
    reader.get(f"/inbox/{message.public_id}/parts/1")
    kinds = [e.kind for e in access_log.of_message(message)]
    assert sorted(kinds) == ["downloaded", "opened"]
    alice = gateway.account("alice@acme.test")
    alice.password_hash = hash_password(PASSWORD)
    db.session.commit()
    auth.sign_in("alice@acme.test", slug="acme")
    page = client.get(f"/sent/{message.public_id}").get_data(as_text=True)
    assert "Who read it" in page and "Downloaded <bdi>terms.pdf</bdi>" in page
    # The recipient's own activity page shows sign-ins only, and only theirs.
    activity = reader.get("/account/activity").get_data(as_text=True)
    assert "Signed in" in activity and "alice@acme.test" not in activity
    assert db.session.query(AccessEvent).filter_by(kind="opened").count() == 1


def test_administrators_search_the_access_log_of_their_tenant_only(
        app, gateway, client, auth, make_tenant, make_user):
    other = make_tenant("globex", domains=["globex.test"])
    make_user(other, "gina@globex.test", role="internal")
    db.session.commit()
    post = app.test_client()
    from support import post_form

    post_form(post, "/t/globex/sign-in", {"email": "gina@globex.test", "password": PASSWORD})
    make_user(gateway.tenant, "boss@acme.test", role="admin")
    auth.sign_in("boss@acme.test", slug="acme")
    page = client.get("/admin/access").get_data(as_text=True)
    assert "boss@acme.test" in page
    assert "gina@globex.test" not in page


# --- a DKIM key waits for its record ------------------------------------------------


def test_a_new_key_signs_nothing_until_its_record_is_published(app, gateway, network):
    """Generated, a key waits; "Check DNS now" (or the worker) finds its record and only
    then does it sign, under a selector of its own; the key it replaces signs meanwhile
    and its record stays valid until then."""
    from datetime import timedelta

    from app import clock
    from app.domain import domain_proof

    tenant = gateway.tenant
    tenant.mail_from = "secure@acme.test"
    raw = b"From: Acme <secure@acme.test>\r\nSubject: x\r\n\r\nbody\r\n"
    dkim_signing.generate(tenant)
    db.session.commit()
    assert dkim_signing.sign(raw, tenant) == raw  # waiting: unsigned
    name, value = dkim_signing.dns_record(tenant, "acme.test", waiting=True)
    servers = f"127.0.0.1:{network.dns.port}"
    outcome = dkim_signing.check_published(tenant, "acme.test", servers)
    assert not outcome.published and f"The record at {name} is not published yet" in \
        outcome.message
    network.dns.add_txt(name, "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA")
    outcome = dkim_signing.check_published(tenant, "acme.test", servers)
    assert not outcome.published and "(a different key is there)" in outcome.message
    # published as DNS hosts often write long keys: split in quoted strings, blanks between
    spaced = value.replace("; p=", ";  p= ")
    network.dns.add_txt(name, spaced[:120] + " " + spaced[120:])
    first = tenant.dkim_next_selector
    outcome = dkim_signing.check_published(tenant, "acme.test", servers)
    assert outcome.published and f"signed with selector {first}" in outcome.message
    assert tenant.dkim_selector == first and tenant.dkim_next_selector is None
    assert b"s=" + first.encode() in dkim_signing.sign(raw, tenant)
    db.session.commit()

    # a second key the same day has its own selector; the first still signs meanwhile
    clock.freeze(clock.utcnow() + timedelta(seconds=1))
    try:
        dkim_signing.generate(tenant)
    finally:
        clock.freeze(None)
    assert tenant.dkim_next_selector != first
    assert b"s=" + first.encode() in dkim_signing.sign(raw, tenant)
    network.dns.add_txt(*dkim_signing.dns_record(tenant, "acme.test", waiting=True))
    db.session.commit()
    assert domain_proof.check_pending(servers) == 1  # the worker's prove job finds it
    db.session.expire_all()
    assert tenant.dkim_selector != first and tenant.dkim_next_selector is None


def test_a_dns_failure_leaves_the_waiting_key_waiting(gateway, network):
    tenant = gateway.tenant
    dkim_signing.generate(tenant)
    name, _ = dkim_signing.dns_record(tenant, "acme.test", waiting=True)
    network.dns.fail(name)
    outcome = dkim_signing.check_published(tenant, "acme.test",
                                           f"127.0.0.1:{network.dns.port}")
    assert not outcome.published and f"DNS could not answer for {name}" in outcome.message
    assert tenant.dkim_next_selector and tenant.dkim_selector is None


def test_a_key_signs_only_for_the_domain_whose_dns_held_it(make_tenant):
    """The sender moved to another of the tenant's domains: the key goes back to waiting,
    for its record there, and signs nothing meanwhile."""
    tenant = make_tenant("initech", domains=["a.test", "b.test"], mail_from="notify@a.test")
    dkim_signing.generate(tenant)
    assert dkim_signing.activate(tenant, "a.test")
    raw_a = b"From: Initech <notify@a.test>\r\nSubject: x\r\n\r\nbody\r\n"
    raw_b = raw_a.replace(b"a.test", b"b.test")
    assert b"d=a.test" in dkim_signing.sign(raw_a, tenant)
    assert dkim_signing.sign(raw_b, tenant) == raw_b  # never seen in b.test's DNS
    selector = tenant.dkim_selector
    tenant.mail_from = "notify@b.test"
    dkim_signing.follow_sender(tenant, "b.test")
    assert tenant.dkim_selector is None and tenant.dkim_next_selector == selector
    assert dkim_signing.dns_record(tenant, "b.test", waiting=True)[0] == \
        f"{selector}._domainkey.b.test"
    assert dkim_signing.sign(raw_b, tenant) == raw_b


def test_a_key_generated_while_the_worker_looks_is_not_lost(make_tenant, monkeypatch):
    """The worker found the old waiting key's record; the administrator generated a new
    key meanwhile: the activation takes nothing, and the new key still waits."""
    import time

    from sqlalchemy.orm import Session

    from app.delivery import destinations
    from app.domain import domain_proof
    from app.models import Tenant

    tenant = make_tenant("initech", domains=["initech.test"], mail_from="n@initech.test")
    dkim_signing.generate(tenant)
    db.session.commit()
    published = dkim_signing.dns_record(tenant, "initech.test", waiting=True)[1]

    def slow_lookup(name, servers, *, timeout):
        with Session(db.engine) as other:  # the web process, meanwhile
            time.sleep(1.05)  # a selector of its own, dated to the second
            dkim_signing.generate(other.get(Tenant, tenant.id))
            other.commit()
        return [published]

    monkeypatch.setattr(destinations, "txt_records", slow_lookup)
    assert domain_proof.check_pending("") == 0
    db.session.expire_all()
    kept = db.session.get(Tenant, tenant.id)
    assert kept.dkim_next_selector and kept.dkim_selector is None


def test_the_worker_looks_for_waiting_keys_hourly_for_a_week_a_batch_at_a_time(
        make_tenant, monkeypatch, frozen_clock):

    import dns.exception

    from app.delivery import destinations
    from app.domain import domain_proof

    for number in range(3):
        tenant = make_tenant(f"t{number}", domains=[f"t{number}.test"],
                             mail_from=f"n@t{number}.test")
        dkim_signing.generate(tenant)
    db.session.commit()
    looked = []

    def silent(name, servers, *, timeout):
        looked.append(name.split(".", 2)[2])
        raise dns.exception.Timeout

    monkeypatch.setattr(destinations, "txt_records", silent)
    monkeypatch.setattr(domain_proof, "AUTO_CHECK_BATCH", 2)
    domain_proof.check_pending("")
    domain_proof.check_pending("")  # within the hour: only the one not looked at yet
    assert looked == ["t0.test", "t1.test", "t2.test"]
    frozen_clock.advance(domain_proof.AUTO_CHECK_EVERY)
    domain_proof.check_pending("")
    assert looked[3:] == ["t0.test", "t1.test"]
    frozen_clock.advance(domain_proof.AUTO_CHECK)
    domain_proof.check_pending("")  # a week on: only Check DNS now looks
    assert len(looked) == 5
